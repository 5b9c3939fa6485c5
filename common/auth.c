/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "auth"
#include "common/auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

_Static_assert(RM_AUTH_HEADER_LEN ==
               crypto_secretstream_xchacha20poly1305_HEADERBYTES,
               "secretstream header size");
_Static_assert(RM_AUTH_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES,
               "secretstream overhead");
_Static_assert(RM_AUTH_KEY_LEN == crypto_secretstream_xchacha20poly1305_KEYBYTES,
               "secretstream key size");
_Static_assert(crypto_kdf_KEYBYTES == 32, "kdf key size");

#define KDF_CONTEXT "remusv1a"
enum {
    KDF_MAC_PRIMARY = 1,
    KDF_MAC_SECONDARY,
    KDF_CTL_P2S,
    KDF_CTL_S2P,
    KDF_STREAM,
};

int rm_auth_init(struct rm_error *err)
{
    if (sodium_init() < 0)
        return rm_error_set(err, -EIO, "libsodium failed to initialise");
    return 0;
}

void rm_auth_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

void rm_auth_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}

/* ------------------------------------------------------------ key files */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int rm_auth_key_parse(const void *data, size_t len, const char *what,
                      struct rm_auth_key *key, struct rm_error *err)
{
    const uint8_t *d = data;
    size_t i;

    if (len != RM_AUTH_KEY_FILE_LEN)
        return rm_error_set(err, -EINVAL, "key file '%s' holds %zu bytes: "
                            "a key file is %u hex digits and a newline "
                            "(%u bytes, as `remus keygen` writes it)", what,
                            len, 2 * RM_AUTH_KEY_LEN, RM_AUTH_KEY_FILE_LEN);
    for (i = 0; i < 2 * RM_AUTH_KEY_LEN; i++)
        if (hexval(d[i]) < 0)
            return rm_error_set(err, -EINVAL, "key file '%s': character %zu "
                                "is not a hex digit (a key file is %u hex "
                                "digits and a newline)", what, i + 1,
                                2 * RM_AUTH_KEY_LEN);
    if (d[2 * RM_AUTH_KEY_LEN] != '\n')
        return rm_error_set(err, -EINVAL, "key file '%s': no newline after "
                            "the %u hex digits (a key file is %u hex digits "
                            "and a newline)", what, 2 * RM_AUTH_KEY_LEN,
                            2 * RM_AUTH_KEY_LEN);
    for (i = 0; i < RM_AUTH_KEY_LEN; i++)
        key->k[i] = (uint8_t)(hexval(d[2 * i]) << 4 | hexval(d[2 * i + 1]));
    return 0;
}

int rm_auth_key_load(const char *path, struct rm_auth_key *key,
                     struct rm_error *err)
{
    uint8_t buf[2 * RM_AUTH_KEY_FILE_LEN];   /* room to tell the size */
    struct stat st;
    ssize_t n;
    size_t got = 0;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return rm_error_set(err, -errno, "cannot open key file '%s': %s",
                            path, strerror(errno));
    if (fstat(fd, &st)) {
        rc = rm_error_set(err, -errno, "key file '%s': %s", path,
                          strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rm_error_set(err, -EINVAL, "key file '%s' is not a regular "
                          "file", path);
        goto out;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        rc = rm_error_set(err, -EPERM, "key file '%s' belongs to uid %u, "
                          "not to us (uid %u) or root: refused (mode "
                          "%04o)", path, (unsigned)st.st_uid,
                          (unsigned)geteuid(),
                          (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = rm_error_set(err, -EPERM, "key file '%s' has mode %04o: it is "
                          "%s by %s; a shared key must stay secret: chmod "
                          "600 it", path, (unsigned)(st.st_mode & 07777),
                          st.st_mode & (S_IRGRP | S_IROTH) ? "readable" :
                          st.st_mode & (S_IWGRP | S_IWOTH) ? "writable" :
                          "usable",
                          st.st_mode & S_IRWXO ? "others" : "its group");
        goto out;
    }
    for (;;) {
        n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = rm_error_set(err, -errno, "reading key file '%s': %s", path,
                              strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == sizeof(buf)) {
            rc = rm_error_set(err, -EINVAL, "key file '%s' is longer than "
                              "a key file (%u hex digits and a newline)",
                              path, 2 * RM_AUTH_KEY_LEN);
            goto out;
        }
    }
    rc = rm_auth_key_parse(buf, got, path, key, err);
    if (!rc && sodium_is_zero(key->k, sizeof(key->k)))
        rc = rm_error_set(err, -EINVAL, "key file '%s' holds an all-zero "
                          "key", path);
out:
    rm_auth_wipe(buf, sizeof(buf));
    close(fd);
    return rc;
}

int rm_auth_key_generate(const char *path, struct rm_error *err)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t k[RM_AUTH_KEY_LEN];
    char text[2 * RM_AUTH_KEY_LEN + 1];
    size_t i;
    int fd, rc;

    rc = rm_auth_init(err);
    if (rc)
        return rc;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return rm_error_set(err, -EEXIST, "'%s' exists: not "
                                "overwriting a key file", path);
        return rm_error_set(err, -errno, "cannot create '%s': %s", path,
                            strerror(errno));
    }
    randombytes_buf(k, sizeof(k));
    for (i = 0; i < sizeof(k); i++) {
        text[2 * i] = hex[k[i] >> 4];
        text[2 * i + 1] = hex[k[i] & 15];
    }
    text[2 * RM_AUTH_KEY_LEN] = '\n';
    /* The umask may have cleared bits but never adds any: force 0600. */
    if (fchmod(fd, 0600))
        rc = -errno;
    if (!rc)
        rc = rm_write_all(fd, text, sizeof(text));
    if (!rc && fsync(fd))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    if (rc) {
        rm_error_set(err, rc, "writing '%s': %s", path, strerror(-rc));
        unlink(path);
    }
    rm_auth_wipe(k, sizeof(k));
    rm_auth_wipe(text, sizeof(text));
    return rc;
}

/* ------------------------------------------------------------ handshake */

int rm_auth_session_derive(const struct rm_auth_key *key,
                           const uint8_t *hello, size_t hello_len,
                           const uint8_t *reply, size_t reply_len,
                           struct rm_auth_session *s)
{
    static const char label[] = "remus-auth-v1 transcript";
    crypto_generichash_state h;
    uint8_t master[crypto_kdf_KEYBYTES];
    uint8_t lens[16];
    uint64_t l1 = hello_len, l2 = reply_len;
    int rc = 0;

    memset(s, 0, sizeof(*s));
    /* The lengths keep the two frames' boundary unambiguous. */
    memcpy(lens, &l1, 8);
    memcpy(lens + 8, &l2, 8);
    if (crypto_generichash_init(&h, NULL, 0, sizeof(s->transcript)) ||
        crypto_generichash_update(&h, (const uint8_t *)label,
                                  sizeof(label)) ||
        crypto_generichash_update(&h, lens, sizeof(lens)) ||
        crypto_generichash_update(&h, hello, hello_len) ||
        crypto_generichash_update(&h, reply, reply_len) ||
        crypto_generichash_final(&h, s->transcript, sizeof(s->transcript)))
        return -EIO;
    if (crypto_generichash(master, sizeof(master), s->transcript,
                           sizeof(s->transcript), key->k, sizeof(key->k))) {
        rc = -EIO;
        goto out;
    }
    if (crypto_kdf_derive_from_key(s->mac_primary, 32, KDF_MAC_PRIMARY,
                                   KDF_CONTEXT, master) ||
        crypto_kdf_derive_from_key(s->mac_secondary, 32, KDF_MAC_SECONDARY,
                                   KDF_CONTEXT, master) ||
        crypto_kdf_derive_from_key(s->ctl_p2s, 32, KDF_CTL_P2S, KDF_CONTEXT,
                                   master) ||
        crypto_kdf_derive_from_key(s->ctl_s2p, 32, KDF_CTL_S2P, KDF_CONTEXT,
                                   master) ||
        crypto_kdf_derive_from_key(s->stream, 32, KDF_STREAM, KDF_CONTEXT,
                                   master))
        rc = -EIO;
out:
    rm_auth_wipe(master, sizeof(master));
    return rc;
}

void rm_auth_proof(const uint8_t mac_key[32], const uint8_t transcript[32],
                   const uint8_t *a, const uint8_t *b, const uint8_t *c,
                   size_t part_len, uint8_t out[RM_AUTH_MAC_LEN])
{
    crypto_generichash_state h;

    crypto_generichash_init(&h, mac_key, 32, RM_AUTH_MAC_LEN);
    crypto_generichash_update(&h, transcript, 32);
    if (a)
        crypto_generichash_update(&h, a, part_len);
    if (b)
        crypto_generichash_update(&h, b, part_len);
    if (c)
        crypto_generichash_update(&h, c, part_len);
    crypto_generichash_final(&h, out, RM_AUTH_MAC_LEN);
}

bool rm_auth_proof_equal(const uint8_t a[RM_AUTH_MAC_LEN],
                         const uint8_t b[RM_AUTH_MAC_LEN])
{
    return sodium_memcmp(a, b, RM_AUTH_MAC_LEN) == 0;
}

/* ------------------------------------------------------------ sealing */

int rm_auth_tx_init(struct rm_auth_tx *tx, const uint8_t key[32],
                    uint8_t header[RM_AUTH_HEADER_LEN])
{
    memset(tx, 0, sizeof(*tx));
    if (crypto_secretstream_xchacha20poly1305_init_push(&tx->st, header,
                                                        key))
        return -EIO;
    return 0;
}

int rm_auth_rx_init(struct rm_auth_rx *rx, const uint8_t key[32],
                    const uint8_t header[RM_AUTH_HEADER_LEN])
{
    memset(rx, 0, sizeof(*rx));
    if (crypto_secretstream_xchacha20poly1305_init_pull(&rx->st, header,
                                                        key))
        return -EBADMSG;
    return 0;
}

int rm_auth_seal(struct rm_auth_tx *tx, const void *in, size_t len,
                 uint8_t *out)
{
    if (crypto_secretstream_xchacha20poly1305_push(
            &tx->st, out, NULL, in, len, NULL, 0,
            crypto_secretstream_xchacha20poly1305_TAG_MESSAGE))
        return -EIO;
    tx->seq++;
    return 0;
}

int rm_auth_open(struct rm_auth_rx *rx, const uint8_t *in, size_t len,
                 uint8_t *out)
{
    unsigned char tag = 0xff;

    if (len < RM_AUTH_ABYTES)
        return -EBADMSG;
    if (crypto_secretstream_xchacha20poly1305_pull(&rx->st, out, NULL, &tag,
                                                   in, len, NULL, 0))
        return -EBADMSG;
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        return -EBADMSG;
    rx->seq++;
    return 0;
}

/* ------------------------------------------------------------ chunk layer */

/* Write out what is sealed so far. */
static int sink_flush(struct rm_auth_sink *as)
{
    int rc;

    if (!as->out.len)
        return 0;
    rc = rm_sink_write(as->lower, as->out.data, as->out.len);
    rm_buf_reset(&as->out);
    return rc;
}

/* Seal @len bytes of as->plain as the next chunk. */
static int sink_seal(struct rm_auth_sink *as, size_t len)
{
    uint32_t be = htonl((uint32_t)(len + RM_AUTH_ABYTES));
    int rc;

    rc = rm_buf_reserve(&as->out, 4 + len + RM_AUTH_ABYTES);
    if (rc)
        return rc;
    memcpy(as->out.data + as->out.len, &be, 4);
    rc = rm_auth_seal(&as->tx, as->plain, len, as->out.data + as->out.len + 4);
    if (rc)
        return rc;
    as->out.len += 4 + len + RM_AUTH_ABYTES;
    as->chunks++;
    /* Bound the batch: about 1 MiB per write to the socket. */
    if (as->out.len >= 16 * (RM_AUTH_CHUNK_MAX + 4 + RM_AUTH_ABYTES))
        return sink_flush(as);
    return 0;
}

static int sink_layer_writev(struct rm_sink *s, const struct iovec *iov,
                             int iovcnt)
{
    struct rm_auth_sink *as = s->layer;
    size_t fill = 0;
    int i, rc = 0;

    for (i = 0; i < iovcnt && !rc; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;

        while (left && !rc) {
            size_t n = RM_AUTH_CHUNK_MAX - fill;

            if (n > left)
                n = left;
            memcpy(as->plain + fill, p, n);
            fill += n;
            p += n;
            left -= n;
            if (fill == RM_AUTH_CHUNK_MAX) {
                rc = sink_seal(as, fill);
                fill = 0;
            }
        }
    }
    /* Every write ends on a chunk boundary: nothing is held back. */
    if (!rc && fill)
        rc = sink_seal(as, fill);
    if (!rc)
        rc = sink_flush(as);
    rm_buf_reset(&as->out);
    return rc;
}

int rm_auth_sink_attach(struct rm_auth_sink *as, struct rm_sink *upper,
                        struct rm_sink *lower, const struct rm_auth_tx *tx)
{
    memset(as, 0, sizeof(*as));
    as->plain = malloc(RM_AUTH_CHUNK_MAX);
    if (!as->plain)
        return -ENOMEM;
    as->tx = *tx;
    as->lower = lower;
    memset(upper, 0, sizeof(*upper));
    upper->fd = -1;
    upper->layer = as;
    upper->layer_writev = sink_layer_writev;
    return 0;
}

void rm_auth_sink_free(struct rm_auth_sink *as)
{
    if (as->plain) {
        rm_auth_wipe(as->plain, RM_AUTH_CHUNK_MAX);
        free(as->plain);
    }
    rm_buf_free(&as->out);
    rm_auth_wipe(&as->tx, sizeof(as->tx));
    as->plain = NULL;
}

/* Read and open the next chunk into as->plain. */
static int src_next_chunk(struct rm_auth_src *as, int timeout_ms,
                          uint64_t plain_at)
{
    uint64_t raw_at = as->lower->offset;
    uint32_t be, len;
    int rc;

    as->lower->timeout_ms = timeout_ms;
    rc = rm_src_read_exact(as->lower, &be, sizeof(be));
    if (rc == -EPIPE)
        rm_error_set(&as->err, rc, "the checkpoint stream was cut at byte %"
                     PRIu64 " inside the length of chunk %" PRIu64 " (at "
                     "connection byte %" PRIu64 ")", plain_at,
                     as->chunks + 1, raw_at);
    if (rc)
        return rc;
    len = ntohl(be);
    if (len <= RM_AUTH_ABYTES || len > RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES) {
        as->failed = true;
        return rm_error_set(&as->err, -EBADMSG, "authentication failed on "
                            "the checkpoint stream at byte %" PRIu64 ": "
                            "chunk %" PRIu64 " (at connection byte %" PRIu64
                            ") claims %u sealed bytes (%u..%u allowed)",
                            plain_at, as->chunks + 1, raw_at, len,
                            RM_AUTH_ABYTES + 1,
                            RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES);
    }
    rc = rm_src_read_exact(as->lower, as->sealed, len);
    if (rc == -ENODATA || rc == -EPIPE) {
        return rm_error_set(&as->err, -EPIPE, "the checkpoint stream was "
                            "cut at byte %" PRIu64 " inside chunk %" PRIu64
                            " (%u sealed bytes announced at connection byte "
                            "%" PRIu64 ", %" PRIu64 " arrived): nothing of "
                            "it is used", plain_at, as->chunks + 1, len,
                            raw_at, as->lower->offset - raw_at - 4);
    }
    if (rc)
        return rc;
    rc = rm_auth_open(&as->rx, as->sealed, len, as->plain);
    if (rc) {
        as->failed = true;
        return rm_error_set(&as->err, -EBADMSG, "authentication failed on "
                            "the checkpoint stream at byte %" PRIu64 ": "
                            "chunk %" PRIu64 " (%u bytes at connection byte %"
                            PRIu64 ") was tampered with, replayed, "
                            "reordered or sealed with another key",
                            plain_at, as->chunks + 1, len, raw_at);
    }
    as->chunks++;
    as->pos = 0;
    as->len = len - RM_AUTH_ABYTES;
    return 0;
}

static int src_layer_read(struct rm_src *s, void *buf, size_t len)
{
    struct rm_auth_src *as = s->layer;
    uint8_t *p = buf;
    size_t done = 0;
    int rc;

    if (as->failed)
        return as->err.code ? as->err.code : -EBADMSG;
    while (done < len) {
        size_t n;

        if (as->pos == as->len) {
            rc = src_next_chunk(as, s->timeout_ms, s->offset);
            if (rc) {
                if (rc == -ENODATA && done)
                    rc = -EPIPE;
                return rc;
            }
        }
        n = as->len - as->pos;
        if (n > len - done)
            n = len - done;
        memcpy(p + done, as->plain + as->pos, n);
        as->pos += n;
        done += n;
        s->offset += n;
    }
    return 0;
}

int rm_auth_src_attach(struct rm_auth_src *as, struct rm_src *upper,
                       struct rm_src *lower, const struct rm_auth_rx *rx)
{
    memset(as, 0, sizeof(*as));
    as->plain = malloc(RM_AUTH_CHUNK_MAX);
    as->sealed = malloc(RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES);
    if (!as->plain || !as->sealed) {
        free(as->plain);
        free(as->sealed);
        as->plain = as->sealed = NULL;
        return -ENOMEM;
    }
    as->rx = *rx;
    as->lower = lower;
    memset(upper, 0, sizeof(*upper));
    upper->fd = -1;
    upper->timeout_ms = lower->timeout_ms;
    upper->layer = as;
    upper->layer_read = src_layer_read;
    return 0;
}

void rm_auth_src_free(struct rm_auth_src *as)
{
    if (as->plain) {
        rm_auth_wipe(as->plain, RM_AUTH_CHUNK_MAX);
        free(as->plain);
    }
    free(as->sealed);
    rm_auth_wipe(&as->rx, sizeof(as->rx));
    as->plain = as->sealed = NULL;
}
