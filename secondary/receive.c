/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "secondary"
#include "secondary/receive.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/status.h"
#include "proto/channel.h"

struct receive {
    const struct rm_receive_cfg *cfg;
    struct rm_receive_result *res;
    struct rm_error *err;

    int lfd, ctl_fd, stream_fd;
    struct rm_chan chan;
    bool have_chan;
    struct rm_hello peer;
    bool compress;

    pthread_t ctl_thread;
    bool ctl_running;
    pthread_mutex_t lock;
    /* under lock: */
    bool stop_received;           /* clean STOP from the primary */
    bool lost;                    /* primary declared lost */
    bool done;                    /* restore finished: ctl thread exits */
    struct rm_error lost_why;
    uint64_t lost_at_ns;
    uint64_t last_heard_ns;
    uint64_t committed;

    struct rm_status status;
    uint64_t status_written_ns;
    uint64_t last_progress_ns;
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
    if (r->stream_fd >= 0)
        shutdown(r->stream_fd, SHUT_RDWR);
}

static void *ctl_main(void *arg)
{
    struct receive *r = arg;
    const struct rm_receive_cfg *cfg = r->cfg;
    uint64_t next_hb = 0, seq = 0;

    for (;;) {
        struct rm_ctl_msg msg;
        uint64_t now = rm_now_ns();
        int rc;

        pthread_mutex_lock(&r->lock);
        if (r->done || r->lost || r->stop_received) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        if (now - r->last_heard_ns > (uint64_t)cfg->hb_timeout_ms * 1000000) {
            char why[128];

            snprintf(why, sizeof(why), "no message from the primary for %u "
                     "ms (heartbeat timeout)", cfg->hb_timeout_ms);
            lose_primary_locked(r, -ETIMEDOUT, why);
            pthread_mutex_unlock(&r->lock);
            break;
        }
        pthread_mutex_unlock(&r->lock);

        if (now >= next_hb) {
            rc = rm_chan_send_heartbeat(&r->chan, ++seq, r->committed);
            if (rc) {
                pthread_mutex_lock(&r->lock);
                lose_primary_locked(r, rc, "sending a heartbeat failed: "
                                    "the control connection is broken");
                pthread_mutex_unlock(&r->lock);
                break;
            }
            next_hb = now + (uint64_t)cfg->hb_interval_ms * 1000000;
        }
        rc = rm_chan_recv(&r->chan, (int)cfg->hb_interval_ms, &msg);
        if (rc == -ETIMEDOUT)
            continue;
        pthread_mutex_lock(&r->lock);
        if (rc) {
            char why[RM_ERROR_MSG_MAX];

            snprintf(why, sizeof(why), "control connection: %s",
                     rm_error_str(&r->chan.err));
            lose_primary_locked(r, rc, why);
            pthread_mutex_unlock(&r->lock);
            break;
        }
        r->last_heard_ns = rm_now_ns();
        if (msg.kind == RM_CTL_STOP) {
            LOG_INFO("the primary stopped protection");
            r->stop_received = true;
        } else if (msg.kind == RM_CTL_FAILOVER) {
            lose_primary_locked(r, -ECONNABORTED, "failover requested by "
                                "the primary");
        }
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

static int on_committed(void *opaque, uint64_t epoch, uint64_t digest,
                        uint64_t pages)
{
    struct receive *r = opaque;
    uint64_t now = rm_now_ns();
    int rc;

    pthread_mutex_lock(&r->lock);
    r->committed = epoch;
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
    rc = rm_chan_send_ack(&r->chan, epoch, digest, pages);
    r->status.epoch = epoch;
    r->status.acked_epoch = epoch;
    r->status.last_dirty_pages = pages;
    rm_status_publish(&r->status, "replica", &r->status_written_ns, false);
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
    uint8_t token[sizeof(mine.session)];
    int timeout = cfg->accept_timeout_ms ? (int)cfg->accept_timeout_ms : -1;
    int rc;

    r->ctl_fd = rm_tcp_accept(r->lfd, timeout, r->err);
    if (r->ctl_fd < 0)
        return r->ctl_fd;
    rm_chan_init(&r->chan, r->ctl_fd);
    r->have_chan = true;

    memset(&mine, 0, sizeof(mine));
    mine.role = RM_ROLE_SECONDARY;
    snprintf(mine.backend, sizeof(mine.backend), "%s", cfg->backend_name);
    mine.caps = cfg->allow_compression ? RM_CAP_COMPRESSION : 0;
    mine.guest_bytes = cfg->max_guest_bytes;
    mine.hb_interval_ms = cfg->hb_interval_ms;
    mine.hb_timeout_ms = cfg->hb_timeout_ms;
    if (getrandom(mine.session, sizeof(mine.session), 0) !=
        (ssize_t)sizeof(mine.session))
        return rm_error_set(r->err, -EIO, "no randomness for the session");
    rc = rm_chan_handshake_server(&r->chan, &mine, &r->peer, 10000);
    if (rc)
        return rm_error_set(r->err, rc, "refused the primary: %s",
                            rm_error_str(&r->chan.err));
    r->compress = (mine.caps & r->peer.caps & RM_CAP_COMPRESSION) != 0;
    snprintf(r->res->name, sizeof(r->res->name), "%s",
             cfg->name && *cfg->name ? cfg->name : r->peer.name);
    snprintf(r->status.name, sizeof(r->status.name), "%s", r->res->name);

    /* The stream connection must present the session token. */
    r->stream_fd = rm_tcp_accept(r->lfd, 10000, r->err);
    if (r->stream_fd < 0)
        return r->stream_fd;
    {
        struct rm_src s;

        rm_src_init_fd(&s, r->stream_fd);
        s.timeout_ms = 10000;
        rc = rm_src_read_exact(&s, token, sizeof(token));
    }
    if (rc || memcmp(token, mine.session, sizeof(token)))
        return rm_error_set(r->err, -EACCES, "the stream connection did "
                            "not present this session's token");
    LOG_INFO("replicating '%s' (%" PRIu64 " MiB, %u vcpus) from the "
             "primary: interval %u ms, compression %s", r->res->name,
             r->peer.guest_bytes >> 20, r->peer.nr_vcpus,
             r->peer.interval_ms, r->compress ? "on" : "off");
    return 0;
}

int rm_receive_run(const struct rm_receive_cfg *cfg,
                   struct rm_receive_result *res, struct rm_error *err)
{
    struct receive *r;
    struct rm_restore_ctx rctx;
    struct rm_src src;
    int rc;

    memset(res, 0, sizeof(*res));
    if (cfg->hb_interval_ms < 1 || cfg->hb_timeout_ms <= cfg->hb_interval_ms)
        return rm_error_set(err, -EINVAL, "heartbeat %u ms / timeout %u ms: "
                            "the timeout must exceed the heartbeat",
                            cfg->hb_interval_ms, cfg->hb_timeout_ms);
    r = calloc(1, sizeof(*r));
    if (!r)
        return rm_error_set(err, -ENOMEM, "out of memory");
    r->cfg = cfg;
    r->res = res;
    r->err = err;
    r->lfd = r->ctl_fd = r->stream_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->status.name, sizeof(r->status.name), "%s",
             cfg->name && *cfg->name ? cfg->name : "replica");
    snprintf(r->status.role, sizeof(r->status.role), "secondary");
    snprintf(r->status.backend, sizeof(r->status.backend), "%s",
             cfg->backend_name);
    r->status.pid = (int)getpid();

    if (cfg->listen_fd >= 0) {
        r->lfd = cfg->listen_fd;
    } else {
        r->lfd = rm_tcp_listen(&cfg->listen, err);
        if (r->lfd < 0) {
            rc = r->lfd;
            goto out;
        }
    }
    rc = accept_peer(r);
    if (rc)
        goto out;
    snprintf(r->status.peer, sizeof(r->status.peer), "primary '%s'",
             r->peer.name);
    r->status.interval_ms = r->peer.interval_ms;
    rm_status_publish(&r->status, "syncing", &r->status_written_ns, true);

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
    rctx.params.read_timeout_ms = cfg->hb_timeout_ms;
    rctx.cb.opaque = r;
    rctx.cb.checkpoint_committed = on_committed;
    rm_src_init_fd(&src, r->stream_fd);

    rc = rm_restore(&rctx, &src);

    pthread_mutex_lock(&r->lock);
    r->done = true;
    res->committed_epoch = rctx.committed_epoch;
    if (rc == 0 && rctx.result == RM_RESTORE_FAILOVER && !r->stop_received) {
        res->end = RM_RECEIVE_FAILOVER;
        if (r->lost) {
            res->why = r->lost_why;
            res->lost_at_ns = r->lost_at_ns;
        } else {
            /* The stream itself broke or proved bad first. */
            res->why = rctx.failover_reason;
            res->lost_at_ns = rm_now_ns();
        }
    } else if (rc == 0) {
        res->end = RM_RECEIVE_STOPPED;
        if (rctx.result == RM_RESTORE_FAILOVER)
            LOG_WARN("stream ended after the primary's stop: %s",
                     rm_error_str(&rctx.failover_reason));
    }
    pthread_mutex_unlock(&r->lock);

out:
    if (r->ctl_running) {
        if (r->ctl_fd >= 0)
            shutdown(r->ctl_fd, SHUT_RDWR);
        pthread_join(r->ctl_thread, NULL);
    }
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
    if (r->stream_fd >= 0)
        close(r->stream_fd);
    if (r->ctl_fd >= 0)
        close(r->ctl_fd);
    if (r->lfd >= 0 && r->lfd != cfg->listen_fd)
        close(r->lfd);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return rc;
}
