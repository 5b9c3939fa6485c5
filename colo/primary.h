/* SPDX-License-Identifier: MIT */
/*
 * COLO, the primary's side (protect --colo): checkpoints on demand.
 *
 * The protected VM's output goes through COLO's netbuf (the comparator:
 * netbuf/netbuf_colo.h).  Around it:
 *   mirror()    every frame the VM reads is sent to the secondary, numbered
 *               from 1 (ColoFrame colo_input), for the replica; it starts
 *               at checkpoint 1's cut (the VM suspended): what came before
 *               is in checkpoint 1;
 *   message()   the secondary's COLO messages: the replica's frames go to
 *               the comparator, its dirty pages (ColoDirty) into the
 *               checkpoint being cut, and an acknowledgement releases what
 *               the comparator held from before that checkpoint's cut --
 *               in the control thread, in order with the replica's frames
 *               that follow it;
 *   cut(E)      the VM is suspended for checkpoint E: ask the replica to
 *               pause and name the pages it changed (ColoCheckpoint, with
 *               the inputs mirrored so far), and add them to E's dirty
 *               pages, so that E replaces them;
 *   wait()      after E is acknowledged: until the comparator asks for a
 *               checkpoint (a mismatch, a timeout, a full queue), the
 *               disk log holds half its cap, or max_interval passes,
 *               ticking the comparator's timeouts.
 *
 * Fallback: when checkpoints asked by a divergence (mismatch, timeout,
 * full queue) come at fallback_rate or more within one second, COLO costs
 * more than it gives (both VMs run, and every diverging reply waits for a
 * checkpoint anyway): the next checkpoint (ColoCheckpoint buffered) stops
 * the replica and the mirror, and the comparator holds every frame until
 * the acknowledgement of the checkpoint after it (buffered, Remus, mode),
 * with a checkpoint every buffered_interval_ms.  After fallback_hold_ms
 * the next checkpoint runs the replica again from its state (COLO again).
 * A fallback within one hold of the return doubles the hold (up to 64
 * times fallback_hold_ms); a later one starts again from fallback_hold_ms.
 * Each switch is logged.
 */
#ifndef REMUS_COLO_PRIMARY_H
#define REMUS_COLO_PRIMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "common/err.h"
#include "proto/channel.h"

struct rm_netbuf;
struct rm_colo_primary;

struct rm_colo_primary_cfg {
    struct rm_chan *chan;             /* not owned */
    struct rm_netbuf *netbuf;         /* COLO's (not owned) */
    unsigned max_interval_ms;         /* a checkpoint at least this often */
    unsigned dirty_timeout_ms;        /* for the replica's dirty pages */
    unsigned fallback_rate;           /* divergences per second; 0: never */
    unsigned fallback_hold_ms;        /* buffered at least this long */
    unsigned buffered_interval_ms;    /* buffered mode's interval */
    /* The VM's disk log (not owned; NULL: no disk): half its cap of
     * unacknowledged writes asks for a checkpoint (a full queue), before
     * the guest's writes wait for one. */
    struct rm_disklog *disks;
    /* Start (fn) / stop (NULL) mirroring the VM's input: the backend's
     * colo_mirror.  Called with the VM suspended. */
    int (*set_mirror)(void *opaque, rm_colo_mirror_fn fn, void *fn_opaque);
    void *set_mirror_opaque;
};

struct rm_colo_primary *rm_colo_primary_new(const struct rm_colo_primary_cfg *cfg,
                                            struct rm_error *err);

/* A COLO message (or an ack) from the secondary, in the control thread.
 * 0, or -errno with the reason in @err when it breaks the protocol. */
int rm_colo_primary_message(struct rm_colo_primary *cp,
                            const struct rm_ctl_msg *msg, struct rm_error *err);

/* The VM is suspended for checkpoint @epoch (the save's peer_dirty
 * callback).  0 or -errno with the reason in @err. */
int rm_colo_primary_cut(struct rm_colo_primary *cp, uint64_t epoch,
                        unsigned long *dirty, uint64_t nr_pfns,
                        struct rm_error *err);

/* The secondary is lost (or broke the protocol: @why says how): a cut
 * waiting for the replica's dirty pages ends at once with -ECONNABORTED
 * and @why, instead of keeping the VM suspended for the dirty timeout;
 * so does every cut after.  Any thread. */
void rm_colo_primary_abort(struct rm_colo_primary *cp, const char *why);

/* Wait for the next checkpoint to be due; every millisecond or so
 * @keep_waiting(@opaque) may end the wait (it returns non-zero: that value
 * is returned).  Returns 0 when a checkpoint is due (why in *@cause). */
int rm_colo_primary_wait(struct rm_colo_primary *cp,
                         int (*keep_waiting)(void *opaque), void *opaque,
                         enum rm_colo_cause *cause);

struct rm_colo_primary_stats {
    uint64_t by_cause[RM_COLO_CAUSE_PERIODIC + 1];  /* checkpoints asked
                                                     * while comparing */
    uint64_t input_frames, input_errors;             /* mirrored */
    uint64_t replica_dirty_pages;                    /* in all */
    uint64_t replica_asks;                           /* ColoAsk: checkpoints
                                                      * the replica wanted
                                                      * (counted as a full
                                                      * queue) */
    bool buffered;                                   /* now */
    uint64_t fallbacks;                              /* to buffered mode */
    uint64_t buffered_checkpoints;                   /* taken in it */
    unsigned hold_ms;                                /* the current hold */
};
void rm_colo_primary_get_stats(struct rm_colo_primary *cp,
                               struct rm_colo_primary_stats *st);

/* Stops the mirror (call with the VM suspended, or after it ended). */
void rm_colo_primary_free(struct rm_colo_primary *cp);

#endif
