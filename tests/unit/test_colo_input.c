/* SPDX-License-Identifier: MIT */
/* COLO's replica input (colo/input_queue.h): frames in order, gaps and a
 * full queue refused, the eventfd's readiness, the checkpoint's cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>

#include "colo/input_queue.h"

static void push(struct rm_colo_inq *q, uint64_t seq, int expect)
{
    uint8_t f[64];
    struct rm_error err = { 0 };

    memset(f, (int)seq, sizeof(f));
    assert_int_equal(rm_colo_inq_push(q, seq, f, 20 + seq, &err), expect);
}

static bool readable(struct rm_colo_inq *q)
{
    struct pollfd p = { .fd = rm_colo_inq_fd(q), .events = POLLIN };

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_order_and_readiness(void **state)
{
    struct rm_error err = { 0 };
    struct rm_colo_inq *q = rm_colo_inq_new(0, &err);
    uint8_t buf[64];

    (void)state;
    assert_non_null(q);
    assert_false(readable(q));
    assert_int_equal(rm_colo_inq_read(q, buf, sizeof(buf)), 0);
    push(q, 1, 0);
    push(q, 2, 0);
    assert_true(readable(q));
    assert_int_equal(rm_colo_inq_read(q, buf, sizeof(buf)), 21);
    assert_int_equal(buf[0], 1);
    assert_true(readable(q));
    assert_int_equal(rm_colo_inq_read(q, buf, 5), 5);    /* truncated */
    assert_int_equal(buf[0], 2);
    assert_false(readable(q));
    rm_colo_inq_free(q);
}

static void test_refusals(void **state)
{
    struct rm_error err = { 0 };
    struct rm_colo_inq *q = rm_colo_inq_new(2, &err);
    uint8_t f[20] = { 0 };

    (void)state;
    assert_non_null(q);
    push(q, 2, -EPROTO);                 /* a gap: 1 never came */
    assert_int_equal(rm_colo_inq_push(q, 3, f, sizeof(f), &err), -EPROTO);
    assert_non_null(strstr(err.msg, "frame 3 arrived after frame 0"));
    push(q, 1, 0);
    push(q, 1, -EPROTO);                 /* a repeat */
    push(q, 2, 0);
    /* full: dropped and counted, the numbering goes on */
    assert_int_equal(rm_colo_inq_push(q, 3, f, sizeof(f), &err), 0);
    push(q, 4, 0);
    {
        struct rm_colo_inq_stats st;
        uint8_t buf[64];

        rm_colo_inq_stats(q, &st);
        assert_int_equal(st.dropped_full, 2);
        assert_int_equal(st.waiting, 2);
        assert_int_equal(st.last_pushed, 4);
        assert_int_equal(rm_colo_inq_read(q, buf, sizeof(buf)), 21);
        push(q, 5, 0);                    /* room again */
        rm_colo_inq_stats(q, &st);
        assert_int_equal(st.waiting, 2);
    }
    rm_colo_inq_free(q);
}

static void test_cut(void **state)
{
    struct rm_error err = { 0 };
    struct rm_colo_inq *q = rm_colo_inq_new(0, &err);
    struct rm_colo_inq_stats st;
    uint8_t buf[64];
    uint64_t s;

    (void)state;
    assert_non_null(q);
    for (s = 1; s <= 5; s++)
        push(q, s, 0);
    assert_int_equal(rm_colo_inq_read(q, buf, sizeof(buf)), 21);  /* 1 */
    /* the primary had read 3 at the cut: 2 and 3 are in the checkpoint */
    assert_int_equal(rm_colo_inq_cut(q, 3, &err), 0);
    rm_colo_inq_stats(q, &st);
    assert_int_equal(st.dropped_at_cut, 2);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.last_read, 3);
    assert_int_equal(rm_colo_inq_read(q, buf, sizeof(buf)), 24);  /* 4 */
    assert_int_equal(buf[0], 4);
    /* the replica ahead of the primary's cut: refused */
    assert_int_equal(rm_colo_inq_cut(q, 3, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "read input frame 4, past the primary's 3"));
    /* frames the primary read that never arrived: refused */
    rm_error_clear(&err);
    assert_int_equal(rm_colo_inq_cut(q, 9, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "only 5 were mirrored"));
    /* a cut at what the replica read drops nothing it has not read */
    assert_int_equal(rm_colo_inq_cut(q, 4, &err), 0);
    assert_true(readable(q));
    assert_int_equal(rm_colo_inq_cut(q, 5, &err), 0);
    assert_false(readable(q));           /* the eventfd followed the drop */
    rm_colo_inq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_readiness),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cut),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
