/* SPDX-License-Identifier: MIT */
/*
 * The guest's disk workload (`DISKLOAD rate [fua]`, guest/PROTOCOL.md):
 * 4 KiB writes to a scratch area of disk 0 that the key-value log does not
 * use (its last quarter), paced at `rate` sectors/s, each timed by the
 * guest's clock.  Counters for STATS: writes done, their total latency,
 * the largest latency, failed writes.
 *
 * Set up and changed by vCPU 0 (the network); run by whichever vCPU runs
 * the workload (diskload_step).  Its own struct blk: the disk calls are
 * serialised by the VMM, the counters are this workload's own.
 */
#ifndef REMUS_GUEST_DISKLOAD_H
#define REMUS_GUEST_DISKLOAD_H

#include <stdint.h>

#include "guest/disk/blk.h"

#define DISKLOAD_IO 4096u              /* bytes per write */
#define DISKLOAD_MAX_RATE 1000000u     /* sectors/s: effectively flat out */
#define DISKLOAD_MIN_AREA (128u * 512u) /* the scratch area's minimum */

struct diskload {
    struct blk blk;
    uint64_t first;              /* scratch area: byte offset, length */
    uint64_t len;
    volatile uint64_t rate;      /* sectors/s, 0: off */
    volatile int fua;
    volatile uint64_t gen;       /* bumped at each change: restart pacing */
    /* the workload's own (one vCPU at a time) */
    uint64_t seen_gen, t0, done, cursor;
    volatile uint64_t writes, write_ns, max_ns, errors;
    int started;                 /* DISKLOAD was accepted since boot */
    uint8_t buf[DISKLOAD_IO] __attribute__((aligned(4096)));
};

/* The scratch area of the disk: [*first, *first + *len) in bytes (the last
 * quarter, 4 KiB aligned).  0, or -1 when there is no disk or it is too
 * small (under DISKLOAD_MIN_AREA). */
int diskload_area(uint64_t disk_size, uint64_t *first, uint64_t *len);
/*
 * Start (rate > 0, clamped to DISKLOAD_MAX_RATE) or stop (rate 0) the
 * workload on [first, first + len) (from diskload_area).  Returns the rate
 * in effect.
 */
uint64_t diskload_set(struct diskload *d, uint64_t first, uint64_t len,
                      uint64_t rate, int fua);
/* Do the writes due now at the rate, at most @max; returns how many were
 * done (0: off or none due). */
uint64_t diskload_step(struct diskload *d, uint64_t max);

#endif
