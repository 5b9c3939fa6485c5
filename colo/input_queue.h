/* SPDX-License-Identifier: MIT */
/*
 * COLO, secondary side: the replica's network input.  The primary mirrors
 * every frame its VM reads, numbered from 1 (ColoFrame colo_input); the
 * session pushes them here in order, and the replica's network device reads
 * them instead of its TAP (struct rm_vm_net_in: poll_fd is readable while a
 * frame waits).
 *
 * At a checkpoint the primary says how many input frames its VM had read at
 * the cut (input_seq).  Those are in the checkpoint's state, so the queued
 * ones up to input_seq are dropped (cut()), and the replica goes on from
 * input_seq + 1 with the primary (frames dropped on a full queue after
 * input_seq are lost to it: it diverges, and the checkpoint that follows
 * carries them in the primary's state).  The replica never reads a frame the
 * primary has not read (frames are mirrored on the primary's read), so it
 * cannot be ahead; a queue that says otherwise is refused.
 *
 * Thread-safe: push() from the session's receive thread, read() from the
 * replica's vCPU 0, cut() from the checkpoint handling (replica paused).
 */
#ifndef REMUS_COLO_INPUT_QUEUE_H
#define REMUS_COLO_INPUT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct rm_colo_inq;

/* At most @max_frames waiting (0: 4096).  NULL with the reason in @err. */
struct rm_colo_inq *rm_colo_inq_new(size_t max_frames, struct rm_error *err);

/* Frame @seq from the primary (copied).  0 (also when the queue is full:
 * the frame is dropped and counted, as a full NIC queue would; the
 * replica then diverges, and the next checkpoint brings it back); -EPROTO
 * (with @err) when @seq is not the next one; -ENOMEM. */
int rm_colo_inq_push(struct rm_colo_inq *q, uint64_t seq, const void *frame,
                     size_t len, struct rm_error *err);

/* For rm_vm_net_in.read (@q is the opaque): the next frame into @buf,
 * truncated to @cap; its length, or 0 when none waits. */
ssize_t rm_colo_inq_read(void *q, void *buf, size_t cap);

/* The fd that is readable while a frame waits (rm_vm_net_in.poll_fd). */
int rm_colo_inq_fd(const struct rm_colo_inq *q);

/* The checkpoint's cut: the primary's VM had read @input_seq frames.
 * Drops the queued ones up to it.  0, or -EPROTO (with @err) when the
 * replica read more than that, or frames up to @input_seq never arrived. */
int rm_colo_inq_cut(struct rm_colo_inq *q, uint64_t input_seq,
                    struct rm_error *err);

struct rm_colo_inq_stats {
    uint64_t pushed, read, dropped_at_cut, dropped_full;
    uint64_t last_pushed, last_read;   /* seqs */
    uint64_t waiting;
};
void rm_colo_inq_stats(struct rm_colo_inq *q, struct rm_colo_inq_stats *st);

void rm_colo_inq_free(struct rm_colo_inq *q);

#endif
