/* SPDX-License-Identifier: MIT */
/*
 * One secondary session for every backend: receive the protected VM's
 * checkpoints into a backend's replica (backends/backend.h) with the
 * protocol of secondary/receive.h, and the policy around it:
 *   - a clean stop from the primary discards the replica;
 *   - a lost primary (or its handover) goes through the takeover policy
 *     (secondary/takeover.h: quorum, the VM's token, fencing); a held
 *     back takeover leaves nothing running (exit 4);
 *   - a takeover activates the replica (it becomes the VM), writes the
 *     status, and holds the VM until it ends (a domain that runs on by
 *     itself: or until a stop request, which leaves it running, unless
 *     this side holds its quorum token): with quorum this side holds the VM's
 *     token while the VM runs and stops it if its partition loses quorum.
 * It knows nothing of KVM or Xen.  Library code: it logs and returns.
 */
#ifndef REMUS_SECONDARY_SESSION_H
#define REMUS_SECONDARY_SESSION_H

#include <signal.h>

#include "backends/backend.h"
#include "common/outcome.h"
#include "secondary/receive.h"

struct rm_quorum;

struct rm_secondary_cfg {
    /* The protocol: listen, timing, accept timeout, compression, key,
     * limits, buffer, progress, digest_every/digest_fd, commit_log_fd.
     * The session fills in the backend's part (name, ops, digest), the
     * quorum and the stop flag; whatever the caller put there is
     * ignored. */
    struct rm_receive_cfg receive;
    /* --quorum: this process's handle in the VM's group (role secondary),
     * or NULL.  Not owned. */
    struct rm_quorum *quorum;
    const char *fence_cmd;        /* --fence-cmd, or NULL */
    unsigned fence_timeout_ms;
    /* The VM's name from this host's own configuration, or NULL (then
     * the primary's, for status only: never for fencing or quorum). */
    const char *name;
    volatile sig_atomic_t *stop_requested;
    /* Once the replica took over and while this process holds the VM:
     * serve the VM's
     * control socket (primary/control.h: `remus reprotect` protects it
     * again, with this process's key and quorum handle, and `remus
     * handover` moves it back). */
    bool serve_control;
};

struct rm_secondary_result {
    enum rm_outcome outcome;      /* OK: the primary stopped (or we were
                                     stopped before a takeover); FAILED_OVER:
                                     the VM took over here (and ended, for a
                                     VM this process runs) */
    struct rm_receive_result receive;
    struct rm_error why;          /* FAILED / HELD_BACK: the reason */
};

void rm_secondary_run(struct rm_backend *be,
                      const struct rm_secondary_cfg *cfg,
                      struct rm_secondary_result *res);

#endif
