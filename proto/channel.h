/* SPDX-License-Identifier: MIT */
/*
 * The control channel between primary and secondary (proto/remus.proto).
 *
 * Frames: u32 big-endian length (1..RM_CHAN_MAX_FRAME), then one packed
 * remus.RemusMsg (the messages and their encoding: proto/ctl_msg.h).
 * rm_chan_recv() returns validated plain-C messages; no caller ever sees
 * protobuf-c types.  This file: the transport and the handshake.
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
#include "common/err.h"
#include "proto/ctl_msg.h"

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

#endif
