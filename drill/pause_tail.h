/* SPDX-License-Identifier: MIT */
/*
 * The drill's pause by part (#21: "find what made the tail"): from the
 * primary's --stats-file, each part of the pause (common/sr.h enum
 * rm_pause_phase: suspend, harvest, disk cut, epoch callback, pages,
 * state, resume; they add up to the pause) as p50/p99/max, and which part
 * took the largest share of the slowest pauses (those at or above the
 * pause's p99).  Checkpoint 1 is left out: it ends the initial copy, not
 * the protection under load.
 */
#ifndef REMUS_DRILL_PAUSE_TAIL_H
#define REMUS_DRILL_PAUSE_TAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sr.h"

struct rm_drill_pause_parts {
    uint64_t n;                          /* checkpoints read (after 1) */
    double pause_ms_p50, pause_ms_p99;   /* of those */
    double p50_ms[RM_PAUSE_PHASES];
    double p99_ms[RM_PAUSE_PHASES];
    double max_ms[RM_PAUSE_PHASES];
    uint64_t tail_n;                     /* pauses at or above the p99 */
    unsigned tail_part;                  /* the part with most of their
                                            time (enum rm_pause_phase) */
    double tail_share;                   /* its share of their time, 0..1 */
};

/*
 * Read @path (lines "epoch pause_us dirty bytes send_us ack_us disk_late"
 * then the RM_PAUSE_PHASES parts in us; shorter lines, from a primary
 * without the parts, are skipped).  0 with *@out filled (out->n == 0: no
 * such line), -errno when @path cannot be read or memory runs out.
 */
int rm_drill_pause_parts_read(const char *path,
                              struct rm_drill_pause_parts *out);

#endif
