/* SPDX-License-Identifier: MIT */
/*
 * COLO, the secondary's side (receive --colo): the replica runs between
 * checkpoints.
 *
 *   committed(E)  checkpoint E is applied and acknowledged: the mirrored
 *                 input the primary's VM had read at E's cut is dropped
 *                 (colo/input_queue.h) and the replica runs from E (the
 *                 backend applies its vCPU and device state), its input
 *                 the mirrored frames, its output sent back to the primary
 *                 (ColoFrame colo_output) for the comparator;
 *   message()     the primary's COLO messages: colo_input frames are
 *                 queued for the replica; ColoCheckpoint(E, input_seq)
 *                 pauses the replica and answers with the pages it changed
 *                 since it last ran from a checkpoint (ColoDirty parts),
 *                 which the primary sends with checkpoint E.
 *                 A ColoCheckpoint marked buffered: once E is committed
 *                 the replica stays paused (the backend's colo_park), and
 *                 the checkpoints that follow come without a request,
 *                 until a ColoCheckpoint without the mark (answered with
 *                 no pages: a paused replica changed none) runs it again.
 * The acknowledgement goes out before the replica runs, so that the
 * primary's comparator has the checkpoint's release behind it when the
 * replica's first frame arrives (one channel, in order): committing(E)
 * takes E's request in before it, committed(E) runs the replica after it.
 * The primary may ask for E+1 as soon as it has the acknowledgement,
 * before the replica runs from E: then it does not (it stays paused at E
 * and answers E+1 with no pages).
 */
#ifndef REMUS_COLO_REPLICA_H
#define REMUS_COLO_REPLICA_H

#include <stdint.h>

#include "backends/backend.h"
#include "common/err.h"
#include "proto/channel.h"

struct rm_colo_replica;

/* What it needs of the replica (the backend's colo_run / colo_pause). */
struct rm_colo_replica_ops {
    void *opaque;
    int (*run)(void *opaque, const struct rm_colo_net *net,
               struct rm_error *err);
    int (*pause)(void *opaque, const unsigned long **dirty, uint64_t *nr_pfns,
                 struct rm_error *err);
    void (*park)(void *opaque);      /* stays paused (buffered mode) */
    /* Optional (NULL: not told): the disk sectors the replica wrote
     * since it last ran from a checkpoint (the backend's colo_written;
     * the session's control thread). */
    uint64_t (*written)(void *opaque);
};

/* @chan: the control channel (not owned; outlives it).  NULL with the
 * reason in @err. */
struct rm_colo_replica *rm_colo_replica_new(const struct rm_colo_replica_ops *ops,
                                            struct rm_chan *chan,
                                            struct rm_error *err);

/* TESTS ONLY: send an empty dirty list (the negative control of the
 * digest check: the replica's own changes then survive a checkpoint). */
void rm_colo_replica_test_drop_dirty(struct rm_colo_replica *cr);
/* TESTS ONLY: never ask for a checkpoint (the negative control of the
 * overlay's ask: the replica's disk writes then fail past its cap). */
void rm_colo_replica_test_no_ask(struct rm_colo_replica *cr);

/* A COLO message from the primary (control thread).  0 for a message it
 * handled or does not know; -errno with the reason in @err for one that
 * breaks the protocol (protection cannot go on). */
int rm_colo_replica_message(struct rm_colo_replica *cr,
                            const struct rm_ctl_msg *msg,
                            struct rm_error *err);

/* Checkpoint @epoch was asked (ColoCheckpoint) while the replica ran: its
 * own changes were in play, so the committed memory is worth checking
 * against the primary's (rm_restore_mem_hashes).  Any thread. */
bool rm_colo_replica_ran_for(struct rm_colo_replica *cr, uint64_t epoch);

/* Checkpoint @epoch is committed, not yet acknowledged (restore thread):
 * take its request in (the input it holds is dropped), so that a request
 * the primary sends once it has the acknowledgement is the next
 * checkpoint's.  0, or -EPROTO with the reason in @err for a checkpoint
 * the protocol did not lead to (then it must not be acknowledged). */
int rm_colo_replica_committing(struct rm_colo_replica *cr, uint64_t epoch,
                               struct rm_error *err);

/* ... and acknowledged (restore thread): run the replica from it, or keep
 * it paused at it (buffered mode; or the next checkpoint was asked before
 * it ran: see colo/replica.c).  0 or -errno with the reason in @err. */
int rm_colo_replica_committed(struct rm_colo_replica *cr, uint64_t epoch,
                              struct rm_error *err);

struct rm_colo_replica_stats {
    uint64_t runs;                 /* checkpoints the replica ran from */
    uint64_t buffered_commits;     /* committed while it stays paused */
    bool parked;                   /* now: buffered mode */
    bool at_checkpoint;            /* now: its state is the last commit's
                                      (parked, or it did not run from it:
                                      the next checkpoint was asked first) */
    uint64_t runs_skipped;         /* commits it did not run from: the next
                                      checkpoint was asked before */
    uint64_t checkpoints_asked;    /* ColoCheckpoint received */
    uint64_t dirty_pages_sent;     /* pfns sent back, in all */
    uint64_t output_frames;        /* the replica's frames sent back */
    uint64_t output_errors;
    uint64_t asks;                 /* checkpoints asked (ColoAsk) */
    uint64_t pauses;               /* paused for a checkpoint .. ran again */
    uint64_t pause_ns_total, pause_ns_max;
};
void rm_colo_replica_get_stats(struct rm_colo_replica *cr,
                               struct rm_colo_replica_stats *st);

void rm_colo_replica_free(struct rm_colo_replica *cr);

#endif
