/* SPDX-License-Identifier: MIT */
#include "proto/timing.h"

#include <errno.h>
#include <stdio.h>

unsigned rm_timing_min_timeout(unsigned interval_ms, unsigned peer_hb_ms)
{
    unsigned long long t = (unsigned long long)interval_ms +
                           (unsigned long long)RM_TIMING_BEATS * peer_hb_ms;

    return t > 0xffffffffu ? 0xffffffffu : (unsigned)t;
}

unsigned rm_timing_default_timeout(unsigned interval_ms, unsigned hb_ms)
{
    unsigned long long t = (unsigned long long)rm_timing_min_timeout(
        interval_ms, hb_ms) + hb_ms;

    if (t > 0xffffffffu)
        t = 0xffffffffu;
    return t > RM_TIMING_DEFAULT_TIMEOUT_MS ? (unsigned)t
                                            : RM_TIMING_DEFAULT_TIMEOUT_MS;
}

int rm_timing_check(const struct rm_hello *pri, const struct rm_hello *sec,
                    char *why, size_t len)
{
    unsigned need;

    /* The secondary hears the stream every interval, the primary's
     * heartbeats every pri->hb_interval_ms. */
    if (pri->hb_interval_ms && sec->hb_timeout_ms) {
        need = rm_timing_min_timeout(pri->interval_ms, pri->hb_interval_ms);
        if (sec->hb_timeout_ms < need) {
            snprintf(why, len, "timing cannot work: the primary's "
                     "checkpoint interval %u ms and heartbeat %u ms (-i, "
                     "--heartbeat) need a secondary heartbeat timeout of at "
                     "least %u ms (interval + %u heartbeats), the "
                     "secondary's is %u ms (receive --heartbeat-timeout)",
                     pri->interval_ms, pri->hb_interval_ms, need,
                     RM_TIMING_BEATS, sec->hb_timeout_ms);
            return -EINVAL;
        }
    }
    /* The primary hears acks and the secondary's heartbeats. */
    if (sec->hb_interval_ms && pri->hb_timeout_ms) {
        need = rm_timing_min_timeout(pri->interval_ms, sec->hb_interval_ms);
        if (pri->hb_timeout_ms < need) {
            snprintf(why, len, "timing cannot work: the secondary's "
                     "heartbeat %u ms (receive --heartbeat) with the "
                     "checkpoint interval %u ms needs a primary heartbeat "
                     "timeout of at least %u ms (interval + %u heartbeats), "
                     "the primary's is %u ms (protect --heartbeat-timeout)",
                     sec->hb_interval_ms, pri->interval_ms, need,
                     RM_TIMING_BEATS, pri->hb_timeout_ms);
            return -EINVAL;
        }
    }
    return 0;
}

int rm_timing_agree(struct rm_hello *sec, const struct rm_hello *pri,
                    char *why, size_t len)
{
    if (!sec->hb_timeout_ms) {
        unsigned t = rm_timing_default_timeout(pri->interval_ms,
                                               pri->hb_interval_ms);

        if (pri->hb_timeout_ms > t)
            t = pri->hb_timeout_ms;
        /* and beyond its own heartbeat period */
        if (t <= sec->hb_interval_ms)
            t = rm_timing_default_timeout(0, sec->hb_interval_ms);
        sec->hb_timeout_ms = t;
    }
    return rm_timing_check(pri, sec, why, len);
}
