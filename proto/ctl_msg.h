/* SPDX-License-Identifier: MIT */
/*
 * The control channel's messages (proto/remus.proto) as plain C, and
 * their encoding: rm_ctl_encode() packs one into a frame (u32 big-endian
 * length, then one packed remus.RemusMsg), rm_ctl_decode() unpacks and
 * validates a frame's body.  No caller of this module or of the channel
 * (proto/channel.h) ever sees protobuf-c types.
 */
#ifndef REMUS_PROTO_CTL_MSG_H
#define REMUS_PROTO_CTL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/disklog.h"
#include "common/err.h"

#define RM_CTL_PROTOCOL_VERSION 1u
#define RM_CHAN_MAX_FRAME 65536u
#define RM_CTL_TOKEN_LEN 16u
#define RM_CTL_NONCE_LEN RM_AUTH_NONCE_LEN
#define RM_CTL_TEXT_MAX 256u
/* Chunk hashes per DiskHashes message (32 KiB of hashes) */
#define RM_CTL_HASHES_MAX 1024u

/* COLO: the largest frame mirrored or sent back (a 9000-byte jumbo frame
 * and its headers), and the pfns in one ColoDirty part (32 KiB) */
#define RM_COLO_FRAME_MAX 9216u
#define RM_COLO_PFNS_MAX 4096u

/* ColoCheckpoint.cause */
enum rm_colo_cause {
    RM_COLO_CAUSE_MISMATCH = 1,
    RM_COLO_CAUSE_TIMEOUT = 2,
    RM_COLO_CAUSE_OVERFLOW = 3,
    RM_COLO_CAUSE_PERIODIC = 4,
};

/* Capabilities (Hello.caps) */
#define RM_CAP_COMPRESSION (1ull << 0)
#define RM_CAP_COLO (1ull << 1)          /* --colo: both sides, or neither */
#define RM_CAP_KNOWN (RM_CAP_COMPRESSION | RM_CAP_COLO)

enum rm_role {
    RM_ROLE_PRIMARY = 1,
    RM_ROLE_SECONDARY = 2,
};

struct rm_hello {
    uint32_t protocol_version;   /* filled by the handshake helpers */
    enum rm_role role;
    char backend[16];
    char name[64];
    uint64_t guest_bytes;        /* secondary: its maximum (0: any) */
    uint32_t nr_vcpus;
    uint64_t caps;               /* offered; in a reply: the agreed set */
    uint64_t required_caps;      /* the peer must offer these */
    uint32_t interval_ms;
    uint32_t hb_interval_ms;
    uint32_t hb_timeout_ms;
    uint64_t buffer_bytes;       /* secondary: its checkpoint buffer */
    bool quorum;                 /* this side decides with a quorum
                                    service (--quorum): both or neither */
    bool has_cpg;                /* with quorum: this process's identity */
    uint32_t cpg_node, cpg_pid;  /* in the CPG group remus:NAME */
    bool has_nonce;              /* set by the handshake when keyed */
    uint8_t nonce[RM_CTL_NONCE_LEN];
    bool has_session;
    uint8_t session[RM_CTL_TOKEN_LEN];
    /* primary: the disks it replicates; secondary: its replica images */
    uint32_t nr_disks;
    struct rm_hello_disk {
        uint32_t id;
        uint64_t size;
        bool unreplicated;       /* primary, -F -d: not replicated */
    } disks[RM_DISK_MAX];
};

enum rm_ctl_kind {
    RM_CTL_HELLO = 1,
    RM_CTL_HELLO_REPLY,
    RM_CTL_ACK,
    RM_CTL_HEARTBEAT,
    RM_CTL_STOP,
    RM_CTL_FAILOVER,
    RM_CTL_STATS,
    RM_CTL_AUTH,
    RM_CTL_DISK_HASHES,
    RM_CTL_COLO_INPUT,           /* u.colo_frame */
    RM_CTL_COLO_OUTPUT,          /* u.colo_frame */
    RM_CTL_COLO_CHECKPOINT,
    RM_CTL_COLO_DIRTY,
    RM_CTL_COLO_ASK,             /* the replica asks for a checkpoint */
};

struct rm_ctl_msg {
    enum rm_ctl_kind kind;
    union {
        struct rm_hello hello;
        struct {
            bool accepted;
            char reason[RM_CTL_TEXT_MAX];
            struct rm_hello hello;
        } hello_reply;
        struct {
            uint64_t epoch, digest, pages;
        } ack;
        struct {
            uint64_t seq, committed_epoch, sent_unix_ms;
        } heartbeat;
        struct {
            char reason[RM_CTL_TEXT_MAX];
        } stop, failover;
        struct {
            uint64_t epoch, pause_us, dirty_pages, bytes;
        } stats;
        struct {
            uint8_t mac[RM_AUTH_MAC_LEN];
            bool has_ctl_header, has_stream_header;
            uint8_t ctl_header[RM_AUTH_HEADER_LEN];
            uint8_t stream_header[RM_AUTH_HEADER_LEN];
        } auth;
        struct {
            uint32_t disk, chunk_bytes, count;  /* count: hashes below */
            uint64_t first, total;
            uint8_t hashes[RM_CTL_HASHES_MAX * RM_DISK_HASH_BYTES];
        } disk_hashes;
        struct {
            uint64_t seq;                   /* >= 1 */
            uint32_t len;                   /* 14..RM_COLO_FRAME_MAX */
            uint8_t frame[RM_COLO_FRAME_MAX];
        } colo_frame;
        struct {
            uint64_t epoch, input_seq;      /* epoch >= 1 */
            enum rm_colo_cause cause;
            bool buffered;                  /* the replica stops after it */
        } colo_checkpoint;
        struct {
            enum rm_colo_cause cause;       /* RM_COLO_CAUSE_OVERFLOW */
            char why[RM_CTL_TEXT_MAX];
        } colo_ask;
        struct {
            uint64_t epoch, output_seq;     /* epoch >= 1 */
            uint32_t count;                 /* pfns below, ascending */
            bool last;
            uint64_t pfns[RM_COLO_PFNS_MAX];
        } colo_dirty;
    } u;
};

/*
 * Decode and validate one frame body (without its length prefix).  Used
 * by rm_chan_recv and by the fuzz harness.  0 or -EBADMSG with a reason.
 */
int rm_ctl_decode(const uint8_t *buf, size_t len, struct rm_ctl_msg *out,
                  struct rm_error *err);
/* Encode @msg into a malloc'd frame (length prefix included). */
int rm_ctl_encode(const struct rm_ctl_msg *msg, uint8_t **frame,
                  size_t *len);

const char *rm_ctl_kind_name(enum rm_ctl_kind k);

#endif
