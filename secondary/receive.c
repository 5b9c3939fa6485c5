/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "secondary"
#include "secondary/receive.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
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
    char ctl_addr[64], stream_addr[64];  /* the peers, for logs */
    /* The restore engine reads stream_src; with a key its layer opens the
     * sealed chunks that arrive on stream_lower (the stream socket). */
    struct rm_src stream_lower, stream_src;
    struct rm_auth_src auth_src;
    bool have_auth_src;
    struct rm_hello peer;
    bool compress;

    pthread_t ctl_thread;
    bool ctl_running;
    pthread_mutex_t lock;
    /* under lock: */
    bool stop_received;           /* clean STOP from the primary */
    bool lost;                      /* primary declared lost */
    bool handover;                  /* the primary asked for the failover */
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

static void refuse_busy(struct receive *r);

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
        refuse_busy(r);
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
            if (!r->lost && !r->stop_received && !r->done)
                r->handover = true;
            lose_primary_locked(r, -ECONNABORTED, "failover requested by "
                                "the primary (a handover)");
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

/* "ADDR:PORT" of a connected socket's peer, for logs. */
static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    snprintf(buf, len, "an unknown address");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl))
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)))
            snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)))
            snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
    }
}

/* Paired: another primary that connects is told why it is refused (a
 * HelloReply it can show) instead of being left unanswered. */
static void refuse_busy(struct receive *r)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_HELLO_REPLY };
    struct rm_error e = { 0 };
    struct rm_chan ch;
    char addr[64], junk[512];
    int fd = rm_tcp_accept(r->lfd, 0, &e), i;
    struct pollfd p = { fd, POLLIN, 0 };

    if (fd < 0)
        return;
    peer_name(fd, addr, sizeof(addr));
    m.u.hello_reply.hello.protocol_version = RM_CTL_PROTOCOL_VERSION;
    m.u.hello_reply.hello.role = RM_ROLE_SECONDARY;
    snprintf(m.u.hello_reply.hello.backend,
             sizeof(m.u.hello_reply.hello.backend), "%s", r->cfg->backend_name);
    snprintf(m.u.hello_reply.reason, sizeof(m.u.hello_reply.reason), "busy: "
             "already paired with the primary at %s", r->ctl_addr);
    LOG_WARN("refused the connection from %s: busy (paired with %s)", addr,
             r->ctl_addr);
    rm_chan_init(&ch, fd);
    rm_chan_send(&ch, &m);
    rm_chan_destroy(&ch);
    shutdown(fd, SHUT_WR);        /* read its hello: close without a RST */
    for (i = 0; i < 4 && poll(&p, 1, 50) > 0 &&
         recv(fd, junk, sizeof(junk), 0) > 0; i++)
        ;
    close(fd);
}

/* Milliseconds left until @deadline_ns (monotonic), at least 0. */
static int ms_left(uint64_t deadline_ns)
{
    uint64_t now = rm_now_ns();

    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) /
                                          1000000);
}

static void close_ctl(struct receive *r)
{
    if (r->have_chan)
        rm_chan_destroy(&r->chan);
    r->have_chan = false;
    if (r->ctl_fd >= 0)
        close(r->ctl_fd);
    r->ctl_fd = -1;
}

/*
 * Accept the primary's control connection and run the handshake.  With a
 * key, a peer that fails it is logged and the next connection awaited
 * (within accept_timeout_ms): nobody without the key can end a keyed
 * secondary.  @mine gets the agreed hello (with the session token).
 */
static int accept_control(struct receive *r, struct rm_hello *mine)
{
    const struct rm_receive_cfg *cfg = r->cfg;
    uint64_t deadline = cfg->accept_timeout_ms ?
        rm_now_ns() + (uint64_t)cfg->accept_timeout_ms * 1000000 : 0;
    unsigned refused = 0;
    const char *why;
    int rc;

    for (;;) {
        struct rm_error e = { 0 };
        int timeout = deadline ? ms_left(deadline) : -1;

        if (deadline && timeout == 0 && !refused)
            return rm_error_set(r->err, -ETIMEDOUT, "no primary connected "
                                "within %u ms", cfg->accept_timeout_ms);
        if (deadline && timeout == 0)
            return rm_error_set(r->err, -ETIMEDOUT, "no authenticated "
                                "primary within %u ms (%u connection%s "
                                "refused)", cfg->accept_timeout_ms, refused,
                                refused == 1 ? "" : "s");
        if (cfg->stop_requested && *cfg->stop_requested)
            return rm_error_set(r->err, -ECANCELED, "stopped while waiting "
                                "for the primary");
        /* Wake up now and then to notice a stop request. */
        if (timeout < 0 || timeout > 200)
            timeout = 200;
        r->ctl_fd = rm_tcp_accept(r->lfd, timeout, &e);
        if (r->ctl_fd == -ETIMEDOUT)
            continue;
        if (r->ctl_fd < 0) {
            rc = r->ctl_fd;
            r->ctl_fd = -1;
            if (rc == -ETIMEDOUT && refused)
                return rm_error_set(r->err, rc, "no authenticated primary "
                                    "within %u ms (%u connection%s "
                                    "refused)", cfg->accept_timeout_ms,
                                    refused, refused == 1 ? "" : "s");
            *r->err = e;
            return rc;
        }
        peer_name(r->ctl_fd, r->ctl_addr, sizeof(r->ctl_addr));
        rm_chan_init(&r->chan, r->ctl_fd);
        r->have_chan = true;
        rc = rm_chan_set_key(&r->chan, cfg->key);
        if (rc)
            return rm_error_set(r->err, rc, "%s", rm_error_str(&r->chan.err));

        memset(mine, 0, sizeof(*mine));
        mine->role = RM_ROLE_SECONDARY;
        snprintf(mine->backend, sizeof(mine->backend), "%s",
                 cfg->backend_name);
        mine->caps = cfg->allow_compression ? RM_CAP_COMPRESSION : 0;
        mine->guest_bytes = cfg->max_guest_bytes;
        mine->hb_interval_ms = cfg->hb_interval_ms;
        mine->hb_timeout_ms = cfg->hb_timeout_ms;
        if (getrandom(mine->session, sizeof(mine->session), 0) !=
            (ssize_t)sizeof(mine->session))
            return rm_error_set(r->err, -EIO, "no randomness for the "
                                "session");
        rc = rm_chan_handshake_server(&r->chan, mine, &r->peer, 10000);
        if (!rc)
            return 0;
        why = rm_error_str(&r->chan.err);
        if (!strncmp(why, "refused the primary: ", 21))
            why += 21;
        LOG_WARN("refused the connection from %s: %s", r->ctl_addr, why);
        if (!cfg->key)
            return rm_error_set(r->err, rc, "refused the primary at %s: %s",
                                r->ctl_addr, why);
        refused++;
        close_ctl(r);
        LOG_INFO("waiting for an authenticated primary (%u connection%s "
                 "refused)", refused, refused == 1 ? "" : "s");
    }
}

/*
 * Check one candidate stream connection: the session token in clear, then
 * (with a key) the same token as the first sealed chunk.  0, or a reason
 * in @why.
 */
static int check_stream(struct receive *r, int fd, const uint8_t *token,
                        size_t token_len, int timeout_ms, char *why,
                        size_t why_len)
{
    uint8_t got[RM_CTL_TOKEN_LEN];
    int rc;

    if (token_len != sizeof(got)) {
        snprintf(why, why_len, "internal: token of %zu bytes", token_len);
        return -EINVAL;
    }
    rm_src_init_fd(&r->stream_lower, fd);
    r->stream_lower.timeout_ms = timeout_ms;
    rc = rm_src_read_exact(&r->stream_lower, got, sizeof(got));
    if (rc) {
        snprintf(why, why_len, "it presented no session token (%s)",
                 rc == -ETIMEDOUT ? "nothing within the time allowed"
                                  : "it closed the connection");
        return -EACCES;
    }
    if (sodium_memcmp(got, token, sizeof(got))) {
        snprintf(why, why_len, "it did not present this session's token "
                 "(unauthenticated peer)");
        return -EACCES;
    }
    if (!r->cfg->key) {
        rm_src_init_fd(&r->stream_src, fd);
        return 0;
    }
    rc = rm_auth_src_attach(&r->auth_src, &r->stream_src, &r->stream_lower,
                            &r->chan.stream_rx);
    if (rc) {
        snprintf(why, why_len, "out of memory");
        return rc;
    }
    r->have_auth_src = true;
    rc = rm_src_read_exact(&r->stream_src, got, sizeof(got));
    if (rc || sodium_memcmp(got, token, sizeof(got))) {
        if (r->auth_src.failed)
            snprintf(why, why_len, "%s (not sealed with this session's "
                     "stream key)", rm_error_str(&r->auth_src.err));
        else if (rc)
            snprintf(why, why_len, "it presented the token in clear but "
                     "not its sealed confirmation (%s)", strerror(-rc));
        else
            snprintf(why, why_len, "its sealed session token does not "
                     "match");
        rm_auth_src_free(&r->auth_src);
        r->have_auth_src = false;
        return -EACCES;
    }
    /* Stream byte offsets count from the checkpoint stream's start. */
    r->stream_src.offset = 0;
    return 0;
}

/*
 * Accept the stream connection.  A connection that does not present this
 * session's token (and, with a key, its sealed confirmation) is logged and
 * closed, and the next one awaited: within 10 s in all.
 */
static int accept_stream(struct receive *r, const uint8_t *token,
                         size_t token_len)
{
    uint64_t deadline = rm_now_ns() + 10000ull * 1000000;
    char why[RM_ERROR_MSG_MAX + 64] = "";
    unsigned refused = 0;
    int rc;

    for (;;) {
        struct rm_error e = { 0 };
        int left = ms_left(deadline), fd;

        if (left == 0)
            return rm_error_set(r->err, -EACCES, "no stream connection "
                                "presented this session's token within 10 "
                                "s (%u refused; the last: %s)", refused,
                                why);
        fd = rm_tcp_accept(r->lfd, left, &e);
        if (fd < 0) {
            if (refused && fd == -ETIMEDOUT)
                continue;          /* the deadline reports the refusals */
            *r->err = e;
            rm_error_prefix(r->err, "waiting for the stream connection: ");
            return fd;
        }
        peer_name(fd, r->stream_addr, sizeof(r->stream_addr));
        rc = check_stream(r, fd, token, token_len, left < 3000 ? left : 3000,
                          why, sizeof(why));
        if (!rc) {
            r->stream_fd = fd;
            return 0;
        }
        close(fd);
        if (rc != -EACCES)
            return rm_error_set(r->err, rc, "%s", why);
        refused++;
        LOG_WARN("refused a stream connection from %s: %s", r->stream_addr,
                 why);
    }
}

static int accept_peer(struct receive *r)
{
    const struct rm_receive_cfg *cfg = r->cfg;
    struct rm_hello mine;
    int rc;

    rc = accept_control(r, &mine);
    if (rc)
        return rc;
    r->compress = (mine.caps & r->peer.caps & RM_CAP_COMPRESSION) != 0;
    snprintf(r->res->name, sizeof(r->res->name), "%s",
             cfg->name && *cfg->name ? cfg->name : r->peer.name);
    snprintf(r->status.name, sizeof(r->status.name), "%s", r->res->name);

    rc = accept_stream(r, mine.session, sizeof(mine.session));
    /* Each stream layer got its own copy of the receiving state. */
    rm_auth_wipe(&r->chan.stream_rx, sizeof(r->chan.stream_rx));
    if (rc)
        return rc;
    LOG_INFO("replicating '%s' (%" PRIu64 " MiB, %u vcpus) from the "
             "primary at %s: interval %u ms, compression %s%s",
             r->res->name, r->peer.guest_bytes >> 20, r->peer.nr_vcpus,
             r->ctl_addr, r->peer.interval_ms, r->compress ? "on" : "off",
             cfg->key ? ", authenticated and encrypted (pre-shared key)"
                      : "");
    return 0;
}

int rm_receive_run(const struct rm_receive_cfg *cfg,
                   struct rm_receive_result *res, struct rm_error *err)
{
    struct receive *r;
    struct rm_restore_ctx rctx;
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
    rm_status_publish(&r->status, "waiting", &r->status_written_ns, true);
    rc = accept_peer(r);
    if (rc)
        goto out;
    snprintf(r->status.peer, sizeof(r->status.peer), "primary '%s'",
             r->peer.name);
    snprintf(res->peer_addr, sizeof(res->peer_addr), "%s", r->ctl_addr);
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

    rc = rm_restore(&rctx, &r->stream_src);
    if (r->have_auth_src && r->auth_src.failed) {
        /* Name the real cause, not the engine's "read error". */
        LOG_WARN("%s (stream connection from %s)",
                 rm_error_str(&r->auth_src.err), r->stream_addr);
        if (rc)
            rm_error_force(err, rc, "no consistent state (no checkpoint "
                           "was completed): %s",
                           rm_error_str(&r->auth_src.err));
        else
            rctx.failover_reason = r->auth_src.err;
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
    if (r->have_auth_src)
        rm_auth_src_free(&r->auth_src);
    if (r->stream_fd >= 0)
        close(r->stream_fd);
    close_ctl(r);
    if (r->lfd >= 0 && r->lfd != cfg->listen_fd)
        close(r->lfd);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return rc;
}
