/* SPDX-License-Identifier: MIT */
/* COLO's frame rules (netbuf/frame_cmp.h) and packet comparator
 * (netbuf/compare.h): what counts as the same frame, flows, release on
 * match, and each cause of a checkpoint (mismatch, timeout, overflow). */
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
#include <string.h>

#include "netbuf/compare.h"
#include "netbuf/frame_cmp.h"
#include "netbuf/netbuf_colo.h"

#define MS 1000000ull

/* ---- frames ----------------------------------------------------------- */

/* An Ethernet + IPv4 + UDP/ICMP/TCP frame with @payload; @id and @ttl
 * vary what the rules ignore; checksums are computed (so that they differ
 * when id or TTL differ, as between two real VMs). */
static size_t mkframe(uint8_t *f, uint8_t proto, uint16_t sport,
                      uint16_t dport, const char *payload, uint16_t id,
                      uint8_t ttl)
{
    size_t plen = strlen(payload), l4h, total, i;
    uint8_t *ip = f + 14, *l4;
    uint32_t sum = 0;

    memset(f, 0, 14 + 20 + 20 + plen + 8);
    memcpy(f, "\x52\x54\x00\x00\x00\x01\x52\x54\x00\x00\x00\x02\x08\x00", 14);
    l4h = proto == 17 ? 8 : proto == 6 ? 20 : 8;
    total = 20 + l4h + plen;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(total >> 8);
    ip[3] = (uint8_t)total;
    ip[4] = (uint8_t)(id >> 8);
    ip[5] = (uint8_t)id;
    ip[8] = ttl;
    ip[9] = proto;
    memcpy(ip + 12, "\x0a\x00\x00\x02", 4);
    memcpy(ip + 16, "\x0a\x00\x00\x01", 4);
    for (i = 0; i < 20; i += 2)
        sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = (uint8_t)(~sum >> 8);
    ip[11] = (uint8_t)~sum;
    l4 = ip + 20;
    if (proto == 1) {
        l4[0] = 0;                          /* echo reply */
        l4[4] = (uint8_t)(sport >> 8);      /* id */
        l4[5] = (uint8_t)sport;
    } else {
        l4[0] = (uint8_t)(sport >> 8);
        l4[1] = (uint8_t)sport;
        l4[2] = (uint8_t)(dport >> 8);
        l4[3] = (uint8_t)dport;
    }
    if (proto == 6)
        l4[12] = 0x50;
    memcpy(l4 + l4h, payload, plen);
    /* A checksum over what varies, standing in for the real one. */
    sum = id + ttl;
    for (i = 0; i < plen; i++)
        sum += (uint8_t)payload[i];
    {
        size_t at = proto == 17 ? 6 : proto == 6 ? 16 : 2;

        l4[at] = (uint8_t)(sum >> 8);
        l4[at + 1] = (uint8_t)sum;
    }
    return 14 + total;
}

static size_t udp(uint8_t *f, uint16_t sport, const char *p, uint16_t id,
                  uint8_t ttl)
{
    return mkframe(f, 17, sport, 40000, p, id, ttl);
}

static size_t arp(uint8_t *f, uint8_t last)
{
    memset(f, 0, 42);
    memcpy(f, "\xff\xff\xff\xff\xff\xff\x52\x54\x00\x00\x00\x02\x08\x06", 14);
    f[41] = last;
    return 42;
}

/* ---- frame rules ------------------------------------------------------ */

static void test_same_ignores_id_ttl_checksums(void **state)
{
    uint8_t a[256], b[256];
    size_t la, lb, where = 99;
    uint8_t protos[] = { 17, 1, 6 };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(protos); i++) {
        la = mkframe(a, protos[i], 5000, 40000, "hello", 1, 64);
        lb = mkframe(b, protos[i], 5000, 40000, "hello", 777, 63);
        assert_int_equal(la, lb);
        assert_memory_not_equal(a, b, la);   /* they do differ, in bytes */
        assert_true(rm_frame_same(a, la, b, lb, &where));
        /* Ethernet padding past the IPv4 total length is not compared. */
        memset(a + la, 0, 10);
        memset(b + lb, 0xee, 10);
        assert_true(rm_frame_same(a, la + 10, b, lb + 4, NULL));
    }
}

static void test_payload_difference(void **state)
{
    uint8_t a[256], b[256];
    size_t la, lb, where = 0;

    (void)state;
    la = udp(a, 5000, "time=1000", 1, 64);
    lb = udp(b, 5000, "time=1001", 1, 64);
    assert_false(rm_frame_same(a, la, b, lb, &where));
    assert_int_equal(where, 14 + 20 + 8 + 8);     /* the last digit */
    /* a different length: not the same, even with an equal prefix */
    lb = udp(b, 5000, "time=10000", 1, 64);
    assert_false(rm_frame_same(a, la, b, lb, &where));
    /* a header field that counts: the destination port */
    la = mkframe(a, 17, 5000, 40000, "x", 1, 64);
    lb = mkframe(b, 17, 5000, 40001, "x", 1, 64);
    assert_false(rm_frame_same(a, la, b, lb, &where));
    assert_int_equal(where, 14 + 20 + 3);
    /* the destination MAC */
    lb = mkframe(b, 17, 5000, 40000, "x", 1, 64);
    b[5] = 9;
    assert_false(rm_frame_same(a, la, b, lb, &where));
    assert_int_equal(where, 5);
}

static void test_other_frames_whole(void **state)
{
    uint8_t a[256], b[256];
    size_t la, lb, where = 0;

    (void)state;
    la = arp(a, 1);
    lb = arp(b, 1);
    assert_true(rm_frame_same(a, la, b, lb, &where));
    b[41] = 2;
    assert_false(rm_frame_same(a, la, b, lb, &where));
    assert_int_equal(where, 41);
    /* ARP has no TTL: byte 22 counts there */
    lb = arp(b, 1);
    b[22] = 7;
    assert_false(rm_frame_same(a, la, b, lb, NULL));
    /* a malformed IPv4 header (total length past the frame) is compared
     * whole: its "TTL" byte counts */
    la = udp(a, 1, "abc", 1, 64);
    lb = udp(b, 1, "abc", 1, 64);
    a[16] = b[16] = 0xff;
    assert_true(rm_frame_same(a, la, b, lb, NULL));
    b[22] = 1;
    assert_false(rm_frame_same(a, la, b, lb, NULL));
    /* runts */
    assert_true(rm_frame_same(a, 3, a, 3, NULL));
    assert_false(rm_frame_same(a, 3, a, 4, NULL));
    assert_true(rm_frame_same(a, 0, b, 0, NULL));
}

static void test_flows(void **state)
{
    uint8_t a[256], b[256];
    struct rm_flow_key ka, kb;
    char desc[128];

    (void)state;
    rm_frame_flow(a, udp(a, 5000, "x", 1, 64), &ka);
    rm_frame_flow(b, udp(b, 5000, "yy", 2, 60), &kb);
    assert_memory_equal(&ka, &kb, sizeof(ka));
    rm_flow_describe(&ka, desc, sizeof(desc));
    assert_string_equal(desc, "udp 10.0.0.2:5000 > 10.0.0.1:40000");
    rm_frame_flow(b, udp(b, 5001, "x", 1, 64), &kb);
    assert_memory_not_equal(&ka, &kb, sizeof(ka));
    rm_frame_flow(b, mkframe(b, 1, 7, 0, "ping", 1, 64), &kb);
    rm_flow_describe(&kb, desc, sizeof(desc));
    assert_string_equal(desc, "icmp 10.0.0.2 > 10.0.0.1 id 7");
    rm_frame_flow(b, arp(b, 1), &kb);
    rm_flow_describe(&kb, desc, sizeof(desc));
    assert_string_equal(desc, "EtherType 0x0806 (ARP)");
    rm_frame_flow(b, 5, &kb);
    assert_int_equal(kb.ethertype, 0);
    /* a fragment after the first: no ports, one flow per address pair */
    udp(b, 5000, "x", 1, 64);
    b[14 + 6] = 0x00;
    b[14 + 7] = 0x10;                         /* offset 16 * 8 */
    rm_frame_flow(b, 60, &kb);
    assert_int_equal(kb.proto, 17);
    assert_int_equal(kb.sport, 0);
}

/* ---- the comparator --------------------------------------------------- */

struct out {
    pthread_mutex_t lock;
    int released;
    char last[64];                 /* payload of the last released frame */
    int diverged;
    struct rm_divergence why;
};

static int sink(void *o, const void *f, size_t len)
{
    struct out *out = o;

    pthread_mutex_lock(&out->lock);
    out->released++;
    if (len > 42) {
        size_t n = len - 42 < sizeof(out->last) - 1 ? len - 42 : sizeof(out->last) - 1;

        memcpy(out->last, (const uint8_t *)f + 42, n);
        out->last[n] = 0;
    }
    pthread_mutex_unlock(&out->lock);
    return 0;
}

static void on_diverge(void *o, const struct rm_divergence *d)
{
    struct out *out = o;

    out->diverged++;
    out->why = *d;
}

static struct rm_compare *mk(struct out *o, size_t max_frames)
{
    struct rm_compare_cfg cfg = {
        .timeout_ns = 20 * MS, .max_frames = max_frames, .max_flows = 4,
        .sink = sink, .sink_opaque = o,
        .on_diverge = on_diverge, .diverge_opaque = o,
    };
    struct rm_error err = { 0 };
    struct rm_compare *c;

    memset(o, 0, sizeof(*o));
    pthread_mutex_init(&o->lock, NULL);
    c = rm_compare_new(&cfg, &err);
    assert_non_null(c);
    return c;
}

static void pri(struct rm_compare *c, uint16_t port, const char *p,
                uint64_t t)
{
    uint8_t f[256];

    assert_int_equal(rm_compare_primary(c, f, udp(f, port, p, 1, 64), t), 0);
}

static void rep(struct rm_compare *c, uint16_t port, const char *p,
                uint64_t t)
{
    uint8_t f[256];

    assert_int_equal(rm_compare_secondary(c, f, udp(f, port, p, 9, 61), t), 0);
}

static void test_match_releases(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct rm_compare_stats st;

    (void)state;
    pri(c, 1, "a1", 0);
    pri(c, 1, "a2", 1);
    assert_int_equal(o.released, 0);          /* held: no replica frame yet */
    rep(c, 1, "a1", 2);
    assert_int_equal(o.released, 1);
    assert_string_equal(o.last, "a1");
    /* the replica first, then the primary: released at once */
    rep(c, 2, "b1", 3);
    assert_int_equal(o.released, 1);
    pri(c, 2, "b1", 4);
    assert_int_equal(o.released, 2);
    assert_string_equal(o.last, "b1");
    rep(c, 1, "a2", 5);
    assert_int_equal(o.released, 3);
    assert_string_equal(o.last, "a2");
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.matched, 3);
    assert_int_equal(st.held_primary, 0);
    assert_int_equal(st.held_replica, 0);
    assert_int_equal(st.flows, 0);            /* empty flows are freed */
    assert_int_equal(o.diverged, 0);
    assert_false(rm_compare_diverged(c));
    rm_compare_free(c);
}

/* Flows are independent: the replica may interleave them differently. */
static void test_flows_interleave(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);

    (void)state;
    pri(c, 1, "a1", 0);
    pri(c, 2, "b1", 0);
    rep(c, 2, "b1", 1);
    rep(c, 1, "a1", 1);
    assert_int_equal(o.released, 2);
    assert_int_equal(o.diverged, 0);
    rm_compare_free(c);
}

static void test_mismatch_holds_until_checkpoint(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct rm_compare_stats st;
    char desc[128];

    (void)state;
    pri(c, 1, "time=1000", 0);
    rep(c, 1, "time=1001", 1);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(o.why.cause, RM_DIVERGE_MISMATCH);
    assert_int_equal(o.why.offset, 14 + 20 + 8 + 8);
    rm_flow_describe(&o.why.flow, desc, sizeof(desc));
    assert_string_equal(desc, "udp 10.0.0.2:1 > 10.0.0.1:40000");
    assert_true(rm_compare_diverged(c));
    /* diverged: nothing is compared or released; one report only */
    pri(c, 2, "b1", 2);
    rep(c, 2, "b1", 3);
    pri(c, 1, "time=1002", 4);
    assert_int_equal(o.released, 0);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(rm_compare_tick(c, 500 * MS), UINT64_MAX);
    assert_int_equal(o.diverged, 1);
    /* the checkpoint: the primary's frames leave, in order */
    rm_compare_checkpoint_done(c, 0);
    assert_int_equal(o.released, 3);
    assert_string_equal(o.last, "time=1002");
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.mismatches, 1);
    assert_int_equal(st.checkpoints, 1);
    assert_int_equal(st.dropped_replica, 2);  /* "time=1001" and "b1" */
    assert_int_equal(st.held_primary, 0);
    /* and comparing resumes */
    assert_false(rm_compare_diverged(c));
    pri(c, 3, "c", 600 * MS);
    rep(c, 3, "c", 601 * MS);
    assert_int_equal(o.released, 4);
    assert_int_equal(o.diverged, 1);
    rm_compare_free(c);
}

static void test_timeout(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);

    (void)state;
    pri(c, 1, "a", 0);
    assert_int_equal(rm_compare_tick(c, 5 * MS), 20 * MS);
    assert_int_equal(o.diverged, 0);
    assert_int_equal(rm_compare_tick(c, 20 * MS), UINT64_MAX);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(o.why.cause, RM_DIVERGE_TIMEOUT);
    assert_false(o.why.replica_side);
    assert_int_equal(o.why.waited_ns, 20 * MS);
    rm_compare_checkpoint_done(c, 0);
    assert_int_equal(o.released, 1);
    /* the replica's side times out too (it said what the primary did
     * not), and a frame's arrival checks the timeouts as well as tick() */
    rep(c, 2, "b", 100 * MS);
    pri(c, 3, "c", 121 * MS);
    assert_int_equal(o.diverged, 2);
    assert_int_equal(o.why.cause, RM_DIVERGE_TIMEOUT);
    assert_true(o.why.replica_side);
    assert_int_equal(rm_compare_tick(c, 122 * MS), UINT64_MAX);
    rm_compare_checkpoint_done(c, 0);
    assert_int_equal(o.released, 2);          /* "c" */
    assert_int_equal(rm_compare_tick(c, 200 * MS), UINT64_MAX);  /* empty */
    rm_compare_free(c);
}

static void test_overflow(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 3);
    struct rm_compare_stats st;
    int i;

    (void)state;
    /* the frame bound: the 4th held primary frame */
    for (i = 0; i < 3; i++)
        pri(c, 1, "a", (uint64_t)i);
    assert_int_equal(o.diverged, 0);
    pri(c, 1, "a", 3);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(o.why.cause, RM_DIVERGE_OVERFLOW);
    assert_false(o.why.replica_side);
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.dropped_full, 1);     /* never released early */
    assert_int_equal(st.held_primary, 3);
    rm_compare_checkpoint_done(c, 0);
    assert_int_equal(o.released, 3);
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.overflows, 1);
    rm_compare_free(c);
    /* the flow table: max_flows 4 */
    c = mk(&o, 0);
    for (i = 0; i < 4; i++)
        rep(c, (uint16_t)(10 + i), "r", 10);
    assert_int_equal(o.diverged, 0);
    rep(c, 20, "r", 10);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(o.why.cause, RM_DIVERGE_OVERFLOW);
    assert_true(o.why.replica_side);
    assert_int_equal(ntohs(o.why.flow.sport), 20);
    rm_compare_checkpoint_done(c, 0);
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.overflows, 1);
    assert_int_equal(st.held_replica, 0);
    assert_int_equal(st.flows, 0);
    rm_compare_free(c);
}

/* A checkpoint's cut: the primary's frames since the cut wait for its
 * acknowledgement, then are compared against the resumed replica; no
 * timeout runs meanwhile. */
static void test_cut(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct rm_compare_stats st;

    (void)state;
    pri(c, 1, "a1", 0);
    rm_compare_cut(c);
    pri(c, 1, "a2", 1);                       /* after the cut */
    rep(c, 1, "a1", 2);                       /* the replica, not paused yet */
    assert_int_equal(o.released, 1);
    assert_string_equal(o.last, "a1");
    rep(c, 1, "a2", 3);                       /* before the checkpoint: not
                                               * compared with a2 */
    rep(c, 2, "x", 3);
    assert_int_equal(o.released, 1);
    assert_int_equal(rm_compare_tick(c, 900 * MS), UINT64_MAX);
    assert_int_equal(o.diverged, 0);
    rm_compare_checkpoint_done(c, 1000 * MS);
    assert_int_equal(o.released, 1);          /* a2 is compared afresh */
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.dropped_replica, 2);
    assert_int_equal(st.held_primary, 1);
    assert_int_equal(rm_compare_tick(c, 1010 * MS), 1020 * MS);
    rep(c, 1, "a2", 1011 * MS);               /* the resumed replica */
    assert_int_equal(o.released, 2);
    assert_string_equal(o.last, "a2");
    assert_int_equal(o.diverged, 0);

    /* diverged, then cut: what came before the cut leaves at the ack */
    pri(c, 3, "b1", 2000 * MS);
    rep(c, 3, "B1", 2000 * MS);
    assert_int_equal(o.diverged, 1);
    rm_compare_cut(c);
    pri(c, 3, "b2", 2001 * MS);
    rm_compare_checkpoint_done(c, 2002 * MS);
    assert_int_equal(o.released, 3);
    assert_string_equal(o.last, "b1");
    rep(c, 3, "b2", 2003 * MS);
    assert_int_equal(o.released, 4);
    assert_string_equal(o.last, "b2");
    /* a frame since the cut that the resumed replica does not produce
     * times out from the acknowledgement on */
    rm_compare_cut(c);
    pri(c, 4, "c", 3000 * MS);
    rm_compare_checkpoint_done(c, 3500 * MS);
    assert_int_equal(rm_compare_tick(c, 3519 * MS), 3520 * MS);
    assert_int_equal(o.diverged, 1);
    rm_compare_tick(c, 3520 * MS);
    assert_int_equal(o.diverged, 2);
    assert_int_equal(o.why.cause, RM_DIVERGE_TIMEOUT);
    rm_compare_free(c);
}

/* start_held: before the first checkpoint no replica runs: everything the
 * primary sends waits for it, and that is no divergence. */
static void test_start_held(void **state)
{
    struct out o;
    struct rm_compare_cfg cfg = {
        .timeout_ns = 20 * MS, .sink = sink, .sink_opaque = &o,
        .on_diverge = on_diverge, .diverge_opaque = &o, .start_held = true,
    };
    struct rm_error err = { 0 };
    struct rm_compare *c;
    struct rm_compare_stats st;

    (void)state;
    memset(&o, 0, sizeof(o));
    pthread_mutex_init(&o.lock, NULL);
    c = rm_compare_new(&cfg, &err);
    assert_non_null(c);
    pri(c, 1, "boot", 0);
    assert_int_equal(rm_compare_tick(c, 500 * MS), UINT64_MAX);
    assert_false(rm_compare_diverged(c));
    rm_compare_get_stats(c, &st);
    assert_false(st.diverged);
    assert_int_equal(st.timeouts + st.mismatches + st.overflows, 0);
    rm_compare_cut(c);                        /* checkpoint 1 */
    pri(c, 1, "after", 501 * MS);
    rm_compare_checkpoint_done(c, 600 * MS);
    assert_int_equal(o.released, 1);
    assert_string_equal(o.last, "boot");
    rep(c, 1, "after", 601 * MS);             /* the replica, running */
    assert_int_equal(o.released, 2);
    assert_int_equal(o.diverged, 0);
    /* a real divergence now counts */
    pri(c, 2, "x", 602 * MS);
    rep(c, 2, "y", 602 * MS);
    rm_compare_get_stats(c, &st);
    assert_true(st.diverged);
    assert_int_equal(st.cause, RM_DIVERGE_MISMATCH);
    rm_compare_free(c);
}

/* Buffered (Remus) mode: the replica does not run; every primary frame
 * waits for the acknowledgement of the first checkpoint cut after it, no
 * timeout runs and nothing counts as a divergence; back off, the frames
 * since the last cut are compared with the replica again. */
static void test_buffered(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct rm_compare_stats st;

    (void)state;
    /* a divergence; the checkpoint it asks for turns buffering on */
    pri(c, 1, "d", 0);
    rep(c, 1, "D", 0);
    assert_int_equal(o.diverged, 1);
    rm_compare_cut(c);
    rm_compare_set_buffered(c, true);
    pri(c, 1, "e1", 1 * MS);                  /* since that cut */
    rm_compare_checkpoint_done(c, 2 * MS);
    assert_int_equal(o.released, 1);
    assert_string_equal(o.last, "d");
    rm_compare_get_stats(c, &st);
    assert_true(st.buffered);
    assert_false(st.diverged);
    assert_int_equal(st.held_primary, 1);     /* e1 waits, uncompared */
    pri(c, 2, "e2", 3 * MS);
    rep(c, 2, "zz", 3 * MS);                  /* (a stray replica frame) */
    assert_int_equal(rm_compare_tick(c, 900 * MS), UINT64_MAX);
    assert_int_equal(o.diverged, 1);          /* no timeout, no mismatch */
    assert_false(rm_compare_diverged(c));
    assert_int_equal(o.released, 1);
    /* the next periodic checkpoint: e1 and e2 leave at its ack, e3 (after
     * its cut) waits for the next one */
    rm_compare_cut(c);
    pri(c, 1, "e3", 901 * MS);
    rm_compare_checkpoint_done(c, 902 * MS);
    assert_int_equal(o.released, 3);
    assert_string_equal(o.last, "e2");
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.held_primary, 1);
    /* back to comparing at the next checkpoint: e3 left at its ack, e4
     * (since its cut) is compared with the replica that runs again */
    rm_compare_cut(c);
    rm_compare_set_buffered(c, false);
    pri(c, 1, "e4", 1000 * MS);
    rm_compare_checkpoint_done(c, 1001 * MS);
    assert_int_equal(o.released, 4);
    assert_string_equal(o.last, "e3");
    rep(c, 1, "e4", 1002 * MS);
    assert_int_equal(o.released, 5);
    assert_string_equal(o.last, "e4");
    rm_compare_get_stats(c, &st);
    assert_false(st.buffered);
    assert_int_equal(st.held_primary, 0);
    pri(c, 1, "f", 1003 * MS);                /* and timeouts run again */
    rm_compare_tick(c, 1030 * MS);
    assert_int_equal(o.diverged, 2);
    assert_int_equal(o.why.cause, RM_DIVERGE_TIMEOUT);
    rm_compare_free(c);
}

/* Frames from two threads, released in order within each flow. */
struct thr { struct rm_compare *c; int side; };

static void *feed(void *arg)
{
    struct thr *t = arg;
    uint8_t f[256];
    char p[16];
    int i;

    for (i = 0; i < 2000; i++) {
        snprintf(p, sizeof(p), "n%d", i);
        if (t->side)
            rm_compare_secondary(t->c, f, udp(f, (uint16_t)(i % 3), p, 5, 60), 0);
        else
            rm_compare_primary(t->c, f, udp(f, (uint16_t)(i % 3), p, 1, 64), 0);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct thr a = { c, 0 }, b = { c, 1 };
    pthread_t ta, tb;
    struct rm_compare_stats st;

    (void)state;
    pthread_create(&ta, NULL, feed, &a);
    pthread_create(&tb, NULL, feed, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    rm_compare_get_stats(c, &st);
    assert_int_equal(o.diverged, 0);
    assert_int_equal(st.matched, 2000);
    assert_int_equal(o.released, 2000);
    assert_int_equal(st.held_primary + st.held_replica, 0);
    rm_compare_free(c);
}

static void test_discard_passthrough(void **state)
{
    struct out o;
    struct rm_compare *c = mk(&o, 0);
    struct rm_compare_stats st;

    (void)state;
    pri(c, 1, "a", 0);
    rep(c, 2, "b", 0);
    rm_compare_discard(c);                  /* a failover: nothing leaves */
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.discarded, 2);
    assert_int_equal(st.held_primary + st.held_replica + st.flows, 0);
    assert_int_equal(o.released, 0);
    /* comparing goes on from nothing */
    pri(c, 1, "a", 1);
    rep(c, 1, "a", 1);
    assert_int_equal(o.released, 1);
    /* passthrough: what is held leaves, then everything at once */
    pri(c, 1, "x", 2);
    rep(c, 3, "y", 2);
    rm_compare_passthrough(c);
    assert_int_equal(o.released, 2);
    assert_string_equal(o.last, "x");
    pri(c, 5, "z", 3);
    assert_int_equal(o.released, 3);
    rep(c, 5, "other", 3);                  /* dropped, no divergence */
    assert_int_equal(rm_compare_tick(c, 900 * MS), UINT64_MAX);
    assert_int_equal(o.diverged, 0);
    rm_compare_get_stats(c, &st);
    assert_int_equal(st.dropped_replica, 2);
    rm_compare_free(c);
}

/* COLO's netbuf: the generic operations over the comparator. */
static void test_netbuf_colo(void **state)
{
    struct out o;
    struct rm_compare_cfg cfg = {
        .timeout_ns = 3600000 * MS, .sink = sink, .sink_opaque = &o,
        .on_diverge = on_diverge, .diverge_opaque = &o,
    };
    struct rm_error err = { 0 };
    struct rm_netbuf *nb;
    struct rm_netbuf_stats st;
    uint8_t f[256];
    size_t n;

    (void)state;
    memset(&o, 0, sizeof(o));
    pthread_mutex_init(&o.lock, NULL);
    nb = rm_netbuf_colo_new(&cfg, &err);
    assert_non_null(nb);
    assert_string_equal(rm_netbuf_kind(nb), "colo");
    n = udp(f, 1, "same", 1, 64);
    assert_int_equal(rm_netbuf_output(nb, f, n), 0);
    assert_int_equal(o.released, 0);
    n = udp(f, 1, "same", 2, 63);
    assert_int_equal(rm_netbuf_replica_output(nb, f, n), 0);
    assert_int_equal(o.released, 1);          /* on the match, no epoch */
    n = udp(f, 1, "mine", 1, 64);
    rm_netbuf_output(nb, f, n);
    n = udp(f, 1, "yours", 1, 64);
    rm_netbuf_replica_output(nb, f, n);
    assert_int_equal(o.diverged, 1);
    assert_int_equal(rm_netbuf_start_epoch(nb, 7), 0);
    assert_int_equal(o.released, 1);
    assert_int_equal(rm_netbuf_release(nb, 7), 0);
    assert_int_equal(o.released, 2);          /* "mine", at the ack */
    assert_string_equal(o.last, "mine");
    assert_true(rm_netbuf_colo_tick(nb) == UINT64_MAX);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.matched, 1);
    assert_int_equal(st.released_frames, 2);
    assert_int_equal(st.released_epochs, 1);
    assert_int_equal(st.held_frames, 0);
    rm_netbuf_output(nb, f, n);
    assert_int_equal(rm_netbuf_discard(nb), 0);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.discarded_frames, 1);
    assert_int_equal(st.discards, 1);
    rm_netbuf_free(nb);
    /* another kind of netbuf is not COLO's */
    {
        struct rm_netbuf_queue_cfg q = { .sink = sink, .sink_opaque = &o };
        struct rm_compare_stats cs;

        nb = rm_netbuf_queue_new(&q, &err);
        assert_non_null(nb);
        assert_int_equal(rm_netbuf_replica_output(nb, f, n), -EINVAL);
        assert_false(rm_netbuf_colo_stats(nb, &cs));
        rm_netbuf_free(nb);
    }
}

static void test_refused(void **state)
{
    struct rm_compare_cfg cfg = { 0 };
    struct rm_error err = { 0 };

    (void)state;
    assert_null(rm_compare_new(&cfg, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_string_equal(rm_diverge_cause_name(RM_DIVERGE_TIMEOUT), "timeout");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_ignores_id_ttl_checksums),
        cmocka_unit_test(test_payload_difference),
        cmocka_unit_test(test_other_frames_whole),
        cmocka_unit_test(test_flows),
        cmocka_unit_test(test_match_releases),
        cmocka_unit_test(test_flows_interleave),
        cmocka_unit_test(test_mismatch_holds_until_checkpoint),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_start_held),
        cmocka_unit_test(test_buffered),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_discard_passthrough),
        cmocka_unit_test(test_netbuf_colo),
        cmocka_unit_test(test_refused),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
