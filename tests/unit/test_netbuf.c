/* SPDX-License-Identifier: MIT */
/* The KVM netbuf queue: epochs, release order, bound, discard, -n; a set
 * of netbufs held and released as one (netbuf/netbuf_set.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "common/log.h"
#include "netbuf/netbuf.h"
#include "netbuf/netbuf_set.h"

struct sink {
    int n;
    uint8_t first[1024];
    uint64_t produced[1024], released_by[1024];
};

static int sink_fn(void *o, const void *f, size_t len)
{
    struct sink *s = o;

    (void)len;
    if (s->n < 1024)
        s->first[s->n] = *(const uint8_t *)f;
    s->n++;
    return 0;
}

static void on_release(void *o, const void *f, size_t len, uint64_t produced,
                       uint64_t by)
{
    struct sink *s = o;

    (void)f;
    (void)len;
    if (s->n - 1 < 1024 && s->n >= 1) {
        s->produced[s->n - 1] = produced;
        s->released_by[s->n - 1] = by;
    }
}

static struct rm_netbuf *mk(struct sink *s, size_t max_frames, bool pass)
{
    struct rm_netbuf_queue_cfg c = { .max_frames = max_frames,
                                     .passthrough = pass, .sink = sink_fn,
                                     .sink_opaque = s,
                                     .on_release = on_release,
                                     .on_release_opaque = s };
    struct rm_error err = { 0 };
    struct rm_netbuf *nb = rm_netbuf_queue_new(&c, &err);

    assert_non_null(nb);
    return nb;
}

static void out(struct rm_netbuf *nb, uint8_t tag)
{
    uint8_t f[64];

    memset(f, tag, sizeof(f));
    assert_int_equal(rm_netbuf_output(nb, f, sizeof(f)), 0);
}

static void test_epochs(void **state)
{
    struct sink s = { 0 };
    struct rm_netbuf *nb = mk(&s, 0, false);
    struct rm_netbuf_stats st;

    (void)state;
    out(nb, 1);                       /* tagged 1: captured by checkpoint 1 */
    out(nb, 2);
    rm_netbuf_start_epoch(nb, 1);     /* checkpoint 1 taken */
    out(nb, 3);                       /* tagged 2 */
    assert_int_equal(s.n, 0);         /* nothing before an ack */
    rm_netbuf_start_epoch(nb, 2);
    out(nb, 4);                       /* tagged 3 */
    rm_netbuf_release(nb, 1);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.first[0], 1);
    assert_int_equal(s.first[1], 2);
    rm_netbuf_release(nb, 2);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.first[2], 3);
    /* every released frame was produced no later than the epoch acked */
    for (int i = 0; i < s.n; i++)
        assert_true(s.produced[i] <= s.released_by[i]);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.held_frames, 1);
    /* failover / abandon: held output is dropped, never sent */
    rm_netbuf_discard(nb);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.held_frames, 0);
    assert_int_equal(st.discarded_frames, 1);
    rm_netbuf_release(nb, 99);
    assert_int_equal(s.n, 3);
    rm_netbuf_free(nb);
}

static void test_bound(void **state)
{
    struct sink s = { 0 };
    struct rm_netbuf *nb = mk(&s, 3, false);
    struct rm_netbuf_stats st;
    uint8_t f[64] = { 9 };

    (void)state;
    rm_log_init(RM_LOG_ERROR, NULL);
    out(nb, 1);
    out(nb, 2);
    out(nb, 3);
    assert_int_equal(rm_netbuf_output(nb, f, sizeof(f)), -ENOBUFS);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.dropped_full, 1);
    assert_int_equal(st.held_frames, 3);
    rm_netbuf_start_epoch(nb, 1);
    rm_netbuf_release(nb, 1);
    assert_int_equal(s.n, 3);
    out(nb, 4);                  /* room again */
    rm_netbuf_free(nb);
}

static void test_passthrough(void **state)
{
    struct sink s = { 0 };
    struct rm_netbuf *nb = mk(&s, 0, true);
    struct rm_netbuf *nb2;

    (void)state;
    out(nb, 1);
    assert_int_equal(s.n, 1);     /* -n: at once */
    rm_netbuf_free(nb);
    /* protection ends: held frames go out, later ones at once */
    memset(&s, 0, sizeof(s));
    nb2 = mk(&s, 0, false);
    out(nb2, 5);
    assert_int_equal(s.n, 0);
    rm_netbuf_passthrough(nb2);
    assert_int_equal(s.n, 1);
    out(nb2, 6);
    assert_int_equal(s.n, 2);
    rm_netbuf_free(nb2);
}

struct thr {
    struct rm_netbuf *nb;
    int n;
};

static void *producer(void *a)
{
    struct thr *t = a;
    uint8_t f[60] = { 0 };

    for (int i = 0; i < t->n; i++)
        rm_netbuf_output(t->nb, f, sizeof(f));
    return NULL;
}

static void test_threads(void **state)
{
    struct sink s = { 0 };
    struct rm_netbuf *nb = mk(&s, 100000, false);
    struct thr t = { nb, 5000 };
    pthread_t th[4];
    struct rm_netbuf_stats st;
    uint64_t e;

    (void)state;
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, producer, &t);
    for (e = 1; e <= 50; e++) {
        rm_netbuf_start_epoch(nb, e);
        rm_netbuf_release(nb, e);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    rm_netbuf_start_epoch(nb, e);
    rm_netbuf_release(nb, e);
    rm_netbuf_get_stats(nb, &st);
    assert_int_equal(st.queued_frames, 20000);
    assert_int_equal(st.released_frames, 20000);
    assert_int_equal(s.n, 20000);
    rm_netbuf_free(nb);
}

/* Two members (two VIFs of one guest): every operation on the set reaches
 * both at the same epoch boundary. */
static void test_set(void **state)
{
    struct sink s1 = { 0 }, s2 = { 0 };
    struct rm_netbuf *a = mk(&s1, 0, false), *b = mk(&s2, 0, false);
    struct rm_netbuf *m[2] = { a, b };
    struct rm_error err = { 0 };
    struct rm_netbuf *set = rm_netbuf_set_new(m, 2, &err);
    struct rm_netbuf_stats st;
    uint8_t f[60] = { 0 };

    (void)state;
    assert_non_null(set);
    assert_int_equal(rm_netbuf_set_size(set), 2);
    assert_int_equal(rm_netbuf_set_size(a), 0);
    assert_string_equal(rm_netbuf_kind(set), "set");
    assert_int_equal(rm_netbuf_output(set, f, sizeof(f)), -EOPNOTSUPP);
    out(a, 1);                        /* tagged 1 on both */
    out(b, 2);
    assert_int_equal(rm_netbuf_start_epoch(set, 1), 0);
    out(a, 3);                        /* tagged 2 on both */
    out(b, 4);
    assert_int_equal(s1.n + s2.n, 0);  /* nothing before an ack */
    assert_int_equal(rm_netbuf_release(set, 1), 0);
    assert_int_equal(s1.n, 1);
    assert_int_equal(s1.first[0], 1);
    assert_int_equal(s2.n, 1);
    assert_int_equal(s2.first[0], 2);
    rm_netbuf_get_stats(set, &st);    /* summed */
    assert_int_equal(st.queued_frames, 4);
    assert_int_equal(st.released_frames, 2);
    assert_int_equal(st.held_frames, 2);
    assert_int_equal(rm_netbuf_start_epoch(set, 2), 0);
    assert_int_equal(rm_netbuf_release(set, 2), 0);
    assert_int_equal(s1.n, 2);
    assert_int_equal(s1.first[1], 3);
    assert_int_equal(s2.n, 2);
    assert_int_equal(s2.first[1], 4);
    /* failover: both members drop what they hold */
    out(a, 5);
    out(b, 6);
    assert_int_equal(rm_netbuf_discard(set), 0);
    rm_netbuf_get_stats(set, &st);
    assert_int_equal(st.held_frames, 0);
    assert_int_equal(st.discarded_frames, 2);
    rm_netbuf_release(set, 99);
    assert_int_equal(s1.n + s2.n, 4);
    /* protection ended: held output goes out, later output at once */
    out(a, 7);
    out(b, 8);
    assert_int_equal(rm_netbuf_passthrough(set), 0);
    assert_int_equal(s1.n, 3);
    assert_int_equal(s2.n, 3);
    out(b, 9);
    assert_int_equal(s2.n, 4);
    rm_netbuf_free(set);              /* frees the members */
}

/* A missing member or none: refused, and what was given is freed. */
static void test_set_refused(void **state)
{
    struct sink s1 = { 0 };
    struct rm_netbuf *m[2] = { mk(&s1, 0, false), NULL };
    struct rm_error err = { 0 };

    (void)state;
    assert_null(rm_netbuf_set_new(m, 2, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_non_null(strstr(err.msg, "1 of 2 given"));
    rm_error_clear(&err);
    assert_null(rm_netbuf_set_new(m, 0, &err));
    assert_int_equal(err.code, -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_refused),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
