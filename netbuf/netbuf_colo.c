/* SPDX-License-Identifier: MIT */
/* COLO's netbuf: the netbuf ops over the packet comparator
 * (netbuf/netbuf_colo.h). */
#include "netbuf/netbuf_colo.h"

#include <errno.h>
#include <stdlib.h>

#include "common/io.h"
#include "netbuf/netbuf_impl.h"

struct nb_colo {
    struct rm_netbuf base;        /* first: ops */
    struct rm_compare *cmp;
    uint64_t discards, released_epochs;   /* __atomic: the checkpoint loop
                                           * counts, metrics read */
};

static const struct rm_netbuf_ops colo_ops;

static struct nb_colo *colo_of(struct rm_netbuf *nb)
{
    return nb && nb->ops == &colo_ops ? (struct nb_colo *)nb : NULL;
}

struct rm_netbuf *rm_netbuf_colo_new(const struct rm_compare_cfg *cfg,
                                     struct rm_error *err)
{
    struct nb_colo *nb = calloc(1, sizeof(*nb));

    if (!nb) {
        rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        return NULL;
    }
    nb->cmp = rm_compare_new(cfg, err);
    if (!nb->cmp) {
        free(nb);
        return NULL;
    }
    nb->base.ops = &colo_ops;
    return &nb->base;
}

int rm_netbuf_replica_output(struct rm_netbuf *base, const void *frame,
                             size_t len)
{
    struct nb_colo *nb = colo_of(base);

    if (!nb)
        return -EINVAL;
    return rm_compare_secondary(nb->cmp, frame, len, rm_now_ns());
}

uint64_t rm_netbuf_colo_tick(struct rm_netbuf *base)
{
    struct nb_colo *nb = colo_of(base);

    return nb ? rm_compare_tick(nb->cmp, rm_now_ns()) : UINT64_MAX;
}

int rm_netbuf_colo_set_buffered(struct rm_netbuf *base, bool on)
{
    struct nb_colo *nb = colo_of(base);

    if (!nb)
        return -EINVAL;
    rm_compare_set_buffered(nb->cmp, on);
    return 0;
}

bool rm_netbuf_colo_stats(struct rm_netbuf *base, struct rm_compare_stats *st)
{
    struct nb_colo *nb = colo_of(base);

    if (!nb)
        return false;
    rm_compare_get_stats(nb->cmp, st);
    return true;
}

static int c_output(struct rm_netbuf *base, const void *frame, size_t len)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    return rm_compare_primary(nb->cmp, frame, len, rm_now_ns());
}

static int c_start_epoch(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    (void)epoch;
    rm_compare_cut(nb->cmp);
    return 0;
}

static int c_release(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    (void)epoch;
    rm_compare_checkpoint_done(nb->cmp, rm_now_ns());
    __atomic_fetch_add(&nb->released_epochs, 1, __ATOMIC_RELAXED);
    return 0;
}

static int c_discard(struct rm_netbuf *base)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    rm_compare_discard(nb->cmp);
    __atomic_fetch_add(&nb->discards, 1, __ATOMIC_RELAXED);
    return 0;
}

static int c_passthrough(struct rm_netbuf *base)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    rm_compare_passthrough(nb->cmp);
    return 0;
}

static void c_get_stats(struct rm_netbuf *base, struct rm_netbuf_stats *st)
{
    struct nb_colo *nb = (struct nb_colo *)base;
    struct rm_compare_stats cs;

    rm_compare_get_stats(nb->cmp, &cs);
    *st = (struct rm_netbuf_stats){
        .queued_frames = cs.primary_frames,
        .released_frames = cs.released_frames,
        .released_bytes = cs.released_bytes,
        .dropped_full = cs.dropped_full,
        .discarded_frames = cs.discarded,
        .held_frames = cs.held_primary,
        .sink_errors = cs.sink_errors,
        .released_epochs = __atomic_load_n(&nb->released_epochs,
                                           __ATOMIC_RELAXED),
        .discards = __atomic_load_n(&nb->discards, __ATOMIC_RELAXED),
        .matched = cs.matched,
    };
}

static void c_destroy(struct rm_netbuf *base)
{
    struct nb_colo *nb = (struct nb_colo *)base;

    rm_compare_free(nb->cmp);
    free(nb);
}

static const struct rm_netbuf_ops colo_ops = {
    .kind = "colo",
    .output = c_output,
    .start_epoch = c_start_epoch,
    .release = c_release,
    .discard = c_discard,
    .passthrough = c_passthrough,
    .get_stats = c_get_stats,
    .destroy = c_destroy,
};
