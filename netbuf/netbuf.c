/* SPDX-License-Identifier: MIT */
/* The generic netbuf functions: dispatch to the implementation's ops. */
#include "netbuf/netbuf_impl.h"

#include <errno.h>

int rm_netbuf_output(struct rm_netbuf *nb, const void *frame, size_t len)
{
    if (!nb->ops->output)
        return -EOPNOTSUPP;
    return nb->ops->output(nb, frame, len);
}

int rm_netbuf_start_epoch(struct rm_netbuf *nb, uint64_t epoch)
{
    return nb->ops->start_epoch(nb, epoch);
}

int rm_netbuf_release(struct rm_netbuf *nb, uint64_t epoch)
{
    return nb->ops->release(nb, epoch);
}

int rm_netbuf_discard(struct rm_netbuf *nb)
{
    return nb->ops->discard(nb);
}

int rm_netbuf_passthrough(struct rm_netbuf *nb)
{
    return nb->ops->passthrough(nb);
}

void rm_netbuf_get_stats(struct rm_netbuf *nb, struct rm_netbuf_stats *st)
{
    nb->ops->get_stats(nb, st);
}

void rm_netbuf_free(struct rm_netbuf *nb)
{
    if (nb)
        nb->ops->destroy(nb);
}

const char *rm_netbuf_kind(const struct rm_netbuf *nb)
{
    return nb->ops->kind;
}
