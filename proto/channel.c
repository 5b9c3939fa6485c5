/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "chan"
#include "proto/channel.h"
#include "proto/disks.h"
#include "proto/timing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

void rm_chan_init(struct rm_chan *ch, int fd)
{
    memset(ch, 0, sizeof(*ch));
    ch->fd = fd;
    pthread_mutex_init(&ch->send_lock, NULL);
}

/* Forget the transcript kept between the two steps of the server side. */
static void drop_transcript(struct rm_chan *ch)
{
    free(ch->hs_hello);
    free(ch->hs_reply);
    ch->hs_hello = ch->hs_reply = NULL;
    ch->hs_hello_len = ch->hs_reply_len = 0;
}

void rm_chan_destroy(struct rm_chan *ch)
{
    pthread_mutex_destroy(&ch->send_lock);
    drop_transcript(ch);
    rm_auth_wipe(&ch->tx, sizeof(ch->tx));
    rm_auth_wipe(&ch->rx, sizeof(ch->rx));
    rm_auth_wipe(&ch->stream_tx, sizeof(ch->stream_tx));
    rm_auth_wipe(&ch->stream_rx, sizeof(ch->stream_rx));
}

int rm_chan_set_key(struct rm_chan *ch, const struct rm_auth_key *key)
{
    int rc = key ? rm_auth_init(&ch->err) : 0;

    if (!rc)
        ch->key = key;
    return rc;
}

/* ------------------------------------------------------------ transport */

/* Write one encoded frame (length prefix + body), sealing it when the
 * channel is sealed.  Takes the send lock. */
static int send_frame(struct rm_chan *ch, const uint8_t *frame, size_t len)
{
    uint8_t *sealed = NULL;
    size_t body = len - 4;
    int rc;

    if (ch->sealed) {
        sealed = malloc(4 + body + RM_AUTH_ABYTES);
        if (!sealed)
            return -ENOMEM;
    }
    pthread_mutex_lock(&ch->send_lock);
    if (sealed) {
        uint32_t be = htonl((uint32_t)(body + RM_AUTH_ABYTES));

        memcpy(sealed, &be, 4);
        /* Sealed in the order written: the receiver's state follows. */
        rc = rm_auth_seal(&ch->tx, frame + 4, body, sealed + 4);
        if (!rc)
            rc = rm_write_all(ch->fd, sealed, 4 + body + RM_AUTH_ABYTES);
    } else {
        rc = rm_write_all(ch->fd, frame, len);
    }
    if (!rc)
        ch->frames_sent++;
    pthread_mutex_unlock(&ch->send_lock);
    free(sealed);
    return rc;
}

int rm_chan_send(struct rm_chan *ch, const struct rm_ctl_msg *msg)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc;

    rc = rm_ctl_encode(msg, &frame, &len);
    if (rc)
        return rc;
    rc = send_frame(ch, frame, len);
    free(frame);
    return rc;
}

/* A frame that has begun must arrive whole within this, in all. */
#define FRAME_MS 5000
#define RM_STR_(x) #x
#define RM_STR(x) RM_STR_(x)

/* Milliseconds left until @deadline_ns (monotonic), at least 0. */
static int ms_until(uint64_t deadline_ns)
{
    uint64_t now = rm_now_ns();

    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) /
                                          1000000);
}

/*
 * Read exactly @len bytes by @deadline_ns: one deadline for them all, so a
 * peer sending a byte now and then cannot stretch it.  0, -ETIMEDOUT,
 * -ENODATA (closed before the first byte), -EPIPE (closed part-way) or
 * -errno.
 */
static int read_by(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;
        int rc = poll(&pfd, 1, ms_until(deadline_ns));

        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            return -ETIMEDOUT;
        n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? -EPIPE : -errno;
        if (n == 0)
            return done ? -EPIPE : -ENODATA;
        done += (size_t)n;
    }
    return 0;
}

/* Which time ran out for a frame: its own, or the handshake's. */
static const char *late(uint64_t frame_deadline, uint64_t deadline_ns)
{
    return frame_deadline == deadline_ns ? "before the handshake's time ran "
                                           "out"
                                         : "within " RM_STR(FRAME_MS) " ms";
}

/*
 * Receive one frame's body (opened when the channel is sealed) into a
 * malloc'd buffer: the first byte within @timeout_ms, then the whole frame
 * within FRAME_MS and by @deadline_ns (0: none).  0 or the errors of
 * rm_chan_recv.
 */
static int recv_body(struct rm_chan *ch, int timeout_ms, uint64_t deadline_ns,
                     uint8_t **body, size_t *body_len)
{
    struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
    uint64_t frame_deadline;
    uint32_t be, len, max;
    uint8_t *buf, *plain;
    int rc;

    *body = NULL;
    *body_len = 0;
    rm_error_clear(&ch->err);
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return rm_error_set(&ch->err, -errno, "poll: %s", strerror(errno));
    if (rc == 0)
        return rm_error_set(&ch->err, -ETIMEDOUT, "no message within %d ms",
                            timeout_ms);

    /* A frame that has begun must arrive whole within a bound. */
    frame_deadline = rm_now_ns() + (uint64_t)FRAME_MS * 1000000;
    if (deadline_ns && deadline_ns < frame_deadline)
        frame_deadline = deadline_ns;
    rc = read_by(ch->fd, &be, sizeof(be), frame_deadline);
    if (rc == -ENODATA || rc == -EPIPE || rc == -ECONNRESET)
        return rm_error_set(&ch->err, -EPIPE, "the peer closed the "
                            "connection");
    if (rc == -ETIMEDOUT)
        return rm_error_set(&ch->err, -EPIPE, "a frame header did not "
                            "arrive whole %s", late(frame_deadline,
                                                   deadline_ns));
    if (rc)
        return rm_error_set(&ch->err, rc, "reading a frame header: %s",
                            strerror(-rc));
    len = ntohl(be);
    max = RM_CHAN_MAX_FRAME + (ch->sealed ? RM_AUTH_ABYTES : 0);
    if (len == 0 || len > max || (ch->sealed && len <= RM_AUTH_ABYTES))
        return rm_error_set(&ch->err, -EBADMSG, "frame length %u out of "
                            "range (%u..%u)%s", len,
                            ch->sealed ? RM_AUTH_ABYTES + 1 : 1, max,
                            ch->sealed ? " on the authenticated channel"
                                       : "");
    buf = malloc(len);
    if (!buf)
        return rm_error_set(&ch->err, -ENOMEM, "out of memory");
    rc = read_by(ch->fd, buf, len, frame_deadline);
    if (rc) {
        free(buf);
        if (rc == -ETIMEDOUT)
            return rm_error_set(&ch->err, -EPIPE, "a %u-byte frame did not "
                                "arrive whole %s", len,
                                late(frame_deadline, deadline_ns));
        return rm_error_set(&ch->err, -EPIPE, "the connection broke inside "
                            "a %u-byte frame", len);
    }
    if (!ch->sealed) {
        *body = buf;
        *body_len = len;
        return 0;
    }
    plain = malloc(len - RM_AUTH_ABYTES);
    if (!plain) {
        free(buf);
        return rm_error_set(&ch->err, -ENOMEM, "out of memory");
    }
    rc = rm_auth_open(&ch->rx, buf, len, plain);
    free(buf);
    if (rc) {
        free(plain);
        return rm_error_set(&ch->err, -EBADMSG, "authentication failed on "
                            "control message %" PRIu64 " (%u bytes): it was "
                            "tampered with, replayed, reordered or sealed "
                            "with another key", ch->rx.seq + 1, len);
    }
    *body = plain;
    *body_len = len - RM_AUTH_ABYTES;
    return 0;
}

int rm_chan_recv(struct rm_chan *ch, int timeout_ms, struct rm_ctl_msg *out)
{
    uint8_t *body;
    size_t len;
    int rc;

    rc = recv_body(ch, timeout_ms, 0, &body, &len);
    if (rc)
        return rc;
    rc = rm_ctl_decode(body, len, out, &ch->err);
    free(body);
    if (!rc)
        ch->frames_received++;
    return rc;
}

int rm_chan_send_ack(struct rm_chan *ch, uint64_t epoch, uint64_t digest,
                     uint64_t pages)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_ACK };

    m.u.ack.epoch = epoch;
    m.u.ack.digest = digest;
    m.u.ack.pages = pages;
    return rm_chan_send(ch, &m);
}

int rm_chan_send_heartbeat(struct rm_chan *ch, uint64_t seq,
                           uint64_t committed_epoch)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_HEARTBEAT };

    m.u.heartbeat.seq = seq;
    m.u.heartbeat.committed_epoch = committed_epoch;
    return rm_chan_send(ch, &m);
}

int rm_chan_send_stop(struct rm_chan *ch, const char *reason)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_STOP };

    snprintf(m.u.stop.reason, sizeof(m.u.stop.reason), "%s", reason);
    return rm_chan_send(ch, &m);
}

int rm_chan_send_failover(struct rm_chan *ch, const char *reason)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_FAILOVER };

    snprintf(m.u.failover.reason, sizeof(m.u.failover.reason), "%s", reason);
    return rm_chan_send(ch, &m);
}

int rm_chan_send_colo_frame(struct rm_chan *ch, bool input, uint64_t seq,
                            const void *frame, size_t len)
{
    struct rm_ctl_msg *m;
    int rc;

    if (len < 14 || len > RM_COLO_FRAME_MAX)
        return -EMSGSIZE;
    /* Not on the stack: the message is as large as its largest kind. */
    m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->kind = input ? RM_CTL_COLO_INPUT : RM_CTL_COLO_OUTPUT;
    m->u.colo_frame.seq = seq;
    m->u.colo_frame.len = (uint32_t)len;
    memcpy(m->u.colo_frame.frame, frame, len);
    rc = rm_chan_send(ch, m);
    free(m);
    return rc;
}

int rm_chan_send_colo_checkpoint(struct rm_chan *ch, uint64_t epoch,
                                 uint64_t input_seq,
                                 enum rm_colo_cause cause, bool buffered)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_COLO_CHECKPOINT };

    m.u.colo_checkpoint.epoch = epoch;
    m.u.colo_checkpoint.input_seq = input_seq;
    m.u.colo_checkpoint.cause = cause;
    m.u.colo_checkpoint.buffered = buffered;
    return rm_chan_send(ch, &m);
}

int rm_chan_send_colo_ask(struct rm_chan *ch, enum rm_colo_cause cause,
                          const char *why)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_COLO_ASK };

    m.u.colo_ask.cause = cause;
    snprintf(m.u.colo_ask.why, sizeof(m.u.colo_ask.why), "%s", why);
    return rm_chan_send(ch, &m);
}

int rm_chan_send_colo_dirty(struct rm_chan *ch, uint64_t epoch,
                            uint64_t output_seq, const uint64_t *pfns,
                            uint32_t count, bool last)
{
    struct rm_ctl_msg *m;
    int rc;

    if (count > RM_COLO_PFNS_MAX)
        return -EMSGSIZE;
    m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->kind = RM_CTL_COLO_DIRTY;
    m->u.colo_dirty.epoch = epoch;
    m->u.colo_dirty.output_seq = output_seq;
    m->u.colo_dirty.count = count;
    m->u.colo_dirty.last = last;
    if (count)
        memcpy(m->u.colo_dirty.pfns, pfns, (size_t)count * 8);
    rc = rm_chan_send(ch, m);
    free(m);
    return rc;
}

/* ------------------------------------------------------------ handshake */

static const char *role_name(enum rm_role r)
{
    return r == RM_ROLE_PRIMARY ? "primary" : "secondary";
}

/* Why @peer cannot pair with @mine, or NULL. */
static const char *incompatible(const struct rm_hello *mine,
                                const struct rm_hello *peer,
                                enum rm_role want_role, char *buf, size_t len)
{
    if (peer->protocol_version != RM_CTL_PROTOCOL_VERSION) {
        snprintf(buf, len, "peer speaks remus control protocol %u, we speak "
                 "%u", peer->protocol_version, RM_CTL_PROTOCOL_VERSION);
        return buf;
    }
    if (peer->role != want_role) {
        snprintf(buf, len, "peer is a %s, a %s was expected",
                 role_name(peer->role), role_name(want_role));
        return buf;
    }
    if (strcmp(peer->backend, mine->backend)) {
        snprintf(buf, len, "peer backend is '%s', ours is '%s'",
                 peer->backend, mine->backend);
        return buf;
    }
    if (peer->required_caps & ~(mine->caps & RM_CAP_KNOWN)) {
        uint64_t m = peer->required_caps & ~(mine->caps & RM_CAP_KNOWN);

        snprintf(buf, len, "peer requires capabilities 0x%" PRIx64 "%s that "
                 "we do not offer", m, (m & RM_CAP_COLO) ? " (COLO: the "
                 "peer runs --colo, this side does not)" : "");
        return buf;
    }
    if (mine->required_caps & ~peer->caps) {
        uint64_t m = mine->required_caps & ~peer->caps;

        snprintf(buf, len, "peer lacks required capabilities 0x%" PRIx64 "%s",
                 m, (m & RM_CAP_COLO) ? " (COLO: this side runs --colo, the "
                 "peer does not)" : "");
        return buf;
    }
    if (mine->quorum != peer->quorum) {
        /* One side would arbitrate a lost peer and the other not: both
         * could run the VM.  Refused, not warned about. */
        snprintf(buf, len, "split-brain protection differs: the %s runs "
                 "%s, the %s runs %s (both sides need --quorum corosync, or "
                 "neither)", role_name(mine->role),
                 mine->quorum ? "--quorum corosync" : "without --quorum",
                 role_name(peer->role),
                 peer->quorum ? "--quorum corosync" : "without --quorum");
        return buf;
    }
    if (peer->quorum && !peer->has_cpg) {
        snprintf(buf, len, "the %s runs --quorum but did not say which "
                 "process it is in the cluster group", role_name(peer->role));
        return buf;
    }
    return NULL;
}

/*
 * Receive a message (of @kind unless 0) whole by @deadline_ns, the
 * handshake's one deadline; keeps its body in *body when asked.
 */
static int recv_kind_body(struct rm_chan *ch, uint64_t deadline_ns,
                          enum rm_ctl_kind kind, struct rm_ctl_msg *out,
                          uint8_t **body, size_t *body_len)
{
    uint8_t *b;
    size_t len;
    int rc;

    rc = recv_body(ch, ms_until(deadline_ns), deadline_ns, &b, &len);
    if (rc)
        return rc;
    rc = rm_ctl_decode(b, len, out, &ch->err);
    if (!rc) {
        ch->frames_received++;
        if (kind && out->kind != kind)
            rc = rm_error_set(&ch->err, -EPROTO, "expected a %s, got a %s",
                              rm_ctl_kind_name(kind),
                              rm_ctl_kind_name(out->kind));
    }
    if (!rc && body) {
        *body = b;
        *body_len = len;
    } else {
        free(b);
    }
    return rc;
}

static int recv_kind(struct rm_chan *ch, uint64_t deadline_ns,
                     enum rm_ctl_kind kind, struct rm_ctl_msg *out)
{
    return recv_kind_body(ch, deadline_ns, kind, out, NULL, NULL);
}

/* Encode and send @msg; keeps the encoded frame in *frame. */
static int send_keep(struct rm_chan *ch, const struct rm_ctl_msg *msg,
                     uint8_t **frame, size_t *len)
{
    int rc = rm_ctl_encode(msg, frame, len);

    if (rc)
        return rc;
    rc = send_frame(ch, *frame, *len);
    if (rc) {
        free(*frame);
        *frame = NULL;
    }
    return rc;
}

#define AUTH_WHY_KEY "a different key, or a replayed or tampered handshake"

/* The client's side of the proofs, after the hellos. */
static int auth_client(struct rm_chan *ch, const uint8_t *hello,
                       size_t hello_len, const uint8_t *reply,
                       size_t reply_len, uint64_t deadline_ns)
{
    struct rm_auth_session s;
    struct rm_ctl_msg m;
    uint8_t expect[RM_AUTH_MAC_LEN];
    uint8_t hc[RM_AUTH_HEADER_LEN], hs[RM_AUTH_HEADER_LEN];
    int rc;

    rc = rm_auth_session_derive(ch->key, hello, hello_len, reply, reply_len,
                                &s);
    if (!rc)
        rc = rm_auth_tx_init(&ch->tx, s.ctl_p2s, hc);
    if (!rc)
        rc = rm_auth_tx_init(&ch->stream_tx, s.stream, hs);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "deriving the session keys failed");
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.kind = RM_CTL_AUTH;
    rm_auth_proof(s.mac_primary, s.transcript, hc, hs, NULL,
                  RM_AUTH_HEADER_LEN, m.u.auth.mac);
    m.u.auth.has_ctl_header = m.u.auth.has_stream_header = true;
    memcpy(m.u.auth.ctl_header, hc, sizeof(hc));
    memcpy(m.u.auth.stream_header, hs, sizeof(hs));
    rc = rm_chan_send(ch, &m);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "sending our key proof: %s",
                          strerror(-rc));
        goto out;
    }
    rc = recv_kind(ch, deadline_ns, 0, &m);
    if (rc)
        goto out;
    if (m.kind == RM_CTL_STOP) {
        rc = rm_error_set(&ch->err, -EACCES, "the secondary refused our "
                          "key proof: %s", m.u.stop.reason);
        goto out;
    }
    if (m.kind != RM_CTL_AUTH || !m.u.auth.has_ctl_header) {
        rc = rm_error_set(&ch->err, -EPROTO, "expected the secondary's key "
                          "proof, got a %s", rm_ctl_kind_name(m.kind));
        goto out;
    }
    rm_auth_proof(s.mac_secondary, s.transcript, hc, hs,
                  m.u.auth.ctl_header, RM_AUTH_HEADER_LEN, expect);
    if (!rm_auth_proof_equal(expect, m.u.auth.mac)) {
        rc = rm_error_set(&ch->err, -EACCES, "authentication failed: the "
                          "secondary's key proof does not match ("
                          AUTH_WHY_KEY ")");
        goto out;
    }
    rc = rm_auth_rx_init(&ch->rx, s.ctl_s2p, m.u.auth.ctl_header);
    if (rc) {
        rc = rm_error_set(&ch->err, -EBADMSG, "the secondary's control "
                          "header is unusable");
        goto out;
    }
    ch->sealed = true;
out:
    rm_auth_wipe(&s, sizeof(s));
    return rc;
}

/* The server's side of the proofs, after the hellos. */
static int auth_server(struct rm_chan *ch, const uint8_t *hello,
                       size_t hello_len, const uint8_t *reply,
                       size_t reply_len, uint64_t deadline_ns)
{
    struct rm_auth_session s;
    struct rm_ctl_msg m, a;
    uint8_t expect[RM_AUTH_MAC_LEN];
    int rc;

    rc = rm_auth_session_derive(ch->key, hello, hello_len, reply, reply_len,
                                &s);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "deriving the session keys failed");
        goto out;
    }
    rc = recv_kind(ch, deadline_ns, RM_CTL_AUTH, &m);
    if (rc)
        goto out;
    if (!m.u.auth.has_ctl_header || !m.u.auth.has_stream_header) {
        rc = rm_error_set(&ch->err, -EBADMSG, "the primary's key proof "
                          "lacks its %s header", m.u.auth.has_ctl_header ?
                          "stream" : "control");
        goto out;
    }
    rm_auth_proof(s.mac_primary, s.transcript, m.u.auth.ctl_header,
                  m.u.auth.stream_header, NULL, RM_AUTH_HEADER_LEN, expect);
    if (!rm_auth_proof_equal(expect, m.u.auth.mac)) {
        rm_chan_send_stop(ch, "authentication failed: the key proof does "
                          "not match (" AUTH_WHY_KEY ")");
        rc = rm_error_set(&ch->err, -EACCES, "authentication failed: the "
                          "primary's key proof does not match ("
                          AUTH_WHY_KEY ")");
        goto out;
    }
    if (rm_auth_rx_init(&ch->rx, s.ctl_p2s, m.u.auth.ctl_header) ||
        rm_auth_rx_init(&ch->stream_rx, s.stream, m.u.auth.stream_header)) {
        rc = rm_error_set(&ch->err, -EBADMSG, "the primary's headers are "
                          "unusable");
        goto out;
    }
    memset(&a, 0, sizeof(a));
    a.kind = RM_CTL_AUTH;
    a.u.auth.has_ctl_header = true;
    rc = rm_auth_tx_init(&ch->tx, s.ctl_s2p, a.u.auth.ctl_header);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "deriving the session keys failed");
        goto out;
    }
    rm_auth_proof(s.mac_secondary, s.transcript, m.u.auth.ctl_header,
                  m.u.auth.stream_header, a.u.auth.ctl_header,
                  RM_AUTH_HEADER_LEN, a.u.auth.mac);
    rc = rm_chan_send(ch, &a);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "sending our key proof: %s",
                          strerror(-rc));
        goto out;
    }
    ch->sealed = true;
out:
    rm_auth_wipe(&s, sizeof(s));
    return rc;
}

int rm_chan_handshake_client(struct rm_chan *ch, const struct rm_hello *mine,
                             struct rm_hello *peer, int timeout_ms)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    struct rm_ctl_msg m = { .kind = RM_CTL_HELLO };
    char why[RM_CTL_TEXT_MAX];
    uint8_t *hello = NULL, *reply = NULL;
    size_t hello_len = 0, reply_len = 0;
    int rc;

    m.u.hello = *mine;
    if (!m.u.hello.protocol_version)
        m.u.hello.protocol_version = RM_CTL_PROTOCOL_VERSION;
    m.u.hello.has_nonce = ch->key != NULL;
    if (ch->key)
        rm_auth_random(m.u.hello.nonce, sizeof(m.u.hello.nonce));
    rc = send_keep(ch, &m, &hello, &hello_len);
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "sending hello: %s", strerror(-rc));
        goto out;
    }
    rc = recv_kind_body(ch, deadline, RM_CTL_HELLO_REPLY, &m, &reply,
                        &reply_len);
    if (rc)
        goto out;
    if (!m.u.hello_reply.accepted) {
        rc = rm_error_set(&ch->err, -EPROTO, "the secondary refused us: %s",
                          m.u.hello_reply.reason);
        goto out;
    }
    *peer = m.u.hello_reply.hello;
    if (incompatible(mine, peer, RM_ROLE_SECONDARY, why, sizeof(why)) ||
        rm_timing_check(mine, peer, why, sizeof(why))) {
        rc = rm_error_set(&ch->err, -EPROTO, "%s", why);
        goto out;
    }
    if (!peer->has_session) {
        rc = rm_error_set(&ch->err, -EPROTO, "the secondary sent no "
                          "session token");
        goto out;
    }
    if (ch->key && !peer->has_nonce) {
        rc = rm_error_set(&ch->err, -EACCES, "unauthenticated peer: the "
                          "secondary does not authenticate (it has no key, "
                          "--key-file) and we require it");
        goto out;
    }
    if (!ch->key && peer->has_nonce) {
        rc = rm_error_set(&ch->err, -EACCES, "the secondary authenticates "
                          "with a key and we have none (--key-file)");
        goto out;
    }
    if (ch->key)
        rc = auth_client(ch, hello + 4, hello_len - 4, reply, reply_len,
                         deadline);
out:
    free(hello);
    free(reply);
    return rc;
}

int rm_chan_server_hello(struct rm_chan *ch, struct rm_hello *mine,
                         struct rm_hello *peer, int timeout_ms)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    struct rm_ctl_msg m;
    char why[RM_CTL_TEXT_MAX];
    const char *bad;
    uint8_t *hello = NULL, *reply = NULL;
    size_t hello_len = 0, reply_len = 0;
    int rc, bad_rc = -EPROTO;

    rc = recv_kind_body(ch, deadline, RM_CTL_HELLO, &m, &hello,
                        &hello_len);
    if (rc)
        return rc;
    *peer = m.u.hello;
    bad = incompatible(mine, peer, RM_ROLE_PRIMARY, why, sizeof(why));
    /* Timing: derives mine->hb_timeout_ms when 0 (proto/timing.h). */
    if (!bad && rm_timing_agree(mine, peer, why, sizeof(why)))
        bad = why;
    if (!bad && mine->guest_bytes && peer->guest_bytes > mine->guest_bytes) {
        snprintf(why, sizeof(why), "guest of %" PRIu64 " MiB exceeds this "
                 "secondary's limit of %" PRIu64 " MiB",
                 peer->guest_bytes >> 20, mine->guest_bytes >> 20);
        bad = why;
    }
    if (!bad && peer->guest_bytes == 0) {
        snprintf(why, sizeof(why), "the primary did not say its guest size");
        bad = why;
    }
    if (!bad)
        bad = rm_disks_disagree(peer, mine, why, sizeof(why));
    if (!bad && ch->key && !peer->has_nonce) {
        snprintf(why, sizeof(why), "unauthenticated peer: this secondary "
                 "requires a pre-shared key and the primary has none "
                 "(--key-file)");
        bad = why;
        bad_rc = -EACCES;
    }
    if (!bad && !ch->key && peer->has_nonce) {
        snprintf(why, sizeof(why), "the primary authenticates with a key "
                 "and this secondary has none (--key-file)");
        bad = why;
        bad_rc = -EACCES;
    }
    mine->protocol_version = RM_CTL_PROTOCOL_VERSION;
    mine->caps &= peer->caps & RM_CAP_KNOWN;
    mine->has_session = true;
    mine->has_nonce = ch->key != NULL && !bad;
    if (mine->has_nonce)
        rm_auth_random(mine->nonce, sizeof(mine->nonce));
    memset(&m, 0, sizeof(m));
    m.kind = RM_CTL_HELLO_REPLY;
    m.u.hello_reply.accepted = bad == NULL;
    snprintf(m.u.hello_reply.reason, sizeof(m.u.hello_reply.reason), "%s",
             bad ? bad : "");
    m.u.hello_reply.hello = *mine;
    rc = send_keep(ch, &m, &reply, &reply_len);
    if (bad) {
        rc = rm_error_set(&ch->err, bad_rc, "refused the primary: %s", bad);
        goto out;
    }
    if (rc) {
        rc = rm_error_set(&ch->err, rc, "sending the hello reply: %s",
                          strerror(-rc));
        goto out;
    }
    if (ch->key) {
        /* The key proof comes next: keep the transcript it covers. */
        drop_transcript(ch);
        ch->hs_hello = hello;
        ch->hs_hello_len = hello_len;
        ch->hs_reply = reply;
        ch->hs_reply_len = reply_len;
        return 1;
    }
out:
    free(hello);
    free(reply);
    return rc;
}

int rm_chan_server_proof(struct rm_chan *ch, int timeout_ms)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    int rc;

    if (!ch->key || !ch->hs_hello || !ch->hs_reply)
        return rm_error_set(&ch->err, -EINVAL, "no keyed hello awaits a "
                            "key proof on this channel");
    rc = auth_server(ch, ch->hs_hello, ch->hs_hello_len, ch->hs_reply + 4,
                     ch->hs_reply_len - 4, deadline);
    drop_transcript(ch);
    return rc;
}

int rm_chan_handshake_server(struct rm_chan *ch, struct rm_hello *mine,
                             struct rm_hello *peer, int timeout_ms)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    int rc = rm_chan_server_hello(ch, mine, peer, timeout_ms);

    if (rc == 1)
        rc = rm_chan_server_proof(ch, ms_until(deadline));
    return rc;
}

void rm_chan_move(struct rm_chan *dst, struct rm_chan *src)
{
    pthread_mutex_destroy(&src->send_lock);
    *dst = *src;
    pthread_mutex_init(&dst->send_lock, NULL);
    /* @src is left without keys or transcript (and is not destroyed
     * again: it has no mutex any more). */
    memset(src, 0, sizeof(*src));
    src->fd = -1;
}
