/* SPDX-License-Identifier: MIT */
/* The drill's pause by part (drill/pause_tail.h): percentiles per part
 * from a --stats-file, checkpoint 1 and lines without parts left out, and
 * the part behind the slowest pauses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "drill/pause_tail.h"

/* A stats line: epoch pause dirty bytes send ack late, then the parts. */
static void row(FILE *f, unsigned epoch, unsigned suspend, unsigned pages,
                unsigned resume)
{
    unsigned pause = suspend + 50 + pages + 50 + resume;

    fprintf(f, "%u %u 100 409600 300 900 0 %u 50 0 0 %u 50 %u\n", epoch,
            pause, suspend, pages, resume);
}

static void test_parts_and_tail(void **state)
{
    char path[] = "/tmp/test_drill_pause.XXXXXX";
    struct rm_drill_pause_parts pp;
    FILE *f;
    unsigned e;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    row(f, 1, 300, 90000, 100);           /* the initial copy: left out */
    fprintf(f, "2 1000 1 1 1 1 0\n");     /* no parts: left out */
    for (e = 2; e < 102; e++)             /* 100 pauses of 1 ms */
        row(f, e, 300, 500, 100);
    row(f, 102, 300, 500, 19100);         /* 2 of 20 ms: the resume */
    row(f, 103, 1300, 500, 18100);
    fclose(f);

    assert_int_equal(rm_drill_pause_parts_read(path, &pp), 0);
    unlink(path);
    assert_int_equal(pp.n, 102);
    assert_true(pp.pause_ms_p50 == 1.0);
    assert_true(pp.pause_ms_p99 == 20.0);
    assert_true(pp.p50_ms[RM_PAUSE_PAGES] == 0.5);
    assert_true(pp.max_ms[RM_PAUSE_PAGES] == 0.5);   /* not checkpoint 1's */
    assert_true(pp.p50_ms[RM_PAUSE_SUSPEND] == 0.3);
    assert_true(pp.max_ms[RM_PAUSE_SUSPEND] == 1.3);
    assert_true(pp.max_ms[RM_PAUSE_RESUME] == 19.1);
    assert_int_equal(pp.tail_n, 2);
    assert_int_equal(pp.tail_part, RM_PAUSE_RESUME);
    assert_true(pp.tail_share > 0.9299 && pp.tail_share < 0.9301); /* 37.2 of 40 */
}

static void test_missing_and_empty(void **state)
{
    char path[] = "/tmp/test_drill_pause.XXXXXX";
    struct rm_drill_pause_parts pp;
    int fd;

    (void)state;
    assert_int_equal(rm_drill_pause_parts_read("/nonexistent/epochs.txt",
                                               &pp), -ENOENT);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "1 5 5 5 5 5 0\n", 14), 14);
    close(fd);
    assert_int_equal(rm_drill_pause_parts_read(path, &pp), 0);
    unlink(path);
    assert_int_equal(pp.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_and_tail),
        cmocka_unit_test(test_missing_and_empty),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
