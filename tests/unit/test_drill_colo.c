/* SPDX-License-Identifier: MIT */
/* The drill's COLO reading (drill/drill_colo.h): the takeover's sectors and
 * the replica's pause from the secondary's log lines, and a role's last
 * checkpoint from its status file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "drill/drill_colo.h"

static void test_log_lines(void **state)
{
    struct rm_drill_colo c;

    (void)state;
    rm_drill_colo_init(&c);
    assert_int_equal(c.takeover_folded, -1);     /* not said yet */
    rm_drill_colo_log_line(&c, "remus[1] kvm-sr: COLO: the replica keeps "
                           "its own vCPU state\n");
    rm_drill_colo_log_line(&c, "remus[1] secondary: COLO: the replica ran "
                           "from 7 checkpoints, ...; its pause per "
                           "checkpoint mean 2.500 ms, max 9.250 ms\n");
    assert_int_equal(c.takeover_folded, -1);
    assert_true(c.replica_pause_mean_ms == 2.5);
    assert_true(c.replica_pause_max_ms == 9.25);
    rm_drill_colo_log_line(&c, "remus[1] kvm: COLO: 0 sectors the replica "
                           "wrote since its checkpoint written into its "
                           "image\n");
    assert_int_equal(c.takeover_folded, 0);
    rm_drill_colo_log_line(&c, "remus[1] kvm: COLO: 24 sectors the replica "
                           "wrote since its checkpoint written into its "
                           "image\n");
    assert_int_equal(c.takeover_folded, 24);
    assert_int_equal(c.takeover_dropped, 0);
    rm_drill_colo_log_line(&c, "remus[1] kvm: warning: COLO: TEST MODE: 16 "
                           "sectors the replica wrote since its checkpoint "
                           "DROPPED\n");
    assert_int_equal(c.takeover_dropped, 16);
    /* A line that only begins like one is not one */
    rm_drill_colo_log_line(&c, "remus[1] kvm: COLO: 99 sectors the replica "
                           "wrote\n");
    assert_int_equal(c.takeover_folded, 24);
    rm_drill_colo_log_line(&c, "remus[1] kvm: COLO: TEST MODE: 99 sectors "
                           "kept\n");
    assert_int_equal(c.takeover_dropped, 16);
}

static void test_status_epoch(void **state)
{
    char dir[] = "/tmp/test_drill_colo.XXXXXX";
    struct rm_status st;
    struct rm_error err = { 0 };
    uint64_t epoch = 0;
    char cmd[64];

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(setenv("REMUS_RUN_DIR", dir, 1), 0);
    assert_int_equal(rm_drill_colo_epoch(dir, "vm", "secondary", &epoch),
                     -ENOENT);
    memset(&st, 0, sizeof(st));
    snprintf(st.name, sizeof(st.name), "vm");
    snprintf(st.role, sizeof(st.role), "secondary");
    snprintf(st.state, sizeof(st.state), "replica");
    st.epoch = 41;
    assert_int_equal(rm_status_write(&st, &err), 0);
    assert_int_equal(rm_drill_colo_epoch(dir, "vm", "secondary", &epoch), 0);
    assert_int_equal(epoch, 41);
    assert_int_equal(rm_drill_colo_epoch(dir, "vm", "primary", &epoch),
                     -ENOENT);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void write_st(const char *role, uint64_t epoch, uint64_t sectors)
{
    struct rm_status st;
    struct rm_error err = { 0 };

    memset(&st, 0, sizeof(st));
    snprintf(st.name, sizeof(st.name), "vm");
    snprintf(st.role, sizeof(st.role), "%s", role);
    snprintf(st.state, sizeof(st.state), "replica");
    snprintf(st.colo_mode, sizeof(st.colo_mode), "comparing");
    st.epoch = epoch;
    st.colo_replica_sectors = sectors;
    assert_int_equal(rm_status_write(&st, &err), 0);
}

/* The drill's kill waits for the checkpoint's commit and a sector the
 * replica wrote since: each missing one keeps it waiting. */
static void test_wait_replica(void **state)
{
    static const struct {
        uint64_t committed, sectors;
        unsigned min_ms;
        int rc;
    } cases[] = {
        { 6, 5, 0, -ETIMEDOUT },     /* the checkpoint not committed yet */
        { 7, 0, 0, -ETIMEDOUT },     /* committed, nothing written since */
        { 7, 3, 0, 0 },
        { 9, 1, 0, 0 },              /* a later one committed, and written */
        { 7, 3, 25, 0 },             /* not before @min_ms */
        { 7, 3, 80, -ETIMEDOUT },    /* nor after @timeout_ms */
    };
    char dir[] = "/tmp/test_drill_colo.XXXXXX";
    struct rm_drill_colo_wait w;
    char cmd[64];
    unsigned i;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(setenv("REMUS_RUN_DIR", dir, 1), 0);
    assert_int_equal(rm_drill_colo_wait_replica(dir, "vm", 0, 30, &w),
                     -ENOENT);
    write_st("primary", 7, 0);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_st("secondary", cases[i].committed, cases[i].sectors);
        if (rm_drill_colo_wait_replica(dir, "vm", cases[i].min_ms, 40,
                                       &w) != cases[i].rc)
            fail_msg("case %u: committed %" PRIu64 ", %" PRIu64 " sectors: "
                     "not %d", i, cases[i].committed, cases[i].sectors,
                     cases[i].rc);
        assert_int_equal(w.taken, 7);
        assert_int_equal(w.committed, cases[i].committed);
        assert_int_equal(w.sectors, cases[i].sectors);
        assert_true(w.waited_ms >= (cases[i].rc ? 40 : cases[i].min_ms));
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_status_epoch),
        cmocka_unit_test(test_wait_replica),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
