/* SPDX-License-Identifier: MIT */
/*
 * COLO's packet comparator: the primary VM's output frames wait, flow by
 * flow (netbuf/frame_cmp.h), for the replica's; a primary frame leaves
 * (to the sink) as soon as the replica produced the same one, and the
 * replica's copy is dropped.  The replica never talks to the outside.
 *
 * The comparator asks for a checkpoint (on_diverge, once per divergence)
 * when
 *   - MISMATCH: the heads of a flow's two queues differ;
 *   - TIMEOUT: a frame of either side waited past cfg.timeout_ns for its
 *     counterpart (the other VM did not produce it: it has diverged, or
 *     is slow; either way only a checkpoint makes them agree);
 *   - OVERFLOW: a side holds more than cfg.max_frames or cfg.max_bytes, or
 *     more than cfg.max_flows flows are open.
 * Once diverged it compares nothing more: every primary frame is held
 * (those already held and those to come) until checkpoint_done(), which
 * the caller calls once the checkpoint that captured the primary's state
 * is acknowledged: the primary frames held from before the checkpoint's
 * cut (cut()) are then released in order and the replica's dropped (the
 * replica now holds the cut's state); those since the cut are compared
 * again, against what the resumed replica produces.  A primary frame
 * that does not fit while diverged is dropped and counted (the guest's
 * protocols retransmit, as for a full NIC queue); never released early.
 *
 * Time is the caller's (a monotonic clock in ns): primary(), secondary()
 * and tick() take "now", and tick() returns when it next needs to run.
 *
 * Thread-safe: primary() from the VMM's vCPU threads, secondary() from the
 * session's receive thread, tick() from a timer, checkpoint_done() from
 * the checkpoint loop.  The sink and on_diverge are called with no lock
 * of the comparator held; the sink sees released frames in order.
 */
#ifndef REMUS_NETBUF_COMPARE_H
#define REMUS_NETBUF_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "netbuf/frame_cmp.h"
#include "netbuf/netbuf.h"

struct rm_compare;

enum rm_diverge_cause {
    RM_DIVERGE_MISMATCH,
    RM_DIVERGE_TIMEOUT,
    RM_DIVERGE_OVERFLOW,
};

/* Why a checkpoint is needed (passed to on_diverge). */
struct rm_divergence {
    enum rm_diverge_cause cause;
    struct rm_flow_key flow;      /* the flow it happened in (OVERFLOW of
                                   * the flow table: the refused flow) */
    bool replica_side;            /* TIMEOUT/OVERFLOW: the replica's queue */
    size_t offset;                /* MISMATCH: first differing byte */
    uint64_t waited_ns;           /* TIMEOUT: how long the frame waited */
};

struct rm_compare_cfg {
    uint64_t timeout_ns;      /* default 20 ms */
    size_t max_frames;        /* held per side; default 4096 */
    size_t max_bytes;         /* held per side; default 8 MiB */
    size_t max_flows;         /* open flows; default 1024 */
    rm_netbuf_sink_fn sink;   /* where released primary frames go */
    void *sink_opaque;
    /* A checkpoint is needed.  Called once per divergence, from the thread
     * that found it; must not call back into the comparator. */
    void (*on_diverge)(void *opaque, const struct rm_divergence *d);
    void *diverge_opaque;
    /* No replica runs yet: hold every primary frame until the first
     * checkpoint_done() (as while diverged, but not a divergence). */
    bool start_held;
};

struct rm_compare_stats {
    uint64_t primary_frames, replica_frames;   /* accepted */
    uint64_t matched;                          /* pairs found the same */
    uint64_t released_frames, released_bytes;  /* primary frames sent */
    uint64_t dropped_full;                     /* refused while diverged */
    uint64_t dropped_replica;                  /* dropped at a checkpoint
                                                * or while diverged */
    uint64_t discarded;                        /* dropped by discard() */
    uint64_t mismatches, timeouts, overflows;  /* divergences by cause */
    uint64_t checkpoints;                      /* checkpoint_done calls */
    uint64_t held_primary, held_replica;       /* now */
    uint64_t flows;                            /* open now */
    bool diverged;                             /* now: a checkpoint is due */
    bool buffered;                             /* now: set_buffered(on) */
    enum rm_diverge_cause cause;               /* ... why (if diverged) */
    uint64_t sink_errors;
};

/* NULL with the reason in @err (a missing sink). */
struct rm_compare *rm_compare_new(const struct rm_compare_cfg *cfg,
                                  struct rm_error *err);

/* A frame the primary VM sent / the replica sent (copied).  0, or
 * -ENOMEM; a frame refused by a bound is counted, not an error. */
int rm_compare_primary(struct rm_compare *c, const void *frame, size_t len,
                       uint64_t now_ns);
int rm_compare_secondary(struct rm_compare *c, const void *frame, size_t len,
                         uint64_t now_ns);

/* Check the timeouts.  Returns the time (ns, the caller's clock) by which
 * tick() must run again, or UINT64_MAX when nothing waits. */
uint64_t rm_compare_tick(struct rm_compare *c, uint64_t now_ns);

/* Has a divergence been found since the last checkpoint_done()? */
bool rm_compare_diverged(struct rm_compare *c);

/* The primary's VM is paused at a checkpoint's cut: its frames from now
 * on wait for that checkpoint's acknowledgement (the replica pauses and is
 * given the cut's state; until then it cannot produce them), and no
 * timeout runs.  Frames before the cut are still compared. */
void rm_compare_cut(struct rm_compare *c);

/* The checkpoint is acknowledged: the replica holds the cut's state.  The
 * primary's frames from before the cut leave, in order (what the
 * checkpoint made safe), the replica's are dropped (it starts again from
 * the cut), and the primary's frames since the cut are compared afresh,
 * their wait counted from @now_ns. */
void rm_compare_checkpoint_done(struct rm_compare *c, uint64_t now_ns);

/* Buffered (Remus) mode, for a replica that does not run: from the next
 * checkpoint_done() on (@on) every primary frame is held as before the
 * first checkpoint (start_held) and leaves at the acknowledgement of the
 * first checkpoint whose cut follows it; nothing is compared and no
 * timeout runs.  Off: the next checkpoint_done() compares again, against
 * the replica that runs from that checkpoint.  Call it between a cut and
 * its checkpoint_done (the checkpoint that changes the mode). */
void rm_compare_set_buffered(struct rm_compare *c, bool on);

/* Failover or an abandoned protection: drop everything held, of both
 * sides (that output reflects state the survivor may never have had);
 * comparing goes on from nothing. */
void rm_compare_discard(struct rm_compare *c);

/* Protection ended, the VM runs on unprotected: release the primary's
 * held frames in order, drop the replica's, and from now on send every
 * primary frame at once and drop every replica frame. */
void rm_compare_passthrough(struct rm_compare *c);

void rm_compare_get_stats(struct rm_compare *c, struct rm_compare_stats *st);

/* "mismatch", "timeout", "overflow". */
const char *rm_diverge_cause_name(enum rm_diverge_cause cause);

/* Frees everything held (nothing is released). */
void rm_compare_free(struct rm_compare *c);

#endif
