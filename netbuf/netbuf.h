/* SPDX-License-Identifier: MIT */
/*
 * Network output commit: nothing the VM sends may reach the outside before
 * the checkpoint that produced it is acknowledged by the secondary.
 *
 * One interface, one implementation per backend:
 *   - rm_netbuf_queue_new(): an in-process per-epoch packet queue for the
 *     KVM micro-VMM (its network device hands every outgoing frame to
 *     rm_netbuf_output());
 *   - the Xen implementation (libnl-3 plug qdisc on an IFB) lives in
 *     netbuf/netbuf_plug.c;
 *   - rm_netbuf_set_new() (netbuf/netbuf_set.h): several of them held and
 *     released as one (a Xen guest with several VIFs);
 *   - rm_netbuf_colo_new() (netbuf/netbuf_colo.h): COLO's, on the KVM
 *     micro-VMM: a frame leaves as soon as the running replica produced the
 *     same one (netbuf/compare.h), not at the next acknowledgement.
 *
 * Epochs: output is tagged with the checkpoint that will capture the
 * state it depends on.  Before checkpoint 1 the tag is 1.  The primary
 * calls start_epoch(E) with the VM suspended for checkpoint E: output
 * produced from then on is tagged E+1.  release(E), called once the
 * secondary acknowledged checkpoint E, sends every frame tagged <= E, in
 * order.
 *
 * Policy when the bound is hit (max_bytes or max_frames of held output):
 * the newest frame is dropped, counted, and one log line per epoch says
 * so -- the guest's protocols retransmit, as they do for a full NIC queue.
 * Never block the guest and never release early.
 *
 * discard() drops everything held (failover or an abandoned protection:
 * that output reflects state the secondary may never have had).
 * passthrough() releases everything held and sends all later output at
 * once (protection ended; the VM runs unprotected, or -n).
 */
#ifndef REMUS_NETBUF_NETBUF_H
#define REMUS_NETBUF_NETBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct rm_netbuf;

/*
 * Where released frames go (the TAP device).  Called with no lock held
 * that the VMM's vCPU threads could need.  Returns 0 or -errno (a failed
 * send is counted and dropped, as a NIC would).
 */
typedef int (*rm_netbuf_sink_fn)(void *opaque, const void *frame,
                                 size_t len);

struct rm_netbuf_stats {
    uint64_t queued_frames, queued_bytes;   /* accepted into the buffer */
    uint64_t released_frames, released_bytes;
    uint64_t dropped_full;                  /* refused: bound hit */
    uint64_t discarded_frames;              /* dropped by discard() */
    uint64_t held_frames, held_bytes;       /* now in the buffer */
    uint64_t sink_errors;
    uint64_t released_epochs;               /* plug: release_one calls */
    uint64_t discards;                      /* discard() calls */
    uint64_t matched;                       /* COLO: released on a match */
};

struct rm_netbuf_queue_cfg {
    size_t max_bytes;         /* default 16 MiB */
    size_t max_frames;        /* default 16384 */
    bool passthrough;         /* -n: no buffering at all */
    rm_netbuf_sink_fn sink;
    void *sink_opaque;
    /* Instrumentation (tests): called per released frame with the epoch
     * it was produced in and the epoch whose ack released it. */
    void (*on_release)(void *opaque, const void *frame, size_t len,
                       uint64_t produced_epoch, uint64_t released_by);
    void *on_release_opaque;
};

/* The KVM implementation.  NULL with the reason in @err. */
struct rm_netbuf *rm_netbuf_queue_new(const struct rm_netbuf_queue_cfg *cfg,
                                      struct rm_error *err);

/*
 * KVM: the network device's output path (thread-safe, any thread).
 * Buffers the frame in the current epoch, or sends it at once in
 * passthrough mode.  0, or -ENOBUFS when the bound dropped it.
 */
int rm_netbuf_output(struct rm_netbuf *nb, const void *frame, size_t len);

/* Generic operations (every implementation). */
int rm_netbuf_start_epoch(struct rm_netbuf *nb, uint64_t epoch);
int rm_netbuf_release(struct rm_netbuf *nb, uint64_t epoch);
int rm_netbuf_discard(struct rm_netbuf *nb);
int rm_netbuf_passthrough(struct rm_netbuf *nb);
void rm_netbuf_get_stats(struct rm_netbuf *nb, struct rm_netbuf_stats *st);
void rm_netbuf_free(struct rm_netbuf *nb);
/* "queue" (KVM), "plug" (Xen), "set" (several: netbuf_set.h) or "colo"
 * (netbuf_colo.h). */
const char *rm_netbuf_kind(const struct rm_netbuf *nb);

#endif
