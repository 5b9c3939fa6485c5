/* SPDX-License-Identifier: MIT */
/*
 * The pause's parts (struct rm_epoch_stats.phase_ns) summed over a run of
 * checkpoints, and printed as a markdown table: each part's mean and its
 * share of the mean pause.  The parts of one pause add up to it exactly,
 * so their means add up to the mean pause.
 */
#ifndef REMUS_BENCH_PAUSE_PARTS_H
#define REMUS_BENCH_PAUSE_PARTS_H

#include <stdint.h>

#include "common/sr.h"

struct pause_parts {
    uint64_t sum_ns[RM_PAUSE_PHASES];
    uint64_t pause_sum_ns;
    uint64_t n;                      /* checkpoints added */
};

/* Add one checkpoint's parts. */
void pause_parts_add(struct pause_parts *pp, const struct rm_epoch_stats *st);
/* Add every checkpoint of @src to @dst. */
void pause_parts_merge(struct pause_parts *dst, const struct pause_parts *src);
/* Mean of part @phase in microseconds (0 with no checkpoint). */
double pause_parts_mean_us(const struct pause_parts *pp, unsigned phase);
/* Mean pause in microseconds (0 with no checkpoint). */
double pause_parts_pause_us(const struct pause_parts *pp);
/* The table's header, with @what naming the first column. */
void pause_parts_header(const char *what);
/* One row: @label, the mean pause, each part's mean and share. */
void pause_parts_row(const char *label, const struct pause_parts *pp);

#endif
