/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "metrics"
#include "common/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sr.h"

/* Bucket bounds, microseconds: the pause is ~0.1-10 ms on KVM, longer on
 * Xen; an ack comes after the checkpoint's transfer and apply. */
static const uint64_t pause_le_us[RM_METRICS_PAUSE_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    1000000,
};
static const uint64_t ack_le_us[RM_METRICS_ACK_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    1000000, 5000000,
};

/* Every state either side publishes (primary/protect.c,
 * secondary/receive.c): each is a series, 1 for the current one. */
static const char *const states[] = {
    "connecting", "protecting", "unprotected", "handed-over",
    "stopped-no-quorum", "waiting", "hashing disks", "syncing", "replica",
    "failing-over", "stopped", "failed",
};

/* Count @us into @h, whose @n bucket bounds are @le (cumulative). */
static void hist_add(struct rm_metrics_hist *h, const uint64_t *le,
                     unsigned n, uint64_t us)
{
    unsigned i;

    h->count++;
    h->sum_us += us;
    for (i = 0; i < n; i++)
        if (us <= le[i])
            h->le[i]++;
}

/* The observer: keep the last publication, count each new checkpoint
 * once (publications come more often: ticks, rate-limited writes). */
static void seen(void *opaque, const struct rm_status *st)
{
    struct rm_metrics *m = opaque;
    bool primary = !strcmp(st->role, "primary");
    uint64_t done = primary ? st->acked_epoch : st->epoch;

    pthread_mutex_lock(&m->lock);
    m->st = *st;
    m->st.observers = NULL;
    m->have_st = true;
    /* A new checkpoint (acknowledged / committed); a new session (a
     * reprotection) counts from its epoch 1 again. */
    if (done && done != m->last_epoch) {
        m->epochs++;
        m->dirty_pages_total += st->last_dirty_pages;
        if (primary) {
            hist_add(&m->pause, pause_le_us, RM_METRICS_PAUSE_BUCKETS,
                     st->last_pause_us);
            hist_add(&m->ack, ack_le_us, RM_METRICS_ACK_BUCKETS,
                     st->last_ack_us);
        }
        m->last_epoch = done;
    }
    pthread_mutex_unlock(&m->lock);
}

int rm_metrics_init(struct rm_metrics *m,
                    const struct rm_status_observer *next,
                    const struct rm_status_observer **obs)
{
    int rc;

    memset(m, 0, sizeof(*m));
    rc = pthread_mutex_init(&m->lock, NULL);
    if (rc)
        return -rc;
    m->obs.seen = seen;
    m->obs.opaque = m;
    m->obs.next = next;
    *obs = &m->obs;
    return 0;
}

void rm_metrics_destroy(struct rm_metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

/* ------------------------------------------------------------ rendering */

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
    bool om;
};

/* Append to @o, growing it; a failure sets o->failed (later calls do
 * nothing). */
static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->cap - o->len, fmt,
                      ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len)
            break;
        {
            size_t cap = (o->cap + (size_t)n + 1) * 2;
            char *b = realloc(o->buf, cap);

            if (!b) {
                o->failed = true;
                return;
            }
            o->buf = b;
            o->cap = cap;
        }
    }
    o->len += (size_t)n;
}

/* # HELP and # TYPE of a family.  A counter's family is NAME (samples
 * NAME_total) in OpenMetrics, NAME_total in the text format. */
static void family(struct out *o, const char *name, const char *type,
                   const char *help)
{
    bool counter = !strcmp(type, "counter");
    const char *suffix = counter && !o->om ? "_total" : "";

    put(o, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name,
        suffix, type);
}

/* A family of one sample, NAME VALUE. */
static void gauge(struct out *o, const char *name, const char *help,
                  double v)
{
    family(o, name, "gauge", help);
    put(o, "%s %.15g\n", name, v);
}

/* A counter family: NAME_total VALUE. */
static void counter(struct out *o, const char *name, const char *help,
                    uint64_t v)
{
    family(o, name, "counter", help);
    put(o, "%s_total %" PRIu64 "\n", name, v);
}

/* A histogram family: its buckets (+Inf last), _sum (seconds), _count. */
static void histogram(struct out *o, const char *name, const char *help,
                      const struct rm_metrics_hist *h, const uint64_t *le,
                      unsigned n)
{
    unsigned i;

    family(o, name, "histogram", help);
    for (i = 0; i < n; i++)
        put(o, "%s_bucket{le=\"%.6g\"} %" PRIu64 "\n", name,
            (double)le[i] / 1e6, h->le[i]);
    put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    put(o, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name,
        (double)h->sum_us / 1e6, name, h->count);
}

/* A label value: \, " and newline escaped. */
static void label(struct out *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(o, "\\%c", *v);
        else if (*v == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *v);
    }
}

int rm_metrics_render(struct rm_metrics *m, bool openmetrics, char **out,
                      size_t *len)
{
    struct out o = { .om = openmetrics };
    struct rm_status st;
    struct rm_metrics_hist pause, ack;
    uint64_t epochs, dirty_total;
    bool primary, peer_up;
    size_t i;

    pthread_mutex_lock(&m->lock);
    st = m->st;
    pause = m->pause;
    ack = m->ack;
    epochs = m->epochs;
    dirty_total = m->dirty_pages_total;
    pthread_mutex_unlock(&m->lock);
    primary = !strcmp(st.role, "primary");
    peer_up = !strcmp(st.state, "replica") ||
              (!strcmp(st.state, "protecting") && st.ready);

    /* put() grows the buffer from nothing; a failure is remembered and
     * checked once at the end. */

    family(&o, "remus_info", "gauge", "The protection this process runs.");
    put(&o, "remus_info{name=\"");
    label(&o, st.name);
    put(&o, "\",role=\"");
    label(&o, st.role);
    put(&o, "\",backend=\"");
    label(&o, st.backend);
    put(&o, "\"} 1\n");
    family(&o, "remus_state", "gauge", "1 for the current state.");
    for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        put(&o, "remus_state{state=\"%s\"} %d\n", states[i],
            !strcmp(st.state, states[i]));
    gauge(&o, "remus_ready", "1 once doing its job (primary: a checkpoint "
          "acknowledged; secondary: listening).", st.ready);
    gauge(&o, "remus_peer_up", "1 while paired with a live peer (protecting "
          "with acknowledgements / a replica).", peer_up);
    gauge(&o, "remus_quorum_enabled", "1 when a lost peer is decided with "
          "the cluster's quorum (--quorum).", st.quorum);
    if (st.quorum && st.quorate_known && st.looping)
        gauge(&o, "remus_quorum_quorate", "1 while this host's corosync "
              "partition is quorate (sampled once a second; --quorum "
              "only).", st.quorate);
    gauge(&o, "remus_epoch", "The last checkpoint taken (primary) or "
          "committed (secondary).", (double)st.epoch);
    counter(&o, "remus_epochs", "Checkpoints acknowledged (primary) or "
            "committed (secondary).", epochs);
    gauge(&o, "remus_checkpoint_interval_seconds", "The configured "
          "checkpoint interval.", (double)st.interval_ms / 1e3);
    gauge(&o, "remus_last_dirty_pages", "Dirty pages in the last checkpoint.",
          (double)st.last_dirty_pages);
    counter(&o, "remus_dirty_pages", "Dirty pages in all checkpoints.",
            dirty_total);
    counter(&o, "remus_memory_bytes", "Memory in all checkpoints, "
            "uncompressed (dirty pages times the page size).",
            dirty_total * RM_PAGE_SIZE);
    if (primary) {
        counter(&o, "remus_stream_bytes", "Checkpoint stream bytes sent "
                "(compressed when negotiated).", st.total_bytes);
        histogram(&o, "remus_pause_seconds", "The VM's pause per "
                  "checkpoint.", &pause, pause_le_us,
                  RM_METRICS_PAUSE_BUCKETS);
        histogram(&o, "remus_ack_latency_seconds", "A checkpoint sent "
                  "until the secondary acknowledged it.", &ack, ack_le_us,
                  RM_METRICS_ACK_BUCKETS);
        gauge(&o, "remus_held_output_bytes", "The VM's network output held "
              "until its checkpoint is acknowledged.",
              (double)st.held_bytes);
    } else {
        gauge(&o, "remus_last_failover_timestamp_seconds", "When this "
              "replica took over (0: never).",
              (double)st.failover_unix_ms / 1e3);
    }
    if (st.colo_mode[0]) {
        gauge(&o, "remus_colo_buffered", "COLO: 1 in buffered (Remus) mode "
              "(the replica paused after divergences came too often), 0 "
              "while outputs are compared.",
              !strcmp(st.colo_mode, "buffered"));
        counter(&o, "remus_colo_buffered_checkpoints", "COLO: checkpoints "
                "taken (primary) or committed (secondary) in buffered "
                "mode.", st.colo_buffered_checkpoints);
        if (!primary)
            gauge(&o, "remus_colo_replica_written_sectors", "COLO: disk "
                  "sectors the replica wrote since it ran from its "
                  "checkpoint (a takeover writes them into its image).",
                  (double)st.colo_replica_sectors);
    }
    if (st.colo_mode[0] && primary) {
        static const char *const causes[4] = {
            "mismatch", "timeout", "overflow", "periodic",
        };

        family(&o, "remus_colo_checkpoints", "counter", "COLO: checkpoints "
               "asked while comparing, by cause.");
        for (i = 0; i < 4; i++)
            put(&o, "remus_colo_checkpoints_total{cause=\"%s\"} %" PRIu64
                "\n", causes[i], st.colo_checkpoints[i]);
        counter(&o, "remus_colo_fallbacks", "COLO: switches to buffered "
                "mode.", st.colo_fallbacks);
        family(&o, "remus_colo_held_frames", "gauge", "COLO: frames in the "
               "comparator's queues, the VM's and the replica's.");
        put(&o, "remus_colo_held_frames{side=\"vm\"} %" PRIu64 "\n",
            st.colo_held_primary);
        put(&o, "remus_colo_held_frames{side=\"replica\"} %" PRIu64 "\n",
            st.colo_held_replica);
    }
    gauge(&o, "remus_last_update_timestamp_seconds", "When the status was "
          "last published.", (double)st.updated_unix_ms / 1e3);
    if (openmetrics)
        put(&o, "# EOF\n");
    if (o.failed) {
        free(o.buf);
        o.buf = NULL;
        o.len = 0;
    }
    *out = o.buf;
    *len = o.len;
    return o.buf ? 0 : -ENOMEM;
}
