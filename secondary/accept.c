/* SPDX-License-Identifier: MIT */
/* The primary's connections as the secondary accepts them
 * (secondary/accept.h). */
#define RM_LOG_PREFIX "secondary"
#include "secondary/accept.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cluster/quorum.h"
#include "common/io.h"
#include "common/log.h"
#include "common/net.h"

void rm_primary_conn_init(struct rm_primary_conn *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->lfd = pc->ctl_fd = pc->stream_fd = -1;
}

/* Milliseconds left until @deadline_ns (monotonic), at least 0. */
static int ms_left(uint64_t deadline_ns)
{
    uint64_t now = rm_now_ns();

    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) /
                                          1000000);
}

/*
 * Before it authenticates, a connection has this long in all to send its
 * first message (the hello, or the stream's session token); up to
 * RM_PREAUTH_MAX such connections are served at once (common/net.h).
 */
#define PREAUTH_MS 5000u

/* A control connection in its handshake (common/net.h rm_preauth). */
struct candidate {
    struct rm_chan chan;
    struct rm_hello mine, peer;
};

static void candidate_free(void *opaque)
{
    struct candidate *cd = opaque;

    rm_chan_destroy(&cd->chan);
    free(cd);
}

/*
 * A new control connection whose hello has arrived: its handshake's first
 * step.  0, 1 (keyed: its key proof comes next), or -errno: the peer's
 * refusal in (*out)->chan.err, or, with *ours set, our own failure in
 * @err.
 */
static int candidate_hello(const struct rm_receive_cfg *cfg,
                           struct rm_preauth_conn *c, struct candidate **out,
                           bool *ours, struct rm_error *err)
{
    struct candidate *cd = calloc(1, sizeof(*cd));
    struct rm_hello *mine;
    int rc;

    *out = cd;
    *ours = true;
    if (!cd)
        return rm_error_set(err, -ENOMEM, "out of memory");
    rm_chan_init(&cd->chan, c->fd);
    rc = rm_chan_set_key(&cd->chan, cfg->key);
    if (rc)
        return rm_error_set(err, rc, "%s", rm_error_str(&cd->chan.err));
    mine = &cd->mine;
    mine->role = RM_ROLE_SECONDARY;
    snprintf(mine->backend, sizeof(mine->backend), "%s", cfg->backend_name);
    mine->caps = cfg->allow_compression ? RM_CAP_COMPRESSION : 0;
    if (cfg->colo) {
        mine->caps |= RM_CAP_COLO;
        mine->required_caps |= RM_CAP_COLO;
    }
    mine->guest_bytes = cfg->max_guest_bytes;
    mine->hb_interval_ms = cfg->hb_interval_ms;
    mine->hb_timeout_ms = cfg->hb_timeout_ms;
    mine->quorum = cfg->quorum;
    if (cfg->cluster) {
        mine->has_cpg = true;
        rm_quorum_self(cfg->cluster, &mine->cpg_node, &mine->cpg_pid);
    }
    mine->buffer_bytes = cfg->buffer_bytes ? cfg->buffer_bytes
                                           : RM_RESTORE_BUFFER_DEFAULT;
    for (mine->nr_disks = 0; mine->nr_disks < cfg->nr_disks;
         mine->nr_disks++) {
        struct rm_hello_disk *d = &mine->disks[mine->nr_disks];

        d->id = cfg->disk_ids[mine->nr_disks];
        rc = rm_disk_replica_size(cfg->disks, d->id, &d->size, err);
        if (rc)
            return rc;
    }
    if (getrandom(mine->session, sizeof(mine->session), 0) !=
        (ssize_t)sizeof(mine->session))
        return rm_error_set(err, -EIO, "no randomness for the session");
    *ours = false;
    return rm_chan_server_hello(&cd->chan, mine, &cd->peer,
                                ms_left(c->deadline_ns) + 1);
}

/*
 * Serve the control connections until one completes its handshake (0:
 * pc->chan, pc->ctl_fd, pc->peer and @mine are its) or the wait ends.  A
 * handshake goes on one step at a time, each only once its message has
 * arrived whole: a keyed peer that sends a hello and then nothing holds up
 * nobody either.
 */
static int serve_control(struct rm_primary_conn *pc,
                         const struct rm_receive_cfg *cfg,
                         struct rm_status *status, struct rm_preauth *pa,
                         struct rm_hello *mine, struct rm_error *err)
{
    uint64_t deadline = cfg->accept_timeout_ms ?
        rm_now_ns() + (uint64_t)cfg->accept_timeout_ms * 1000000 : 0;
    unsigned refused = 0;
    const char *why;
    int rc;

    for (;;) {
        struct rm_error e = { 0 };
        struct rm_preauth_conn c;
        struct candidate *cd;
        int timeout = deadline ? ms_left(deadline) : -1;

        if (deadline && timeout == 0 && !refused)
            return rm_error_set(err, -ETIMEDOUT, "no primary connected "
                                "within %u ms", cfg->accept_timeout_ms);
        if (deadline && timeout == 0)
            return rm_error_set(err, -ETIMEDOUT, "no %sprimary paired "
                                "within %u ms (%u connection%s refused)",
                                cfg->key ? "authenticated " : "",
                                cfg->accept_timeout_ms, refused,
                                refused == 1 ? "" : "s");
        if (cfg->stop_requested && *cfg->stop_requested)
            return rm_error_set(err, -ECANCELED, "stopped while waiting "
                                "for the primary");
        /* Wake up now and then to notice a stop request. */
        if (timeout < 0 || timeout > 200)
            timeout = 200;
        rm_status_tick(status);        /* the loop is alive */
        rc = rm_preauth_wait(pa, timeout, &c, &e);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc) {
            *err = e;
            return rc;
        }
        if (c.opaque) {
            cd = c.opaque;
            rc = rm_chan_server_proof(&cd->chan, ms_left(c.deadline_ns) + 1);
        } else {
            bool ours;

            rc = candidate_hello(cfg, &c, &cd, &ours, err);
            if (rc == 1) {
                c.opaque = cd;
                c.what = "key proof";
                rm_preauth_add(pa, &c);
                continue;
            }
            if (rc && ours) {
                close(c.fd);
                if (cd)
                    candidate_free(cd);
                return rc;
            }
        }
        if (!rc) {
            rm_chan_move(&pc->chan, &cd->chan);
            pc->have_chan = true;
            pc->ctl_fd = c.fd;
            snprintf(pc->ctl_addr, sizeof(pc->ctl_addr), "%s", c.addr);
            *mine = cd->mine;
            pc->peer = cd->peer;
            if (cfg->cluster)   /* the hello named it (checked) */
                rm_quorum_bind_peer(cfg->cluster, pc->peer.cpg_node,
                                    pc->peer.cpg_pid);
            free(cd);
            return 0;
        }
        why = rm_error_str(&cd->chan.err);
        if (!strncmp(why, "refused the primary: ", 21))
            why += 21;
        LOG_WARN("refused the connection from %s: %s", c.addr, why);
        refused++;
        close(c.fd);
        candidate_free(cd);
        LOG_INFO("waiting for %s primary (%u connection%s refused)",
                 cfg->key ? "an authenticated" : "a compatible", refused,
                 refused == 1 ? "" : "s");
    }
}

/*
 * Accept the primary's control connection and run the handshake.  A peer
 * that fails it (a stranger, an HTTP probe, a wrong key, an incompatible
 * primary) is logged and the next connection awaited, keyed or not
 * (within accept_timeout_ms): nobody can end the secondary by connecting.
 * Connections are served together (serve_control): an idle or slow peer
 * holds up nobody, and has PREAUTH_MS in all for its handshake's messages
 * to arrive.  @mine gets the agreed hello (with the session token).
 */
int rm_accept_control(struct rm_primary_conn *pc,
                      const struct rm_receive_cfg *cfg,
                      struct rm_status *status, struct rm_hello *mine,
                      struct rm_error *err)
{
    struct rm_preauth pa;
    int rc;

    rm_preauth_init(&pa, pc->lfd, PREAUTH_MS, 0, true, RM_CHAN_MAX_FRAME,
                    "hello");
    pa.on_drop = candidate_free;
    rc = serve_control(pc, cfg, status, &pa, mine, err);
    rm_preauth_close(&pa, rc ? "the secondary stopped waiting" :
                              "another primary was accepted");
    return rc;
}

/*
 * Check one candidate stream connection: the session token in clear, then
 * (with a key) the same token as the first sealed chunk.  0, or a reason
 * in @why.
 */
static int check_stream(struct rm_primary_conn *pc,
                        const struct rm_receive_cfg *cfg, int fd,
                        const uint8_t *token, size_t token_len,
                        int timeout_ms, char *why, size_t why_len)
{
    uint8_t got[RM_CTL_TOKEN_LEN];
    int rc;

    if (token_len != sizeof(got)) {
        snprintf(why, why_len, "internal: token of %zu bytes", token_len);
        return -EINVAL;
    }
    rm_src_init_fd(&pc->stream_lower, fd);
    pc->stream_lower.timeout_ms = timeout_ms;
    rc = rm_src_read_exact(&pc->stream_lower, got, sizeof(got));
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
    if (!cfg->key) {
        rm_src_init_fd(&pc->stream_src, fd);
        return 0;
    }
    rc = rm_auth_src_attach(&pc->auth_src, &pc->stream_src, &pc->stream_lower,
                            &pc->chan.stream_rx);
    if (rc) {
        snprintf(why, why_len, "out of memory");
        return rc;
    }
    pc->have_auth_src = true;
    rc = rm_src_read_exact(&pc->stream_src, got, sizeof(got));
    if (rc || sodium_memcmp(got, token, sizeof(got))) {
        if (pc->auth_src.failed)
            snprintf(why, why_len, "%s (not sealed with this session's "
                     "stream key)", rm_error_str(&pc->auth_src.err));
        else if (rc)
            snprintf(why, why_len, "it presented the token in clear but "
                     "not its sealed confirmation (%s)", strerror(-rc));
        else
            snprintf(why, why_len, "its sealed session token does not "
                     "match");
        rm_auth_src_free(&pc->auth_src);
        pc->have_auth_src = false;
        return -EACCES;
    }
    /* Stream byte offsets count from the checkpoint stream's start. */
    pc->stream_src.offset = 0;
    return 0;
}

/*
 * Serve the stream connections until one presents this session's token
 * (and, with a key, its sealed confirmation): 0 with pc->stream_fd.  The
 * others are logged and closed: within 10 s in all.
 */
static int serve_stream(struct rm_primary_conn *pc, struct rm_preauth *pa,
                        const struct rm_receive_cfg *cfg,
                        const uint8_t *token, size_t token_len,
                        struct rm_error *err)
{
    uint64_t deadline = rm_now_ns() + 10000ull * 1000000;
    char why[RM_ERROR_MSG_MAX + 64] = "nothing";
    unsigned refused = 0;
    int rc;

    for (;;) {
        struct rm_error e = { 0 };
        struct rm_preauth_conn c;
        int left = ms_left(deadline);

        if (left == 0)
            return rm_error_set(err, -EACCES, "no stream connection "
                                "presented this session's token within 10 "
                                "s (%u refused; the last: %s)", refused,
                                why);
        rc = rm_preauth_wait(pa, left, &c, &e);
        if (rc == -ETIMEDOUT)
            continue;              /* the deadline reports the refusals */
        if (rc) {
            *err = e;
            rm_error_prefix(err, "waiting for the stream connection: ");
            return rc;
        }
        snprintf(pc->stream_addr, sizeof(pc->stream_addr), "%s", c.addr);
        rc = check_stream(pc, cfg, c.fd, token, token_len,
                          ms_left(c.deadline_ns) + 1, why, sizeof(why));
        if (!rc) {
            pc->stream_fd = c.fd;
            return 0;
        }
        close(c.fd);
        if (rc != -EACCES)
            return rm_error_set(err, rc, "%s", why);
        refused++;
        LOG_WARN("refused a stream connection from %s: %s", pc->stream_addr,
                 why);
    }
}

/*
 * Accept the stream connection (serve_stream).  As for the control
 * connection, candidates are served together and each has PREAUTH_MS to
 * send its token (and sealed confirmation) whole.
 */
int rm_accept_stream(struct rm_primary_conn *pc,
                     const struct rm_receive_cfg *cfg, const uint8_t *token,
                     size_t token_len, struct rm_error *err)
{
    struct rm_preauth pa;
    int rc;

    rm_preauth_init(&pa, pc->lfd, PREAUTH_MS, (uint32_t)token_len,
                    cfg->key != NULL, RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES,
                    "session token");
    rc = serve_stream(pc, &pa, cfg, token, token_len, err);
    rm_preauth_close(&pa, rc ? "the secondary stopped waiting" :
                              "the stream connection was accepted");
    return rc;
}

void rm_primary_conn_close(struct rm_primary_conn *pc, int listen_fd)
{
    if (pc->have_auth_src)
        rm_auth_src_free(&pc->auth_src);
    pc->have_auth_src = false;
    if (pc->stream_fd >= 0)
        close(pc->stream_fd);
    pc->stream_fd = -1;
    if (pc->have_chan)
        rm_chan_destroy(&pc->chan);
    pc->have_chan = false;
    if (pc->ctl_fd >= 0)
        close(pc->ctl_fd);
    pc->ctl_fd = -1;
    if (pc->lfd >= 0 && pc->lfd != listen_fd)
        close(pc->lfd);
    pc->lfd = -1;
}
