/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "secondary"
#include "secondary/receive.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/quorum.h"
#include "common/auth.h"
#include "common/io.h"
#include "common/key_resolve.h"
#include "common/log.h"
#include "common/net.h"
#include "common/status.h"
#include "proto/channel.h"
#include "proto/disks.h"
#include "proto/liveness.h"
#include "secondary/accept.h"

struct receive {
    const struct rm_receive_cfg *cfg;
    struct rm_receive_result *res;
    struct rm_error *err;

    struct rm_primary_conn pc;    /* the accepted primary's connections */
    bool compress;
    unsigned hb_timeout_ms;       /* agreed in the handshake */

    pthread_t ctl_thread;
    bool ctl_running;
    pthread_mutex_t lock;
    /* under lock: */
    bool stop_received;           /* clean STOP from the primary, or a
                                     stop asked here (stop_asked) */
    bool stop_asked;              /* *cfg->stop_requested, seen by ctl_beat */
    bool lost;                      /* primary declared lost */
    bool handover;                  /* the primary asked for the failover */
    bool done;                    /* restore finished: ctl thread exits */
    struct rm_error lost_why;
    uint64_t lost_at_ns;
    uint64_t last_heard_ns;
    uint64_t committed;
    bool stall_warned;            /* this stall of the stream was logged */
    bool trimmed;                 /* malloc_trim() after the first commit */

    /* Written by the restore's thread (each commit) and, once the control
     * thread runs, by it too (ctl_beat): under status_lock. */
    pthread_mutex_t status_lock;
    struct rm_status status;
    uint64_t status_written_ns;
    uint64_t quorum_sampled_ns;   /* rm_quorum_sample() */
    uint64_t last_progress_ns;

    struct rm_colo_replica *colo;  /* --colo (after the handshake) */
    struct rm_restore_ctx *rctx;  /* COLO: the running restore's, for
                                     its memory hashes at a commit */
    bool colo_broken;             /* under lock: COLO cannot go on */
    struct rm_error colo_why;
};

/* Declare the primary lost and make the restore engine stop reading. */
static void lose_primary_locked(struct receive *r, int code, const char *why)
{
    if (r->lost || r->stop_received || r->done)
        return;
    r->lost = true;
    r->lost_at_ns = rm_now_ns();
    rm_error_set(&r->lost_why, code, "%s", why);
    LOG_WARN("primary lost: %s", why);
    /* Wakes the engine's read with EOF: it discards the open checkpoint. */
    if (r->pc.stream_fd >= 0)
        shutdown(r->pc.stream_fd, SHUT_RDWR);
}


/* The control thread's session state (proto/liveness.h), under r->lock. */
static bool ctl_over(void *o)
{
    struct receive *r = o;

    return r->done || r->lost || r->stop_received;
}

static uint64_t ctl_progress(void *o)
{
    return ((struct receive *)o)->committed;
}

static void ctl_lost(void *o, int code, const char *why)
{
    lose_primary_locked(o, code, why);
}

/* COLO cannot go on (the primary broke its protocol, or the replica
 * could not run): protection ends without a takeover, as when only the
 * stream fails while the primary lives.  Under r->lock. */
static void colo_break_locked(struct receive *r, const struct rm_error *why)
{
    if (r->colo_broken)
        return;
    r->colo_broken = true;
    r->colo_why = *why;
    LOG_ERR("COLO: %s", rm_error_str(why));
    if (r->pc.stream_fd >= 0)
        shutdown(r->pc.stream_fd, SHUT_RDWR);
}

/* The same, from a thread that does not hold r->lock. */
static void colo_break(struct receive *r, const struct rm_error *why)
{
    pthread_mutex_lock(&r->lock);
    colo_break_locked(r, why);
    pthread_mutex_unlock(&r->lock);
}

static void ctl_message(void *o, const struct rm_ctl_msg *msg)
{
    struct receive *r = o;

    if (r->colo && (msg->kind == RM_CTL_COLO_INPUT ||
                    msg->kind == RM_CTL_COLO_CHECKPOINT)) {
        struct rm_error why = { 0 };

        if (!r->colo_broken && rm_colo_replica_message(r->colo, msg, &why))
            colo_break_locked(r, &why);
        return;
    }
    if (msg->kind == RM_CTL_STOP) {
        LOG_INFO("the primary stopped protection: %s", msg->u.stop.reason);
        r->stop_received = true;
    } else if (msg->kind == RM_CTL_FAILOVER && !r->cfg->key) {
        /* Anyone could have sent it: the replica takes over only when
         * the primary is lost (and through quorum and fencing). */
        LOG_WARN("a handover request on an unauthenticated channel "
                 "(--insecure) is not honoured");
    } else if (msg->kind == RM_CTL_FAILOVER) {
        if (!r->lost && !r->stop_received && !r->done)
            r->handover = true;
        lose_primary_locked(r, -ECONNABORTED, "failover requested by the "
                            "primary (a handover)");
    }
}

/*
 * A stop asked here (SIGINT/SIGTERM to `remus receive`) while the primary
 * streams: the engine's reads never wait long enough to look at it, so
 * protection ends from here, as the primary's STOP ends it: the primary
 * is told (it runs on unprotected), the stream is shut down, and the
 * replica is discarded (no takeover).  From the control thread, the one
 * that sends on the channel.
 */
static void stop_if_asked(struct receive *r)
{
    bool now = false;
    uint64_t committed;

    if (!r->cfg->stop_requested || !*r->cfg->stop_requested)
        return;
    pthread_mutex_lock(&r->lock);
    committed = r->committed;
    if (!r->done && !r->lost && !r->stop_received)
        r->stop_received = r->stop_asked = now = true;
    pthread_mutex_unlock(&r->lock);
    if (!now)
        return;
    LOG_INFO("asked to stop: protection ends here after checkpoint %" PRIu64
             "; the replica is discarded", committed);
    /* The primary first: a stream shut before it reads this would break
     * its next write, and it would take the stop for a lost secondary. */
    if (rm_chan_send_stop(&r->pc.chan, "the secondary was asked to stop"))
        LOG_WARN("cannot tell the primary that protection ends (it will "
                 "notice the silence)");
    pthread_mutex_lock(&r->lock);
    if (r->pc.stream_fd >= 0)
        shutdown(r->pc.stream_fd, SHUT_RDWR);
    pthread_mutex_unlock(&r->lock);
}

/* Every heartbeat interval (without r->lock): a stop asked here; while
 * COLO compares, the secondary commits seldom: what its replica wrote to
 * disk since its checkpoint is published meanwhile (a takeover writes it
 * into the image; `remus drill --colo` waits for some before it kills the
 * primary). */
static void ctl_beat(void *o)
{
    struct receive *r = o;
    uint64_t sectors;

    stop_if_asked(r);
    if (!r->colo || !r->cfg->colo_ops.written)
        return;
    /* Read under the lock: a count read before a commit's status (which
     * says 0) must not be published after it, as that checkpoint's. */
    pthread_mutex_lock(&r->status_lock);
    sectors = r->cfg->colo_ops.written(r->cfg->colo_ops.opaque);
    if (!strcmp(r->status.state, "replica") &&
        rm_status_colo_comparing(&r->status) &&
        sectors != r->status.colo_replica_sectors) {
        /* The first write since the checkpoint is said at once (a commit's
         * forced write of 0 just before must not hold it back); more,
         * rate-limited. */
        bool first = !r->status.colo_replica_sectors;

        r->status.colo_replica_sectors = sectors;
        rm_status_publish(&r->status, "replica", &r->status_written_ns,
                          first);
    }
    pthread_mutex_unlock(&r->status_lock);
}

static const struct rm_liveness_ops ctl_ops = {
    .over = ctl_over,
    .progress = ctl_progress,
    .lost = ctl_lost,
    .message = ctl_message,
    .beat = ctl_beat,
};

/* The control thread: heartbeats both ways, stop and handover requests. */
static void *ctl_main(void *arg)
{
    struct receive *r = arg;
    struct rm_liveness l = {
        .chan = &r->pc.chan, .lock = &r->lock,
        .hb_interval_ms = r->cfg->hb_interval_ms,
        .hb_timeout_ms = r->hb_timeout_ms, .peer = "primary",
        .last_heard_ns = &r->last_heard_ns, .ops = &ctl_ops, .opaque = r,
    };

    rm_liveness_run(&l);
    return NULL;
}

/*
 * The stream's read timed out (hb_timeout_ms without a byte).  While the
 * primary's heartbeats still arrive it is alive, only slow to send (a
 * guest slow to suspend, a big checkpoint on a slow link): wait on.
 * Taking over now would run a second copy of a VM that runs (split
 * brain).  Once the control channel declares the primary lost (which
 * shuts the stream down), or we are asked to stop, the read fails.
 */
static bool stream_keep_waiting(void *o)
{
    struct receive *r = o;
    bool alive;

    pthread_mutex_lock(&r->lock);
    /* The clock is read under the lock: the control thread stamps
     * last_heard_ns under it, so the stamp is never after "now". */
    alive = !r->lost && !r->done && !r->stop_received &&
            !(r->cfg->stop_requested && *r->cfg->stop_requested) &&
            rm_ns_since(rm_now_ns(), r->last_heard_ns) <=
                (uint64_t)r->hb_timeout_ms * 1000000;
    if (alive && !r->stall_warned && !r->colo) {  /* COLO: idle is normal */
        r->stall_warned = true;
        LOG_WARN("no checkpoint data for %u ms after epoch %" PRIu64 ", but "
                 "the primary's heartbeats arrive: it is alive, its "
                 "checkpoint is slow; waiting (not taking over)",
                 r->hb_timeout_ms, r->committed);
    }
    pthread_mutex_unlock(&r->lock);
    return alive;
}

/*
 * The stream failed (ended, broke, or carried a bad record) before the
 * control channel said anything.  A dead primary's process closes both
 * connections at once (its host, silent, lets the heartbeats time out):
 * wait for the control channel's verdict.  true: the primary is alive, it
 * was heard after the stream failed and its control channel stayed open
 * for half a heartbeat timeout more (the primary gives up an
 * unacknowledged epoch after a whole one: this verdict comes first).
 */
static bool primary_outlives_stream(struct receive *r)
{
    uint64_t failed = rm_now_ns();
    uint64_t half = (uint64_t)r->hb_timeout_ms * 500000;
    uint64_t all = (uint64_t)(r->hb_timeout_ms + r->cfg->hb_interval_ms) *
                   1000000;
    bool decided, heard;

    for (;;) {
        uint64_t now = rm_now_ns();

        pthread_mutex_lock(&r->lock);
        decided = r->lost || r->stop_received;
        heard = r->last_heard_ns > failed;
        pthread_mutex_unlock(&r->lock);
        if (decided)
            return false;
        if (r->cfg->stop_requested && *r->cfg->stop_requested)
            return false;
        if ((heard && now - failed >= half) || now - failed >= all)
            return true;
        rm_sleep_ms(10);
    }
}

/*
 * COLO: after a checkpoint the replica ran before, its memory must now be
 * the primary's at the cut, every page it changed replaced.  A change its
 * dirty list missed would stay, a mix of the two VMs that no output
 * comparison can see: the replica is inconsistent, COLO cannot go on and
 * it must never take over.  The whole memory is hashed (64 MiB: ~19 ms),
 * only at COLO checkpoints the replica ran before (rare by design).
 */
static int colo_verify(struct receive *r, uint64_t epoch)
{
    struct rm_error why = { 0 };
    uint64_t expected = 0, actual = 0;
    int rc = rm_restore_mem_hashes(r->rctx, &expected, &actual);

    if (rc)
        rm_error_set(&why, rc, "checkpoint %" PRIu64 ": the replica's "
                     "memory could not be checked: %s", epoch, strerror(-rc));
    else if (expected != actual)
        rc = rm_error_set(&why, -EPROTO, "checkpoint %" PRIu64 ": the "
                          "replica's memory differs from the primary's at "
                          "the cut (whole-memory hash %016" PRIx64 ", the "
                          "pages sent make %016" PRIx64 "): a page the "
                          "replica changed was missing from its dirty list; "
                          "the replica is inconsistent and must not run",
                          epoch, actual, expected);
    if (rc)
        colo_break(r, &why);
    return rc;
}

/* The restore engine's end_expected: a stop asked here shut the stream. */
static bool end_was_asked(void *opaque)
{
    struct receive *r = opaque;
    bool asked;

    pthread_mutex_lock(&r->lock);
    asked = r->stop_asked;
    pthread_mutex_unlock(&r->lock);
    return asked;
}

static int on_committed(void *opaque, uint64_t epoch, uint64_t digest,
                        uint64_t pages)
{
    struct receive *r = opaque;
    uint64_t now = rm_now_ns();
    int rc;

    pthread_mutex_lock(&r->lock);
    r->committed = epoch;
    r->stall_warned = false;
    pthread_mutex_unlock(&r->lock);
    if (r->cfg->mem_digest && r->cfg->digest_every &&
        epoch % r->cfg->digest_every == 0) {
        char line[64];
        int n = snprintf(line, sizeof(line), "%" PRIu64 " %016" PRIx64 "\n",
                         epoch, r->cfg->mem_digest(r->cfg->mem_digest_opaque));

        if (write(r->cfg->digest_fd, line, (size_t)n) < 0)
            (void)0;
    }
    if (r->cfg->commit_log_fd >= 0) {
        char line[64];
        int n = snprintf(line, sizeof(line), "commit %" PRIu64 " %" PRIu64
                         "\n", rm_now_ns(), epoch);

        if (write(r->cfg->commit_log_fd, line, (size_t)n) < 0)
            (void)0;
    }
    if (r->colo && rm_colo_replica_ran_for(r->colo, epoch)) {
        rc = colo_verify(r, epoch);
        if (rc)
            return rc;            /* not acknowledged: protection ends */
    }
    if (r->colo) {
        struct rm_error why = { 0 };

        rc = rm_colo_replica_committing(r->colo, epoch, &why);
        if (rc) {
            colo_break(r, &why);
            return rc;            /* not acknowledged: protection ends */
        }
    }
    rc = rm_chan_send_ack(&r->pc.chan, epoch, digest, pages);
    if (r->colo) {
        /* After the ack (the primary releases what it held before the
         * cut before it sees the replica's next frame), even if it
         * failed: the replica's memory is the checkpoint's, so must be its
         * vCPUs, for a takeover. */
        struct rm_error why = { 0 };

        if (rm_colo_replica_committed(r->colo, epoch, &why))
            colo_break(r, &why);
    }
    if (!r->trimmed) {
        /* The first commit ends the initial sync, whose records were the
         * biggest this replica buffers: the heap gives back what they
         * left free (the replica's memory stays near the dirty set). */
        malloc_trim(0);
        r->trimmed = true;
    }
    pthread_mutex_lock(&r->status_lock);
    r->status.epoch = epoch;
    r->status.acked_epoch = epoch;
    r->status.last_dirty_pages = pages;
    r->status.looping = true;
    if (r->colo) {
        struct rm_colo_replica_stats cs;

        rm_colo_replica_get_stats(r->colo, &cs);
        snprintf(r->status.colo_mode, sizeof(r->status.colo_mode), "%s",
                 cs.parked ? "buffered" : "comparing");
        r->status.colo_buffered_checkpoints = cs.buffered_commits;
        /* It runs from this checkpoint with an empty overlay (or stays
         * paused at it); ctl_beat counts on from here. */
        r->status.colo_replica_sectors = 0;
    }
    rm_quorum_sample(r->cfg->cluster, &r->quorum_sampled_ns,
                     &r->status.quorate_known, &r->status.quorate);
    /* COLO's commits while it compares come seldom (on a mismatch, a
     * timeout, the periodic one): each is written, or a commit that came
     * within the rate limit of the one before would stay unsaid until the
     * next, seconds on (`remus drill --colo` waits on it before it kills
     * the primary).  Buffered, they come every interval: rate-limited. */
    rm_status_publish(&r->status, "replica", &r->status_written_ns,
                      r->colo && rm_status_colo_comparing(&r->status));
    pthread_mutex_unlock(&r->status_lock);
    if (r->cfg->progress_ms &&
        now - r->last_progress_ns >= (uint64_t)r->cfg->progress_ms * 1000000) {
        r->last_progress_ns = now;
        fprintf(stderr, "remus receive %s: committed epoch %" PRIu64 " (%"
                PRIu64 " pages)\n", r->status.name, epoch, pages);
    }
    return rc;
}

static int accept_peer(struct receive *r)
{
    const struct rm_receive_cfg *cfg = r->cfg;
    struct rm_hello mine;
    int rc;

    rc = rm_accept_control(&r->pc, cfg, &r->status, &mine, r->err);
    /* Hashing the disks and the first, full checkpoint may take long:
     * the loop is back with the first commit (on_committed). */
    r->status.looping = false;
    if (rc)
        return rc;
    r->compress = (mine.caps & r->pc.peer.caps & RM_CAP_COMPRESSION) != 0;
    r->hb_timeout_ms = mine.hb_timeout_ms;
    snprintf(r->res->name, sizeof(r->res->name), "%s",
             cfg->name && *cfg->name ? cfg->name : r->pc.peer.name);
    snprintf(r->status.name, sizeof(r->status.name), "%s", r->res->name);

    rc = rm_accept_stream(&r->pc, cfg, mine.session, sizeof(mine.session),
                          r->err);
    /* Each stream layer got its own copy of the receiving state. */
    rm_auth_wipe(&r->pc.chan.stream_rx, sizeof(r->pc.chan.stream_rx));
    if (rc)
        return rc;
    if (r->pc.peer.nr_disks) {
        /* The initial sync: the primary sends what differs. */
        rm_status_publish(&r->status, "hashing disks", &r->status_written_ns,
                          true);
        rc = rm_disk_hashes_send(&r->pc.chan, cfg->disks, &r->pc.peer,
                                 cfg->disk_chunk ? cfg->disk_chunk
                                                 : RM_DISK_CHUNK_DEFAULT,
                                 r->err);
        if (rc)
            return rc;
    }
    if (!cfg->key)
        rm_key_warn_insecure("this replication session", r->pc.ctl_addr);
    LOG_INFO("replicating '%s' (%" PRIu64 " MiB, %u vcpus) from the "
             "primary at %s: interval %u ms, heartbeat %u/%u ms (the "
             "primary's %u/%u ms), compression %s%s",
             r->res->name, r->pc.peer.guest_bytes >> 20, r->pc.peer.nr_vcpus,
             r->pc.ctl_addr, r->pc.peer.interval_ms, cfg->hb_interval_ms,
             r->hb_timeout_ms, r->pc.peer.hb_interval_ms, r->pc.peer.hb_timeout_ms,
             r->compress ? "on" : "off",
             cfg->key ? ", authenticated and encrypted (pre-shared key)"
                      : "");
    return 0;
}

static bool replicates_disks(const struct rm_hello *primary)
{
    uint32_t i;

    for (i = 0; i < primary->nr_disks; i++)
        if (!primary->disks[i].unreplicated)
            return true;
    return false;
}

void rm_receive_cfg_init(struct rm_receive_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_fd = -1;
    cfg->hb_interval_ms = 100;
    cfg->allow_compression = true;
    cfg->digest_fd = -1;
    cfg->commit_log_fd = -1;
}

int rm_receive_run(const struct rm_receive_cfg *cfg,
                   struct rm_receive_result *res, struct rm_error *err)
{
    struct receive *r;
    struct rm_restore_ctx rctx;
    int rc;

    memset(res, 0, sizeof(*res));
    if (cfg->hb_interval_ms < 1 || (cfg->hb_timeout_ms &&
                                    cfg->hb_timeout_ms <= cfg->hb_interval_ms))
        return rm_error_set(err, -EINVAL, "heartbeat %u ms / timeout %u ms: "
                            "the timeout must exceed the heartbeat",
                            cfg->hb_interval_ms, cfg->hb_timeout_ms);
    r = calloc(1, sizeof(*r));
    if (!r)
        return rm_error_set(err, -ENOMEM, "out of memory");
    r->cfg = cfg;
    r->res = res;
    r->err = err;
    rm_primary_conn_init(&r->pc);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->status_lock, NULL);
    snprintf(r->status.name, sizeof(r->status.name), "%s",
             cfg->name && *cfg->name ? cfg->name : "replica");
    snprintf(r->status.role, sizeof(r->status.role), "secondary");
    snprintf(r->status.backend, sizeof(r->status.backend), "%s",
             cfg->backend_name);
    r->status.pid = (int)getpid();
    r->status.quorum = cfg->quorum;
    r->status.observers = cfg->observers;

    if (cfg->listen_fd >= 0) {
        r->pc.lfd = cfg->listen_fd;
    } else {
        r->pc.lfd = rm_tcp_listen(&cfg->listen, err);
        if (r->pc.lfd < 0) {
            rc = r->pc.lfd;
            goto out;
        }
    }
    r->status.ready = r->status.looping = true;     /* listening */
    rm_status_publish(&r->status, "waiting", &r->status_written_ns, true);
    rc = accept_peer(r);
    if (rc)
        goto out;
    if (cfg->colo) {
        r->colo = rm_colo_replica_new(&cfg->colo_ops, &r->pc.chan, err);
        if (!r->colo) {
            rc = err->code ? err->code : -ENOMEM;
            goto out;
        }
        if (cfg->test_colo_drop_dirty)
            rm_colo_replica_test_drop_dirty(r->colo);
        if (cfg->test_colo_no_ask)
            rm_colo_replica_test_no_ask(r->colo);
    }
    /* Paired: stop listening (later connections are refused at once
     * instead of waiting in the backlog). */
    if (r->pc.lfd != cfg->listen_fd) {
        close(r->pc.lfd);
        r->pc.lfd = -1;
    } else if (shutdown(r->pc.lfd, SHUT_RDWR)) {
        /* The caller's socket (it closes it): a shut down listening socket
         * listens no more on Linux. */
        LOG_WARN("cannot stop listening: %s", strerror(errno));
    }
    snprintf(r->status.peer, sizeof(r->status.peer), "primary '%s'",
             r->pc.peer.name);
    snprintf(res->peer_addr, sizeof(res->peer_addr), "%s", r->pc.ctl_addr);
    r->status.interval_ms = r->pc.peer.interval_ms;
    rm_status_publish(&r->status, "syncing", &r->status_written_ns, true);
    /* Acks and heartbeats to a primary that stopped reading fail after
     * the heartbeat timeout instead of blocking the engine for good. */
    rc = rm_fd_set_send_timeout(r->pc.ctl_fd, r->hb_timeout_ms);
    if (rc) {
        rm_error_set(err, rc, "setting the send deadline: %s", strerror(-rc));
        goto out;
    }

    r->last_heard_ns = rm_now_ns();
    rc = pthread_create(&r->ctl_thread, NULL, ctl_main, r);
    if (rc) {
        rc = rm_error_set(err, -rc, "cannot start the control thread");
        goto out;
    }
    r->ctl_running = true;

    memset(&rctx, 0, sizeof(rctx));
    rctx.ops = cfg->ops;
    rctx.backend_arg = cfg->backend_arg;
    rctx.err = err;
    rctx.params.checkpointed_hint = true;
    rctx.params.allow_compressed = r->compress;
    /* A stalled stream counts as a dead primary too. */
    rctx.params.read_timeout_ms = r->hb_timeout_ms;
    rctx.params.max_buffer_bytes = cfg->buffer_bytes;
    rctx.cb.opaque = r;
    rctx.cb.checkpoint_committed = on_committed;
    rctx.cb.end_expected = end_was_asked;
    /* The replica's images, when the primary replicates a disk at all
     * (with -F -d alone they stay as they are: the hello said so). */
    rctx.disks = replicates_disks(&r->pc.peer) ? cfg->disks : NULL;
    rctx.params.test_disk_on_arrival = cfg->test_disk_on_arrival;
    /* COLO: the replica's memory is checked after the checkpoints it ran
     * before (colo_verify). */
    rctx.params.track_mem_hash = r->colo;
    r->rctx = &rctx;
    /* ... unless the primary's heartbeats say it is alive. */
    r->pc.stream_lower.keep_waiting = stream_keep_waiting;
    r->pc.stream_lower.keep_waiting_arg = r;
    r->pc.stream_src.keep_waiting = stream_keep_waiting;
    r->pc.stream_src.keep_waiting_arg = r;

    rc = rm_restore(&rctx, &r->pc.stream_src);
    if (rc) {
        bool asked;

        pthread_mutex_lock(&r->lock);
        asked = r->stop_asked;
        pthread_mutex_unlock(&r->lock);
        /* Stopped before the first checkpoint was whole: no replica. */
        if (asked)
            rc = rm_error_force(err, -ECANCELED, "stopped on request "
                                "before the first checkpoint: no replica "
                                "to discard");
    }
    if (r->pc.have_auth_src && r->pc.auth_src.failed) {
        /* Name the real cause, not the engine's "read error". */
        LOG_WARN("%s (stream connection from %s)",
                 rm_error_str(&r->pc.auth_src.err), r->pc.stream_addr);
        if (rc)
            rm_error_force(err, rc, "no consistent state (no checkpoint "
                           "was completed): %s",
                           rm_error_str(&r->pc.auth_src.err));
        else
            rctx.failover_reason = r->pc.auth_src.err;
    }

    if (r->colo) {
        /* The replica stops running (a takeover resumes it on its own
         * network; otherwise it is discarded) before what it reads goes. */
        const unsigned long *dirty;
        uint64_t nr;
        struct rm_error why = { 0 };

        cfg->colo_ops.pause(cfg->colo_ops.opaque, &dirty, &nr, &why);
    }
    if (rc == 0 && rctx.result == RM_RESTORE_FAILOVER && r->colo_broken) {
        char why[RM_ERROR_MSG_MAX];

        snprintf(why, sizeof(why), "COLO cannot go on: %s",
                 rm_error_str(&r->colo_why));
        if (rm_chan_send_stop(&r->pc.chan, why))
            LOG_WARN("cannot tell the primary that protection ends");
        rc = rm_error_set(err, -EPROTO, "%s: NOT taking over, the primary "
                          "runs the VM; the replica is discarded and "
                          "protection has ended", why);
    } else if (rc == 0 && rctx.result == RM_RESTORE_FAILOVER &&
        primary_outlives_stream(r)) {
        /* Only the stream failed: the primary and its VM live on.  The
         * replica must not run too (two live VMs); protection ends. */
        char why[RM_ERROR_MSG_MAX];

        snprintf(why, sizeof(why), "the checkpoint stream failed (%s) "
                 "while the primary stayed alive",
                 rm_error_str(&rctx.failover_reason));
        if (rm_chan_send_stop(&r->pc.chan, why))
            LOG_WARN("cannot tell the primary that protection ends");
        rc = rm_error_set(err, -ECONNABORTED, "%s (its control channel "
                          "went on): NOT taking over, the primary runs the "
                          "VM; the replica of checkpoint %" PRIu64 " is "
                          "discarded and protection has ended", why,
                          rctx.committed_epoch);
    }

    pthread_mutex_lock(&r->lock);
    r->done = true;
    res->committed_epoch = rctx.committed_epoch;
    if (rc == 0 && rctx.result == RM_RESTORE_FAILOVER && !r->stop_received) {
        res->end = RM_RECEIVE_FAILOVER;
        if (r->lost) {
            res->handover = r->handover;
            res->why = r->lost_why;
            res->lost_at_ns = r->lost_at_ns;
        } else {
            /* The stream itself broke or proved bad first. */
            res->why = rctx.failover_reason;
            res->lost_at_ns = rm_now_ns();
        }
    } else if (rc == 0) {
        res->end = RM_RECEIVE_STOPPED;
        res->stop_asked = r->stop_asked;
        if (rctx.result == RM_RESTORE_FAILOVER && !r->stop_asked)
            LOG_WARN("stream ended after the primary's stop: %s",
                     rm_error_str(&rctx.failover_reason));
    }
    pthread_mutex_unlock(&r->lock);

out:
    if (r->ctl_running) {
        if (r->pc.ctl_fd >= 0)
            shutdown(r->pc.ctl_fd, SHUT_RDWR);
        pthread_join(r->ctl_thread, NULL);
    }
    r->status.looping = false;
    if (rc == 0 && res->end == RM_RECEIVE_FAILOVER) {
        r->status.failover_unix_ms = rm_unix_ms();
        snprintf(r->status.detail, sizeof(r->status.detail), "failover at "
                 "epoch %" PRIu64 ": %s", res->committed_epoch,
                 rm_error_str(&res->why));
        rm_status_publish(&r->status, "failing-over", &r->status_written_ns, true);
    } else if (rc == 0) {
        rm_status_publish(&r->status, "stopped", &r->status_written_ns, true);
    } else {
        snprintf(r->status.detail, sizeof(r->status.detail), "%s",
                 rm_error_str(err));
        rm_status_publish(&r->status, "failed", &r->status_written_ns, true);
    }
    if (r->colo) {
        struct rm_colo_replica_stats cs;

        rm_colo_replica_get_stats(r->colo, &cs);
        /* Its state the last commit's: a takeover resumes from it */
        res->colo_at_checkpoint = cs.at_checkpoint;
        LOG_INFO("COLO: the replica ran from %" PRIu64 " checkpoints, was "
                 "asked to pause for %" PRIu64 ", sent %" PRIu64 " dirty "
                 "pages and %" PRIu64 " frames back (%" PRIu64 " failed), "
                 "asked for %" PRIu64 " checkpoints (its disk overlay half "
                 "full); %" PRIu64 " checkpoints committed in buffered mode; "
                 "%" PRIu64 " not run from (the next one asked first); "
                 "its pause per checkpoint mean %.3f ms, max %.3f ms",
                 cs.runs, cs.checkpoints_asked, cs.dirty_pages_sent,
                 cs.output_frames, cs.output_errors, cs.asks,
                 cs.buffered_commits, cs.runs_skipped,
                 cs.pauses ? (double)cs.pause_ns_total / (double)cs.pauses /
                             1e6 : 0.0,
                 (double)cs.pause_ns_max / 1e6);
    }
    rm_colo_replica_free(r->colo);   /* the replica is paused (above) */
    rm_primary_conn_close(&r->pc, cfg->listen_fd);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->status_lock);
    free(r);
    return rc;
}
