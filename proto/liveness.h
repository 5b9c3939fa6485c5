/* SPDX-License-Identifier: MIT */
/*
 * Liveness on the control channel, the same for both sides of a pair: the
 * control thread sends a heartbeat every hb_interval_ms (carrying this
 * side's progress: the primary's acknowledged epoch, the secondary's
 * committed one), receives the peer's messages, and declares the peer
 * lost after hb_timeout_ms without any message from it, or when the
 * channel breaks.  One implementation, run by primary/protect.c and
 * secondary/receive.c, each with its own session state behind @ops.
 *
 * Every @ops member is called with *@lock held and must not block, but
 * message(), which may take a while (COLO: a checkpoint request pauses the
 * replica and sends its dirty pages); the peer's silence is counted from
 * the end of that call; and beat(), called without it.
 */
#ifndef REMUS_PROTO_LIVENESS_H
#define REMUS_PROTO_LIVENESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/channel.h"

struct rm_liveness_ops {
    /* Should the loop end now (the session is over, or the peer already
     * counts as lost)?  Checked before every step. */
    bool (*over)(void *opaque);
    /* The progress to put in the next heartbeat. */
    uint64_t (*progress)(void *opaque);
    /* The peer is lost: @code (-errno) and @why ("no message from the
     * primary for 1000 ms (heartbeat timeout)").  The loop ends after. */
    void (*lost)(void *opaque, int code, const char *why);
    /* A receive error that is expected (this side is ending the session
     * and the peer closed): end quietly instead of calling lost().  NULL:
     * never. */
    bool (*closing)(void *opaque);
    /* Any message from the peer but a heartbeat (an ack, stop, failover). */
    void (*message)(void *opaque, const struct rm_ctl_msg *msg);
    /* Optional (NULL: none): after each heartbeat sent, WITHOUT *lock
     * held: what this side reports about itself every heartbeat
     * interval (it may write a small file; it must not wait on the
     * peer). */
    void (*beat)(void *opaque);
};

struct rm_liveness {
    struct rm_chan *chan;
    pthread_mutex_t *lock;        /* the session's: guards its state */
    unsigned hb_interval_ms;
    unsigned hb_timeout_ms;
    const char *peer;             /* "primary" or "secondary", for why */
    uint64_t *last_heard_ns;      /* under *lock: set when anything arrives */
    const struct rm_liveness_ops *ops;
    void *opaque;
};

/* Run until ops->over() or the peer is lost.  Returns when done. */
void rm_liveness_run(const struct rm_liveness *l);

#endif
