/* SPDX-License-Identifier: MIT */
/* Fencing the primary before a takeover: an operator's command, run as
 * Pacemaker runs a STONITH device (secondary/takeover.c asks). */
#ifndef RM_CLUSTER_FENCE_H
#define RM_CLUSTER_FENCE_H

#include <stdint.h>

#include "common/err.h"

/*
 * Run an external fencing command before a takeover, as Pacemaker runs a
 * STONITH device: /bin/sh -c CMD, with REMUS_NAME (@name: the local
 * configuration's, never the peer's; 1 to 64 of [A-Za-z0-9._-] or it is
 * refused with -EINVAL), REMUS_PEER (the primary's address) and
 * REMUS_EPOCH (the replica's checkpoint) in its environment, default
 * signal dispositions and an empty signal mask, its output in our log.
 * 0 only when it exited 0 within
 * @timeout_ms; otherwise -ETIMEDOUT (it is killed) or -ECANCELED, with
 * its exit status in @err.
 */
int rm_fence_run(const char *cmd, const char *name, const char *peer,
                 uint64_t epoch, unsigned timeout_ms, struct rm_error *err);

#endif
