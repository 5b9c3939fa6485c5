/* SPDX-License-Identifier: MIT */
/*
 * Timing agreement between a primary and a secondary (issue #16, item 2).
 *
 * Each side declares its peer lost after its heartbeat timeout without a
 * word (a heartbeat, an ack, stream data).  The secondary hears the
 * stream once per checkpoint interval and the primary's heartbeats every
 * hb_interval_ms, so its timeout must cover the interval plus a few
 * heartbeats; likewise the primary's timeout against the secondary's
 * heartbeats.  The rule, for each side's timeout:
 *
 *     timeout >= interval + RM_TIMING_BEATS x (the other side's heartbeat)
 *
 * The hellos carry interval_ms (primary), hb_interval_ms and hb_timeout_ms
 * (both).  The secondary checks the pair while answering the hello and
 * refuses one that cannot work, naming both values; the primary checks the
 * reply the same way.  A secondary hello with hb_timeout_ms 0 means
 * "derive it": it becomes the larger of the primary's timeout and the
 * least workable one with a margin (rm_timing_default_timeout()).  A value
 * of 0 from the peer (an older peer that did not say) skips the checks
 * that need it.
 */
#ifndef REMUS_PROTO_TIMING_H
#define REMUS_PROTO_TIMING_H

#include <stddef.h>

#include "proto/channel.h"

#define RM_TIMING_BEATS 3u
#define RM_TIMING_DEFAULT_TIMEOUT_MS 1000u

/* The least workable timeout against a peer with this interval and
 * heartbeat. */
unsigned rm_timing_min_timeout(unsigned interval_ms, unsigned peer_hb_ms);

/* The default timeout: RM_TIMING_DEFAULT_TIMEOUT_MS, raised to interval
 * + one more heartbeat than the minimum when that is larger. */
unsigned rm_timing_default_timeout(unsigned interval_ms, unsigned hb_ms);

/*
 * Check the pair (@pri: the primary's hello, @sec: the secondary's, with
 * its timeout already derived).  0, or -EINVAL with the reason in @why
 * (both values named, and the option that sets each).
 */
int rm_timing_check(const struct rm_hello *pri, const struct rm_hello *sec,
                    char *why, size_t len);

/*
 * The secondary's side, while answering @pri: derive sec->hb_timeout_ms
 * when it is 0, then rm_timing_check().
 */
int rm_timing_agree(struct rm_hello *sec, const struct rm_hello *pri,
                    char *why, size_t len);

#endif
