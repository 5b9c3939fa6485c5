/* SPDX-License-Identifier: MIT */
/*
 * Authentication of the control channel and the checkpoint stream
 * (common/auth.h, proto/channel.h): handshakes over socketpairs (good,
 * wrong key, missing key, replayed), sealed control frames (tampered,
 * replayed, reordered), the stream chunk layer (round trips, tampered,
 * truncated, swapped and oversized chunks), key files and keygen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/io.h"
#include "common/key_resolve.h"
#include "proto/channel.h"

/* ------------------------------------------------------------ helpers */

static void key_fill(struct rm_auth_key *k, uint8_t seed)
{
    size_t i;

    for (i = 0; i < sizeof(k->k); i++)
        k->k[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static void hello_primary(struct rm_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->role = RM_ROLE_PRIMARY;
    snprintf(h->backend, sizeof(h->backend), "kvm");
    snprintf(h->name, sizeof(h->name), "vm");
    h->guest_bytes = 64ull << 20;
    h->nr_vcpus = 1;
    h->interval_ms = 20;
}

static void hello_secondary(struct rm_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->role = RM_ROLE_SECONDARY;
    snprintf(h->backend, sizeof(h->backend), "kvm");
    h->has_session = true;
    memset(h->session, 0xab, sizeof(h->session));
}

/* The server side of a handshake, in a thread. */
struct server {
    struct rm_chan ch;
    struct rm_hello mine, peer;
    pthread_t th;
    int rc;
};

static void *server_main(void *arg)
{
    struct server *s = arg;

    s->rc = rm_chan_handshake_server(&s->ch, &s->mine, &s->peer, 5000);
    return NULL;
}

/* A client and a server channel over a socketpair, each with its key. */
struct pair {
    int fd[2];
    struct rm_chan c;
    struct server s;
    struct rm_hello peer;
    int crc;
};

static void pair_handshake(struct pair *p, const struct rm_auth_key *ck,
                           const struct rm_auth_key *sk)
{
    struct rm_hello mine;

    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    rm_chan_init(&p->c, p->fd[0]);
    rm_chan_init(&p->s.ch, p->fd[1]);
    assert_int_equal(rm_chan_set_key(&p->c, ck), 0);
    assert_int_equal(rm_chan_set_key(&p->s.ch, sk), 0);
    hello_primary(&mine);
    hello_secondary(&p->s.mine);
    assert_int_equal(pthread_create(&p->s.th, NULL, server_main, &p->s), 0);
    p->crc = rm_chan_handshake_client(&p->c, &mine, &p->peer, 5000);
    if (p->crc) {
        /* Let a server still waiting for our proof see the end. */
        shutdown(p->fd[0], SHUT_RDWR);
    }
    pthread_join(p->s.th, NULL);
}

static void pair_close(struct pair *p)
{
    close(p->fd[0]);
    close(p->fd[1]);
    rm_chan_destroy(&p->c);
    rm_chan_destroy(&p->s.ch);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* Read one whole frame (length + body) from @fd into @buf; its size. */
static size_t read_frame(int fd, uint8_t *buf, size_t cap)
{
    uint32_t be, len;

    assert_int_equal(rm_read_all(fd, &be, 4), 0);
    len = ntohl(be);
    assert_true(len + 4 <= cap);
    memcpy(buf, &be, 4);
    assert_int_equal(rm_read_all(fd, buf + 4, len), 0);
    return len + 4;
}

/* ------------------------------------------------------------ handshakes */

static void test_handshake_good(void **state)
{
    struct rm_auth_key k;
    struct pair p;
    struct rm_ctl_msg m;
    int i;

    (void)state;
    key_fill(&k, 1);
    pair_handshake(&p, &k, &k);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.s.rc, 0);
    assert_true(p.c.sealed);
    assert_true(p.s.ch.sealed);
    assert_memory_equal(p.peer.session, p.s.mine.session, RM_CTL_TOKEN_LEN);
    /* Messages both ways, several of them (the sequence advances). */
    for (i = 1; i <= 5; i++) {
        assert_int_equal(rm_chan_send_ack(&p.s.ch, (uint64_t)i, 0x1234u + i,
                                          7), 0);
        assert_int_equal(rm_chan_recv(&p.c, 1000, &m), 0);
        assert_int_equal(m.kind, RM_CTL_ACK);
        assert_int_equal(m.u.ack.epoch, i);
        assert_int_equal(m.u.ack.digest, 0x1234u + i);
        assert_int_equal(rm_chan_send_heartbeat(&p.c, (uint64_t)i, 3), 0);
        assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), 0);
        assert_int_equal(m.kind, RM_CTL_HEARTBEAT);
        assert_int_equal(m.u.heartbeat.seq, i);
    }
    assert_int_equal(rm_chan_send_stop(&p.c, "bye"), 0);
    assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_STOP);
    assert_string_equal(m.u.stop.reason, "bye");
    pair_close(&p);
}

static void test_handshake_frames_are_sealed(void **state)
{
    struct rm_auth_key k;
    struct pair p;
    uint8_t buf[512];
    size_t n;

    (void)state;
    key_fill(&k, 2);
    pair_handshake(&p, &k, &k);
    assert_int_equal(p.crc, 0);
    /* A stop with a recognisable reason must not appear in clear. */
    assert_int_equal(rm_chan_send_stop(&p.c, "SECRET-REASON-TEXT"), 0);
    n = read_frame(p.fd[1], buf, sizeof(buf));
    assert_true(n > 4 + RM_AUTH_ABYTES);
    assert_null(memmem(buf, n, "SECRET-REASON-TEXT", 18));
    pair_close(&p);
}

static void test_handshake_wrong_key(void **state)
{
    struct rm_auth_key a, b;
    struct pair p;

    (void)state;
    key_fill(&a, 3);
    key_fill(&b, 4);
    pair_handshake(&p, &a, &b);
    assert_int_equal(p.crc, -EACCES);
    assert_int_equal(p.s.rc, -EACCES);
    assert_contains(rm_error_str(&p.c.err), "refused our key proof");
    assert_contains(rm_error_str(&p.c.err), "a different key");
    assert_contains(rm_error_str(&p.s.ch.err), "authentication failed");
    assert_contains(rm_error_str(&p.s.ch.err), "key proof does not match");
    assert_false(p.c.sealed);
    assert_false(p.s.ch.sealed);
    pair_close(&p);
}

static void test_handshake_key_mismatch(void **state)
{
    struct rm_auth_key k;
    struct pair p;

    (void)state;
    key_fill(&k, 5);
    /* An unkeyed primary to a keyed secondary. */
    pair_handshake(&p, NULL, &k);
    assert_int_equal(p.s.rc, -EACCES);
    assert_contains(rm_error_str(&p.s.ch.err), "unauthenticated peer");
    assert_int_not_equal(p.crc, 0);
    assert_contains(rm_error_str(&p.c.err), "unauthenticated peer");
    pair_close(&p);
    /* A keyed primary to an unkeyed secondary. */
    pair_handshake(&p, &k, NULL);
    assert_int_equal(p.s.rc, -EACCES);
    assert_contains(rm_error_str(&p.s.ch.err), "authenticates with a key "
                    "and this secondary has none");
    assert_int_not_equal(p.crc, 0);
    assert_contains(rm_error_str(&p.c.err), "this secondary has none");
    pair_close(&p);
}

/* A relay between client and server that records what the client sent. */
struct relay {
    int c, s;
    uint8_t rec[8192];
    size_t rec_len;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    uint8_t buf[4096];

    for (;;) {
        struct pollfd pf[2] = { { .fd = r->c, .events = POLLIN },
                                { .fd = r->s, .events = POLLIN } };
        ssize_t n;

        if (poll(pf, 2, 5000) <= 0)
            break;
        if (pf[0].revents) {
            n = read(r->c, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (r->rec_len + (size_t)n <= sizeof(r->rec)) {
                memcpy(r->rec + r->rec_len, buf, (size_t)n);
                r->rec_len += (size_t)n;
            }
            if (rm_write_all(r->s, buf, (size_t)n))
                break;
        }
        if (pf[1].revents) {
            n = read(r->s, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (rm_write_all(r->c, buf, (size_t)n))
                break;
        }
    }
    return NULL;
}

static void test_handshake_replayed(void **state)
{
    struct rm_auth_key k;
    struct rm_chan c;
    struct server s;
    struct relay r;
    struct rm_hello mine, peer;
    pthread_t rt;
    int cfd[2], sfd[2], rc;

    (void)state;
    key_fill(&k, 6);
    /* A good session, recorded on the wire. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cfd), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sfd), 0);
    memset(&r, 0, sizeof(r));
    r.c = cfd[1];
    r.s = sfd[1];
    assert_int_equal(pthread_create(&rt, NULL, relay_main, &r), 0);
    memset(&s, 0, sizeof(s));
    rm_chan_init(&c, cfd[0]);
    rm_chan_init(&s.ch, sfd[0]);
    assert_int_equal(rm_chan_set_key(&c, &k), 0);
    assert_int_equal(rm_chan_set_key(&s.ch, &k), 0);
    hello_primary(&mine);
    hello_secondary(&s.mine);
    assert_int_equal(pthread_create(&s.th, NULL, server_main, &s), 0);
    rc = rm_chan_handshake_client(&c, &mine, &peer, 5000);
    pthread_join(s.th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(rm_chan_send_ack(&c, 1, 2, 3), 0);
    {
        struct rm_ctl_msg m;

        assert_int_equal(rm_chan_recv(&s.ch, 1000, &m), 0);
    }
    close(cfd[0]);
    pthread_join(rt, NULL);
    close(cfd[1]);
    close(sfd[0]);
    close(sfd[1]);
    rm_chan_destroy(&c);
    rm_chan_destroy(&s.ch);
    assert_true(r.rec_len > 0);

    /* Replayed to a fresh server: its new nonce makes the proof fail. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sfd), 0);
    assert_int_equal(rm_write_all(sfd[1], r.rec, r.rec_len), 0);
    memset(&s, 0, sizeof(s));
    rm_chan_init(&s.ch, sfd[0]);
    assert_int_equal(rm_chan_set_key(&s.ch, &k), 0);
    hello_secondary(&s.mine);
    rc = rm_chan_handshake_server(&s.ch, &s.mine, &s.peer, 2000);
    assert_int_equal(rc, -EACCES);
    assert_contains(rm_error_str(&s.ch.err), "key proof does not match");
    assert_contains(rm_error_str(&s.ch.err), "replayed");
    assert_false(s.ch.sealed);
    close(sfd[0]);
    close(sfd[1]);
    rm_chan_destroy(&s.ch);
}

/* ------------------------------------------------------------ sealed frames */

/*
 * After a good handshake, redirect the client's frames to a pipe we read
 * (the sealing state does not depend on the descriptor) so that frames
 * can be changed before they reach the server.
 */
static int divert_client(struct pair *p, int tap[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, tap), 0);
    p->c.fd = tap[0];
    return tap[1];
}

static void test_frame_flipped(void **state)
{
    struct rm_auth_key k;
    struct pair p;
    struct rm_ctl_msg m;
    uint8_t f[512];
    size_t n, i;
    int tap[2];

    (void)state;
    key_fill(&k, 7);
    /* Every byte of a sealed frame's body is covered. */
    for (i = 4; i < 40; i += 5) {
        pair_handshake(&p, &k, &k);
        assert_int_equal(p.crc, 0);
        divert_client(&p, tap);
        assert_int_equal(rm_chan_send_ack(&p.c, 1, 99, 1), 0);
        n = read_frame(tap[1], f, sizeof(f));
        if (i >= n) {
            close(tap[0]);
            close(tap[1]);
            pair_close(&p);
            break;
        }
        f[i] ^= 0x01;
        assert_int_equal(rm_write_all(p.fd[0], f, n), 0);
        assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), -EBADMSG);
        assert_contains(rm_error_str(&p.s.ch.err), "authentication failed "
                        "on control message 1");
        close(tap[0]);
        close(tap[1]);
        pair_close(&p);
    }
}

static void test_frame_replayed_reordered(void **state)
{
    struct rm_auth_key k;
    struct pair p;
    struct rm_ctl_msg m;
    uint8_t f1[512], f2[512];
    size_t n1, n2;
    int tap[2];

    (void)state;
    key_fill(&k, 8);
    /* Replayed: the same frame twice. */
    pair_handshake(&p, &k, &k);
    assert_int_equal(p.crc, 0);
    divert_client(&p, tap);
    assert_int_equal(rm_chan_send_ack(&p.c, 1, 11, 1), 0);
    n1 = read_frame(tap[1], f1, sizeof(f1));
    assert_int_equal(rm_write_all(p.fd[0], f1, n1), 0);
    assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), 0);
    assert_int_equal(m.u.ack.epoch, 1);
    assert_int_equal(rm_write_all(p.fd[0], f1, n1), 0);
    assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), -EBADMSG);
    assert_contains(rm_error_str(&p.s.ch.err), "control message 2");
    close(tap[0]);
    close(tap[1]);
    pair_close(&p);

    /* Reordered: the second frame first. */
    pair_handshake(&p, &k, &k);
    assert_int_equal(p.crc, 0);
    divert_client(&p, tap);
    assert_int_equal(rm_chan_send_ack(&p.c, 1, 11, 1), 0);
    assert_int_equal(rm_chan_send_ack(&p.c, 2, 22, 1), 0);
    n1 = read_frame(tap[1], f1, sizeof(f1));
    n2 = read_frame(tap[1], f2, sizeof(f2));
    assert_int_equal(rm_write_all(p.fd[0], f2, n2), 0);
    assert_int_equal(rm_write_all(p.fd[0], f1, n1), 0);
    assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), -EBADMSG);
    assert_contains(rm_error_str(&p.s.ch.err), "replayed, reordered");
    close(tap[0]);
    close(tap[1]);
    pair_close(&p);

    /* An unsealed frame on a sealed channel (an injection). */
    pair_handshake(&p, &k, &k);
    assert_int_equal(p.crc, 0);
    {
        struct rm_ctl_msg stop = { .kind = RM_CTL_STOP };
        uint8_t *frame;
        size_t len;

        snprintf(stop.u.stop.reason, sizeof(stop.u.stop.reason), "injected");
        assert_int_equal(rm_ctl_encode(&stop, &frame, &len), 0);
        assert_int_equal(rm_write_all(p.fd[0], frame, len), 0);
        free(frame);
    }
    assert_int_equal(rm_chan_recv(&p.s.ch, 1000, &m), -EBADMSG);
    pair_close(&p);
}

/* ------------------------------------------------------------ stream layer */

struct stream {
    uint8_t key[32];
    uint8_t header[RM_AUTH_HEADER_LEN];
    struct rm_auth_tx tx;
    struct rm_auth_rx rx;
    struct rm_buf wire;
    struct rm_sink lower, upper;
    struct rm_auth_sink as;
};

static void stream_open(struct stream *st, uint8_t seed)
{
    memset(st, 0, sizeof(*st));
    memset(st->key, seed, sizeof(st->key));
    assert_int_equal(rm_auth_init(NULL), 0);
    assert_int_equal(rm_auth_tx_init(&st->tx, st->key, st->header), 0);
    assert_int_equal(rm_auth_rx_init(&st->rx, st->key, st->header), 0);
    rm_sink_init_buf(&st->lower, &st->wire);
    assert_int_equal(rm_auth_sink_attach(&st->as, &st->upper, &st->lower,
                                         &st->tx), 0);
}

static void stream_close(struct stream *st)
{
    rm_auth_sink_free(&st->as);
    rm_buf_free(&st->wire);
}

/* The pattern byte at stream offset @off. */
static uint8_t pat(uint64_t off)
{
    return (uint8_t)(off * 2654435761u >> 13);
}

static void fill_pat(uint8_t *p, size_t len, uint64_t off)
{
    size_t i;

    for (i = 0; i < len; i++)
        p[i] = pat(off + i);
}

/* Write @total bytes of the pattern in writes of the given sizes. */
static uint64_t write_sizes(struct stream *st, const size_t *sizes,
                            size_t count)
{
    uint64_t off = 0;
    size_t i;

    for (i = 0; i < count; i++) {
        uint8_t *b = malloc(sizes[i] ? sizes[i] : 1);

        assert_non_null(b);
        fill_pat(b, sizes[i], off);
        if (i % 2 && sizes[i] > 3) {
            /* Odd writes as three iovecs. */
            struct iovec iov[3] = {
                { b, 1 }, { b + 1, sizes[i] / 2 },
                { b + 1 + sizes[i] / 2, sizes[i] - 1 - sizes[i] / 2 },
            };

            assert_int_equal(rm_sink_writev(&st->upper, iov, 3), 0);
        } else {
            assert_int_equal(rm_sink_write(&st->upper, b, sizes[i]), 0);
        }
        off += sizes[i];
        free(b);
    }
    assert_int_equal(st->upper.offset, off);
    return off;
}

/* Read back through the layer from @wire; returns rm_src_read_exact's rc
 * of the first failing read (0: all @total bytes read and checked). */
static int read_back(const struct rm_auth_rx *rx, const uint8_t *wire,
                     size_t wire_len, uint64_t total, size_t step,
                     struct rm_auth_src *as, struct rm_src *upper)
{
    struct rm_src lower;
    uint8_t *b = malloc(step);
    uint64_t off = 0;
    int rc = 0;

    assert_non_null(b);
    rm_src_init_mem(&lower, wire, wire_len);
    /* The layer keeps a pointer to lower: keep it alive in a static. */
    {
        static struct rm_src keep;

        keep = lower;
        assert_int_equal(rm_auth_src_attach(as, upper, &keep, rx), 0);
    }
    while (off < total) {
        size_t n = total - off < step ? (size_t)(total - off) : step;
        size_t i;

        rc = rm_src_read_exact(upper, b, n);
        if (rc)
            break;
        for (i = 0; i < n; i++)
            if (b[i] != pat(off + i))
                fail_msg("byte %" PRIu64 " differs", off + i);
        off += n;
    }
    free(b);
    return rc;
}

static void test_stream_roundtrip(void **state)
{
    static const size_t sizes[] = {
        1, 0, 17, 4096, 65535, 65536, 65537, 200000, 3, 131072, 1 << 20,
        12345, 65536 * 3 + 5,
    };
    static const size_t steps[] = { 1, 7, 4096, 65536, 100000 };
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    uint64_t total;
    size_t s;
    uint8_t extra;

    (void)state;
    stream_open(&st, 0x11);
    total = write_sizes(&st, sizes, sizeof(sizes) / sizeof(sizes[0]));
    /* Overhead: 4 + 17 bytes per chunk of at most 64 KiB. */
    assert_true(st.wire.len > total);
    assert_true(st.wire.len < total + (total / 65536 + 20) * 21);
    /* Nothing of the plaintext appears on the wire. */
    {
        uint8_t probe[32];

        fill_pat(probe, sizeof(probe), 4096);
        assert_null(memmem(st.wire.data, st.wire.len, probe, sizeof(probe)));
    }
    for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        if (steps[s] == 1 && s)
            continue;
        assert_int_equal(read_back(&st.rx, st.wire.data, st.wire.len,
                                   steps[s] == 1 ? 300000 : total, steps[s],
                                   &as, &upper), 0);
        if (steps[s] != 1) {
            assert_int_equal(upper.offset, total);
            /* The clean end of the stream. */
            assert_int_equal(rm_src_read_exact(&upper, &extra, 1), -ENODATA);
        }
        rm_auth_src_free(&as);
    }
    stream_close(&st);
}

/* Offsets (on the wire) of the chunks of @wire. */
static size_t chunk_offsets(const struct rm_buf *wire, size_t *offs,
                            size_t cap)
{
    size_t at = 0, n = 0;

    while (at + 4 <= wire->len && n < cap) {
        uint32_t be;

        memcpy(&be, wire->data + at, 4);
        offs[n++] = at;
        at += 4 + ntohl(be);
    }
    assert_int_equal(at, wire->len);
    return n;
}

/* Four full chunks, then one of 1000 bytes. */
static uint64_t stream_four_chunks(struct stream *st, size_t *offs,
                                   size_t *nchunks)
{
    static const size_t sizes[] = { 4 * 65536 + 1000 };
    uint64_t total;

    stream_open(st, 0x22);
    total = write_sizes(st, sizes, 1);
    *nchunks = chunk_offsets(&st->wire, offs, 16);
    assert_int_equal(*nchunks, 5);
    return total;
}

static void test_stream_flipped(void **state)
{
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    size_t offs[16], n, pos[] = { 4, 4 + 16, 4 + 100, 4 + 65536 + 16 };
    uint64_t total;
    size_t i;

    (void)state;
    total = stream_four_chunks(&st, offs, &n);
    for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        /* A flipped byte anywhere in chunk 3 (or in its length). */
        st.wire.data[offs[2] + pos[i]] ^= 0x40;
        assert_int_equal(read_back(&st.rx, st.wire.data, st.wire.len, total,
                                   4096, &as, &upper), -EBADMSG);
        assert_true(as.failed);
        assert_contains(rm_error_str(&as.err), "authentication failed on "
                        "the checkpoint stream at byte 131072");
        /* Nothing of the bad chunk was delivered. */
        assert_int_equal(upper.offset, 131072);
        /* And the stream stays over. */
        {
            uint8_t b;

            assert_int_equal(rm_src_read_exact(&upper, &b, 1), -EBADMSG);
        }
        rm_auth_src_free(&as);
        st.wire.data[offs[2] + pos[i]] ^= 0x40;
    }
    /* Untouched again: reads whole. */
    assert_int_equal(read_back(&st.rx, st.wire.data, st.wire.len, total,
                               4096, &as, &upper), 0);
    rm_auth_src_free(&as);
    stream_close(&st);
}

static void test_stream_truncated(void **state)
{
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    size_t offs[16], n;
    uint64_t total;

    (void)state;
    total = stream_four_chunks(&st, offs, &n);
    /* Cut inside chunk 2. */
    assert_int_equal(read_back(&st.rx, st.wire.data, offs[1] + 1000, total,
                               4096, &as, &upper), -EPIPE);
    assert_false(as.failed);
    assert_contains(rm_error_str(&as.err), "cut at byte 65536 inside "
                    "chunk 2");
    assert_int_equal(upper.offset, 65536);
    rm_auth_src_free(&as);
    /* Cut inside chunk 4's length. */
    assert_int_equal(read_back(&st.rx, st.wire.data, offs[3] + 2, total,
                               4096, &as, &upper), -EPIPE);
    assert_contains(rm_error_str(&as.err), "cut at byte 196608 inside the "
                    "length of chunk 4");
    rm_auth_src_free(&as);
    /* A chunk that lost its last byte but whose length was rewritten to
     * match: the tag no longer verifies. */
    {
        uint8_t *w = malloc(st.wire.len);
        uint32_t be;

        assert_non_null(w);
        memcpy(w, st.wire.data, st.wire.len);
        memcpy(&be, w + offs[4], 4);
        be = htonl(ntohl(be) - 1);
        memcpy(w + offs[4], &be, 4);
        assert_int_equal(read_back(&st.rx, w, st.wire.len - 1, total, 4096,
                                   &as, &upper), -EBADMSG);
        assert_contains(rm_error_str(&as.err), "at byte 262144");
        rm_auth_src_free(&as);
        free(w);
    }
    stream_close(&st);
}

static void test_stream_swapped_dropped(void **state)
{
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    size_t offs[16], n, clen;
    uint64_t total;
    uint8_t *w;

    (void)state;
    total = stream_four_chunks(&st, offs, &n);
    clen = offs[1] - offs[0];
    w = malloc(st.wire.len);
    assert_non_null(w);
    /* Chunks 2 and 3 swapped. */
    memcpy(w, st.wire.data, st.wire.len);
    memcpy(w + offs[1], st.wire.data + offs[2], clen);
    memcpy(w + offs[2], st.wire.data + offs[1], clen);
    assert_int_equal(read_back(&st.rx, w, st.wire.len, total, 65536, &as,
                               &upper), -EBADMSG);
    assert_contains(rm_error_str(&as.err), "at byte 65536: chunk 2");
    assert_contains(rm_error_str(&as.err), "reordered");
    rm_auth_src_free(&as);
    /* Chunk 2 dropped. */
    memcpy(w, st.wire.data, offs[1]);
    memcpy(w + offs[1], st.wire.data + offs[2], st.wire.len - offs[2]);
    assert_int_equal(read_back(&st.rx, w, st.wire.len - clen, total, 65536,
                               &as, &upper), -EBADMSG);
    assert_contains(rm_error_str(&as.err), "at byte 65536");
    rm_auth_src_free(&as);
    /* Chunk 1 replayed in place of chunk 2. */
    memcpy(w, st.wire.data, st.wire.len);
    memcpy(w + offs[1], st.wire.data + offs[0], clen);
    assert_int_equal(read_back(&st.rx, w, st.wire.len, total, 65536, &as,
                               &upper), -EBADMSG);
    assert_contains(rm_error_str(&as.err), "at byte 65536");
    rm_auth_src_free(&as);
    free(w);
    stream_close(&st);
}

static void test_stream_bad_length(void **state)
{
    static const uint32_t bad[] = { 0, 1, RM_AUTH_ABYTES,
                                    RM_AUTH_CHUNK_MAX + RM_AUTH_ABYTES + 1,
                                    0x7fffffffu, 0xffffffffu };
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    size_t offs[16], n, i;
    uint64_t total;
    uint32_t orig;

    (void)state;
    total = stream_four_chunks(&st, offs, &n);
    memcpy(&orig, st.wire.data + offs[3], 4);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint32_t be = htonl(bad[i]);

        memcpy(st.wire.data + offs[3], &be, 4);
        assert_int_equal(read_back(&st.rx, st.wire.data, st.wire.len, total,
                                   65536, &as, &upper), -EBADMSG);
        assert_true(as.failed);
        assert_contains(rm_error_str(&as.err), "at byte 196608: chunk 4");
        assert_contains(rm_error_str(&as.err), "sealed bytes");
        rm_auth_src_free(&as);
    }
    memcpy(st.wire.data + offs[3], &orig, 4);
    stream_close(&st);
}

static void test_stream_wrong_key(void **state)
{
    struct stream st;
    struct rm_auth_src as;
    struct rm_src upper;
    struct rm_auth_rx other;
    uint8_t k2[32];
    size_t offs[16], n;
    uint64_t total;

    (void)state;
    total = stream_four_chunks(&st, offs, &n);
    /* The right header with another key. */
    memset(k2, 0x23, sizeof(k2));
    assert_int_equal(rm_auth_rx_init(&other, k2, st.header), 0);
    assert_int_equal(read_back(&other, st.wire.data, st.wire.len, total,
                               65536, &as, &upper), -EBADMSG);
    assert_contains(rm_error_str(&as.err), "at byte 0: chunk 1");
    assert_contains(rm_error_str(&as.err), "another key");
    assert_int_equal(upper.offset, 0);
    rm_auth_src_free(&as);
    stream_close(&st);
}

/* ------------------------------------------------------------ key files */

static char tmpdir[64];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/remus-test-auth.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len,
                       mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(rm_write_all(fd, data, len), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* Load @path and expect -@rc with @why in the message. */
static void expect_refused(const char *path, int rc, const char *why)
{
    struct rm_auth_key k;
    struct rm_error err = { 0 };

    assert_int_equal(rm_auth_key_load(path, &k, &err), rc);
    assert_contains(rm_error_str(&err), why);
    assert_contains(rm_error_str(&err), path);
}

static void test_key_files(void **state)
{
    static const char hex[] =
        "00112233445566778899aabbccddeeff"
        "0123456789ABCDEFfedcba9876543210\n";
    struct rm_auth_key k;
    struct rm_error err = { 0 };
    uint8_t raw[32];
    char path[128], bad[80];
    size_t i;

    (void)state;
    snprintf(path, sizeof(path), "%s/key", tmpdir);

    /* The one format: 64 hex digits (either case) and a newline. */
    write_file(path, hex, strlen(hex), 0600);
    assert_int_equal(rm_auth_key_load(path, &k, &err), 0);
    assert_int_equal(k.k[0], 0x00);
    assert_int_equal(k.k[1], 0x11);
    assert_int_equal(k.k[15], 0xff);
    assert_int_equal(k.k[16], 0x01);
    assert_int_equal(k.k[20], 0x89);
    assert_int_equal(k.k[23], 0xef);
    assert_int_equal(k.k[31], 0x10);
    write_file(path, hex, strlen(hex), 0400);
    assert_int_equal(rm_auth_key_load(path, &k, &err), 0);

    /* 32 bytes of anything are not a raw key (even 32 printable ones). */
    for (i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(0xf0 ^ i);
    write_file(path, raw, sizeof(raw), 0600);
    expect_refused(path, -EINVAL, "holds 32 bytes: a key file is 64 hex "
                   "digits and a newline");
    write_file(path, "correct horse battery staple 123", 32, 0600);
    expect_refused(path, -EINVAL, "holds 32 bytes");

    /* Wrong length; no newline; extra whitespace; not hex. */
    write_file(path, hex, 63, 0600);
    expect_refused(path, -EINVAL, "holds 63 bytes");
    write_file(path, hex, 64, 0600);
    expect_refused(path, -EINVAL, "holds 64 bytes");
    memcpy(bad, hex, 64);
    memcpy(bad + 64, "\n\n", 2);
    write_file(path, bad, 66, 0600);
    expect_refused(path, -EINVAL, "holds 66 bytes");
    bad[64] = ' ';
    write_file(path, bad, 65, 0600);
    expect_refused(path, -EINVAL, "no newline after the 64 hex digits");
    write_file(path, "", 0, 0600);
    expect_refused(path, -EINVAL, "holds 0 bytes");
    {
        char big[200];

        memset(big, 'a', sizeof(big));
        write_file(path, big, sizeof(big), 0600);
        expect_refused(path, -EINVAL, "longer than a key file");
    }
    memcpy(bad, hex, sizeof(hex));
    bad[10] = 'g';
    write_file(path, bad, strlen(bad), 0600);
    expect_refused(path, -EINVAL, "character 11 is not a hex digit");

    /* Any group or other permission; the mode is named. */
    write_file(path, hex, strlen(hex), 0644);
    expect_refused(path, -EPERM, "has mode 0644: it is readable by others");
    write_file(path, hex, strlen(hex), 0602);
    expect_refused(path, -EPERM, "has mode 0602: it is writable by others");
    write_file(path, hex, strlen(hex), 0640);
    expect_refused(path, -EPERM, "has mode 0640: it is readable by its "
                   "group");
    write_file(path, hex, strlen(hex), 0620);
    expect_refused(path, -EPERM, "mode 0620");

    /* Owned by another user (not us, not root), even with mode 0600. */
    write_file(path, hex, strlen(hex), 0600);
    if (geteuid() == 0) {
        assert_int_equal(chown(path, 65534, 65534), 0);
        expect_refused(path, -EPERM, "belongs to uid 65534");
        assert_int_equal(chown(path, 0, 0), 0);
    }

    /* All zero. */
    memset(bad, '0', 64);
    bad[64] = '\n';
    write_file(path, bad, 65, 0600);
    expect_refused(path, -EINVAL, "all-zero");

    /* Missing, or a directory. */
    expect_refused("/nonexistent/key", -ENOENT, "cannot open key file");
    expect_refused(tmpdir, -EINVAL, "not a regular file");
    unlink(path);
}

static void test_keygen(void **state)
{
    struct rm_auth_key k1, k2, k3;
    struct rm_error err = { 0 };
    struct stat st;
    char p1[128], p2[128];
    mode_t old;

    (void)state;
    snprintf(p1, sizeof(p1), "%s/gen1", tmpdir);
    snprintf(p2, sizeof(p2), "%s/gen2", tmpdir);
    unlink(p1);
    unlink(p2);
    old = umask(0);               /* a permissive umask changes nothing */
    assert_int_equal(rm_auth_key_generate(p1, &err), 0);
    umask(old);
    assert_int_equal(stat(p1, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 65);
    assert_int_equal(rm_auth_key_load(p1, &k1, &err), 0);

    /* Never overwrites. */
    rm_error_clear(&err);
    assert_int_equal(rm_auth_key_generate(p1, &err), -EEXIST);
    assert_contains(rm_error_str(&err), "not overwriting");
    assert_int_equal(rm_auth_key_load(p1, &k3, &err), 0);
    assert_memory_equal(k1.k, k3.k, sizeof(k1.k));
    /* Nor through a symbolic link. */
    assert_int_equal(symlink(p1, p2), 0);
    rm_error_clear(&err);
    assert_int_not_equal(rm_auth_key_generate(p2, &err), 0);
    unlink(p2);

    /* Two keys differ. */
    assert_int_equal(rm_auth_key_generate(p2, &err), 0);
    assert_int_equal(rm_auth_key_load(p2, &k2, &err), 0);
    assert_memory_not_equal(k1.k, k2.k, sizeof(k1.k));

    /* A generated key works for a handshake. */
    {
        struct pair p;

        pair_handshake(&p, &k1, &k3);
        assert_int_equal(p.crc, 0);
        assert_int_equal(p.s.rc, 0);
        pair_close(&p);
        pair_handshake(&p, &k1, &k2);
        assert_int_equal(p.crc, -EACCES);
        pair_close(&p);
    }
    unlink(p1);
    unlink(p2);
}

/* rm_key_read_fd (`--key-file -`): @text written to a pipe whose write end
 * stays open unless @close_writer; 0 or -errno from the read. */
static int key_from_pipe(const char *text, size_t len, bool close_writer,
                         struct rm_auth_key *key, struct rm_error *err)
{
    int p[2], rc;

    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], text, len), (ssize_t)len);
    if (close_writer)
        close(p[1]);
    rc = rm_key_read_fd(p[0], "the key on stdin", key, err);
    close(p[0]);
    if (!close_writer)
        close(p[1]);
    return rc;
}

static void test_key_from_fd(void **state)
{
    char text[RM_AUTH_KEY_FILE_LEN + 2];
    struct rm_auth_key key, want;
    struct rm_error err = { 0 };
    unsigned i;

    (void)state;
    key_fill(&want, 7);
    for (i = 0; i < RM_AUTH_KEY_LEN; i++)
        snprintf(text + 2 * i, 3, "%02x", want.k[i]);
    strcpy(text + 2 * RM_AUTH_KEY_LEN, "\n");
    /* The whole key, the writer still holding its end: read, not hung. */
    memset(&key, 0, sizeof(key));
    assert_int_equal(key_from_pipe(text, RM_AUTH_KEY_FILE_LEN, false, &key,
                                   &err), 0);
    assert_memory_equal(key.k, want.k, RM_AUTH_KEY_LEN);
    /* Cut short by EOF: refused, naming the source. */
    err = (struct rm_error){ 0 };
    assert_int_equal(key_from_pipe(text, 40, true, &key, &err), -EINVAL);
    assert_contains(err.msg, "the key on stdin");
    /* One byte too many is no key file either. */
    strcpy(text + 2 * RM_AUTH_KEY_LEN, "x\n");
    err = (struct rm_error){ 0 };
    assert_int_equal(key_from_pipe(text, RM_AUTH_KEY_FILE_LEN + 1, true,
                                   &key, &err), -EINVAL);
    /* The all-zero key is refused as from a file. */
    memset(text, '0', 2 * RM_AUTH_KEY_LEN);
    strcpy(text + 2 * RM_AUTH_KEY_LEN, "\n");
    err = (struct rm_error){ 0 };
    assert_int_equal(key_from_pipe(text, RM_AUTH_KEY_FILE_LEN, true, &key,
                                   &err), -EINVAL);
    assert_contains(err.msg, "all-zero");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_good),
        cmocka_unit_test(test_handshake_frames_are_sealed),
        cmocka_unit_test(test_handshake_wrong_key),
        cmocka_unit_test(test_handshake_key_mismatch),
        cmocka_unit_test(test_handshake_replayed),
        cmocka_unit_test(test_frame_flipped),
        cmocka_unit_test(test_frame_replayed_reordered),
        cmocka_unit_test(test_stream_roundtrip),
        cmocka_unit_test(test_stream_flipped),
        cmocka_unit_test(test_stream_truncated),
        cmocka_unit_test(test_stream_swapped_dropped),
        cmocka_unit_test(test_stream_bad_length),
        cmocka_unit_test(test_stream_wrong_key),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_key_from_fd),
    };

    signal(SIGPIPE, SIG_IGN);
    tu_case_filter();
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
