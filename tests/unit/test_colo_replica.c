/* SPDX-License-Identifier: MIT */
/* COLO's secondary side (colo/replica.h): when the replica runs, pauses or
 * stays paused around commits and checkpoint requests -- above all a
 * request that comes between a commit's acknowledgement and the replica's
 * start (the primary asks as soon as it has the acknowledgement). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "colo/replica.h"
#include "common/io.h"

#define NR_PFNS 64

/* A stand-in backend: counts its calls. */
struct fake {
    unsigned runs, pauses, parks;
    bool running;
    unsigned long dirty[RM_BITMAP_LONGS(NR_PFNS)];
};

static int fake_run(void *opaque, const struct rm_colo_net *net,
                    struct rm_error *err)
{
    struct fake *f = opaque;

    (void)net;
    (void)err;
    f->runs++;
    f->running = true;
    return 0;
}

static int fake_pause(void *opaque, const unsigned long **dirty,
                      uint64_t *nr_pfns, struct rm_error *err)
{
    struct fake *f = opaque;

    if (!f->running)   /* as the KVM backend's: nothing to pause */
        return rm_error_set(err, -ENOENT, "the replica does not run");
    f->pauses++;
    f->running = false;
    *dirty = f->dirty;
    *nr_pfns = NR_PFNS;
    return 0;
}

static void fake_park(void *opaque)
{
    struct fake *f = opaque;

    f->parks++;
}

struct fixture {
    struct fake be;
    int fd[2];
    struct rm_chan mine, primary;
    struct rm_colo_replica *cr;
    struct rm_error err;
};

static void fixture_open(struct fixture *f)
{
    struct rm_colo_replica_ops ops;

    memset(f, 0, sizeof(*f));
    ops = (struct rm_colo_replica_ops){ .opaque = &f->be, .run = fake_run,
                                        .pause = fake_pause,
                                        .park = fake_park };
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->fd), 0);
    rm_chan_init(&f->mine, f->fd[0]);
    rm_chan_init(&f->primary, f->fd[1]);
    f->cr = rm_colo_replica_new(&ops, &f->mine, &f->err);
    assert_non_null(f->cr);
}

static void fixture_close(struct fixture *f)
{
    rm_colo_replica_free(f->cr);
    close(f->fd[0]);
    close(f->fd[1]);
}

/* The primary asks for checkpoint @epoch (control thread). */
static int ask(struct fixture *f, uint64_t epoch, bool buffered)
{
    struct rm_ctl_msg msg;

    memset(&msg, 0, sizeof(msg));
    msg.kind = RM_CTL_COLO_CHECKPOINT;
    msg.u.colo_checkpoint.epoch = epoch;
    msg.u.colo_checkpoint.buffered = buffered;
    return rm_colo_replica_message(f->cr, &msg, &f->err);
}

/* Checkpoint @epoch committed, acknowledged (restore thread). */
static int commit(struct fixture *f, uint64_t epoch)
{
    int rc = rm_colo_replica_committing(f->cr, epoch, &f->err);

    return rc ? rc : rm_colo_replica_committed(f->cr, epoch, &f->err);
}

static void test_run_pause_run(void **state)
{
    struct fixture f;
    struct rm_colo_replica_stats st;

    (void)state;
    fixture_open(&f);
    assert_int_equal(commit(&f, 1), 0);
    assert_int_equal(f.be.runs, 1);
    assert_int_equal(ask(&f, 2, false), 0);
    assert_int_equal(f.be.pauses, 1);
    assert_true(rm_colo_replica_ran_for(f.cr, 2));
    assert_int_equal(commit(&f, 2), 0);
    assert_int_equal(f.be.runs, 2);
    rm_colo_replica_get_stats(f.cr, &st);
    assert_false(st.at_checkpoint);       /* it runs on its own */
    assert_int_equal(st.runs_skipped, 0);
    fixture_close(&f);
}

/* The request for 3 comes after 2's acknowledgement, before the replica
 * ran from 2: answered with no pause (nothing ran), 2 is not run from, and
 * 3's commit runs it. */
static void test_request_before_run(void **state)
{
    struct fixture f;
    struct rm_colo_replica_stats st;

    (void)state;
    fixture_open(&f);
    assert_int_equal(commit(&f, 1), 0);
    assert_int_equal(ask(&f, 2, false), 0);
    assert_int_equal(rm_colo_replica_committing(f.cr, 2, &f.err), 0);
    /* the acknowledgement of 2 goes out here; the primary asks for 3 */
    assert_int_equal(ask(&f, 3, false), 0);
    assert_int_equal(f.be.pauses, 1);     /* not paused again: not running */
    assert_false(rm_colo_replica_ran_for(f.cr, 3));
    assert_int_equal(rm_colo_replica_committed(f.cr, 2, &f.err), 0);
    assert_int_equal(f.be.runs, 1);       /* not run from 2 ... */
    assert_int_equal(f.be.parks, 1);      /* ... its state 2's */
    rm_colo_replica_get_stats(f.cr, &st);
    assert_true(st.at_checkpoint);
    assert_int_equal(st.runs_skipped, 1);
    assert_int_equal(commit(&f, 3), 0);
    assert_int_equal(f.be.runs, 2);       /* runs from 3 */
    rm_colo_replica_get_stats(f.cr, &st);
    assert_false(st.at_checkpoint);
    /* and the next request pauses it again */
    assert_int_equal(ask(&f, 4, false), 0);
    assert_int_equal(f.be.pauses, 2);
    fixture_close(&f);
}

/* The same before the very first run (the replica never started). */
static void test_request_before_first_run(void **state)
{
    struct fixture f;

    (void)state;
    fixture_open(&f);
    assert_int_equal(rm_colo_replica_committing(f.cr, 1, &f.err), 0);
    assert_int_equal(ask(&f, 2, false), 0);
    assert_int_equal(rm_colo_replica_committed(f.cr, 1, &f.err), 0);
    assert_int_equal(f.be.runs, 0);
    assert_int_equal(commit(&f, 2), 0);
    assert_int_equal(f.be.runs, 1);
    fixture_close(&f);
}

static void test_protocol_errors(void **state)
{
    struct fixture f;

    (void)state;
    fixture_open(&f);
    assert_int_equal(commit(&f, 1), 0);
    /* a checkpoint nobody asked for: the replica's own changes would stay */
    assert_int_equal(rm_colo_replica_committing(f.cr, 2, &f.err), -EPROTO);
    assert_non_null(strstr(rm_error_str(&f.err), "without a COLO checkpoint "
                           "request"));
    /* committed without committing */
    assert_int_equal(rm_colo_replica_committed(f.cr, 2, &f.err), -EPROTO);
    /* another checkpoint's commit while 3 is asked */
    assert_int_equal(ask(&f, 3, false), 0);
    assert_int_equal(rm_colo_replica_committing(f.cr, 4, &f.err), -EPROTO);
    /* a request while one is under way */
    assert_int_equal(ask(&f, 5, false), -EPROTO);
    fixture_close(&f);
}

static void test_buffered(void **state)
{
    struct fixture f;
    struct rm_colo_replica_stats st;

    (void)state;
    fixture_open(&f);
    assert_int_equal(commit(&f, 1), 0);
    assert_int_equal(ask(&f, 2, true), 0);        /* to buffered mode */
    assert_int_equal(commit(&f, 2), 0);
    assert_int_equal(f.be.parks, 1);
    assert_int_equal(commit(&f, 3), 0);           /* no request: stays */
    assert_int_equal(f.be.runs, 1);
    rm_colo_replica_get_stats(f.cr, &st);
    assert_true(st.parked);
    assert_true(st.at_checkpoint);
    assert_int_equal(ask(&f, 4, false), 0);       /* back to comparing */
    assert_int_equal(f.be.pauses, 1);             /* parked: no pause */
    assert_int_equal(commit(&f, 4), 0);
    assert_int_equal(f.be.runs, 2);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_pause_run),
        cmocka_unit_test(test_request_before_run),
        cmocka_unit_test(test_request_before_first_run),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_buffered),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
