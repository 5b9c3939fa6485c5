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
#include "proto/remus.pb-c.h"

const char *rm_ctl_kind_name(enum rm_ctl_kind k)
{
    switch (k) {
    case RM_CTL_HELLO: return "hello";
    case RM_CTL_HELLO_REPLY: return "hello-reply";
    case RM_CTL_ACK: return "ack";
    case RM_CTL_HEARTBEAT: return "heartbeat";
    case RM_CTL_STOP: return "stop";
    case RM_CTL_FAILOVER: return "failover";
    case RM_CTL_STATS: return "stats";
    case RM_CTL_DISK_HASHES: return "disk hashes";
    case RM_CTL_COLO_INPUT: return "colo input frame";
    case RM_CTL_COLO_OUTPUT: return "colo output frame";
    case RM_CTL_COLO_CHECKPOINT: return "colo checkpoint";
    case RM_CTL_COLO_DIRTY: return "colo dirty pfns";
    case RM_CTL_COLO_ASK: return "colo checkpoint wanted";
    case RM_CTL_AUTH: return "auth";
    default: return "unknown";
    }
}

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

/* ------------------------------------------------------------ decoding */

static int copy_text(char *dst, size_t cap, const char *src, const char *what,
                     struct rm_error *err)
{
    size_t n;

    if (!src) {
        dst[0] = '\0';
        return 0;
    }
    n = strlen(src);
    if (n >= cap)
        return rm_error_set(err, -EBADMSG, "%s is %zu bytes long (at most "
                            "%zu)", what, n, cap - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

/* The hello's disks: at most RM_DISK_MAX, ids below it and unique, sizes
 * whole sectors. */
static int decode_disks(const Remus__Hello *h, struct rm_hello *out,
                        struct rm_error *err)
{
    size_t i, j;

    if (h->n_disks > RM_DISK_MAX)
        return rm_error_set(err, -EBADMSG, "hello with %zu disks (at most "
                            "%u)", h->n_disks, RM_DISK_MAX);
    for (i = 0; i < h->n_disks; i++) {
        const Remus__Disk *d = h->disks[i];

        if (d->id >= RM_DISK_MAX || !d->size || d->size % RM_DISK_SECTOR)
            return rm_error_set(err, -EBADMSG, "hello with disk %u of %"
                                PRIu64 " bytes (ids below %u, sizes whole "
                                "%u-byte sectors)", d->id, d->size,
                                RM_DISK_MAX, RM_DISK_SECTOR);
        for (j = 0; j < i; j++)
            if (out->disks[j].id == d->id)
                return rm_error_set(err, -EBADMSG, "hello names disk %u "
                                    "twice", d->id);
        out->disks[i].id = d->id;
        out->disks[i].size = d->size;
        out->disks[i].unreplicated = d->has_unreplicated && d->unreplicated;
    }
    out->nr_disks = (uint32_t)h->n_disks;
    return 0;
}

static int decode_disk_hashes(const Remus__DiskHashes *d,
                              struct rm_ctl_msg *out, struct rm_error *err)
{
    if (d->disk >= RM_DISK_MAX || !d->chunk_bytes ||
        d->chunk_bytes % RM_DISK_SECTOR)
        return rm_error_set(err, -EBADMSG, "disk hashes of disk %u in "
                            "chunks of %u bytes", d->disk, d->chunk_bytes);
    if (!d->hashes.len || d->hashes.len % RM_DISK_HASH_BYTES ||
        d->hashes.len > sizeof(out->u.disk_hashes.hashes))
        return rm_error_set(err, -EBADMSG, "disk hashes of %zu bytes (a "
                            "multiple of %u, at most %zu)", d->hashes.len,
                            RM_DISK_HASH_BYTES,
                            sizeof(out->u.disk_hashes.hashes));
    out->u.disk_hashes.count = (uint32_t)(d->hashes.len / RM_DISK_HASH_BYTES);
    if (d->first > d->total ||
        d->total - d->first < out->u.disk_hashes.count)
        return rm_error_set(err, -EBADMSG, "disk hashes for chunks %" PRIu64
                            "..+%u of %" PRIu64, d->first,
                            out->u.disk_hashes.count, d->total);
    out->u.disk_hashes.disk = d->disk;
    out->u.disk_hashes.chunk_bytes = d->chunk_bytes;
    out->u.disk_hashes.first = d->first;
    out->u.disk_hashes.total = d->total;
    memcpy(out->u.disk_hashes.hashes, d->hashes.data, d->hashes.len);
    return 0;
}

static int decode_hello(const Remus__Hello *h, struct rm_hello *out,
                        struct rm_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (!h)
        return rm_error_set(err, -EBADMSG, "hello is missing");
    out->protocol_version = h->protocol_version;
    if (h->protocol_version == 0)
        return rm_error_set(err, -EBADMSG, "hello with protocol version 0");
    if (h->role != REMUS__ROLE__ROLE_PRIMARY &&
        h->role != REMUS__ROLE__ROLE_SECONDARY)
        return rm_error_set(err, -EBADMSG, "hello with unknown role %d",
                            (int)h->role);
    out->role = h->role == REMUS__ROLE__ROLE_PRIMARY ? RM_ROLE_PRIMARY
                                                     : RM_ROLE_SECONDARY;
    rc = copy_text(out->backend, sizeof(out->backend), h->backend,
                   "the backend name", err);
    if (rc)
        return rc;
    if (!out->backend[0])
        return rm_error_set(err, -EBADMSG, "hello without a backend name");
    rc = copy_text(out->name, sizeof(out->name), h->name, "the VM name", err);
    if (rc)
        return rc;
    out->guest_bytes = h->has_guest_bytes ? h->guest_bytes : 0;
    out->nr_vcpus = h->has_nr_vcpus ? h->nr_vcpus : 0;
    out->caps = h->has_caps ? h->caps : 0;
    out->required_caps = h->has_required_caps ? h->required_caps : 0;
    out->interval_ms = h->has_interval_ms ? h->interval_ms : 0;
    out->hb_interval_ms = h->has_hb_interval_ms ? h->hb_interval_ms : 0;
    out->hb_timeout_ms = h->has_hb_timeout_ms ? h->hb_timeout_ms : 0;
    out->buffer_bytes = h->has_buffer_bytes ? h->buffer_bytes : 0;
    out->quorum = h->has_quorum && h->quorum;
    out->has_cpg = h->has_cpg_node && h->has_cpg_pid;
    out->cpg_node = out->has_cpg ? h->cpg_node : 0;
    out->cpg_pid = out->has_cpg ? h->cpg_pid : 0;
    rc = decode_disks(h, out, err);
    if (rc)
        return rc;
    if (h->has_nonce) {
        if (h->nonce.len != RM_CTL_NONCE_LEN)
            return rm_error_set(err, -EBADMSG, "nonce of %zu bytes (%u "
                                "expected)", h->nonce.len, RM_CTL_NONCE_LEN);
        memcpy(out->nonce, h->nonce.data, RM_CTL_NONCE_LEN);
        out->has_nonce = true;
    }
    if (h->has_session) {
        if (h->session.len != RM_CTL_TOKEN_LEN)
            return rm_error_set(err, -EBADMSG, "session token of %zu bytes "
                                "(%u expected)", h->session.len,
                                RM_CTL_TOKEN_LEN);
        memcpy(out->session, h->session.data, RM_CTL_TOKEN_LEN);
        out->has_session = true;
    }
    return 0;
}

static int copy_bytes(uint8_t *dst, size_t want, bool *has,
                      protobuf_c_boolean present, ProtobufCBinaryData src,
                      const char *what, struct rm_error *err)
{
    if (has)
        *has = false;
    if (!present)
        return has ? 0 : rm_error_set(err, -EBADMSG, "%s is missing", what);
    if (src.len != want)
        return rm_error_set(err, -EBADMSG, "%s of %zu bytes (%zu expected)",
                            what, src.len, want);
    memcpy(dst, src.data, want);
    if (has)
        *has = true;
    return 0;
}

static int decode_auth(const Remus__Auth *a, struct rm_ctl_msg *out,
                       struct rm_error *err)
{
    int rc;

    rc = copy_bytes(out->u.auth.mac, RM_AUTH_MAC_LEN, NULL, 1, a->mac,
                    "the auth proof", err);
    if (!rc)
        rc = copy_bytes(out->u.auth.ctl_header, RM_AUTH_HEADER_LEN,
                        &out->u.auth.has_ctl_header, a->has_ctl_header,
                        a->ctl_header, "the auth control header", err);
    if (!rc)
        rc = copy_bytes(out->u.auth.stream_header, RM_AUTH_HEADER_LEN,
                        &out->u.auth.has_stream_header,
                        a->has_stream_header, a->stream_header,
                        "the auth stream header", err);
    return rc;
}

static int decode_colo_frame(const Remus__ColoFrame *f, struct rm_ctl_msg *out,
                             struct rm_error *err)
{
    if (!f->seq)
        return rm_error_set(err, -EBADMSG, "%s with sequence number 0",
                            rm_ctl_kind_name(out->kind));
    if (f->frame.len < 14 || f->frame.len > RM_COLO_FRAME_MAX)
        return rm_error_set(err, -EBADMSG, "%s of %zu bytes (14..%u allowed)",
                            rm_ctl_kind_name(out->kind), f->frame.len,
                            RM_COLO_FRAME_MAX);
    out->u.colo_frame.seq = f->seq;
    out->u.colo_frame.len = (uint32_t)f->frame.len;
    memcpy(out->u.colo_frame.frame, f->frame.data, f->frame.len);
    return 0;
}

static int decode_colo_dirty(const Remus__ColoDirty *d, struct rm_ctl_msg *out,
                             struct rm_error *err)
{
    size_t n = d->pfns.len / 8, i;

    if (!d->epoch)
        return rm_error_set(err, -EBADMSG, "colo dirty pfns of epoch 0");
    if (d->pfns.len % 8 || n > RM_COLO_PFNS_MAX)
        return rm_error_set(err, -EBADMSG, "colo dirty pfns of %zu bytes (a "
                            "multiple of 8, at most %u pfns)", d->pfns.len,
                            RM_COLO_PFNS_MAX);
    for (i = 0; i < n; i++) {
        uint64_t pfn = 0;
        int b;

        for (b = 7; b >= 0; b--)        /* little-endian, as libxc's */
            pfn = pfn << 8 | d->pfns.data[i * 8 + (size_t)b];
        if (i && pfn <= out->u.colo_dirty.pfns[i - 1])
            return rm_error_set(err, -EBADMSG, "colo dirty pfns not "
                                "ascending (pfn %#" PRIx64 " after %#" PRIx64
                                ")", pfn, out->u.colo_dirty.pfns[i - 1]);
        out->u.colo_dirty.pfns[i] = pfn;
    }
    out->u.colo_dirty.epoch = d->epoch;
    out->u.colo_dirty.output_seq = d->output_seq;
    out->u.colo_dirty.count = (uint32_t)n;
    out->u.colo_dirty.last = d->last;
    return 0;
}

int rm_ctl_decode(const uint8_t *buf, size_t len, struct rm_ctl_msg *out,
                  struct rm_error *err)
{
    Remus__RemusMsg *m;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > RM_CHAN_MAX_FRAME)
        return rm_error_set(err, -EBADMSG, "frame of %zu bytes (1..%u "
                            "allowed)", len, RM_CHAN_MAX_FRAME);
    m = remus__remus_msg__unpack(NULL, len, buf);
    if (!m)
        return rm_error_set(err, -EBADMSG, "a %zu-byte frame is not a valid "
                            "control message (protobuf decoding failed)",
                            len);
    switch (m->body_case) {
    case REMUS__REMUS_MSG__BODY_HELLO:
        out->kind = RM_CTL_HELLO;
        rc = decode_hello(m->hello, &out->u.hello, err);
        break;
    case REMUS__REMUS_MSG__BODY_HELLO_REPLY:
        out->kind = RM_CTL_HELLO_REPLY;
        out->u.hello_reply.accepted = m->hello_reply->accepted;
        rc = copy_text(out->u.hello_reply.reason,
                       sizeof(out->u.hello_reply.reason),
                       m->hello_reply->reason, "the refusal reason", err);
        if (!rc)
            rc = decode_hello(m->hello_reply->hello,
                              &out->u.hello_reply.hello, err);
        break;
    case REMUS__REMUS_MSG__BODY_ACK:
        out->kind = RM_CTL_ACK;
        out->u.ack.epoch = m->ack->epoch;
        out->u.ack.digest = m->ack->digest;
        out->u.ack.pages = m->ack->has_pages ? m->ack->pages : 0;
        if (out->u.ack.epoch == 0)
            rc = rm_error_set(err, -EBADMSG, "ack of epoch 0");
        break;
    case REMUS__REMUS_MSG__BODY_HEARTBEAT:
        out->kind = RM_CTL_HEARTBEAT;
        out->u.heartbeat.seq = m->heartbeat->seq;
        out->u.heartbeat.committed_epoch =
            m->heartbeat->has_committed_epoch ? m->heartbeat->committed_epoch
                                              : 0;
        out->u.heartbeat.sent_unix_ms =
            m->heartbeat->has_sent_unix_ms ? m->heartbeat->sent_unix_ms : 0;
        break;
    case REMUS__REMUS_MSG__BODY_STOP:
        out->kind = RM_CTL_STOP;
        rc = copy_text(out->u.stop.reason, sizeof(out->u.stop.reason),
                       m->stop->reason, "the stop reason", err);
        break;
    case REMUS__REMUS_MSG__BODY_FAILOVER:
        out->kind = RM_CTL_FAILOVER;
        rc = copy_text(out->u.failover.reason,
                       sizeof(out->u.failover.reason), m->failover->reason,
                       "the failover reason", err);
        break;
    case REMUS__REMUS_MSG__BODY_STATS:
        out->kind = RM_CTL_STATS;
        out->u.stats.epoch = m->stats->has_epoch ? m->stats->epoch : 0;
        out->u.stats.pause_us = m->stats->has_pause_us ? m->stats->pause_us : 0;
        out->u.stats.dirty_pages =
            m->stats->has_dirty_pages ? m->stats->dirty_pages : 0;
        out->u.stats.bytes = m->stats->has_bytes ? m->stats->bytes : 0;
        break;
    case REMUS__REMUS_MSG__BODY_AUTH:
        out->kind = RM_CTL_AUTH;
        rc = decode_auth(m->auth, out, err);
        break;
    case REMUS__REMUS_MSG__BODY_DISK_HASHES:
        out->kind = RM_CTL_DISK_HASHES;
        rc = decode_disk_hashes(m->disk_hashes, out, err);
        break;
    case REMUS__REMUS_MSG__BODY_COLO_INPUT:
        out->kind = RM_CTL_COLO_INPUT;
        rc = decode_colo_frame(m->colo_input, out, err);
        break;
    case REMUS__REMUS_MSG__BODY_COLO_OUTPUT:
        out->kind = RM_CTL_COLO_OUTPUT;
        rc = decode_colo_frame(m->colo_output, out, err);
        break;
    case REMUS__REMUS_MSG__BODY_COLO_CHECKPOINT:
        out->kind = RM_CTL_COLO_CHECKPOINT;
        out->u.colo_checkpoint.epoch = m->colo_checkpoint->epoch;
        out->u.colo_checkpoint.input_seq = m->colo_checkpoint->input_seq;
        out->u.colo_checkpoint.cause =
            (enum rm_colo_cause)m->colo_checkpoint->cause;
        out->u.colo_checkpoint.buffered = m->colo_checkpoint->has_buffered &&
                                          m->colo_checkpoint->buffered;
        if (!m->colo_checkpoint->epoch)
            rc = rm_error_set(err, -EBADMSG, "colo checkpoint of epoch 0");
        else if (m->colo_checkpoint->cause < RM_COLO_CAUSE_MISMATCH ||
                 m->colo_checkpoint->cause > RM_COLO_CAUSE_PERIODIC)
            rc = rm_error_set(err, -EBADMSG, "colo checkpoint with unknown "
                              "cause %u", m->colo_checkpoint->cause);
        break;
    case REMUS__REMUS_MSG__BODY_COLO_DIRTY:
        out->kind = RM_CTL_COLO_DIRTY;
        rc = decode_colo_dirty(m->colo_dirty, out, err);
        break;
    case REMUS__REMUS_MSG__BODY_COLO_ASK:
        out->kind = RM_CTL_COLO_ASK;
        out->u.colo_ask.cause = (enum rm_colo_cause)m->colo_ask->cause;
        if (m->colo_ask->cause != RM_COLO_CAUSE_OVERFLOW)
            rc = rm_error_set(err, -EBADMSG, "colo checkpoint wanted for "
                              "unknown cause %u", m->colo_ask->cause);
        else
            rc = copy_text(out->u.colo_ask.why, sizeof(out->u.colo_ask.why),
                           m->colo_ask->why, "the checkpoint wanted's "
                           "reason", err);
        break;
    default:
        rc = rm_error_set(err, -EBADMSG, "control message of unknown kind "
                          "%d", (int)m->body_case);
        break;
    }
    remus__remus_msg__free_unpacked(m, NULL);
    return rc;
}

/* ------------------------------------------------------------ encoding */

/* Storage for a hello's disks while it is packed. */
struct hello_disks {
    Remus__Disk d[RM_DISK_MAX];
    Remus__Disk *p[RM_DISK_MAX];
};

static void encode_hello(const struct rm_hello *in, Remus__Hello *h,
                         char *backend, char *name, struct hello_disks *hd)
{
    uint32_t i;

    remus__hello__init(h);
    for (i = 0; i < in->nr_disks && i < RM_DISK_MAX; i++) {
        remus__disk__init(&hd->d[i]);
        hd->d[i].id = in->disks[i].id;
        hd->d[i].size = in->disks[i].size;
        hd->d[i].has_unreplicated = in->disks[i].unreplicated;
        hd->d[i].unreplicated = in->disks[i].unreplicated;
        hd->p[i] = &hd->d[i];
    }
    h->n_disks = i;
    h->disks = i ? hd->p : NULL;
    h->protocol_version = in->protocol_version ? in->protocol_version
                                               : RM_CTL_PROTOCOL_VERSION;
    h->role = in->role == RM_ROLE_PRIMARY ? REMUS__ROLE__ROLE_PRIMARY
                                          : REMUS__ROLE__ROLE_SECONDARY;
    snprintf(backend, 16, "%s", in->backend);
    snprintf(name, 64, "%s", in->name);
    h->backend = backend;
    h->name = name;
    h->has_guest_bytes = true;
    h->guest_bytes = in->guest_bytes;
    h->has_nr_vcpus = true;
    h->nr_vcpus = in->nr_vcpus;
    h->has_caps = true;
    h->caps = in->caps;
    h->has_required_caps = true;
    h->required_caps = in->required_caps;
    h->has_interval_ms = true;
    h->interval_ms = in->interval_ms;
    h->has_hb_interval_ms = true;
    h->hb_interval_ms = in->hb_interval_ms;
    h->has_hb_timeout_ms = true;
    h->hb_timeout_ms = in->hb_timeout_ms;
    h->has_buffer_bytes = in->buffer_bytes != 0;
    h->buffer_bytes = in->buffer_bytes;
    h->has_quorum = true;
    h->quorum = in->quorum;
    h->has_cpg_node = h->has_cpg_pid = in->has_cpg;
    h->cpg_node = in->cpg_node;
    h->cpg_pid = in->cpg_pid;
    if (in->has_nonce) {
        h->has_nonce = true;
        h->nonce.len = RM_CTL_NONCE_LEN;
        h->nonce.data = (uint8_t *)in->nonce;
    }
    if (in->has_session) {
        h->has_session = true;
        h->session.len = RM_CTL_TOKEN_LEN;
        h->session.data = (uint8_t *)in->session;
    }
}

int rm_ctl_encode(const struct rm_ctl_msg *msg, uint8_t **frame, size_t *len)
{
    Remus__RemusMsg m = REMUS__REMUS_MSG__INIT;
    Remus__Hello hello;
    Remus__HelloReply reply = REMUS__HELLO_REPLY__INIT;
    Remus__Ack ack = REMUS__ACK__INIT;
    Remus__Heartbeat hb = REMUS__HEARTBEAT__INIT;
    Remus__Stop stop = REMUS__STOP__INIT;
    Remus__Failover fo = REMUS__FAILOVER__INIT;
    Remus__Stats stats = REMUS__STATS__INIT;
    Remus__Auth auth = REMUS__AUTH__INIT;
    Remus__DiskHashes dh = REMUS__DISK_HASHES__INIT;
    Remus__ColoFrame cf = REMUS__COLO_FRAME__INIT;
    Remus__ColoCheckpoint cc = REMUS__COLO_CHECKPOINT__INIT;
    Remus__ColoDirty cd = REMUS__COLO_DIRTY__INIT;
    Remus__ColoAsk ca = REMUS__COLO_ASK__INIT;
    uint8_t *pfns = NULL;
    struct hello_disks hdisks;
    char backend[16], name[64], reason[RM_CTL_TEXT_MAX];
    size_t n;
    uint32_t be;
    uint8_t *buf;

    switch (msg->kind) {
    case RM_CTL_HELLO:
        encode_hello(&msg->u.hello, &hello, backend, name, &hdisks);
        m.body_case = REMUS__REMUS_MSG__BODY_HELLO;
        m.hello = &hello;
        break;
    case RM_CTL_HELLO_REPLY:
        encode_hello(&msg->u.hello_reply.hello, &hello, backend, name,
                     &hdisks);
        reply.accepted = msg->u.hello_reply.accepted;
        snprintf(reason, sizeof(reason), "%s", msg->u.hello_reply.reason);
        reply.reason = reason;
        reply.hello = &hello;
        m.body_case = REMUS__REMUS_MSG__BODY_HELLO_REPLY;
        m.hello_reply = &reply;
        break;
    case RM_CTL_ACK:
        ack.epoch = msg->u.ack.epoch;
        ack.digest = msg->u.ack.digest;
        ack.has_pages = true;
        ack.pages = msg->u.ack.pages;
        m.body_case = REMUS__REMUS_MSG__BODY_ACK;
        m.ack = &ack;
        break;
    case RM_CTL_HEARTBEAT:
        hb.seq = msg->u.heartbeat.seq;
        hb.has_committed_epoch = true;
        hb.committed_epoch = msg->u.heartbeat.committed_epoch;
        hb.has_sent_unix_ms = true;
        hb.sent_unix_ms = msg->u.heartbeat.sent_unix_ms;
        m.body_case = REMUS__REMUS_MSG__BODY_HEARTBEAT;
        m.heartbeat = &hb;
        break;
    case RM_CTL_STOP:
        snprintf(reason, sizeof(reason), "%s", msg->u.stop.reason);
        stop.reason = reason;
        m.body_case = REMUS__REMUS_MSG__BODY_STOP;
        m.stop = &stop;
        break;
    case RM_CTL_FAILOVER:
        snprintf(reason, sizeof(reason), "%s", msg->u.failover.reason);
        fo.reason = reason;
        m.body_case = REMUS__REMUS_MSG__BODY_FAILOVER;
        m.failover = &fo;
        break;
    case RM_CTL_STATS:
        stats.has_epoch = stats.has_pause_us = true;
        stats.has_dirty_pages = stats.has_bytes = true;
        stats.epoch = msg->u.stats.epoch;
        stats.pause_us = msg->u.stats.pause_us;
        stats.dirty_pages = msg->u.stats.dirty_pages;
        stats.bytes = msg->u.stats.bytes;
        m.body_case = REMUS__REMUS_MSG__BODY_STATS;
        m.stats = &stats;
        break;
    case RM_CTL_AUTH:
        auth.mac.len = RM_AUTH_MAC_LEN;
        auth.mac.data = (uint8_t *)msg->u.auth.mac;
        if (msg->u.auth.has_ctl_header) {
            auth.has_ctl_header = true;
            auth.ctl_header.len = RM_AUTH_HEADER_LEN;
            auth.ctl_header.data = (uint8_t *)msg->u.auth.ctl_header;
        }
        if (msg->u.auth.has_stream_header) {
            auth.has_stream_header = true;
            auth.stream_header.len = RM_AUTH_HEADER_LEN;
            auth.stream_header.data = (uint8_t *)msg->u.auth.stream_header;
        }
        m.body_case = REMUS__REMUS_MSG__BODY_AUTH;
        m.auth = &auth;
        break;
    case RM_CTL_DISK_HASHES:
        dh.disk = msg->u.disk_hashes.disk;
        dh.chunk_bytes = msg->u.disk_hashes.chunk_bytes;
        dh.first = msg->u.disk_hashes.first;
        dh.total = msg->u.disk_hashes.total;
        dh.hashes.len = (size_t)msg->u.disk_hashes.count * RM_DISK_HASH_BYTES;
        dh.hashes.data = (uint8_t *)msg->u.disk_hashes.hashes;
        m.body_case = REMUS__REMUS_MSG__BODY_DISK_HASHES;
        m.disk_hashes = &dh;
        break;
    case RM_CTL_COLO_INPUT:
    case RM_CTL_COLO_OUTPUT:
        if (msg->u.colo_frame.len > RM_COLO_FRAME_MAX)
            return -EMSGSIZE;
        cf.seq = msg->u.colo_frame.seq;
        cf.frame.len = msg->u.colo_frame.len;
        cf.frame.data = (uint8_t *)msg->u.colo_frame.frame;
        if (msg->kind == RM_CTL_COLO_INPUT) {
            m.body_case = REMUS__REMUS_MSG__BODY_COLO_INPUT;
            m.colo_input = &cf;
        } else {
            m.body_case = REMUS__REMUS_MSG__BODY_COLO_OUTPUT;
            m.colo_output = &cf;
        }
        break;
    case RM_CTL_COLO_CHECKPOINT:
        cc.epoch = msg->u.colo_checkpoint.epoch;
        cc.input_seq = msg->u.colo_checkpoint.input_seq;
        cc.cause = (uint32_t)msg->u.colo_checkpoint.cause;
        cc.has_buffered = msg->u.colo_checkpoint.buffered;
        cc.buffered = msg->u.colo_checkpoint.buffered;
        m.body_case = REMUS__REMUS_MSG__BODY_COLO_CHECKPOINT;
        m.colo_checkpoint = &cc;
        break;
    case RM_CTL_COLO_ASK:
        snprintf(reason, sizeof(reason), "%s", msg->u.colo_ask.why);
        ca.cause = (uint32_t)msg->u.colo_ask.cause;
        ca.why = reason;
        m.body_case = REMUS__REMUS_MSG__BODY_COLO_ASK;
        m.colo_ask = &ca;
        break;
    case RM_CTL_COLO_DIRTY: {
        uint32_t i;
        int b;

        if (msg->u.colo_dirty.count > RM_COLO_PFNS_MAX)
            return -EMSGSIZE;
        pfns = malloc((size_t)msg->u.colo_dirty.count * 8 + 1);
        if (!pfns)
            return -ENOMEM;
        for (i = 0; i < msg->u.colo_dirty.count; i++)
            for (b = 0; b < 8; b++)
                pfns[i * 8 + (uint32_t)b] =
                    (uint8_t)(msg->u.colo_dirty.pfns[i] >> (8 * b));
        cd.epoch = msg->u.colo_dirty.epoch;
        cd.output_seq = msg->u.colo_dirty.output_seq;
        cd.pfns.len = (size_t)msg->u.colo_dirty.count * 8;
        cd.pfns.data = pfns;
        cd.last = msg->u.colo_dirty.last;
        m.body_case = REMUS__REMUS_MSG__BODY_COLO_DIRTY;
        m.colo_dirty = &cd;
        break;
    }
    default:
        return -EINVAL;
    }
    n = remus__remus_msg__get_packed_size(&m);
    if (n == 0 || n > RM_CHAN_MAX_FRAME) {
        free(pfns);
        return -E2BIG;
    }
    buf = malloc(n + 4);
    if (!buf) {
        free(pfns);
        return -ENOMEM;
    }
    be = htonl((uint32_t)n);
    memcpy(buf, &be, 4);
    remus__remus_msg__pack(&m, buf + 4);
    free(pfns);
    *frame = buf;
    *len = n + 4;
    return 0;
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
