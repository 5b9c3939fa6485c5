/* SPDX-License-Identifier: MIT */
/*
 * The control channel between primary and secondary (proto/remus.proto).
 *
 * Frames: u32 big-endian length (1..RM_CHAN_MAX_FRAME), then one packed
 * remus.RemusMsg.  rm_chan_recv() returns validated plain-C messages; no
 * caller ever sees protobuf-c types.
 *
 * Authentication (optional, common/auth.h): with rm_chan_set_key() before
 * the handshake, the hellos carry nonces, both sides prove they hold the
 * pre-shared key, and every later frame is sealed (u32 big-endian length
 * of the sealed bytes, then the RemusMsg sealed with secretstream).  A
 * keyed side refuses an unkeyed peer and vice versa, with the reason.
 *
 * Threading: one thread may block in rm_chan_recv() while others send;
 * sends are serialised by a mutex.  Receive errors are described in
 * ch->err (touched only by the receiving thread); send errors are returned.
 */
#ifndef REMUS_PROTO_CHANNEL_H
#define REMUS_PROTO_CHANNEL_H

#include <pthread.h>
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

struct rm_chan {
    int fd;
    pthread_mutex_t send_lock;
    struct rm_error err;         /* last receive error */
    uint64_t frames_sent, frames_received;

    /* Authentication: the key (NULL: none; not owned, must outlive the
     * handshake) and, after an authenticated handshake, the sealing
     * states.  tx is used under send_lock, rx by the receiving thread. */
    const struct rm_auth_key *key;
    bool sealed;                 /* frames are sealed from now on */
    struct rm_auth_tx tx;
    struct rm_auth_rx rx;
    /* The checkpoint stream's sealing state, for rm_auth_sink_attach()
     * on the primary / rm_auth_src_attach() on the secondary. */
    struct rm_auth_tx stream_tx;
    struct rm_auth_rx stream_rx;
    /* Server, keyed, between rm_chan_server_hello and _proof: the hello
     * (body) and our reply (frame) the key proofs cover. */
    uint8_t *hs_hello, *hs_reply;
    size_t hs_hello_len, hs_reply_len;
};

void rm_chan_init(struct rm_chan *ch, int fd);
/* Destroys the mutex and wipes the session keys; does not close fd. */
void rm_chan_destroy(struct rm_chan *ch);

/*
 * Authenticate the handshake (and seal everything after it) with @key, or
 * not (NULL, the default).  Call before the handshake.  0 or -EIO
 * (libsodium failed to initialise; the reason is in ch->err).
 */
int rm_chan_set_key(struct rm_chan *ch, const struct rm_auth_key *key);

/*
 * Receive one message, waiting at most @timeout_ms (-1: forever).
 * 0; -ETIMEDOUT (nothing arrived; nothing consumed); -EPIPE (peer closed
 * or the connection broke); -EBADMSG (an invalid frame: the reason, which
 * names what was wrong, is in ch->err; the channel is unusable after it).
 */
int rm_chan_recv(struct rm_chan *ch, int timeout_ms, struct rm_ctl_msg *out);

/* Senders: 0 or -errno. */
int rm_chan_send(struct rm_chan *ch, const struct rm_ctl_msg *msg);
int rm_chan_send_ack(struct rm_chan *ch, uint64_t epoch, uint64_t digest,
                     uint64_t pages);
int rm_chan_send_heartbeat(struct rm_chan *ch, uint64_t seq,
                           uint64_t committed_epoch);
int rm_chan_send_stop(struct rm_chan *ch, const char *reason);
int rm_chan_send_failover(struct rm_chan *ch, const char *reason);
/* COLO: a mirrored input frame (@input) or a replica's output frame;
 * -EMSGSIZE for a frame outside 14..RM_COLO_FRAME_MAX bytes. */
int rm_chan_send_colo_frame(struct rm_chan *ch, bool input, uint64_t seq,
                            const void *frame, size_t len);
int rm_chan_send_colo_checkpoint(struct rm_chan *ch, uint64_t epoch,
                                 uint64_t input_seq,
                                 enum rm_colo_cause cause, bool buffered);
/* The replica needs a checkpoint soon (@why: for the primary's log). */
int rm_chan_send_colo_ask(struct rm_chan *ch, enum rm_colo_cause cause,
                          const char *why);
/* One part of the replica's dirty pfns (at most RM_COLO_PFNS_MAX,
 * ascending); @last on the final part (which may be empty). */
int rm_chan_send_colo_dirty(struct rm_chan *ch, uint64_t epoch,
                            uint64_t output_seq, const uint64_t *pfns,
                            uint32_t count, bool last);

/*
 * Handshake.  The primary (client) sends its hello and waits for the
 * reply; the secondary (server) checks the primary's hello against its
 * own (protocol version, role, backend, guest size, required
 * capabilities), answers with accepted/refused and why, and on success
 * sets mine->caps to the agreed set (the intersection).  A refusal is
 * -EPROTO (client: the secondary's reason; server: ours) in ch->err.
 *
 * With a key (rm_chan_set_key) the handshake goes on with the proofs
 * (common/auth.h); on success ch->sealed is set and ch->stream_tx
 * (client) / ch->stream_rx (server) are ready for the checkpoint stream.
 * An authentication refusal is -EACCES with the reason in ch->err: an
 * unauthenticated peer, a peer with a key when we have none, a wrong key
 * or a replayed or tampered handshake (the server also tells the client
 * why, with a Stop).
 */
int rm_chan_handshake_client(struct rm_chan *ch, const struct rm_hello *mine,
                             struct rm_hello *peer, int timeout_ms);
int rm_chan_handshake_server(struct rm_chan *ch, struct rm_hello *mine,
                             struct rm_hello *peer, int timeout_ms);

/*
 * The server's handshake in two steps, for a caller that serves several
 * connections at once and must wait on none (secondary/receive.c):
 * rm_chan_server_hello() takes the primary's hello (whole within
 * @timeout_ms) and answers it.  0: the handshake is complete (no key); 1:
 * keyed, the primary's key proof comes next: call rm_chan_server_proof()
 * once its frame has arrived; or the errors of rm_chan_handshake_server.
 * rm_chan_handshake_server() is the two in a row.
 */
int rm_chan_server_hello(struct rm_chan *ch, struct rm_hello *mine,
                         struct rm_hello *peer, int timeout_ms);
int rm_chan_server_proof(struct rm_chan *ch, int timeout_ms);

/* Move a channel no thread uses from @src to @dst (rm_chan_init not needed
 * on @dst); @src is left empty, not to be destroyed again. */
void rm_chan_move(struct rm_chan *dst, struct rm_chan *src);

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
