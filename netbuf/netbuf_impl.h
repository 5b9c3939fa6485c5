/* SPDX-License-Identifier: MIT */
/*
 * Inside netbuf: the ops table every implementation fills in.  The generic
 * functions of netbuf.h (netbuf/netbuf.c) dispatch through it; an
 * implementation embeds struct rm_netbuf as the first member of its own
 * state.
 */
#ifndef REMUS_NETBUF_NETBUF_IMPL_H
#define REMUS_NETBUF_NETBUF_IMPL_H

#include "netbuf/netbuf.h"

struct rm_netbuf_ops {
    const char *kind;     /* "queue" (KVM), "plug" (Xen), "set", "colo" */

    /*
     * An outgoing frame of the VM, from any thread (KVM: the VMM's network
     * device).  Buffer it in the current epoch, or send it at once in
     * passthrough mode.  0, or -ENOBUFS when the bound dropped it.  NULL
     * where the VM's output never passes through this process (Xen: the
     * kernel's plug qdisc holds it); rm_netbuf_output() then returns
     * -EOPNOTSUPP.
     */
    int (*output)(struct rm_netbuf *nb, const void *frame, size_t len);

    /*
     * The VM is suspended for checkpoint @epoch: output produced from now
     * on belongs to epoch @epoch + 1 (see netbuf.h).  Called with the VM
     * paused, so it must be quick.  0 or -errno.
     */
    int (*start_epoch)(struct rm_netbuf *nb, uint64_t epoch);

    /* The secondary acknowledged @epoch: send everything produced up to
     * and including it, in order.  0 or -errno. */
    int (*release)(struct rm_netbuf *nb, uint64_t epoch);

    /* Failover or abandoned protection: drop everything held.  0 or
     * -errno. */
    int (*discard)(struct rm_netbuf *nb);

    /* Protection ended, the VM runs on unprotected: release everything
     * held and let all later output through unbuffered.  0 or -errno. */
    int (*passthrough)(struct rm_netbuf *nb);

    /* A consistent copy of the counters. */
    void (*get_stats)(struct rm_netbuf *nb, struct rm_netbuf_stats *st);

    /* Drop what is held, undo any setup (qdiscs, devices), free @nb. */
    void (*destroy)(struct rm_netbuf *nb);
};

struct rm_netbuf {
    const struct rm_netbuf_ops *ops;
};

#endif
