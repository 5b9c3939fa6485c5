/* SPDX-License-Identifier: MIT */
/*
 * One primary session for every backend: protect the VM a backend
 * (backends/backend.h) runs, with the policy around the protocol of
 * primary/protect.h:
 *   - the quorum gate (cluster/quorum.h): when the secondary is lost the
 *     cluster decides, the VM's token included; a VM that must not run on
 *     is paused through the backend and stopped;
 *   - a planned handover (the backend pauses the VM for good, the
 *     secondary takes over);
 *   - what the end means for the VM: a stop request leaves it running
 *     unprotected, a lost secondary too (unless the gate says otherwise);
 *   - holding the VM afterwards: a VM that runs in this process (KVM) is
 *     waited for; with quorum, this side holds the VM's token while the VM
 *     runs and stops it if its partition loses quorum.
 * It knows nothing of KVM or Xen.  Library code: it logs and returns.
 */
#ifndef REMUS_PRIMARY_SESSION_H
#define REMUS_PRIMARY_SESSION_H

#include <signal.h>

#include "backends/backend.h"
#include "common/outcome.h"
#include "primary/protect.h"

struct rm_quorum;
struct rm_vm_control;

struct rm_primary_cfg {
    /* The protocol: peer, interval, compress, blackhole, heartbeat,
     * connect timeout, key, progress, stats_fd, digest_every/digest_fd.
     * The session fills in what comes from the backend (name, sizes, ops,
     * netbuf, pause, digest), the stop and handover flags and the quorum
     * below; whatever the caller put there is ignored. */
    struct rm_protect_cfg protect;
    /* --quorum: this process's handle in the VM's group (opened and found
     * quorate by the caller, rm_quorum_open_quorate), or NULL.  Not
     * owned. */
    struct rm_quorum *quorum;
    /* Set asynchronously (signal handlers): end protection cleanly (the
     * VM runs on), hand the VM over to the secondary. */
    volatile sig_atomic_t *stop_requested;
    /* rm_primary_run: serve the VM's control socket (primary/control.h)
     * while this process holds the VM: `remus handover` asks the session
     * through it, `remus reprotect` protects the VM again after a lost
     * secondary.  Otherwise no handover is offered. */
    bool serve_control;
    /* rm_primary_protect: the control socket the session reports to (its
     * handover flag), or NULL.  rm_primary_run sets it. */
    struct rm_vm_control *control;
};

struct rm_primary_result {
    enum rm_outcome outcome;
    struct rm_protect_result protect;   /* how the protection ended */
    bool started;                 /* protection ran (a handshake passed) */
    struct rm_error why;          /* FAILED / HELD_BACK: the reason */
};

/*
 * Protect the VM of @be (role "protected") until the protection ends,
 * then, for a VM this process runs (or holds the token of), until the VM
 * ends.  Logs what happened ("the VM keeps running UNPROTECTED", "HANDED
 * OVER", "STOPPING the VM ...") and fills @res.  Never fails: an error is
 * outcome FAILED with the reason in res->why.
 */
void rm_primary_run(struct rm_backend *be, const struct rm_primary_cfg *cfg,
                    struct rm_primary_result *res);

/*
 * The protection alone: protect the VM of @be until the protection ends;
 * a VM that must not run on (handed over, or the cluster said so) is
 * asked to stop (request_stop), not waited for.  What the end means is in
 * @res (outcome OK with res->protect.end, HELD_BACK, or FAILED: the
 * protection never started or broke; the VM runs on unprotected).  For a
 * protection started from the VM's control socket (primary/control.c).
 */
void rm_primary_protect(struct rm_backend *be,
                        const struct rm_primary_cfg *cfg,
                        struct rm_primary_result *res);

#endif
