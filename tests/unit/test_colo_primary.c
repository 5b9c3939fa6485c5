/* SPDX-License-Identifier: MIT */
/* COLO, the primary's cut (colo/primary.h): the replica's dirty pages join
 * the checkpoint; a secondary that breaks the protocol or is lost ends the
 * cut at once, named, instead of keeping the VM suspended for the dirty
 * timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "colo/primary.h"
#include "common/io.h"
#include "common/sr.h"
#include "netbuf/netbuf_colo.h"

#define NR_PFNS 64

struct fixture {
    int fd[2];
    struct rm_chan mine, secondary;   /* the primary's end, the peer's */
    struct rm_netbuf *nb;
    struct rm_colo_primary *cp;
    unsigned long dirty[RM_BITMAP_LONGS(NR_PFNS)];
};

static int sink(void *opaque, const void *frame, size_t len)
{
    (void)opaque, (void)frame, (void)len;
    return 0;
}

static void on_diverge(void *opaque, const struct rm_divergence *d)
{
    (void)opaque, (void)d;
}

static int set_mirror(void *opaque, rm_colo_mirror_fn fn, void *fn_opaque)
{
    (void)opaque, (void)fn, (void)fn_opaque;
    return 0;
}

static void fixture_open(struct fixture *f)
{
    struct rm_compare_cfg cc = {
        .sink = sink, .on_diverge = on_diverge, .start_held = true,
    };
    struct rm_error err = { 0 };
    struct rm_colo_primary_cfg cfg = {
        .dirty_timeout_ms = 3000, .set_mirror = set_mirror,
    };

    memset(f, 0, sizeof(*f));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->fd), 0);
    rm_chan_init(&f->mine, f->fd[0]);
    rm_chan_init(&f->secondary, f->fd[1]);
    f->nb = rm_netbuf_colo_new(&cc, &err);
    assert_non_null(f->nb);
    cfg.chan = &f->mine;
    cfg.netbuf = f->nb;
    f->cp = rm_colo_primary_new(&cfg, &err);
    assert_non_null(f->cp);
    /* checkpoint 1 only starts the mirror */
    assert_int_equal(rm_colo_primary_cut(f->cp, 1, f->dirty, NR_PFNS, &err), 0);
}

static void fixture_close(struct fixture *f)
{
    rm_colo_primary_free(f->cp);
    rm_netbuf_free(f->nb);
    close(f->fd[0]);
    close(f->fd[1]);
    rm_chan_destroy(&f->mine);
    rm_chan_destroy(&f->secondary);
}

struct cut_run {
    struct fixture *f;
    uint64_t epoch;
    int rc;
    struct rm_error err;
    uint64_t took_ns;
};

static void *cut_main(void *arg)
{
    struct cut_run *c = arg;
    uint64_t t0 = rm_now_ns();

    c->rc = rm_colo_primary_cut(c->f->cp, c->epoch, c->f->dirty, NR_PFNS,
                                &c->err);
    c->took_ns = rm_now_ns() - t0;
    return NULL;
}

/* Not a timing test: a cut that waited for the whole dirty timeout (3 s)
 * was not ended by the abort. */
static void ended_by_abort(const struct cut_run *c)
{
    if (c->took_ns >= 3000000000ull)
        fail_msg("the cut waited out the dirty timeout (%llu ms): the abort "
                 "did not end it", (unsigned long long)(c->took_ns / 1000000));
}

/* The secondary's side: the checkpoint request arrives. */
static void expect_request(struct fixture *f, uint64_t epoch)
{
    struct rm_ctl_msg m;

    assert_int_equal(rm_chan_recv(&f->secondary, 2000, &m), 0);
    assert_int_equal(m.kind, RM_CTL_COLO_CHECKPOINT);
    assert_int_equal(m.u.colo_checkpoint.epoch, epoch);
}

/* Open the fixture and start c's cut in a thread; returns once the cut
 * has asked the secondary for its dirty pages. */
static void start_cut(struct fixture *f, struct cut_run *c, pthread_t *t)
{
    fixture_open(f);
    assert_int_equal(pthread_create(t, NULL, cut_main, c), 0);
    expect_request(f, c->epoch);
}

static void dirty_msg(struct rm_ctl_msg *m, uint64_t epoch, uint64_t pfn)
{
    memset(m, 0, sizeof(*m));
    m->kind = RM_CTL_COLO_DIRTY;
    m->u.colo_dirty.epoch = epoch;
    m->u.colo_dirty.count = 1;
    m->u.colo_dirty.pfns[0] = pfn;
    m->u.colo_dirty.last = true;
}

/* The replica's pages are ORed into the checkpoint's dirty set. */
static void test_dirty_joins(void **state)
{
    static struct fixture f;
    static struct rm_ctl_msg m;
    struct rm_error err = { 0 };
    struct cut_run c = { .f = &f, .epoch = 2 };
    pthread_t t;

    (void)state;
    start_cut(&f, &c, &t);
    dirty_msg(&m, 2, 17);
    assert_int_equal(rm_colo_primary_message(f.cp, &m, &err), 0);
    pthread_join(t, NULL);
    if (c.rc)
        fail_msg("the cut failed: %s", rm_error_str(&c.err));
    assert_true(rm_bitmap_test(f.dirty, 17));
    fixture_close(&f);
}

/*
 * A dirty list that names a pfn beyond the guest breaks the protocol: the
 * control thread ends protection (protect.c calls rm_colo_primary_abort
 * with the reason), and the cut, the VM suspended, returns at once with
 * that reason, not "did not come within 3000 ms".
 */
static void test_bad_dirty_ends_cut(void **state)
{
    static struct fixture f;
    static struct rm_ctl_msg m;
    struct rm_error err = { 0 };
    struct cut_run c = { .f = &f, .epoch = 2 };
    pthread_t t;

    (void)state;
    start_cut(&f, &c, &t);
    dirty_msg(&m, 2, NR_PFNS + 5);
    assert_int_equal(rm_colo_primary_message(f.cp, &m, &err), -EPROTO);
    assert_non_null(strstr(err.msg, "beyond the guest's 64 pages"));
    usleep(200000);               /* the cut is waiting by now */
    rm_colo_primary_abort(f.cp, rm_error_str(&err));
    pthread_join(t, NULL);
    ended_by_abort(&c);
    assert_int_equal(c.rc, -ECONNABORTED);
    if (!strstr(c.err.msg, "will not come") ||
        !strstr(c.err.msg, "beyond the guest's 64 pages"))
        fail_msg("the cut's error does not name the cause: %s", c.err.msg);
    fixture_close(&f);
}

/* The secondary lost while the cut waits (a dead replica host): the same. */
static void test_lost_ends_cut(void **state)
{
    static struct fixture f;
    struct cut_run c = { .f = &f, .epoch = 2 };
    pthread_t t;

    (void)state;
    start_cut(&f, &c, &t);
    usleep(200000);               /* the cut is waiting by now */
    rm_colo_primary_abort(f.cp, "no message from the secondary for 500 ms");
    pthread_join(t, NULL);
    ended_by_abort(&c);
    assert_int_equal(c.rc, -ECONNABORTED);
    if (!strstr(c.err.msg, "no message from the secondary"))
        fail_msg("the cut's error does not name the cause: %s", c.err.msg);
    /* ... and every cut after it */
    c.rc = rm_colo_primary_cut(f.cp, 3, f.dirty, NR_PFNS, &c.err);
    assert_int_equal(c.rc, -ECONNABORTED);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_joins),
        cmocka_unit_test(test_bad_dirty_ends_cut),
        cmocka_unit_test(test_lost_ends_cut),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
