/* SPDX-License-Identifier: MIT */
/* The control channel: framing, validation, handshake refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/channel.h"
#include "proto/disks.h"
#include "proto/liveness.h"
#include "common/io.h"
#include "proto/timing.h"

struct pair {
    int fd[2];
    struct rm_chan a, b;
};

static void pair_open(struct pair *p)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    rm_chan_init(&p->a, p->fd[0]);
    rm_chan_init(&p->b, p->fd[1]);
}

static void pair_close(struct pair *p)
{
    close(p->fd[0]);
    close(p->fd[1]);
    rm_chan_destroy(&p->a);
    rm_chan_destroy(&p->b);
}

static void test_roundtrip(void **state)
{
    struct pair p;
    struct rm_ctl_msg m;

    (void)state;
    pair_open(&p);
    assert_int_equal(rm_chan_send_ack(&p.a, 7, 0xdeadbeefcafef00dull, 12), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_ACK);
    assert_int_equal(m.u.ack.epoch, 7);
    assert_true(m.u.ack.digest == 0xdeadbeefcafef00dull);
    assert_int_equal(m.u.ack.pages, 12);
    assert_int_equal(rm_chan_send_heartbeat(&p.b, 3, 9), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_HEARTBEAT);
    assert_int_equal(m.u.heartbeat.seq, 3);
    assert_int_equal(m.u.heartbeat.committed_epoch, 9);
    assert_int_equal(rm_chan_send_stop(&p.a, "bye"), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_STOP);
    assert_string_equal(m.u.stop.reason, "bye");
    assert_int_equal(rm_chan_send_failover(&p.a, "now"), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_FAILOVER);
    /* timeout and peer close */
    assert_int_equal(rm_chan_recv(&p.b, 10, &m), -ETIMEDOUT);
    close(p.fd[0]);
    p.fd[0] = -1;
    assert_int_equal(rm_chan_recv(&p.b, 1000, &m), -EPIPE);
    pair_close(&p);
}

/* Liveness: the time this side's message() takes (COLO's checkpoint
 * request pauses the replica) is not the peer's silence. */
struct live {
    pthread_mutex_t lock;
    uint64_t last_heard;
    int over, lost, acks;
    int stall_once_ms;            /* progress() sleeps this long, once */
    char why[200];
};

static bool live_over(void *o) { return ((struct live *)o)->over; }
static uint64_t live_progress(void *o)
{
    struct live *l = o;

    if (l->stall_once_ms) {       /* this side does not run for a while */
        usleep((useconds_t)l->stall_once_ms * 1000);
        l->stall_once_ms = 0;
    }
    return 0;
}
static void live_lost(void *o, int code, const char *why)
{
    struct live *l = o;

    (void)code;
    l->lost++;
    snprintf(l->why, sizeof(l->why), "%s", why);
}
static void live_message(void *o, const struct rm_ctl_msg *m)
{
    struct live *l = o;

    if (m->kind == RM_CTL_ACK) {
        l->acks++;
        usleep(300000);           /* longer than the 200 ms timeout */
    }
}

/* A liveness thread on one end of a pair, hearing the "primary" on the
 * other: 20 ms heartbeats, a 200 ms timeout. */
struct live_run {
    struct pair p;
    struct live l;
    struct rm_liveness cfg;
    pthread_t t;
};

static void *live_main(void *arg)
{
    rm_liveness_run(&((struct live_run *)arg)->cfg);
    return NULL;
}

/* Start it, last heard at @heard_ns. */
static void live_start(struct live_run *run, uint64_t heard_ns)
{
    static const struct rm_liveness_ops ops = {
        .over = live_over, .progress = live_progress, .lost = live_lost,
        .message = live_message,
    };

    memset(run, 0, sizeof(*run));
    pthread_mutex_init(&run->l.lock, NULL);
    pair_open(&run->p);
    run->l.last_heard = heard_ns;
    run->cfg = (struct rm_liveness){
        .chan = &run->p.b, .lock = &run->l.lock, .hb_interval_ms = 20,
        .hb_timeout_ms = 200, .peer = "primary",
        .last_heard_ns = &run->l.last_heard, .ops = &ops,
        .opaque = &run->l,
    };
    assert_int_equal(pthread_create(&run->t, NULL, live_main, run), 0);
}

/* The peer: @n heartbeats 20 ms apart (an ack after the @ack_after-th, 0:
 * none), reading what it is sent. */
static void live_peer_beats(struct live_run *run, int n, int ack_after)
{
    struct rm_ctl_msg m;
    int i;

    for (i = 0; i < n; i++) {
        assert_int_equal(rm_chan_send_heartbeat(&run->p.a, (uint64_t)i + 1,
                                                0), 0);
        if (ack_after && i + 1 == ack_after)
            assert_int_equal(rm_chan_send_ack(&run->p.a, 1, 0, 0), 0);
        while (rm_chan_recv(&run->p.a, 0, &m) == 0)
            ;                     /* its heartbeats */
        usleep(20000);
    }
}

/* End it; fail if it took the peer for lost. */
static void live_stop(struct live_run *run)
{
    pthread_mutex_lock(&run->l.lock);
    run->l.over = 1;
    pthread_mutex_unlock(&run->l.lock);
    assert_int_equal(rm_chan_send_heartbeat(&run->p.a, 99, 0), 0);
    pthread_join(run->t, NULL);
    pair_close(&run->p);
    if (run->l.lost)
        fail_msg("the peer was declared lost: %s", run->l.why);
}

static void test_liveness_slow_handler(void **state)
{
    static struct live_run run;

    (void)state;
    live_start(&run, rm_now_ns());
    live_peer_beats(&run, 40, 6);  /* 0.8 s, an ack at 0.1 s */
    live_stop(&run);
    assert_int_equal(run.l.acks, 1);
}

/*
 * A stamp written after this side read its clock (another thread heard a
 * message between the clock read and the lock) is "just now", not 584
 * years of silence: an unsigned "now - stamp" wrapped, and a COLO
 * secondary whose idle stream read timed out took the live primary for
 * stalled (about one `remus drill --colo` in four) and ended protection.
 */
static void test_liveness_stamp_after_clock(void **state)
{
    static struct live_run run;

    (void)state;
    assert_int_equal(rm_ns_since(7, 5), 2);
    assert_int_equal(rm_ns_since(5, 7), 0);
    /* stamped 100 ms after any clock read the thread makes at first */
    live_start(&run, rm_now_ns() + 100000000);
    live_peer_beats(&run, 5, 0);
    live_stop(&run);
}

/*
 * Both sides stalled at once (an overloaded host): this side's liveness
 * thread does not run for 400 ms, and the peer sends nothing for 480 ms.
 * The time this side did not run is not the peer's silence: the peer,
 * heartbeating again, is not declared lost (both would have taken the
 * other for dead: a primary running on unprotected, a replica taking
 * over -- two live VMs, seen in kvm_drill on a loaded machine).
 */
static void test_liveness_both_stalled(void **state)
{
    static struct live_run run;

    (void)state;
    live_start(&run, rm_now_ns());
    live_peer_beats(&run, 5, 0);
    pthread_mutex_lock(&run.l.lock);
    run.l.stall_once_ms = 400;    /* its next turn: 400 ms away */
    pthread_mutex_unlock(&run.l.lock);
    usleep(480000);               /* ... and the peer silent a bit longer */
    live_peer_beats(&run, 10, 0);
    live_stop(&run);
}

static void send_raw(int fd, const void *d, size_t n)
{
    assert_int_equal(write(fd, d, n), (ssize_t)n);
}

static void expect_bad(const void *frame, size_t n, const char *needle)
{
    struct pair p;
    struct rm_ctl_msg m;
    int rc;

    pair_open(&p);
    send_raw(p.fd[0], frame, n);
    shutdown(p.fd[0], SHUT_WR);
    rc = rm_chan_recv(&p.b, 1000, &m);
    assert_true(rc == -EBADMSG || rc == -EPIPE);
    if (!strstr(p.b.err.msg, needle))
        fail_msg("'%s' does not mention '%s'", p.b.err.msg, needle);
    pair_close(&p);
}

static void test_bad_frames(void **state)
{
    uint8_t f[16];
    uint32_t be;

    (void)state;
    be = htonl(0);
    memcpy(f, &be, 4);
    expect_bad(f, 4, "frame length 0");
    be = htonl(RM_CHAN_MAX_FRAME + 1);
    memcpy(f, &be, 4);
    expect_bad(f, 4, "out of range");
    be = htonl(8);
    memcpy(f, &be, 4);
    memcpy(f + 4, "\xff\xff\xff", 3);
    expect_bad(f, 7, "broke inside");              /* truncated frame */
    memset(f + 4, 0xff, 8);
    expect_bad(f, 12, "not a valid control message");
    be = htonl(2);
    memcpy(f, &be, 4);
    f[4] = 0x1a; /* field 3 (ack), length 0: required fields missing */
    f[5] = 0x00;
    expect_bad(f, 6, "not a valid control message");
    expect_bad(f, 2, "closed");                    /* half a header */
}

static void test_ack_epoch_zero(void **state)
{
    uint8_t *frame;
    size_t len;
    struct rm_ctl_msg m = { .kind = RM_CTL_ACK };
    struct rm_error err = { 0 };
    struct rm_ctl_msg out;

    (void)state;
    assert_int_equal(rm_ctl_encode(&m, &frame, &len), 0);
    assert_int_equal(rm_ctl_decode(frame + 4, len - 4, &out, &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "epoch 0"));
    free(frame);
}

/* COLO's messages: frames both ways, the checkpoint request, the dirty
 * pfns (libxc's little-endian u64s) in parts. */
static void test_colo_roundtrip(void **state)
{
    struct pair p;
    struct rm_ctl_msg *m = malloc(sizeof(*m));
    uint8_t frame[RM_COLO_FRAME_MAX];
    uint64_t pfns[RM_COLO_PFNS_MAX];
    uint32_t i;

    (void)state;
    assert_non_null(m);
    for (i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)(i * 7);
    for (i = 0; i < RM_COLO_PFNS_MAX; i++)
        pfns[i] = 0x100000000ull + i * 3;
    pair_open(&p);
    assert_int_equal(rm_chan_send_colo_frame(&p.a, true, 1, frame, 60), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, m), 0);
    assert_int_equal(m->kind, RM_CTL_COLO_INPUT);
    assert_int_equal(m->u.colo_frame.seq, 1);
    assert_int_equal(m->u.colo_frame.len, 60);
    assert_memory_equal(m->u.colo_frame.frame, frame, 60);
    assert_int_equal(rm_chan_send_colo_frame(&p.b, false, 9, frame,
                                             RM_COLO_FRAME_MAX), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, m), 0);
    assert_int_equal(m->kind, RM_CTL_COLO_OUTPUT);
    assert_int_equal(m->u.colo_frame.len, RM_COLO_FRAME_MAX);
    assert_memory_equal(m->u.colo_frame.frame, frame, RM_COLO_FRAME_MAX);
    assert_int_equal(rm_chan_send_colo_frame(&p.b, false, 10, frame, 13),
                     -EMSGSIZE);
    assert_int_equal(rm_chan_send_colo_frame(&p.b, false, 10, frame,
                                             RM_COLO_FRAME_MAX + 1), -EMSGSIZE);
    assert_int_equal(rm_chan_send_colo_checkpoint(&p.a, 4, 77,
                                                  RM_COLO_CAUSE_TIMEOUT,
                                                  false), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, m), 0);
    assert_int_equal(m->kind, RM_CTL_COLO_CHECKPOINT);
    assert_int_equal(m->u.colo_checkpoint.epoch, 4);
    assert_int_equal(m->u.colo_checkpoint.input_seq, 77);
    assert_int_equal(m->u.colo_checkpoint.cause, RM_COLO_CAUSE_TIMEOUT);
    assert_false(m->u.colo_checkpoint.buffered);
    assert_int_equal(rm_chan_send_colo_checkpoint(&p.a, 5, 78,
                                                  RM_COLO_CAUSE_MISMATCH,
                                                  true), 0);
    assert_int_equal(rm_chan_recv(&p.b, 1000, m), 0);
    assert_int_equal(m->u.colo_checkpoint.epoch, 5);
    assert_true(m->u.colo_checkpoint.buffered);
    assert_int_equal(rm_chan_send_colo_dirty(&p.b, 4, 12, pfns,
                                             RM_COLO_PFNS_MAX, false), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, m), 0);
    assert_int_equal(m->kind, RM_CTL_COLO_DIRTY);
    assert_int_equal(m->u.colo_dirty.epoch, 4);
    assert_int_equal(m->u.colo_dirty.output_seq, 12);
    assert_int_equal(m->u.colo_dirty.count, RM_COLO_PFNS_MAX);
    assert_false(m->u.colo_dirty.last);
    assert_memory_equal(m->u.colo_dirty.pfns, pfns, sizeof(pfns));
    assert_int_equal(rm_chan_send_colo_dirty(&p.b, 4, 12, NULL, 0, true), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, m), 0);
    assert_int_equal(m->u.colo_dirty.count, 0);
    assert_true(m->u.colo_dirty.last);
    /* the replica asks for a checkpoint; only a full queue's cause goes */
    assert_int_equal(rm_chan_send_colo_ask(&p.b, RM_COLO_CAUSE_OVERFLOW,
                                           "overlay half full"), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, m), 0);
    assert_int_equal(m->kind, RM_CTL_COLO_ASK);
    assert_int_equal(m->u.colo_ask.cause, RM_COLO_CAUSE_OVERFLOW);
    assert_string_equal(m->u.colo_ask.why, "overlay half full");
    assert_int_equal(rm_chan_send_colo_ask(&p.b, RM_COLO_CAUSE_MISMATCH,
                                           "x"), 0);
    assert_int_equal(rm_chan_recv(&p.a, 1000, m), -EBADMSG);
    assert_non_null(strstr(p.a.err.msg, "unknown cause 1"));
    pair_close(&p);
    free(m);
}

/* Bad COLO messages are refused with what was wrong. */
static void expect_colo_bad(struct rm_ctl_msg *m, const char *needle)
{
    uint8_t *frame;
    size_t len;
    struct rm_error err = { 0 };
    struct rm_ctl_msg *out = malloc(sizeof(*out));

    assert_non_null(out);
    assert_int_equal(rm_ctl_encode(m, &frame, &len), 0);
    assert_int_equal(rm_ctl_decode(frame + 4, len - 4, out, &err), -EBADMSG);
    if (!strstr(err.msg, needle))
        fail_msg("'%s' does not mention '%s'", err.msg, needle);
    free(frame);
    free(out);
}

static void test_colo_bad(void **state)
{
    struct rm_ctl_msg *m = calloc(1, sizeof(*m));

    (void)state;
    assert_non_null(m);
    m->kind = RM_CTL_COLO_INPUT;
    m->u.colo_frame.len = 60;
    expect_colo_bad(m, "sequence number 0");
    m->u.colo_frame.seq = 1;
    m->u.colo_frame.len = 13;
    expect_colo_bad(m, "of 13 bytes");
    memset(m, 0, sizeof(*m));
    m->kind = RM_CTL_COLO_CHECKPOINT;
    m->u.colo_checkpoint.cause = RM_COLO_CAUSE_MISMATCH;
    expect_colo_bad(m, "epoch 0");
    m->u.colo_checkpoint.epoch = 1;
    m->u.colo_checkpoint.cause = 9;
    expect_colo_bad(m, "unknown cause 9");
    memset(m, 0, sizeof(*m));
    m->kind = RM_CTL_COLO_DIRTY;
    expect_colo_bad(m, "epoch 0");
    m->u.colo_dirty.epoch = 2;
    m->u.colo_dirty.count = 3;
    m->u.colo_dirty.pfns[0] = 5;
    m->u.colo_dirty.pfns[1] = 9;
    m->u.colo_dirty.pfns[2] = 9;
    expect_colo_bad(m, "not ascending (pfn 0x9 after 0x9)");
    free(m);
}

/* A hello's disks through encode and decode; bad ones refused, named. */
static int hello_disks_roundtrip(const struct rm_hello *h, struct rm_hello *out,
                                 struct rm_error *err)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_HELLO }, back;
    uint8_t *frame;
    size_t len;
    int rc;

    m.u.hello = *h;
    assert_int_equal(rm_ctl_encode(&m, &frame, &len), 0);
    rc = rm_ctl_decode(frame + 4, len - 4, &back, err);
    free(frame);
    *out = back.u.hello;
    return rc;
}

static void test_hello_disks(void **state)
{
    struct rm_hello p, s, out;
    struct rm_error err = { 0 };
    char why[RM_CTL_TEXT_MAX];

    (void)state;
    memset(&p, 0, sizeof(p));
    p.role = RM_ROLE_PRIMARY;
    snprintf(p.backend, sizeof(p.backend), "kvm");
    p.nr_disks = 2;
    p.disks[0].id = 0;
    p.disks[0].size = 4u << 20;
    p.disks[1].id = 3;
    p.disks[1].size = 512;
    p.disks[1].unreplicated = true;
    assert_int_equal(hello_disks_roundtrip(&p, &out, &err), 0);
    assert_int_equal(out.nr_disks, 2);
    assert_int_equal(out.disks[0].size, 4u << 20);
    assert_int_equal(out.disks[1].id, 3);
    assert_true(out.disks[1].unreplicated);
    assert_false(out.disks[0].unreplicated);
    /* refused: an id out of range, a size not in sectors, an id twice */
    s = p;
    s.disks[0].id = RM_DISK_MAX;
    assert_int_equal(hello_disks_roundtrip(&s, &out, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "disk 8"));
    rm_error_clear(&err);
    s = p;
    s.disks[0].size = 1000;
    assert_int_equal(hello_disks_roundtrip(&s, &out, &err), -EBADMSG);
    rm_error_clear(&err);
    /* a size of 0: refused for a replicated disk; an unreplicated one's
     * may be unknown (a Xen VBD whose backend never connected) */
    s = p;
    s.disks[0].size = 0;
    assert_int_equal(hello_disks_roundtrip(&s, &out, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "disk 0 of 0 bytes"));
    rm_error_clear(&err);
    s = p;
    s.disks[1].size = 0;
    assert_int_equal(hello_disks_roundtrip(&s, &out, &err), 0);
    assert_int_equal(out.disks[1].size, 0);
    assert_true(out.disks[1].unreplicated);
    s = p;
    s.disks[1].id = 0;
    assert_int_equal(hello_disks_roundtrip(&s, &out, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "twice"));
    rm_error_clear(&err);
    /* the agreement: same disks, same sizes; an unreplicated one needs
     * nothing of the secondary */
    memset(&s, 0, sizeof(s));
    s.nr_disks = 1;
    s.disks[0].id = 0;
    s.disks[0].size = 4u << 20;
    assert_null(rm_disks_disagree(&p, &s, why, sizeof(why)));
    s.disks[0].size = 2u << 20;
    assert_non_null(rm_disks_disagree(&p, &s, why, sizeof(why)));
    assert_non_null(strstr(why, "4194304 bytes, this secondary's replica "
                                "image is 2097152"));
    s.nr_disks = 0;
    assert_non_null(rm_disks_disagree(&p, &s, why, sizeof(why)));
    assert_non_null(strstr(why, "no replica image"));
    s.nr_disks = 2;
    s.disks[0].size = 4u << 20;
    s.disks[1].id = 5;
    s.disks[1].size = 512;
    assert_non_null(rm_disks_disagree(&p, &s, why, sizeof(why)));
    assert_non_null(strstr(why, "disk 5"));
}

struct hs {
    struct rm_chan *ch;
    struct rm_hello mine, peer;
    int rc;
};

static void *server(void *arg)
{
    struct hs *h = arg;

    h->rc = rm_chan_handshake_server(h->ch, &h->mine, &h->peer, 2000);
    return NULL;
}

static int handshake(struct rm_hello *cli, struct rm_hello *srv,
                     struct rm_hello *got, char *why, size_t whylen)
{
    struct pair p;
    struct hs h;
    pthread_t t;
    int rc;

    pair_open(&p);
    h.ch = &p.b;
    h.mine = *srv;
    pthread_create(&t, NULL, server, &h);
    rc = rm_chan_handshake_client(&p.a, cli, got, 2000);
    pthread_join(t, NULL);
    snprintf(why, whylen, "%s", p.a.err.msg);
    if (!rc)
        assert_int_equal(h.rc, 0);
    else
        assert_int_equal(h.rc, -EPROTO);
    pair_close(&p);
    return rc;
}

static void hello(struct rm_hello *h, enum rm_role role)
{
    memset(h, 0, sizeof(*h));
    h->role = role;
    strcpy(h->backend, "kvm");
    strcpy(h->name, "vm1");
    h->guest_bytes = 64ull << 20;
    h->caps = RM_CAP_COMPRESSION;
    h->has_session = role == RM_ROLE_SECONDARY;
}

/* Timing in the handshake (issue #16, item 2). */
static void test_handshake_timing(void **state)
{
    struct rm_hello c, s, got;
    char why[RM_ERROR_MSG_MAX];

    (void)state;
    /* -i 1500 against a secondary that leaves its timeout to the
     * handshake: it derives interval + 4 heartbeats (above 1000). */
    hello(&c, RM_ROLE_PRIMARY);
    c.interval_ms = 1500;
    c.hb_interval_ms = 100;
    c.hb_timeout_ms = rm_timing_default_timeout(1500, 100);
    assert_int_equal(c.hb_timeout_ms, 1900);
    hello(&s, RM_ROLE_SECONDARY);
    s.hb_interval_ms = 100;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), 0);
    assert_int_equal(got.hb_timeout_ms, 1900);
    /* Defaults: 200 ms, 100 ms -> 1000 ms on both sides. */
    assert_int_equal(rm_timing_default_timeout(200, 100), 1000);

    /* An explicit secondary timeout that cannot work: refused, both
     * values named. */
    hello(&s, RM_ROLE_SECONDARY);
    s.hb_interval_ms = 100;
    s.hb_timeout_ms = 1000;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "interval 1500 ms and heartbeat 100 ms"));
    assert_non_null(strstr(why, "at least 1800 ms"));
    assert_non_null(strstr(why, "secondary's is 1000 ms"));

    /* The primary's timeout against a slow-beating secondary. */
    hello(&c, RM_ROLE_PRIMARY);
    c.interval_ms = 200;
    c.hb_interval_ms = 100;
    c.hb_timeout_ms = 1000;
    hello(&s, RM_ROLE_SECONDARY);
    s.hb_interval_ms = 400;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "secondary's heartbeat 400 ms"));
    assert_non_null(strstr(why, "primary's is 1000 ms"));

    /* The secondary's buffer reaches the primary. */
    hello(&s, RM_ROLE_SECONDARY);
    s.hb_interval_ms = 100;
    s.buffer_bytes = 3ull << 20;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), 0);
    assert_int_equal(got.buffer_bytes, 3ull << 20);
}

/* One side with --quorum, the other without: refused by both, naming
 * both settings (#16: mixed split-brain protection is not a warning). */
static void test_handshake_quorum_mismatch(void **state)
{
    struct rm_hello c, s, got;
    char why[RM_ERROR_MSG_MAX];
    int i;

    (void)state;
    for (i = 0; i < 2; i++) {
        hello(&c, RM_ROLE_PRIMARY);
        hello(&s, RM_ROLE_SECONDARY);
        c.quorum = i == 0;
        s.quorum = i == 1;
        assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
        assert_non_null(strstr(why, "split-brain protection differs"));
        assert_non_null(strstr(why, i == 0 ? "the secondary runs without "
                                             "--quorum"
                                           : "the primary runs without "
                                             "--quorum"));
    }
    /* Both with --quorum: each must say which process it is in the CPG
     * group (the peer binds it); the reply carries the secondary's. */
    hello(&c, RM_ROLE_PRIMARY);
    hello(&s, RM_ROLE_SECONDARY);
    c.quorum = s.quorum = true;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "did not say which process it is"));
    c.has_cpg = s.has_cpg = true;
    c.cpg_node = 1;
    c.cpg_pid = 100;
    s.cpg_node = 2;
    s.cpg_pid = 200;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), 0);
    assert_true(got.quorum);
    assert_true(got.has_cpg);
    assert_int_equal(got.cpg_node, 2);
    assert_int_equal(got.cpg_pid, 200);
}

static void test_handshake(void **state)
{
    struct rm_hello c, s, got;
    char why[RM_ERROR_MSG_MAX];

    (void)state;
    hello(&c, RM_ROLE_PRIMARY);
    hello(&s, RM_ROLE_SECONDARY);
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), 0);
    assert_true(got.caps & RM_CAP_COMPRESSION);
    assert_true(got.has_session);

    /* negotiation: the secondary declines compression */
    s.caps = 0;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), 0);
    assert_false(got.caps & RM_CAP_COMPRESSION);

    hello(&s, RM_ROLE_SECONDARY);
    strcpy(s.backend, "xen");
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "backend is 'kvm', ours is 'xen'"));

    hello(&s, RM_ROLE_SECONDARY);
    s.guest_bytes = 32ull << 20;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "exceeds this secondary's limit"));

    hello(&s, RM_ROLE_SECONDARY);
    c.required_caps = 1ull << 5;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "requires capabilities"));

    hello(&c, RM_ROLE_PRIMARY);
    c.protocol_version = 2;
    assert_int_equal(handshake(&c, &s, &got, why, sizeof(why)), -EPROTO);
    assert_non_null(strstr(why, "speaks remus control protocol 2, we speak 1"));
    (void)got;
}

/* Writes a frame one byte every gap_ms (a slowloris peer). */
struct trickle {
    int fd;
    const uint8_t *frame;
    size_t len;
    unsigned gap_ms;
};

static void *trickle_main(void *arg)
{
    struct trickle *t = arg;
    size_t i;

    for (i = 0; i < t->len; i++) {
        if (send(t->fd, t->frame + i, 1, MSG_NOSIGNAL) != 1)
            break;
        usleep(t->gap_ms * 1000);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Trickle @m into a fresh pair's side a; receive it on side b with
 * @server_ms (handshake) or with rm_chan_recv.  The elapsed time. */
static double trickled(const struct rm_ctl_msg *m, unsigned gap_ms,
                       int server_ms, int *rc, char *why, size_t whylen)
{
    struct trickle t;
    struct pair p;
    struct rm_hello mine, peer;
    struct rm_ctl_msg out;
    pthread_t th;
    uint8_t *frame;
    size_t len;
    double t0;

    pair_open(&p);
    assert_int_equal(rm_ctl_encode(m, &frame, &len), 0);
    t = (struct trickle){ .fd = p.fd[0], .frame = frame, .len = len,
                          .gap_ms = gap_ms };
    t0 = now_s();
    pthread_create(&th, NULL, trickle_main, &t);
    if (server_ms) {
        hello(&mine, RM_ROLE_SECONDARY);
        *rc = rm_chan_handshake_server(&p.b, &mine, &peer, server_ms);
    } else {
        *rc = rm_chan_recv(&p.b, 1000, &out);
    }
    t0 = now_s() - t0;
    snprintf(why, whylen, "%s", p.b.err.msg);
    shutdown(p.fd[0], SHUT_RDWR);
    pthread_join(th, NULL);
    free(frame);
    pair_close(&p);
    return t0;
}

/* A hello trickled a byte at a time: the handshake's one deadline ends it
 * (reads that each see a byte in time do not extend it). */
static void test_handshake_deadline(void **state)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_HELLO };
    char why[RM_ERROR_MSG_MAX];
    double took;
    int rc;

    (void)state;
    hello(&m.u.hello, RM_ROLE_PRIMARY);
    m.u.hello.protocol_version = RM_CTL_PROTOCOL_VERSION;
    took = trickled(&m, 100, 1000, &rc, why, sizeof(why));
    assert_int_not_equal(rc, 0);
    assert_true(took < 2.5);
    assert_non_null(strstr(why, "handshake's time ran out"));
}

/* A frame that has begun must arrive whole within 5 s in all. */
static void test_frame_deadline(void **state)
{
    struct rm_ctl_msg m = { .kind = RM_CTL_STOP };
    char why[RM_ERROR_MSG_MAX];
    double took;
    int rc;

    (void)state;
    strcpy(m.u.stop.reason, "a slow stop");
    took = trickled(&m, 600, 0, &rc, why, sizeof(why));
    assert_int_equal(rc, -EPIPE);
    assert_true(took < 6.5);
    assert_non_null(strstr(why, "within 5000 ms"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_ack_epoch_zero),
        cmocka_unit_test(test_hello_disks),
        cmocka_unit_test(test_colo_roundtrip),
        cmocka_unit_test(test_colo_bad),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_handshake_timing),
        cmocka_unit_test(test_handshake_quorum_mismatch),
        cmocka_unit_test(test_handshake_deadline),
        cmocka_unit_test(test_frame_deadline),
        cmocka_unit_test(test_liveness_slow_handler),
        cmocka_unit_test(test_liveness_stamp_after_clock),
        cmocka_unit_test(test_liveness_both_stalled),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
