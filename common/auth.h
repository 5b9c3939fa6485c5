/* SPDX-License-Identifier: MIT */
/*
 * Pre-shared-key authentication of the control channel and the checkpoint
 * stream (libsodium).
 *
 * Key: 32 bytes shared by the primary and the secondary, kept in a file
 * of exactly 64 hex digits and a newline (what `remus keygen FILE` writes,
 * mode 0600).  A key file not owned by us or root, or with any group or
 * other permission, is refused, as is any other content.
 *
 * Handshake (proto/channel.c, on the control connection):
 *   primary   -> Hello      with a fresh 32-byte nonce Np
 *   secondary -> HelloReply with a fresh 32-byte nonce Ns
 *   T = BLAKE2b("remus-auth-v1" || hello frame || reply frame)
 *   master = BLAKE2b-keyed(PSK, T); subkeys by crypto_kdf (context
 *   "remusv1a"): proof keys for each side, one sealing key per direction
 *   of the control channel, one for the checkpoint stream.
 *   primary   -> Auth{mac_p = MAC(Kp, T || headers), secretstream
 *                     headers of its control direction and the stream}
 *   secondary -> Auth{mac_s = MAC(Ks, T || headers), its control header}
 *               (or Stop with the reason when mac_p is wrong)
 * Both nonces enter T, so a transcript recorded from an earlier session
 * fails the proof; the hellos enter T, so a tampered hello (capabilities,
 * guest size) fails it too.
 *
 * After the handshake every control frame and every stream chunk is one
 * crypto_secretstream_xchacha20poly1305 message: authenticated (Poly1305),
 * encrypted (XChaCha20), and numbered by the state, so a flipped byte, a
 * replayed, reordered, dropped or truncated message fails to open.  There
 * is no MAC-only mode: authentication always comes with encryption.
 *
 * Stream chunks on the wire: u32 big-endian length L (RM_AUTH_ABYTES <
 * L <= RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES), then L bytes of sealed data.
 * The chunk layer sits under rm_sink / rm_src (common/io.h), so the save
 * and restore engines see plain stream bytes and are unchanged; every
 * rm_sink write ends on a chunk boundary (nothing is held back).
 */
#ifndef REMUS_COMMON_AUTH_H
#define REMUS_COMMON_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "common/err.h"
#include "common/io.h"

#define RM_AUTH_KEY_LEN 32u
#define RM_AUTH_NONCE_LEN 32u
#define RM_AUTH_MAC_LEN 32u
#define RM_AUTH_HEADER_LEN 24u      /* secretstream header */
#define RM_AUTH_ABYTES 17u          /* secretstream overhead per message */
#define RM_AUTH_CHUNK_MAX 65536u    /* plaintext bytes per stream chunk */

struct rm_auth_key {
    uint8_t k[RM_AUTH_KEY_LEN];
};

/* libsodium's one-time setup (thread-safe, idempotent).  0 or -EIO. */
int rm_auth_init(struct rm_error *err);

/* A key file's size: 64 hex digits (either case) and a newline. */
#define RM_AUTH_KEY_FILE_LEN (2 * RM_AUTH_KEY_LEN + 1)

/*
 * Parse a key file's contents: exactly 64 hex digits and one newline,
 * nothing else.  @what names the source in errors.  0 or -EINVAL (the
 * reason names @what and what was wrong).
 */
int rm_auth_key_parse(const void *data, size_t len, const char *what,
                      struct rm_auth_key *key, struct rm_error *err);

/*
 * Load a key file: a regular file owned by our effective uid or root,
 * without any group or other permission (mode 0600 or 0400), with
 * rm_auth_key_parse()'s format; an all-zero key is refused.  0 or -errno
 * with the reason (naming the file, and its mode when that is the fault).
 */
int rm_auth_key_load(const char *path, struct rm_auth_key *key,
                     struct rm_error *err);

/* Write a fresh random key to @path as 64 hex digits and a newline, mode
 * 0600; an existing file is never overwritten (-EEXIST).  0 or -errno. */
int rm_auth_key_generate(const char *path, struct rm_error *err);

/* Fill @buf with random bytes (randombytes_buf). */
void rm_auth_random(void *buf, size_t len);

/* ------------------------------------------------ handshake primitives */

/* The session keys derived from the PSK and the handshake transcript. */
struct rm_auth_session {
    uint8_t transcript[32];       /* T */
    uint8_t mac_primary[32];      /* proof keys */
    uint8_t mac_secondary[32];
    uint8_t ctl_p2s[32];          /* sealing keys per direction */
    uint8_t ctl_s2p[32];
    uint8_t stream[32];           /* the checkpoint stream (p -> s) */
};

/*
 * Derive the session from @key and the two hello frames (their bodies, as
 * sent and received).  0 or -EIO.
 */
int rm_auth_session_derive(const struct rm_auth_key *key,
                           const uint8_t *hello, size_t hello_len,
                           const uint8_t *reply, size_t reply_len,
                           struct rm_auth_session *s);

/* A proof: MAC(@mac_key, T || parts...) over up to 3 byte strings (NULL
 * parts are skipped). */
void rm_auth_proof(const uint8_t mac_key[32], const uint8_t transcript[32],
                   const uint8_t *a, const uint8_t *b, const uint8_t *c,
                   size_t part_len, uint8_t out[RM_AUTH_MAC_LEN]);

/* Constant-time comparison of two proofs: true when equal. */
bool rm_auth_proof_equal(const uint8_t a[RM_AUTH_MAC_LEN],
                         const uint8_t b[RM_AUTH_MAC_LEN]);

/* Wipe secrets (sodium_memzero). */
void rm_auth_wipe(void *p, size_t len);

/* ------------------------------------------------ sealed message sequences */

/* One direction of sealed messages (sender side / receiver side). */
struct rm_auth_tx {
    crypto_secretstream_xchacha20poly1305_state st;
    uint64_t seq;                 /* messages sealed */
};

struct rm_auth_rx {
    crypto_secretstream_xchacha20poly1305_state st;
    uint64_t seq;                 /* messages opened */
};

/* Start sending with @key; writes the header the receiver needs. */
int rm_auth_tx_init(struct rm_auth_tx *tx, const uint8_t key[32],
                    uint8_t header[RM_AUTH_HEADER_LEN]);
/* Start receiving with @key and the sender's @header.  0 or -EBADMSG. */
int rm_auth_rx_init(struct rm_auth_rx *rx, const uint8_t key[32],
                    const uint8_t header[RM_AUTH_HEADER_LEN]);

/* Seal @len bytes into @out (room for len + RM_AUTH_ABYTES).  0. */
int rm_auth_seal(struct rm_auth_tx *tx, const void *in, size_t len,
                 uint8_t *out);
/*
 * Open @len sealed bytes into @out (room for len - RM_AUTH_ABYTES).
 * 0, or -EBADMSG when the message is not the next one this sender sealed
 * (tampered, replayed, reordered, truncated, or another key).
 */
int rm_auth_open(struct rm_auth_rx *rx, const uint8_t *in, size_t len,
                 uint8_t *out);

/* ------------------------------------------------ the stream chunk layer */

/*
 * Sending side: attach to @upper (an rm_sink the save engine writes to);
 * sealed chunks go to @lower (usually the stream socket).  @tx is copied
 * (the state the handshake initialised; its header reached the peer in
 * the handshake).  The layer must outlive @upper's use; free with
 * rm_auth_sink_free().  0 or -ENOMEM.
 */
struct rm_auth_sink {
    struct rm_auth_tx tx;
    struct rm_sink *lower;
    uint8_t *plain;               /* RM_AUTH_CHUNK_MAX */
    struct rm_buf out;            /* sealed chunks waiting to be written */
    uint64_t chunks;
};

int rm_auth_sink_attach(struct rm_auth_sink *as, struct rm_sink *upper,
                        struct rm_sink *lower, const struct rm_auth_tx *tx);
void rm_auth_sink_free(struct rm_auth_sink *as);

/*
 * Receiving side: attach to @upper (the rm_src the restore engine reads);
 * chunks come from @lower.  The upper source's timeout_ms applies to each
 * read of @lower.  A chunk that fails to open ends the stream with
 * -EBADMSG and the reason in as->err ("authentication failed on the
 * checkpoint stream at byte N ..."); nothing of that chunk is delivered.
 * Free with rm_auth_src_free().  0 or -ENOMEM.
 */
struct rm_auth_src {
    struct rm_auth_rx rx;
    struct rm_src *lower;
    uint8_t *plain;               /* one opened chunk */
    uint8_t *sealed;
    size_t pos, len;              /* unread part of plain */
    uint64_t chunks;
    bool failed;                  /* authentication failed: stream over */
    struct rm_error err;
};

int rm_auth_src_attach(struct rm_auth_src *as, struct rm_src *upper,
                       struct rm_src *lower, const struct rm_auth_rx *rx);
void rm_auth_src_free(struct rm_auth_src *as);

#endif
