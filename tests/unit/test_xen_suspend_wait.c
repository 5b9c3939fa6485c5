/* SPDX-License-Identifier: MIT */
/* When a checkpoint's suspend is polled for (xen_suspend_wait.h): pure
 * logic, no Xen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backends/xen/xen_suspend_wait.h"

#define MS 1000000ull

static void seen_n(struct rm_xen_suspend_wait *w, unsigned n, uint64_t ns)
{
    while (n--)
        rm_xen_suspend_wait_seen(w, ns);
}

/* What the wait must say at these points (since the request, polls) */
struct want_step {
    uint64_t since_ns;
    unsigned polls;
    enum rm_xen_poll_step step;
};

static void want_steps(const struct rm_xen_suspend_wait *w,
                       const struct want_step *ws, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        enum rm_xen_poll_step got =
            rm_xen_suspend_wait_step(w, ws[i].since_ns, ws[i].polls);

        if (got != ws[i].step)
            fail_msg("%.1f ms after the request, after %u polls: step %d, "
                     "want %d", (double)ws[i].since_ns / MS, ws[i].polls,
                     (int)got, (int)ws[i].step);
    }
}

/* A new wait whose short sleeps took @took_ns each, 20 of them. */
static void init_slept(struct rm_xen_suspend_wait *w, uint64_t took_ns)
{
    unsigned i;

    rm_xen_suspend_wait_init(w);
    for (i = 0; i < 20; i++)
        rm_xen_suspend_wait_slept(w, took_ns);
}

/* Nothing known: 50 polls at once, then every 200 us, after 1 s 2 ms. */
static void test_defaults(void **state)
{
    struct rm_xen_suspend_wait w;
    uint64_t from, to;
    static const struct want_step ws[] = {
        { 0, 1, RM_XEN_POLL_NOW },
        { 3 * MS, 49, RM_XEN_POLL_NOW },
        { 3 * MS, 50, RM_XEN_POLL_SLEEP },
        { 1000 * MS, 900, RM_XEN_POLL_SLEEP_LONG },
    };

    (void)state;
    rm_xen_suspend_wait_init(&w);
    want_steps(&w, ws, sizeof(ws) / sizeof(ws[0]));
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 0);
}

/* Sleeps that take what they ask (real hardware): no spinning, whatever
 * the freezes; once freezes are known not even the first 50 polls. */
static void test_accurate_sleeps_never_spin(void **state)
{
    struct rm_xen_suspend_wait w;
    uint64_t t, from, to;

    (void)state;
    init_slept(&w, 260000);
    seen_n(&w, 16, 50 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 0);
    for (t = 0; t < 200 * MS; t += MS / 2)
        assert_int_equal(rm_xen_suspend_wait_step(&w, t, 1 + (unsigned)(t / MS)),
                         RM_XEN_POLL_SLEEP);
}

/* Sleeps ten times too long (the Xen lab): spin from 3/4 of the shortest
 * recent freeze to 5/4 of the longest + 1 ms, sleep outside. */
static void test_oversleeping_spins_in_window(void **state)
{
    struct rm_xen_suspend_wait w;
    uint64_t from, to;
    static const struct want_step in_window[] = {
        { 0, 1, RM_XEN_POLL_SLEEP },
        { 35 * MS, 10, RM_XEN_POLL_SLEEP },
        { 36 * MS, 11, RM_XEN_POLL_NOW },
        { 75 * MS, 5000, RM_XEN_POLL_NOW },
        { 76 * MS, 5001, RM_XEN_POLL_SLEEP },
        { 1500 * MS, 5400, RM_XEN_POLL_SLEEP_LONG },
    };

    (void)state;
    init_slept(&w, 2500000);
    rm_xen_suspend_wait_seen(&w, 48 * MS);
    rm_xen_suspend_wait_seen(&w, 60 * MS);
    rm_xen_suspend_wait_seen(&w, 52 * MS);
    /* three freezes: not yet known, the defaults hold */
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 0);
    assert_int_equal(rm_xen_suspend_wait_step(&w, 40 * MS, 60),
                     RM_XEN_POLL_SLEEP);
    rm_xen_suspend_wait_seen(&w, 55 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 1);
    assert_int_equal(from, 36 * MS);
    assert_int_equal(to, 76 * MS);
    want_steps(&w, in_window, sizeof(in_window) / sizeof(in_window[0]));
}

/* Only the last 16 freezes count: a guest that got slower moves the
 * window later (it does not spin from its old, shorter freezes on). */
static void test_window_follows_recent_freezes(void **state)
{
    struct rm_xen_suspend_wait w;
    uint64_t from, to;
    unsigned i;

    (void)state;
    init_slept(&w, 2500000);
    seen_n(&w, 16, 40 * MS);
    seen_n(&w, 15, 100 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 1);
    assert_int_equal(from, 30 * MS);
    seen_n(&w, 1, 100 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 1);
    assert_int_equal(from, 75 * MS);
    assert_int_equal(to, 126 * MS);
    /* sleeps that became accurate end the spinning */
    for (i = 0; i < 40; i++)
        rm_xen_suspend_wait_slept(&w, 250000);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 0);
    assert_int_equal(rm_xen_suspend_wait_step(&w, 90 * MS, 100),
                     RM_XEN_POLL_SLEEP);
}

/* One freeze of seconds among the last 16 does not have dom0 spin for
 * seconds: the window is at most RM_XEN_SPIN_MAX_NS wide from its start,
 * and the polls sleep after it. */
static void test_window_width_capped(void **state)
{
    struct rm_xen_suspend_wait w;
    uint64_t from, to;
    static const struct want_step ws[] = {
        { 37 * MS, 20, RM_XEN_POLL_SLEEP },
        { 38 * MS, 21, RM_XEN_POLL_NOW },
        { 287 * MS, 9000, RM_XEN_POLL_NOW },
        { 288 * MS, 9001, RM_XEN_POLL_SLEEP },
        { 3000 * MS, 9900, RM_XEN_POLL_SLEEP_LONG },
    };

    (void)state;
    init_slept(&w, 2500000);
    seen_n(&w, 15, 50 * MS);
    seen_n(&w, 1, 5000 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 1);
    assert_int_equal(from, 37500000);
    assert_int_equal(to - from, RM_XEN_SPIN_MAX_NS);
    want_steps(&w, ws, sizeof(ws) / sizeof(ws[0]));
    /* freezes that vary less than the cap keep their window whole */
    seen_n(&w, 16, 150 * MS);
    seen_n(&w, 1, 60 * MS);
    assert_int_equal(rm_xen_suspend_wait_window(&w, &from, &to), 1);
    assert_int_equal(from, 45 * MS);
    assert_int_equal(to, 188500000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_accurate_sleeps_never_spin),
        cmocka_unit_test(test_oversleeping_spins_in_window),
        cmocka_unit_test(test_window_follows_recent_freezes),
        cmocka_unit_test(test_window_width_capped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
