/* SPDX-License-Identifier: MIT */
/*
 * The control socket of a VM this process holds (common/ctlsock.h:
 * $REMUS_RUN_DIR/NAME.sock), whatever its backend: the one way `remus
 * handover`, `remus reprotect` and `remus reprotect --stop` reach the
 * process that runs or protects a VM.  A `remus protect` process serves it
 * for the VM it protects (primary/session.h), a `remus receive` process
 * once its replica took over (secondary/session.h).
 *
 * Requests:
 *   "handover"   the session protecting the VM (this process's own, or
 *                one started by "protect") pauses it for good and tells
 *                the secondary to take over from its last checkpoint;
 *                answered once the protection ended: "ok handed over ...
 *                to PEER" or "error ..." (nothing protects the VM; the
 *                handover did not happen, and why).
 *   "protect HOST:PORT INTERVAL_MS HB_MS HB_TIMEOUT_MS BUFFER(0|1)
 *    keyed|insecure [FLAG ...]" (primary/protect_request.h)
 *                protect the VM (again: a replica that took over, or a VM
 *                whose secondary was lost) to the `remus receive` at
 *                HOST:PORT, in a thread of this process, through the
 *                backend's protect_again op; with the key and the quorum
 *                handle this process runs with.  Answered once the first
 *                checkpoint (a full resync) is acknowledged: "ok EPOCH
 *                PAUSE_US DIRTY_PAGES BYTES SEND_US ACK_US"; a bad
 *                request: "error bad protect request: WHAT".
 *   "unprotect"  end a protection started by "protect" cleanly.
 *   "status"     "ok protected PEER" or "ok unprotected".
 * Anything else goes to the backend's own requests (the control op of
 * backends/backend.h), told whether a protection runs.
 *
 * Two processes may serve the same name on one host (both sides of a
 * pair on one machine, as the tests and the Xen lab run them): the one
 * that starts last takes the path over (a replica that takes over after a
 * handover), and a process that stops removes the path only while it is
 * still its own.
 */
#ifndef REMUS_PRIMARY_CONTROL_H
#define REMUS_PRIMARY_CONTROL_H

#include <signal.h>

#include "backends/backend.h"
#include "common/err.h"

struct rm_auth_key;
struct rm_quorum;
struct rm_primary_result;
struct rm_vm_control;

/*
 * Serve the control socket of the VM @be runs, named be->vm_name.  @key:
 * what a "protect" authenticates with (NULL: the host's default key, or
 * refused; "insecure" requests run without one); @quorum: the handle a
 * "protect" decides a lost secondary with (this process's, which holds
 * the VM's token), or NULL; @process_stop: the process's stop flag
 * (SIGINT/SIGTERM) or NULL: raised while a "protect" runs, it ends that
 * protection cleanly, as the process's own; it is lowered when such a
 * protection starts, so that the first signal after it ends it (a second
 * stops the VM, as the process's signals go).  None is owned; all must
 * outlive the control.  NULL with the reason in @err.
 */
struct rm_vm_control *rm_vm_control_start(struct rm_backend *be,
                                          const struct rm_auth_key *key,
                                          struct rm_quorum *quorum,
                                          volatile sig_atomic_t *process_stop,
                                          struct rm_error *err);
/* Stop serving; a protection started by "protect" is ended cleanly
 * first.  NULL is fine. */
void rm_vm_control_stop(struct rm_vm_control *c);

/*
 * For the primary session (primary/session.c): a protection of the VM
 * begins (to @peer, for "status" and answers); the returned flag is the
 * one "handover" raises (the session's handover_requested).  Then, once
 * it ended, session_end with its result (answers a waiting "handover").
 */
volatile sig_atomic_t *rm_vm_control_session_begin(struct rm_vm_control *c,
                                                   const char *peer);
void rm_vm_control_session_end(struct rm_vm_control *c,
                               const struct rm_primary_result *res);

#endif
