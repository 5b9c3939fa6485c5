/* SPDX-License-Identifier: MIT */
/*
 * How a protection session ended (primary/session.h, secondary/session.h):
 * what the process's exit status says.  The values are the exit codes of
 * cli/cli.h.
 */
#ifndef REMUS_COMMON_OUTCOME_H
#define REMUS_COMMON_OUTCOME_H

enum rm_outcome {
    RM_OUTCOME_OK = 0,            /* ended as asked, or the VM ended */
    RM_OUTCOME_FAILED = 1,        /* an error (the reason is logged) */
    RM_OUTCOME_FAILED_OVER = 3,   /* the replica took over (and ended) */
    RM_OUTCOME_HELD_BACK = 4,     /* split-brain protection held the VM
                                     back: no takeover, or it stopped */
};

#endif
