/* SPDX-License-Identifier: MIT */
/* The control channel's messages and their encoding (see ctl_msg.h). */
#include "proto/ctl_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * whole sectors; an unreplicated one's (-F -d: only named) may be 0, not
 * known (a Xen VBD whose backend has not connected). */
static int decode_disks(const Remus__Hello *h, struct rm_hello *out,
                        struct rm_error *err)
{
    size_t i, j;

    if (h->n_disks > RM_DISK_MAX)
        return rm_error_set(err, -EBADMSG, "hello with %zu disks (at most "
                            "%u)", h->n_disks, RM_DISK_MAX);
    for (i = 0; i < h->n_disks; i++) {
        const Remus__Disk *d = h->disks[i];
        bool unreplicated = d->has_unreplicated && d->unreplicated;

        if (d->id >= RM_DISK_MAX || (!d->size && !unreplicated) ||
            d->size % RM_DISK_SECTOR)
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
        out->disks[i].unreplicated = unreplicated;
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
