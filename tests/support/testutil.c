/* SPDX-License-Identifier: MIT */
#include "tests/support/testutil.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct save_state {
    struct mem_guest *g;
    const struct tu_save_opts *o;
};

static void workload(struct mem_guest *g, void *opaque)
{
    const struct tu_save_opts *o = opaque;

    mem_guest_scribble(g, o->dirty_per_epoch);
}

static int snap(struct tu_snapshots *s, struct mem_guest *g)
{
    size_t bytes = g->nr_pfns * RM_PAGE_SIZE;

    if (s->count == s->cap) {
        unsigned cap = s->cap ? s->cap * 2 : 8;
        uint8_t **p = realloc(s->pages, cap * sizeof(*p));
        uint64_t *v = realloc(s->vcpu_state, cap * sizeof(*v));
        uint64_t *d = realloc(s->digest, cap * sizeof(*d));

        if (p)
            s->pages = p;
        if (v)
            s->vcpu_state = v;
        if (d)
            s->digest = d;
        if (!p || !v || !d)
            return -ENOMEM;
        s->cap = cap;
    }
    s->pages[s->count] = malloc(bytes);
    if (!s->pages[s->count])
        return -ENOMEM;
    memcpy(s->pages[s->count], g->pages, bytes);
    s->vcpu_state[s->count] = g->vcpu_state;
    s->digest[s->count] = 0;
    s->nr_pfns = g->nr_pfns;
    s->count++;
    return 0;
}

/* Snapshot the guest as checkpoint @epoch captures it (it is suspended). */
static int on_suspended(void *opaque, uint64_t epoch)
{
    struct save_state *ss = opaque;

    if (ss->o->snaps) {
        if (ss->o->snaps->count != epoch - 1)
            return -EPROTO;
        return snap(ss->o->snaps, ss->g);
    }
    return 0;
}

static int on_checkpoint(void *opaque, const struct rm_epoch_stats *st)
{
    struct save_state *ss = opaque;

    if (ss->o->snaps)
        ss->o->snaps->digest[st->epoch - 1] = st->digest;
    if (ss->o->stats && st->epoch >= 1 && st->epoch <= ss->o->nstats)
        ss->o->stats[st->epoch - 1] = *st;
    if (ss->o->later_bytes && st->epoch >= 2)
        *ss->o->later_bytes += st->bytes;
    return st->epoch < ss->o->epochs ? 1 : 0;
}

int tu_save(struct mem_guest *g, const struct tu_save_opts *o,
            struct rm_buf *out, struct rm_save_ctx *ctx_out,
            struct rm_error *err)
{
    struct save_state ss = { g, o };
    struct rm_save_ctx ctx;
    struct rm_sink sink;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &mem_save_ops;
    ctx.backend_arg = g;
    ctx.err = err;
    rm_save_params_default(&ctx.params, o->mode);
    ctx.params.compress = o->compress;
    ctx.params.verify = o->verify;
    if (o->max_iters)
        ctx.params.max_iters = o->max_iters;
    if (o->dirty_threshold)
        ctx.params.dirty_threshold = o->dirty_threshold;
    if (o->max_factor)
        ctx.params.max_factor = o->max_factor;
    ctx.cb.opaque = &ss;
    ctx.cb.checkpoint = on_checkpoint;
    ctx.cb.suspended = on_suspended;
    g->workload = o->workload ? o->workload
                  : o->dirty_per_epoch ? workload : NULL;
    g->workload_opaque = (void *)o;
    rm_sink_init_buf(&sink, out);
    rc = rm_save(&ctx, &sink);
    if (ctx_out)
        *ctx_out = ctx;
    return rc;
}

static int on_committed(void *opaque, uint64_t epoch, uint64_t digest,
                        uint64_t pages)
{
    struct tu_restore_log *log = opaque;
    struct tu_snapshots *s = log->snaps;

    (void)pages;
    if (log->commits < 256)
        log->digests[log->commits] = digest;
    log->commits++;
    log->last_epoch = epoch;
    if (s && epoch >= 1 && epoch <= s->count && log->replica->pages) {
        if (memcmp(log->replica->pages, s->pages[epoch - 1],
                   s->nr_pfns * RM_PAGE_SIZE))
            log->mismatched_commits++;
        if (s->digest[epoch - 1] != digest)
            log->mismatched_commits++;
    }
    return 0;
}

int tu_restore(const void *data, size_t len, struct mem_replica *r,
               bool allow_compressed, bool checkpointed,
               struct tu_restore_log *log, struct rm_restore_ctx *ctx_out,
               struct rm_error *err)
{
    struct rm_restore_ctx ctx;
    struct rm_src src;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &mem_restore_ops;
    ctx.backend_arg = r;
    ctx.err = err;
    ctx.params.allow_compressed = allow_compressed;
    ctx.params.checkpointed_hint = checkpointed;
    if (log) {
        log->replica = r;
        ctx.params.max_buffer_bytes = log->max_buffer_bytes;
        ctx.cb.opaque = log;
        ctx.cb.checkpoint_committed = on_committed;
    }
    rm_src_init_mem(&src, data, len);
    rc = rm_restore(&ctx, &src);
    if (ctx_out)
        *ctx_out = ctx;
    return rc;
}

void tu_snapshots_free(struct tu_snapshots *s)
{
    unsigned i;

    for (i = 0; i < s->count; i++)
        free(s->pages[i]);
    free(s->pages);
    free(s->vcpu_state);
    free(s->digest);
    memset(s, 0, sizeof(*s));
}

int tu_kvm_test_setup(char *image, size_t len)
{
    char self[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (access("/dev/kvm", R_OK | W_OK)) {
        printf("SKIP: /dev/kvm is absent\n");
        return 77;
    }
    if (n <= 0 || unshare(CLONE_NEWNET) ||
        system("ip link set lo up") != 0) {
        printf("cannot set up a private network namespace (root?)\n");
        return 1;
    }
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(image, len, "%.*s/guest/remus-guest.elf",
             (int)(strrchr(self, '/') - self), self);
    return 0;
}
