/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "primary"
#include "primary/protect.h"
#include "primary/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/quorum.h"
#include "colo/primary.h"
#include "common/log.h"
#include "common/status.h"
#include "netbuf/netbuf.h"
#include "netbuf/netbuf_colo.h"
#include "proto/channel.h"
#include "proto/liveness.h"
#include "proto/timing.h"

struct protect {
    const struct rm_protect_cfg *cfg;
    struct rm_protect_result *res;
    struct rm_error *err;

    /* The connections (connect.h): the control channel, the stream. */
    struct rm_peer_conn conn;
    /* What the save engine writes to: a layer over conn.stream_sink that
     * turns a failed stream write into the secondary's loss
     * (guarded_writev). */
    struct rm_sink guard_sink;

    pthread_t ctl_thread;
    bool ctl_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock: */
    uint64_t acked_epoch;
    uint64_t acked_digest;
    uint64_t acked_pages;
    bool peer_lost;
    bool handed_over;                /* RM_PROTECT_HANDED_OVER */
    bool handover_refused;           /* logged once */
    bool stopping;                 /* ctl thread must exit */
    struct rm_error peer_why;
    uint64_t last_heard_ns;

    /* epoch loop state (save thread only) */
    unsigned epoch_ms;             /* current interval: cfg->interval_ms,
                                      shorter while checkpoints near the
                                      secondary's buffer (adapt_epoch) */
    bool over_buffer;              /* logged the current episode */
    uint64_t next_due_ns;
    uint64_t epoch_sent_ns;
    uint64_t total_bytes;
    uint64_t last_progress_ns;
    struct rm_status status;
    uint64_t status_written_ns;
    uint64_t quorum_sampled_ns;    /* rm_quorum_sample() */
    struct rm_colo_primary *colo;  /* --colo (after the handshake) */
};

/*
 * Declare the secondary lost: wake the save thread wherever it waits (an
 * ack: the condition variable; a stream write blocked on a peer that
 * stopped reading, or the control thread blocked on a heartbeat: the
 * shutdowns make those writes fail at once).
 */
static void peer_lost_locked(struct protect *p, int code, const char *why)
{
    if (p->peer_lost)
        return;
    p->peer_lost = true;
    rm_error_set(&p->peer_why, code, "%s", why);
    pthread_cond_broadcast(&p->cond);
    /* A COLO cut waiting for the replica's dirty pages (the VM suspended)
     * ends now, not at the dirty timeout. */
    if (p->colo)
        rm_colo_primary_abort(p->colo, why);
    /* Say so before closing: a secondary that is alive (it only stopped
     * acknowledging, or its messages do not reach us) must not read the
     * close as this primary's death and run a second copy of the VM.  At
     * most 200 ms: a secondary that stopped reading will not read it. */
    if (p->conn.have_chan && p->conn.ctl_fd >= 0 && !p->stopping) {
        char msg[sizeof(((struct rm_ctl_msg *)0)->u.stop.reason)];

        snprintf(msg, sizeof(msg), "the primary gave up its secondary: %s",
                 why);
        if (rm_fd_set_send_timeout(p->conn.ctl_fd, 200) == 0 &&
            rm_chan_send_stop(&p->conn.chan, msg) == 0)
            LOG_INFO("told the secondary that protection ends");
    }
    if (p->conn.stream_fd >= 0)
        shutdown(p->conn.stream_fd, SHUT_RDWR);
    if (p->conn.ctl_fd >= 0)
        shutdown(p->conn.ctl_fd, SHUT_RDWR);
}

/*
 * The save engine's sink: the checkpoint stream.  A write that fails (the
 * send deadline passed with no progress, or the connection broke) means
 * the secondary is lost, as a heartbeat timeout would.
 */
static int guarded_writev(struct rm_sink *s, const struct iovec *iov,
                          int iovcnt)
{
    struct protect *p = s->layer;
    int rc = rm_sink_writev(&p->conn.stream_sink, iov, iovcnt);

    if (rc) {
        char why[160];

        if (rc == -ETIMEDOUT)
            snprintf(why, sizeof(why), "the secondary accepted no stream "
                     "data for %u ms (heartbeat timeout): it stopped "
                     "reading", p->cfg->hb_timeout_ms);
        else
            snprintf(why, sizeof(why), "writing the checkpoint stream "
                     "failed: %s", strerror(-rc));
        pthread_mutex_lock(&p->lock);
        if (!p->stopping)
            peer_lost_locked(p, rc, why);
        pthread_mutex_unlock(&p->lock);
    }
    return rc;
}

/* The control thread's session state (proto/liveness.h), under p->lock. */
static bool ctl_over(void *o)
{
    struct protect *p = o;

    return p->stopping || p->peer_lost;
}

static uint64_t ctl_progress(void *o)
{
    return ((struct protect *)o)->acked_epoch;
}

static void ctl_lost(void *o, int code, const char *why)
{
    peer_lost_locked(o, code, why);
}

/* We ended the protection: the secondary closing is expected. */
static bool ctl_closing(void *o)
{
    return ((struct protect *)o)->stopping;
}

/* A COLO message (or an ack) for colo/primary.c; one that breaks the
 * protocol ends protection.  Under p->lock. */
static void colo_message(struct protect *p, const struct rm_ctl_msg *msg)
{
    struct rm_error why = { 0 };

    if (!p->colo || p->peer_lost)
        return;
    if (rm_colo_primary_message(p->colo, msg, &why))
        peer_lost_locked(p, why.code ? why.code : -EPROTO,
                         rm_error_str(&why));
}

static void ctl_message(void *o, const struct rm_ctl_msg *msg)
{
    struct protect *p = o;
    char why[160];

    switch (msg->kind) {
    case RM_CTL_ACK:
        if (msg->u.ack.epoch != p->acked_epoch + 1) {
            snprintf(why, sizeof(why), "the secondary acknowledged epoch %"
                     PRIu64 " after %" PRIu64, (uint64_t)msg->u.ack.epoch,
                     p->acked_epoch);
            peer_lost_locked(p, -EPROTO, why);
            break;
        }
        p->acked_epoch = msg->u.ack.epoch;
        p->acked_digest = msg->u.ack.digest;
        p->acked_pages = msg->u.ack.pages;
        pthread_cond_broadcast(&p->cond);
        colo_message(p, msg);    /* COLO: the release, here, in order */
        break;
    case RM_CTL_COLO_OUTPUT:
    case RM_CTL_COLO_DIRTY:
    case RM_CTL_COLO_ASK:
        colo_message(p, msg);
        break;
    case RM_CTL_FAILOVER:
        peer_lost_locked(p, -ECONNABORTED, "the secondary announced a "
                         "failover");
        break;
    case RM_CTL_STOP:
        peer_lost_locked(p, -ECONNABORTED, "the secondary stopped the "
                         "protection");
        break;
    default:
        break;
    }
}

static const struct rm_liveness_ops ctl_ops = {
    .over = ctl_over,
    .progress = ctl_progress,
    .lost = ctl_lost,
    .closing = ctl_closing,
    .message = ctl_message,
};

/*
 * The control thread: receives acks and heartbeats, sends heartbeats,
 * and declares the secondary lost after hb_timeout_ms of silence.
 */
static void *ctl_main(void *arg)
{
    struct protect *p = arg;
    struct rm_liveness l = {
        .chan = &p->conn.chan, .lock = &p->lock,
        .hb_interval_ms = p->cfg->hb_interval_ms,
        .hb_timeout_ms = p->cfg->hb_timeout_ms, .peer = "secondary",
        .last_heard_ns = &p->last_heard_ns, .ops = &ctl_ops, .opaque = p,
    };

    rm_liveness_run(&l);
    return NULL;
}

/* ---------------------------------------------------- engine callbacks */

/* COLO: the VM is suspended for checkpoint @epoch: the replica's dirty
 * pages join it (colo/primary.h). */
static int on_peer_dirty(void *opaque, uint64_t epoch, unsigned long *dirty,
                         uint64_t nr_pfns)
{
    struct protect *p = opaque;
    struct rm_error why = { 0 };
    int rc = rm_colo_primary_cut(p->colo, epoch, dirty, nr_pfns, &why);

    if (rc) {
        pthread_mutex_lock(&p->lock);
        peer_lost_locked(p, rc, rm_error_str(&why));
        pthread_mutex_unlock(&p->lock);
    }
    return rc;
}

static void write_digest(int fd, uint64_t epoch, uint64_t digest)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%" PRIu64 " %016" PRIx64 "\n",
                     epoch, digest);

    if (write(fd, line, (size_t)n) < 0)
        (void)0;
}

static int on_suspended(void *opaque, uint64_t epoch)
{
    struct protect *p = opaque;

    /* The VM is paused: memory is exactly what checkpoint @epoch holds. */
    if (p->cfg->mem_digest && p->cfg->digest_every &&
        epoch % p->cfg->digest_every == 0)
        write_digest(p->cfg->digest_fd, epoch,
                     p->cfg->mem_digest(p->cfg->mem_digest_opaque));

    if (p->cfg->netbuf)
        return rm_netbuf_start_epoch(p->cfg->netbuf, epoch);
    return 0;
}

static void print_progress(struct protect *p, const struct rm_epoch_stats *st)
{
    uint64_t now = rm_now_ns();
    struct rm_disklog_stats ds;

    if (!p->cfg->progress_ms ||
        now - p->last_progress_ns < (uint64_t)p->cfg->progress_ms * 1000000)
        return;
    p->last_progress_ns = now;
    if (p->cfg->disks)
        rm_disklog_get_stats(p->cfg->disks, &ds);
    fprintf(stderr, "remus protect %s: epoch %" PRIu64 "  pause %.3f ms  "
            "dirty %" PRIu64 "  bytes %" PRIu64 "  acked %" PRIu64 "%s",
            p->cfg->name, st->epoch, (double)st->pause_ns / 1e6,
            st->dirty_pages, st->bytes, p->acked_epoch,
            p->cfg->disks ? "" : "\n");
    if (p->cfg->disks)
        fprintf(stderr, "  disk unacked %" PRIu64 "  waits %" PRIu64
                "  sync-epochs %" PRIu64 "\n", ds.unacked_bytes, ds.waits,
                ds.sync_epochs);
}

/*
 * Keep checkpoints below the secondary's buffer: what checkpoint @st costs
 * there (its pages as plain PAGE_DATA: the secondary expands compressed
 * ones; the wire bytes cover the state records) is compared with the
 * buffer the secondary announced.  Above half of it the next epochs are
 * shortened in proportion (down to 1 ms: fewer pages dirtied per epoch);
 * below a quarter they grow back to the configured interval.  A
 * checkpoint that still exceeds the buffer is not lost: the secondary
 * stages it on disk and applies it whole (common/restore.c).
 */
static void adapt_epoch(struct protect *p, const struct rm_epoch_stats *st)
{
    const struct rm_protect_cfg *cfg = p->cfg;
    uint64_t cost = st->dirty_pages * (RM_PAGE_SIZE + 8) + st->bytes;
    uint64_t half = p->conn.peer_buffer / 2;

    /* The first checkpoint (the full copy) is applied as it arrives, never
     * buffered. */
    if (!p->conn.peer_buffer || st->epoch < 2)
        return;
    if (cost > half) {
        uint64_t ms = (uint64_t)p->epoch_ms * half / cost;
        unsigned was = p->epoch_ms;

        p->epoch_ms = ms < 1 ? 1 : (unsigned)ms;
        if (!p->over_buffer)
            LOG_WARN("checkpoint %" PRIu64 " costs about %" PRIu64 " KiB at "
                     "the secondary, its buffer is %" PRIu64 " KiB: epochs "
                     "shortened from %u to %u ms%s", st->epoch, cost >> 10,
                     p->conn.peer_buffer >> 10, was, p->epoch_ms,
                     cost > p->conn.peer_buffer ? " (this one is staged on the "
                     "secondary's disk)" : "");
        p->over_buffer = true;
    } else if (cost < half / 2 && p->epoch_ms < cfg->interval_ms) {
        p->epoch_ms = p->epoch_ms * 2 < cfg->interval_ms ? p->epoch_ms * 2
                                                         : cfg->interval_ms;
        if (p->epoch_ms == cfg->interval_ms) {
            LOG_INFO("checkpoints fit the secondary's buffer again: "
                     "interval %u ms", p->epoch_ms);
            p->over_buffer = false;
        }
    }
}

/* A handover is requested (and possible): see rm_protect_cfg. */
static bool handover_due(struct protect *p)
{
    const struct rm_protect_cfg *cfg = p->cfg;

    if (!cfg->handover_requested || !*cfg->handover_requested)
        return false;
    if (cfg->pause_vm && !cfg->blackhole)
        return true;
    if (!p->handover_refused)
        LOG_WARN("handover requested, but %s: ignored", cfg->blackhole ?
                 "there is no secondary (-b)" : "this backend cannot pause "
                 "the VM for it");
    p->handover_refused = true;
    return false;
}

/*
 * Hand the VM over to the secondary: the VM stops running here first, so
 * that from then on only the replica can produce anything; what it did
 * since the last acknowledged checkpoint is dropped with its held output,
 * exactly as in a failover.  Returns -ECANCELED to end the save loop
 * without an END record (which would make the secondary discard).
 */
static int hand_over(struct protect *p)
{
    const struct rm_protect_cfg *cfg = p->cfg;
    uint64_t acked;
    char why[160];
    int rc;

    rc = cfg->pause_vm(cfg->pause_opaque ? cfg->pause_opaque
                                         : cfg->backend_arg);
    if (rc) {
        LOG_ERR("handover: cannot pause the VM (%s): protection goes on",
                strerror(-rc));
        *cfg->handover_requested = 0;
        return 1;
    }
    if (cfg->quorum)        /* the VM is paused for good: its token goes */
        rm_quorum_release(cfg->quorum);
    if (cfg->netbuf)
        rm_netbuf_discard(cfg->netbuf);
    pthread_mutex_lock(&p->lock);
    acked = p->acked_epoch;
    p->handed_over = true;
    p->stopping = true;
    pthread_mutex_unlock(&p->lock);
    snprintf(why, sizeof(why), "handover: the primary paused its VM after "
             "checkpoint %" PRIu64 " and hands over to the secondary", acked);
    rc = rm_chan_send_failover(&p->conn.chan, why);
    LOG_INFO("%s%s", why, rc ? " (the request could not be sent: the "
             "secondary will notice the silence)" : "");
    return -ECANCELED;
}

/*
 * End protection cleanly: tell the secondary first (so it knows the END
 * that follows is not a failure), then let the engine write END.
 */
static int announce_stop(struct protect *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_mutex_unlock(&p->lock);
    if (p->conn.have_chan)
        rm_chan_send_stop(&p->conn.chan, "protection stopped on the primary");
    return 0;
}

/* COLO's part of the status: the mode, checkpoints by cause, queues. */
static void colo_status(struct protect *p)
{
    struct rm_colo_primary_stats cs;
    struct rm_compare_stats qs;
    unsigned i;

    rm_colo_primary_get_stats(p->colo, &cs);
    snprintf(p->status.colo_mode, sizeof(p->status.colo_mode), "%s",
             cs.buffered ? "buffered" : "comparing");
    for (i = 0; i < 4; i++)
        p->status.colo_checkpoints[i] = cs.by_cause[RM_COLO_CAUSE_MISMATCH + i];
    p->status.colo_buffered_checkpoints = cs.buffered_checkpoints;
    p->status.colo_fallbacks = cs.fallbacks;
    if (rm_netbuf_colo_stats(p->cfg->netbuf, &qs)) {
        p->status.colo_held_primary = qs.held_primary;
        p->status.colo_held_replica = qs.held_replica;
    }
}

/* Is a clean stop asked (by either flag, protect.h)? */
static bool stop_asked(const struct rm_protect_cfg *cfg)
{
    return (cfg->stop_requested && *cfg->stop_requested) ||
           (cfg->process_stop && *cfg->process_stop);
}

/* COLO's wait between checkpoints: 0 to go on waiting, 2 for a handover,
 * 3 to stop, -ECONNRESET when the secondary is lost. */
static int colo_keep_waiting(void *opaque)
{
    struct protect *p = opaque;
    int rc;

    /* the loop is alive; the queues change between checkpoints */
    if (rm_now_ns() - p->status_written_ns >= 200000000ull) {
        colo_status(p);
        rm_status_publish(&p->status, "protecting", &p->status_written_ns,
                          false);
    } else {
        rm_status_tick(&p->status);
    }
    if (handover_due(p))
        return 2;
    if (stop_asked(p->cfg))
        return 3;
    pthread_mutex_lock(&p->lock);
    rc = p->peer_lost ? -ECONNRESET : 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static int on_checkpoint(void *opaque, const struct rm_epoch_stats *st)
{
    struct protect *p = opaque;
    const struct rm_protect_cfg *cfg = p->cfg;
    struct timespec deadline;
    uint64_t wait_ns = (uint64_t)cfg->hb_timeout_ms * 1000000;
    int rc = 0;

    p->epoch_sent_ns = rm_now_ns();
    p->total_bytes += st->bytes;
    p->res->bytes = p->total_bytes;

    if (!cfg->blackhole) {
        deadline = rm_deadline_ts(wait_ns);
        pthread_mutex_lock(&p->lock);
        while (p->acked_epoch < st->epoch && !p->peer_lost && rc == 0)
            rc = pthread_cond_timedwait(&p->cond, &p->lock, &deadline);
        if (p->acked_epoch < st->epoch && !p->peer_lost) {
            char why[128];

            snprintf(why, sizeof(why), "no acknowledgement of epoch %"
                     PRIu64 " within %u ms", st->epoch, cfg->hb_timeout_ms);
            peer_lost_locked(p, -ETIMEDOUT, why);
        }
        if (!p->peer_lost && p->acked_digest != st->digest) {
            char why[200];

            snprintf(why, sizeof(why), "the secondary applied epoch %"
                     PRIu64 " with digest %016" PRIx64 " but %016" PRIx64
                     " was sent", st->epoch, p->acked_digest, st->digest);
            peer_lost_locked(p, -EBADMSG, why);
        }
        if (p->peer_lost) {
            pthread_mutex_unlock(&p->lock);
            return -ECONNRESET;
        }
        pthread_mutex_unlock(&p->lock);
    } else {
        p->acked_epoch = st->epoch;
    }

    /* sent .. acknowledged: the stats file's ack_us and the metrics' */
    p->status.last_ack_us = (rm_now_ns() - p->epoch_sent_ns) / 1000;
    if (cfg->stats_fd >= 0) {
        char line[320];
        int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %"
                         PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %"
                         PRIu64, st->epoch, st->pause_ns / 1000,
                         st->dirty_pages, st->bytes, st->send_ns / 1000,
                         p->status.last_ack_us, st->disk_late);
        unsigned ph;

        /* then the pause's parts, in us (common/sr.h RM_PAUSE_*) */
        for (ph = 0; ph < RM_PAUSE_PHASES && n > 0 &&
                     (size_t)n < sizeof(line) - 24; ph++)
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %" PRIu64,
                          st->phase_ns[ph] / 1000);
        /* then the pause's page faults and its map time in us */
        if (n > 0 && (size_t)n < sizeof(line) - 48)
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %" PRIu64
                          " %" PRIu64, st->pause_faults,
                          st->pages_map_ns / 1000);
        if (n > 0 && (size_t)n < sizeof(line) - 1)
            line[n++] = '\n';

        if (write(cfg->stats_fd, line, (size_t)n) < 0)
            (void)0;
    }

    /* The secondary has everything this epoch's output depends on.
     * (COLO: released by the ack itself, in the control thread.) */
    if (cfg->netbuf && !p->colo) {
        rc = rm_netbuf_release(cfg->netbuf, st->epoch);
        if (rc)
            return rc;
    }
    p->res->epochs = st->epoch;

    p->status.epoch = st->epoch;
    p->status.acked_epoch = p->acked_epoch;
    /* A checkpoint was acknowledged: from now on the loop ticks at least
     * every 20 ms (the first, full checkpoint may take long). */
    p->status.ready = p->status.looping = true;
    if (cfg->netbuf) {
        struct rm_netbuf_stats ns;

        rm_netbuf_get_stats(cfg->netbuf, &ns);
        p->status.held_bytes = ns.held_bytes;
    }
    p->status.last_pause_us = st->pause_ns / 1000;
    p->status.last_dirty_pages = st->dirty_pages;
    p->status.last_bytes = st->bytes;
    p->status.total_bytes = p->total_bytes;
    if (p->colo)
        colo_status(p);
    rm_quorum_sample(cfg->quorum, &p->quorum_sampled_ns,
                     &p->status.quorate_known, &p->status.quorate);
    /* COLO's checkpoints while it compares come seldom: each is written
     * (within the rate limit, the file would say the one before until the
     * loop's next write, up to 200 ms on).  Buffered, they come every
     * interval: rate-limited. */
    rm_status_publish(&p->status, "protecting", &p->status_written_ns,
                      p->colo && rm_status_colo_comparing(&p->status));
    print_progress(p, st);
    adapt_epoch(p, st);

    if (handover_due(p))
        return hand_over(p);
    if (stop_asked(cfg))
        return announce_stop(p);

    if (p->colo) {
        /* Until the comparator asks for a checkpoint, or the longest
         * interval passed. */
        enum rm_colo_cause cause;

        rc = rm_colo_primary_wait(p->colo, colo_keep_waiting, p, &cause);
        if (rc == 2)
            return hand_over(p);
        if (rc == 3)
            return announce_stop(p);
        return rc ? rc : 1;
    }
    /* Sleep until the next epoch is due (measured from the last one). */
    {
        uint64_t now = rm_now_ns();
        uint64_t period = (uint64_t)p->epoch_ms * 1000000;

        if (!p->next_due_ns || p->next_due_ns + period < now)
            p->next_due_ns = now;
        p->next_due_ns += period;
        while ((now = rm_now_ns()) < p->next_due_ns) {
            uint64_t left = p->next_due_ns - now;

            rm_sleep_ns(left > 20000000ull ? 20000000ull : left);
            rm_status_tick(&p->status);     /* the loop is alive */
            if (handover_due(p))
                return hand_over(p);
            if (stop_asked(cfg))
                return announce_stop(p);
            pthread_mutex_lock(&p->lock);
            rc = p->peer_lost ? -ECONNRESET : 0;
            pthread_mutex_unlock(&p->lock);
            if (rc)
                return rc;
        }
    }
    return 1;
}

/* ---------------------------------------------------- the session */

/* The gate with cfg->quorum and no peer_lost_gate of the caller's: the
 * cluster decides; a VM that must not run on is paused (pause_vm) before
 * anything else can happen.  1: run on; 0: must not. */
static int quorum_gate(const struct rm_protect_cfg *cfg, struct rm_error *why)
{
    struct rm_quorum_verdict v;
    struct rm_error err = { 0 };

    rm_quorum_decide(cfg->quorum, &v, &err);
    if (!v.act && cfg->pause_vm)
        cfg->pause_vm(cfg->pause_opaque ? cfg->pause_opaque
                                        : cfg->backend_arg);
    rm_error_set(why, v.act ? -EAGAIN : -ENOLCK, "%s", v.why);
    return v.act ? 1 : 0;
}

void rm_protect_cfg_init(struct rm_protect_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->interval_ms = 200;
    cfg->hb_interval_ms = 100;
    cfg->hb_timeout_ms = rm_timing_default_timeout(cfg->interval_ms,
                                                   cfg->hb_interval_ms);
    cfg->connect_timeout_ms = 5000;
    cfg->compress = true;
    cfg->stats_fd = -1;
    cfg->digest_fd = -1;
}

int rm_protect_run(const struct rm_protect_cfg *cfg,
                   struct rm_protect_result *res, struct rm_error *err)
{
    struct protect *p;
    struct rm_save_ctx sctx;
    struct rm_sink sink;
    int rc, devnull = -1;

    memset(res, 0, sizeof(*res));
    if (cfg->colo && cfg->nr_unreplicated)
        return rm_error_set(err, -EINVAL, "COLO (--colo) with a disk left "
                            "unreplicated (-d): the replica's disk would "
                            "not be the primary's");
    if (cfg->interval_ms < 1 || cfg->hb_interval_ms < 1 ||
        cfg->hb_timeout_ms <= cfg->hb_interval_ms)
        return rm_error_set(err, -EINVAL, "interval %u ms, heartbeat %u ms, "
                            "timeout %u ms: need interval >= 1 and timeout "
                            "> heartbeat", cfg->interval_ms,
                            cfg->hb_interval_ms, cfg->hb_timeout_ms);
    p = calloc(1, sizeof(*p));
    if (!p)
        return rm_error_set(err, -ENOMEM, "out of memory");
    p->cfg = cfg;
    p->res = res;
    p->err = err;
    rm_peer_conn_init(&p->conn);
    p->epoch_ms = cfg->interval_ms;
    pthread_mutex_init(&p->lock, NULL);
    rc = rm_cond_init_monotonic(&p->cond);
    if (rc) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rm_error_set(err, rc, "cannot make a monotonic condition "
                            "variable");
    }

    snprintf(p->status.name, sizeof(p->status.name), "%s", cfg->name);
    snprintf(p->status.role, sizeof(p->status.role), "primary");
    snprintf(p->status.backend, sizeof(p->status.backend), "%s",
             cfg->backend_name);
    snprintf(p->status.peer, sizeof(p->status.peer), "%.200s:%u",
             cfg->blackhole ? "blackhole" : cfg->peer.host, cfg->peer.port);
    p->status.pid = (int)getpid();
    p->status.interval_ms = cfg->interval_ms;
    p->status.quorum = cfg->quorum != NULL;
    p->status.observers = cfg->observers;
    rm_status_publish(&p->status, "connecting", &p->status_written_ns, true);

    if (cfg->blackhole) {
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull < 0) {
            rc = rm_error_set(err, -errno, "cannot open /dev/null");
            goto out;
        }
        rm_sink_init_fd(&sink, devnull);
        p->conn.compress = cfg->compress;
    } else {
        rc = rm_peer_connect(&p->conn, cfg, err);
        if (rc)
            goto out;
        if (cfg->colo) {
            struct rm_colo_primary_cfg cc = {
                .chan = &p->conn.chan, .netbuf = cfg->netbuf,
                .max_interval_ms = cfg->colo_max_interval_ms,
                .dirty_timeout_ms = cfg->hb_timeout_ms,
                .fallback_rate = cfg->colo_fallback_rate,
                .fallback_hold_ms = cfg->colo_fallback_hold_ms,
                .buffered_interval_ms = cfg->interval_ms,
                .disks = cfg->disks,
                .set_mirror = cfg->colo_mirror,
                .set_mirror_opaque = cfg->colo_mirror_opaque,
            };

            p->colo = rm_colo_primary_new(&cc, err);
            if (!p->colo) {
                rc = err->code ? err->code : -ENOMEM;
                goto out;
            }
        }
        p->last_heard_ns = rm_now_ns();
        rc = pthread_create(&p->ctl_thread, NULL, ctl_main, p);
        if (rc) {
            rc = rm_error_set(err, -rc, "cannot start the control thread");
            goto out;
        }
        p->ctl_running = true;
    }

    memset(&sctx, 0, sizeof(sctx));
    sctx.ops = cfg->ops;
    sctx.backend_arg = cfg->backend_arg;
    sctx.err = err;
    rm_save_params_default(&sctx.params, RM_SAVE_CHECKPOINTED);
    sctx.params.compress = p->conn.compress;
    sctx.cb.opaque = p;
    sctx.cb.suspended = on_suspended;
    sctx.cb.checkpoint = on_checkpoint;
    if (p->colo)
        sctx.cb.peer_dirty = on_peer_dirty;
    sctx.disks = cfg->disks;
    rm_status_publish(&p->status, "protecting", &p->status_written_ns, true);

    rm_sink_init_fd(&p->guard_sink, -1);
    p->guard_sink.layer_writev = guarded_writev;
    p->guard_sink.layer = p;
    rc = rm_save(&sctx, cfg->blackhole ? &sink : &p->guard_sink);
    p->status.looping = false;
    /* Protection is over: the guest's writes are no longer logged, and a
     * writer that waited for room goes on. */
    if (cfg->disks)
        rm_disklog_stop(cfg->disks);

    pthread_mutex_lock(&p->lock);
    if (p->handed_over) {
        res->end = RM_PROTECT_HANDED_OVER;
        rm_error_set(&res->why, -ECANCELED, "handed over to the secondary "
                     "after checkpoint %" PRIu64, p->acked_epoch);
        rm_error_clear(err);
        rc = 0;
    } else if (p->peer_lost) {
        res->end = RM_PROTECT_PEER_LOST;
        res->why = p->peer_why;
        rm_error_clear(err);
        rc = 0;
    } else if (rc == 0) {
        res->end = RM_PROTECT_STOPPED;
    }
    p->stopping = true;
    pthread_mutex_unlock(&p->lock);


out:
    if (rc == 0 && res->end == RM_PROTECT_PEER_LOST &&
        (cfg->peer_lost_gate || cfg->quorum)) {
        struct rm_error gwhy = { 0 };
        int go;

        LOG_WARN("secondary lost (%s): output stays held until the cluster "
                 "decides", rm_error_str(&res->why));
        go = cfg->peer_lost_gate ? cfg->peer_lost_gate(
                                       cfg->peer_lost_gate_opaque, &gwhy)
                                 : quorum_gate(cfg, &gwhy);
        if (go != 1) {
            if (cfg->netbuf)
                rm_netbuf_discard(cfg->netbuf);
            struct rm_error lost = res->why;

            res->end = RM_PROTECT_MUST_STOP;
            rm_error_force(&res->why, -ENOLCK, "%s; the VM must not run "
                           "on: %s", rm_error_str(&lost), rm_error_str(&gwhy));
        } else {
            LOG_INFO("the VM runs on: %s", rm_error_str(&gwhy));
        }
    }
    if (rc == 0 && res->end == RM_PROTECT_PEER_LOST)
        LOG_WARN("secondary lost (%s): releasing held output, the VM runs "
                 "on UNPROTECTED", rm_error_str(&res->why));
    /* Otherwise the VM keeps running and its output flows. */
    if (cfg->netbuf && !(rc == 0 && (res->end == RM_PROTECT_MUST_STOP ||
                                     res->end == RM_PROTECT_HANDED_OVER)))
        rm_netbuf_passthrough(cfg->netbuf);
    if (p->ctl_running) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        if (p->conn.ctl_fd >= 0)
            shutdown(p->conn.ctl_fd, SHUT_RDWR);
        pthread_join(p->ctl_thread, NULL);
    }
    if (rc == 0 && res->end == RM_PROTECT_PEER_LOST) {
        snprintf(p->status.detail, sizeof(p->status.detail),
                 "secondary lost: %s", rm_error_str(&res->why));
        rm_status_publish(&p->status, "unprotected", &p->status_written_ns, true);
    } else if (rc == 0 && res->end == RM_PROTECT_HANDED_OVER) {
        snprintf(p->status.detail, sizeof(p->status.detail), "%s",
                 rm_error_str(&res->why));
        rm_status_publish(&p->status, "handed-over", &p->status_written_ns,
                          true);
    } else if (rc == 0 && res->end == RM_PROTECT_MUST_STOP) {
        snprintf(p->status.detail, sizeof(p->status.detail), "%s",
                 rm_error_str(&res->why));
        rm_status_publish(&p->status, "stopped-no-quorum",
                          &p->status_written_ns, true);
    } else if (rc == 0) {
        rm_status_publish(&p->status, "stopped", &p->status_written_ns, true);
    } else {
        snprintf(p->status.detail, sizeof(p->status.detail), "%s",
                 rm_error_str(err));
        rm_status_publish(&p->status, "failed", &p->status_written_ns, true);
    }
    if (p->colo) {
        struct rm_colo_primary_stats cs;

        rm_colo_primary_get_stats(p->colo, &cs);
        LOG_INFO("COLO: checkpoints asked by a mismatch %" PRIu64 ", a "
                 "timeout %" PRIu64 ", a full queue %" PRIu64 ", the "
                 "interval %" PRIu64 " (the replica asked %" PRIu64 ": its "
                 "disk overlay half full); %" PRIu64 " input frames mirrored, %"
                 PRIu64 " of the replica's dirty pages sent again; fallbacks "
                 "to buffered mode %" PRIu64 ", checkpoints in it %" PRIu64
                 "%s", cs.by_cause[RM_COLO_CAUSE_MISMATCH],
                 cs.by_cause[RM_COLO_CAUSE_TIMEOUT],
                 cs.by_cause[RM_COLO_CAUSE_OVERFLOW],
                 cs.by_cause[RM_COLO_CAUSE_PERIODIC], cs.replica_asks,
                 cs.input_frames,
                 cs.replica_dirty_pages, cs.fallbacks,
                 cs.buffered_checkpoints,
                 cs.buffered ? " (it ended in buffered mode)" : "");
        /* The mirror stops before the channel it sends on goes. */
        rm_colo_primary_free(p->colo);
    }
    rm_peer_close(&p->conn);
    if (devnull >= 0)
        close(devnull);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return rc;
}
