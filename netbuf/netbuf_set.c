/* SPDX-License-Identifier: MIT */
/* Several netbufs as one (see netbuf_set.h). */
#include "netbuf/netbuf_set.h"

#include <errno.h>
#include <stdlib.h>

#include "netbuf/netbuf_impl.h"

struct nb_set {
    struct rm_netbuf base;          /* first: ops */
    size_t n;
    struct rm_netbuf *m[];          /* the members */
};

static const struct rm_netbuf_ops set_ops;

static struct nb_set *as_set(struct rm_netbuf *nb)
{
    return (struct nb_set *)nb;
}

struct rm_netbuf *rm_netbuf_set_new(struct rm_netbuf *const *members,
                                    size_t n, struct rm_error *err)
{
    struct nb_set *s;
    size_t i;

    for (i = 0; i < n; i++)
        if (!members[i])
            break;
    if (n == 0 || i < n) {
        rm_error_set(err, -EINVAL, "netbuf: a set needs at least one "
                     "member and no missing one (%zu of %zu given)", i, n);
        goto fail;
    }
    s = calloc(1, sizeof(*s) + n * sizeof(s->m[0]));
    if (!s) {
        rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        goto fail;
    }
    s->base.ops = &set_ops;
    s->n = n;
    for (i = 0; i < n; i++)
        s->m[i] = members[i];
    return &s->base;
fail:
    for (i = 0; i < n; i++)
        rm_netbuf_free(members[i]);
    return NULL;
}

size_t rm_netbuf_set_size(const struct rm_netbuf *nb)
{
    return nb->ops == &set_ops ? ((const struct nb_set *)nb)->n : 0;
}

/* ------------------------------------------------------------ ops */

/* @op on every member, even after one failed; the first error. */
static int each(struct rm_netbuf *nb,
                int (*op)(struct rm_netbuf *, uint64_t), uint64_t epoch)
{
    struct nb_set *s = as_set(nb);
    int rc = 0, r;

    for (size_t i = 0; i < s->n; i++) {
        r = op(s->m[i], epoch);
        if (r && !rc)
            rc = r;
    }
    return rc;
}

static int discard_one(struct rm_netbuf *nb, uint64_t unused)
{
    (void)unused;
    return rm_netbuf_discard(nb);
}

static int passthrough_one(struct rm_netbuf *nb, uint64_t unused)
{
    (void)unused;
    return rm_netbuf_passthrough(nb);
}

static int s_start_epoch(struct rm_netbuf *nb, uint64_t epoch)
{
    return each(nb, rm_netbuf_start_epoch, epoch);
}

static int s_release(struct rm_netbuf *nb, uint64_t epoch)
{
    return each(nb, rm_netbuf_release, epoch);
}

static int s_discard(struct rm_netbuf *nb)
{
    return each(nb, discard_one, 0);
}

static int s_passthrough(struct rm_netbuf *nb)
{
    return each(nb, passthrough_one, 0);
}

static void s_get_stats(struct rm_netbuf *nb, struct rm_netbuf_stats *st)
{
    struct nb_set *s = as_set(nb);
    struct rm_netbuf_stats one;

    *st = (struct rm_netbuf_stats){ 0 };
    for (size_t i = 0; i < s->n; i++) {
        rm_netbuf_get_stats(s->m[i], &one);
        st->queued_frames += one.queued_frames;
        st->queued_bytes += one.queued_bytes;
        st->released_frames += one.released_frames;
        st->released_bytes += one.released_bytes;
        st->dropped_full += one.dropped_full;
        st->discarded_frames += one.discarded_frames;
        st->held_frames += one.held_frames;
        st->held_bytes += one.held_bytes;
        st->sink_errors += one.sink_errors;
        st->released_epochs += one.released_epochs;
        st->discards += one.discards;
    }
}

static void s_destroy(struct rm_netbuf *nb)
{
    struct nb_set *s = as_set(nb);

    for (size_t i = 0; i < s->n; i++)
        rm_netbuf_free(s->m[i]);
    free(s);
}

static const struct rm_netbuf_ops set_ops = {
    .kind = "set",
    .output = NULL,        /* each member has its own output path */
    .start_epoch = s_start_epoch,
    .release = s_release,
    .discard = s_discard,
    .passthrough = s_passthrough,
    .get_stats = s_get_stats,
    .destroy = s_destroy,
};
