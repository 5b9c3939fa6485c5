/* SPDX-License-Identifier: MIT */
/*
 * The metrics of one protect or receive process (--metrics): a registry
 * fed by the status publications (common/status.h: an observer, in the
 * checkpoint/receive loop's thread) and rendered for a scrape (another
 * thread: common/metrics_http.h) in the Prometheus text format 0.0.4 or
 * in OpenMetrics 1.0.  Every series is there from the start (0 until
 * known); those of one side only (the pause, the ack latency, the held
 * output) are served by that side.  Names (README: Metrics):
 *   remus_info{name,role,backend} 1, remus_state{state} 0/1, remus_ready,
 *   remus_peer_up, remus_quorum_enabled, remus_quorum_quorate (with
 *   --quorum, while the loop runs), remus_epoch, remus_epochs_total,
 *   remus_checkpoint_interval_seconds, remus_last_dirty_pages,
 *   remus_dirty_pages_total, remus_memory_bytes_total (dirty pages x
 *   page size: the raw bytes), remus_stream_bytes_total (primary: on the
 *   wire, compressed when negotiated), remus_pause_seconds (histogram,
 *   primary), remus_ack_latency_seconds (histogram, primary: a
 *   checkpoint sent .. acknowledged), remus_held_output_bytes (primary),
 *   remus_last_failover_timestamp_seconds (secondary; 0: none),
 *   remus_last_update_timestamp_seconds.
 */
#ifndef REMUS_COMMON_METRICS_H
#define REMUS_COMMON_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Histogram bucket bounds (microseconds; fixed: +Inf comes on top). */
#define RM_METRICS_PAUSE_BUCKETS 12
#define RM_METRICS_ACK_BUCKETS 12

struct rm_metrics_hist {
    uint64_t count, sum_us;
    uint64_t le[16];               /* cumulative counts, per bound */
};

struct rm_metrics {
    pthread_mutex_t lock;
    /* under lock: */
    struct rm_status st;           /* the last publication (observers
                                      cleared) */
    bool have_st;
    uint64_t last_epoch;           /* the last epoch counted */
    uint64_t epochs, dirty_pages_total;
    struct rm_metrics_hist pause, ack;
    struct rm_status_observer obs;
};

/* Make the registry and its observer, which comes before @next in the
 * list: returns it.  0 or -errno (a mutex that cannot be made). */
int rm_metrics_init(struct rm_metrics *m,
                    const struct rm_status_observer *next,
                    const struct rm_status_observer **obs);
void rm_metrics_destroy(struct rm_metrics *m);

/*
 * Render into a new malloc'd, NUL-terminated buffer (*out, its length in
 * *len): @openmetrics selects OpenMetrics 1.0 (counters' families without
 * _total, "# EOF" at the end), else the Prometheus text format 0.0.4.
 * 0 or -ENOMEM.
 */
int rm_metrics_render(struct rm_metrics *m, bool openmetrics, char **out,
                      size_t *len);

#endif
