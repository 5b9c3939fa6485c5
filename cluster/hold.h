/* SPDX-License-Identifier: MIT */
/*
 * Holding the VM after a decision, for both sessions: a side that runs
 * the VM (a primary that runs on, a secondary that took over) waits for
 * it to end; with --quorum it holds the VM's token meanwhile and stops
 * the VM when its partition loses quorum (cluster/quorum.h,
 * rm_quorum_hold).
 */
#ifndef REMUS_CLUSTER_HOLD_H
#define REMUS_CLUSTER_HOLD_H

#include <signal.h>
#include <stddef.h>

#include "backends/backend.h"

struct rm_quorum;

/*
 * 0 once the VM of @be ended; -ENOLCK when the partition lost quorum: the
 * VM was stopped (and has ended), the reason in @why.  A VM this process
 * does not run (a Xen domain) without a token (no @q): with @release,
 * held until it ends or *@release is raised (then 1: it runs on by
 * itself); without @release (NULL), 1 at once.
 */
int rm_hold_vm(struct rm_backend *be, struct rm_quorum *q,
               volatile sig_atomic_t *release, char *why, size_t len);

#endif
