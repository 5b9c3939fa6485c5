/* SPDX-License-Identifier: MIT */
/* Liveness on the control channel (see liveness.h). */
#define RM_LOG_PREFIX "liveness"
#include "proto/liveness.h"

#include <errno.h>
#include <stdio.h>

#include "common/io.h"

void rm_liveness_run(const struct rm_liveness *l)
{
    const struct rm_liveness_ops *ops = l->ops;
    uint64_t next_hb = 0, seq = 0, progress;
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
        if (now - *l->last_heard_ns > (uint64_t)l->hb_timeout_ms * 1000000) {
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
             * and sending its dirty pages) is not the peer's silence. */
            *l->last_heard_ns = rm_now_ns();
        }
        pthread_mutex_unlock(l->lock);
    }
}
