/* SPDX-License-Identifier: MIT */
/* Holding the VM after a decision (see hold.h). */
#define RM_LOG_PREFIX "hold"
#include "cluster/hold.h"

#include <errno.h>

#include "cluster/quorum.h"

static int wait_be(void *opaque, int ms)
{
    struct rm_backend *be = opaque;

    return be->ops->wait(be, ms);
}

static void stop_be(void *opaque)
{
    struct rm_backend *be = opaque;

    be->ops->request_stop(be);
}

int rm_hold_vm(struct rm_backend *be, struct rm_quorum *q,
               volatile sig_atomic_t *release, char *why, size_t len)
{
    if (q) {
        if (rm_quorum_hold(q, wait_be, stop_be, be, why, len) == -ENOLCK) {
            be->ops->wait(be, -1);
            return -ENOLCK;
        }
        return 0;
    }
    if (be->in_process) {
        be->ops->wait(be, -1);
        return 0;
    }
    if (!release)
        return 1;
    while (!*release)
        if (be->ops->wait(be, 200) == 0)
            return 0;
    return 1;
}
