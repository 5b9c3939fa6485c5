/* SPDX-License-Identifier: MIT */
/*
 * The drill in COLO mode (`remus drill --colo`): what the primary's status
 * file (common/status.h) says of COLO while the load runs -- the mode,
 * checkpoints by cause, fallbacks and the comparator's queues -- sampled
 * by the drill's progress loop until the kill.
 */
#ifndef REMUS_DRILL_DRILL_COLO_H
#define REMUS_DRILL_DRILL_COLO_H

#include <stdbool.h>
#include <stdint.h>

struct rm_drill_colo {
    bool sampled;                 /* at least one status read */
    char mode[16];                /* at the last sample */
    bool ever_buffered;           /* some sample said buffered */
    uint64_t first[4], last[4];   /* checkpoints by cause (mismatch,
                                     timeout, overflow, periodic): at the
                                     first sample under load, at the last */
    uint64_t first_ns, last_ns;   /* when (monotonic) */
    uint64_t buffered_checkpoints, fallbacks;   /* at the last sample */
    uint64_t held_max_vm, held_max_replica;     /* the largest queues seen */
    /* The replica's pause per checkpoint (paused .. ran again), from the
     * secondary's closing COLO line (0: not found) */
    double replica_pause_mean_ms, replica_pause_max_ms;
    /* The takeover, from the secondary's log: the sectors the replica
     * wrote since its checkpoint that it wrote into its image (-1: not
     * said), and those a test mode dropped instead */
    int64_t takeover_folded;
    uint64_t takeover_dropped;
};

/* Before the first sample or log line. */
void rm_drill_colo_init(struct rm_drill_colo *c);

/* The last checkpoint in NAME's @role ("primary", "secondary") status in
 * @run_dir (the primary's last taken, the secondary's last committed):
 * 0, or -errno when there is no status (yet). */
int rm_drill_colo_epoch(const char *run_dir, const char *name,
                        const char *role, uint64_t *epoch);

/* Before the kill: the primary's last checkpoint committed on the
 * secondary, and the replica run on from it long enough to have written
 * to its disk (what the takeover must keep). */
struct rm_drill_colo_wait {
    uint64_t taken;               /* the primary's last checkpoint */
    uint64_t committed;           /* the secondary's, at the last read */
    uint64_t sectors;             /* its replica wrote since, then */
    uint64_t waited_ms;
};

/* Wait until NAME's secondary status (in @run_dir) says it committed the
 * checkpoint the primary's says it took (read once, first), and that its
 * replica wrote a sector since, at least @min_ms after that commit was
 * seen, reading every 10 ms.  0, or -ETIMEDOUT after @timeout_ms (what
 * was seen last in @w), -ENOENT without the primary's status. */
int rm_drill_colo_wait_replica(const char *run_dir, const char *name,
                               unsigned min_ms, unsigned timeout_ms,
                               struct rm_drill_colo_wait *w);

/* A line of the secondary's log: the replica's pause or the takeover's
 * sectors, if it is a line that says them. */
void rm_drill_colo_log_line(struct rm_drill_colo *c, const char *line);

/* Read NAME's primary status in the run directory @run_dir now; returns
 * 0, or -errno when there is none (yet) or it is not COLO's. */
int rm_drill_colo_sample(struct rm_drill_colo *c, const char *run_dir,
                         const char *name);

/* Checkpoints of cause @i (0..3) per second between the first and last
 * samples (0 with fewer than two). */
double rm_drill_colo_rate(const struct rm_drill_colo *c, unsigned i);

#endif
