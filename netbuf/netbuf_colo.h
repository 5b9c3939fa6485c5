/* SPDX-License-Identifier: MIT */
/*
 * COLO's netbuf on the KVM micro-VMM: the primary VM's output goes through
 * the packet comparator (netbuf/compare.h) instead of an epoch queue.
 *
 * The generic operations (netbuf/netbuf.h) mean, here:
 *   output()        a primary frame: released as soon as the replica's
 *                   counterpart arrives (rm_netbuf_replica_output()), held
 *                   otherwise;
 *   start_epoch(E)  the cut of checkpoint E (the primary's VM paused):
 *                   frames from now on wait for its acknowledgement;
 *   release(E)      checkpoint E is acknowledged (the replica holds the
 *                   cut's state): the primary frames held from before the
 *                   cut leave in order, the replica's are dropped, and
 *                   those since the cut are compared afresh;
 *   discard()       everything held, of both sides, is dropped;
 *   passthrough()   the held primary frames leave, and all later ones at
 *                   once; replica frames are dropped.
 * A checkpoint is asked for through the comparator's on_diverge.
 */
#ifndef REMUS_NETBUF_NETBUF_COLO_H
#define REMUS_NETBUF_NETBUF_COLO_H

#include "netbuf/compare.h"
#include "netbuf/netbuf.h"

/* NULL with the reason in @err.  Time is rm_now_ns(). */
struct rm_netbuf *rm_netbuf_colo_new(const struct rm_compare_cfg *cfg,
                                     struct rm_error *err);

/* A frame the replica sent (from the session's receive thread).  0,
 * -ENOMEM, or -EINVAL when @nb is not COLO's. */
int rm_netbuf_replica_output(struct rm_netbuf *nb, const void *frame,
                             size_t len);

/* Check the comparator's timeouts now; the time (rm_now_ns()) by which to
 * call again, UINT64_MAX when nothing waits (or @nb is not COLO's). */
uint64_t rm_netbuf_colo_tick(struct rm_netbuf *nb);

/* Buffered (Remus) mode on or off (rm_compare_set_buffered): between a
 * checkpoint's cut and its release.  -EINVAL when @nb is not COLO's. */
int rm_netbuf_colo_set_buffered(struct rm_netbuf *nb, bool on);

/* The comparator's own counters; false when @nb is not COLO's. */
bool rm_netbuf_colo_stats(struct rm_netbuf *nb, struct rm_compare_stats *st);

#endif
