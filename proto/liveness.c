/* SPDX-License-Identifier: MIT */
/* Liveness on the control channel (see liveness.h). */
#define RM_LOG_PREFIX "liveness"
#include "proto/liveness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "common/io.h"
#include "common/log.h"

void rm_liveness_run(const struct rm_liveness *l)
{
    const struct rm_liveness_ops *ops = l->ops;
    uint64_t next_hb = 0, seq = 0, progress, turn_from = 0;
    uint64_t interval_ns = (uint64_t)l->hb_interval_ms * 1000000;
    char why[RM_ERROR_MSG_MAX + 32];

    for (;;) {
        struct rm_ctl_msg msg;
        uint64_t now = rm_now_ns();
        int rc;

        pthread_mutex_lock(l->lock);
        if (ops->over(l->opaque)) {
            pthread_mutex_unlock(l->lock);
            break;
        }
        /* One turn of this loop waits at most one interval for a
         * message (a handler's time is not counted: it ends the turn's
         * start, below).  A turn
         * much longer, and this thread did not run (an overloaded host,
         * its hypervisor's steal): that time is not the peer's silence.
         * Both sides stalled at once must not each take the other for
         * dead and both run the VM. */
        if (turn_from && now - turn_from > 2 * interval_ns) {
            uint64_t stalled = now - turn_from - interval_ns;

            *l->last_heard_ns += stalled;
            if (*l->last_heard_ns > now)
                *l->last_heard_ns = now;
            if (stalled * 4 > (uint64_t)l->hb_timeout_ms * 1000000)
                LOG_WARN("this side did not run for %" PRIu64 " ms (an "
                         "overloaded host?): not counted as the %s's "
                         "silence", stalled / 1000000, l->peer);
        }
        turn_from = now;
        if (rm_ns_since(now, *l->last_heard_ns) >
            (uint64_t)l->hb_timeout_ms * 1000000) {
            snprintf(why, sizeof(why), "no message from the %s for %u ms "
                     "(heartbeat timeout)", l->peer, l->hb_timeout_ms);
            ops->lost(l->opaque, -ETIMEDOUT, why);
            pthread_mutex_unlock(l->lock);
            break;
        }
        progress = ops->progress(l->opaque);
        pthread_mutex_unlock(l->lock);

        if (now >= next_hb) {
            rc = rm_chan_send_heartbeat(l->chan, ++seq, progress);
            if (rc) {
                /* The peer may have said why before it closed (a STOP: it
                 * ended the protection and lives on): what arrived is read
                 * first, so that a clean end is not taken for a death. */
                pthread_mutex_lock(l->lock);
                while (!ops->over(l->opaque) &&
                       rm_chan_recv(l->chan, 0, &msg) == 0)
                    if (msg.kind != RM_CTL_HEARTBEAT)
                        ops->message(l->opaque, &msg);
                if (!ops->over(l->opaque))
                    ops->lost(l->opaque, rc, "sending a heartbeat failed: "
                              "the control connection is broken");
                pthread_mutex_unlock(l->lock);
                break;
            }
            next_hb = now + (uint64_t)l->hb_interval_ms * 1000000;
            if (ops->beat)
                ops->beat(l->opaque);
        }
        rc = rm_chan_recv(l->chan, (int)l->hb_interval_ms, &msg);
        if (rc == -ETIMEDOUT)
            continue;
        pthread_mutex_lock(l->lock);
        if (rc && ops->closing && ops->closing(l->opaque)) {
            pthread_mutex_unlock(l->lock);
            break;
        }
        if (rc) {
            snprintf(why, sizeof(why), "control connection: %s",
                     rm_error_str(&l->chan->err));
            ops->lost(l->opaque, rc, why);
            pthread_mutex_unlock(l->lock);
            break;
        }
        *l->last_heard_ns = rm_now_ns();
        if (msg.kind != RM_CTL_HEARTBEAT) {
            ops->message(l->opaque, &msg);
            /* The time this side took over it (COLO: pausing the replica
             * and sending its dirty pages) is not the peer's silence, nor
             * this thread not running. */
            *l->last_heard_ns = rm_now_ns();
            turn_from = *l->last_heard_ns;
        }
        pthread_mutex_unlock(l->lock);
    }
}
