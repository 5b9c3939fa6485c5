/* SPDX-License-Identifier: MIT */
/*
 * The primary and secondary sessions (primary/session.h,
 * secondary/session.h) over a backend that is neither KVM nor Xen: the
 * memory-only engines' backend (tests/support/mem_backend.h) behind the
 * backend interface (backends/backend.h), over loopback TCP, keyed.  What
 * the sessions decide, with no VM anywhere:
 *   - a clean stop: the secondary discards its replica (never activated);
 *   - a handover: the primary pauses its VM through the backend, the
 *     secondary activates the replica (FAILED_OVER) at the last checkpoint;
 *   - a fence command that fails holds the takeover back (HELD_BACK, the
 *     replica never activated), one that succeeds lets it go on, with
 *     REMUS_NAME from this side's configuration;
 *   - a lost secondary: a VM the primary's process does not run (a Xen
 *     domain) is held by it, its control socket served, until a stop;
 *   - a stop asked of the secondary while the primary streams ends
 *     protection from there (replica discarded, the primary runs on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/auth.h"
#include "primary/session.h"
#include "proto/timing.h"
#include "secondary/session.h"
#include "tests/support/case_filter.h"
#include "common/ctlsock.h"
#include "tests/support/mem_backend.h"

static char tmpdir[64];

/* ------------------------------------------------ a memory-only backend */

struct mem_be {
    struct rm_backend b;
    struct mem_guest *g;
    struct mem_replica *r;
    int paused, activated, stop_requests;
    bool runs_on;                 /* a domain that runs by itself: wait()
                                     times out until the case clears it */
};

static struct mem_be *mb(struct rm_backend *b)
{
    return (struct mem_be *)b;
}

static const struct rm_save_ops *m_save_ops(struct rm_backend *b, void **a)
{
    *a = mb(b)->g;
    return &mem_save_ops;
}

static int m_pause(struct rm_backend *b)
{
    mb(b)->paused++;
    return 0;
}

static const struct rm_restore_ops *m_restore_ops(struct rm_backend *b,
                                                  void **a)
{
    *a = mb(b)->r;
    return &mem_restore_ops;
}

static int m_activate(struct rm_backend *b, struct rm_error *err)
{
    (void)err;
    mb(b)->activated++;
    return 0;
}

static int m_wait(struct rm_backend *b, int ms)
{
    if (!__atomic_load_n(&mb(b)->runs_on, __ATOMIC_ACQUIRE))
        return 0;
    usleep((useconds_t)(ms < 0 || ms > 50 ? 50 : ms) * 1000);
    return -ETIMEDOUT;
}

static void m_request_stop(struct rm_backend *b)
{
    mb(b)->stop_requests++;
}

static enum rm_backend_end m_end(struct rm_backend *b, int64_t *code,
                                 char *why, size_t len)
{
    *code = 0;
    snprintf(why, len, "memory guest");
    return mb(b)->stop_requests ? RM_BACKEND_STOPPED : RM_BACKEND_RUNNING;
}

static void m_close(struct rm_backend *b)
{
    mem_guest_free(mb(b)->g);
    mem_replica_free(mb(b)->r);
    free(b);
}

static const struct rm_backend_ops mem_be_ops = {
    .save_ops = m_save_ops, .pause = m_pause,
    .restore_ops = m_restore_ops, .activate = m_activate,
    .wait = m_wait, .request_stop = m_request_stop, .end = m_end,
    .close = m_close,
};

static void dirty_some(struct mem_guest *g, void *opaque)
{
    (void)opaque;
    mem_guest_scribble(g, 8);
}

static struct rm_backend *mem_be_new(bool replica)
{
    struct mem_be *m = calloc(1, sizeof(*m));

    assert_non_null(m);
    m->b.ops = &mem_be_ops;
    m->b.kind = "kvm";           /* the handshake's; both sides agree */
    snprintf(m->b.vm_name, sizeof(m->b.vm_name), "memvm");
    if (replica) {
        m->r = mem_replica_new();
        assert_non_null(m->r);
    } else {
        m->g = mem_guest_new(256, RM_DHDR_TYPE_REMUS_KVM, 7);
        assert_non_null(m->g);
        m->g->workload = dirty_some;
        m->b.guest_bytes = 256 * 4096;
        m->b.nr_vcpus = 1;
    }
    return &m->b;
}

/* ----------------------------------------------------------- a pair */

struct pair {
    struct rm_auth_key key;
    int listen_fd;
    uint16_t port;
    struct rm_backend *pri_be, *sec_be;
    struct rm_primary_cfg pc;
    struct rm_secondary_cfg sc;
    struct rm_primary_result pres;
    struct rm_secondary_result sres;
    volatile sig_atomic_t pri_stop, pri_handover, sec_stop;
    int handover_rc;              /* `remus handover`'s request */
    bool pri_returned;            /* rm_primary_run() returned */
    char handover_reply[600];
};

static void *secondary_main(void *arg)
{
    struct pair *p = arg;

    rm_secondary_run(p->sec_be, &p->sc, &p->sres);
    return NULL;
}

static void *primary_main(void *arg)
{
    struct pair *p = arg;

    rm_primary_run(p->pri_be, &p->pc, &p->pres);
    __atomic_store_n(&p->pri_returned, true, __ATOMIC_RELEASE);
    return NULL;
}

static void pair_init(struct pair *p, const char *fence_cmd)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof(a);

    memset(p, 0, sizeof(*p));
    rm_auth_random(&p->key, sizeof(p->key));
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->listen_fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)),
                     0);
    assert_int_equal(listen(p->listen_fd, 4), 0);
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a,
                                 &alen), 0);
    p->port = ntohs(a.sin_port);
    p->pri_be = mem_be_new(false);
    p->sec_be = mem_be_new(true);

    rm_receive_cfg_init(&p->sc.receive);
    p->sc.receive.allow_compression = false;
    p->sc.receive.listen_fd = p->listen_fd;
    p->sc.receive.hb_interval_ms = 50;
    p->sc.receive.hb_timeout_ms = 3000;
    p->sc.receive.accept_timeout_ms = 10000;
    p->sc.receive.key = &p->key;
    p->sc.fence_cmd = fence_cmd;
    p->sc.fence_timeout_ms = 5000;
    p->sc.name = "memvm";
    p->sc.stop_requested = &p->sec_stop;

    rm_protect_cfg_init(&p->pc.protect);
    p->pc.protect.compress = false;
    snprintf(p->pc.protect.peer.host, sizeof(p->pc.protect.peer.host),
             "127.0.0.1");
    p->pc.protect.peer.port = p->port;
    p->pc.protect.interval_ms = 10;
    p->pc.protect.hb_interval_ms = 50;
    p->pc.protect.hb_timeout_ms = 3000;
    p->pc.protect.connect_timeout_ms = 5000;
    p->pc.protect.key = &p->key;
    p->pc.stop_requested = &p->pri_stop;
    p->pc.serve_control = true;   /* handover: through the VM's socket */
}

/* Run both sessions; after @ms, raise *@flag (the primary's stop), or
 * for &p->pri_handover ask the VM's control socket for a handover, as
 * `remus handover` does. */
static void pair_run(struct pair *p, volatile sig_atomic_t *flag, int ms)
{
    pthread_t st, pt;
    struct rm_error err = { 0 };

    assert_int_equal(pthread_create(&st, NULL, secondary_main, p), 0);
    assert_int_equal(pthread_create(&pt, NULL, primary_main, p), 0);
    usleep((useconds_t)ms * 1000);
    if (flag == &p->pri_handover)
        p->handover_rc = rm_ctlsock_request(p->pri_be->vm_name, "handover",
                                            -1, p->handover_reply,
                                            sizeof(p->handover_reply), &err);
    else
        *flag = 1;
    pthread_join(pt, NULL);
    pthread_join(st, NULL);
}

static void pair_free(struct pair *p)
{
    close(p->listen_fd);
    rm_backend_close(p->pri_be);
    rm_backend_close(p->sec_be);
}

/* ------------------------------------------------------------- cases */

/* The configs' _init: no fd (0 would be stdin), the documented defaults. */
static void test_cfg_init(void **state)
{
    struct rm_protect_cfg pc;
    struct rm_receive_cfg rc;

    (void)state;
    memset(&pc, 0x5a, sizeof(pc));
    rm_protect_cfg_init(&pc);
    assert_int_equal(pc.stats_fd, -1);
    assert_int_equal(pc.digest_fd, -1);
    assert_int_equal(pc.interval_ms, 200);
    assert_int_equal(pc.hb_interval_ms, 100);
    assert_int_equal(pc.hb_timeout_ms, rm_timing_default_timeout(200, 100));
    assert_int_equal(pc.connect_timeout_ms, 5000);
    assert_true(pc.compress);
    assert_null(pc.key);
    assert_null(pc.ops);
    assert_null(pc.netbuf);
    assert_int_equal(pc.progress_ms, 0);
    memset(&rc, 0x5a, sizeof(rc));
    rm_receive_cfg_init(&rc);
    assert_int_equal(rc.listen_fd, -1);
    assert_int_equal(rc.digest_fd, -1);
    assert_int_equal(rc.commit_log_fd, -1);
    assert_int_equal(rc.hb_interval_ms, 100);
    assert_int_equal(rc.hb_timeout_ms, 0);
    assert_int_equal(rc.accept_timeout_ms, 0);
    assert_true(rc.allow_compression);
    assert_int_equal(rc.max_guest_bytes, 0);
    assert_null(rc.key);
    assert_null(rc.ops);
}

static void test_clean_stop_discards(void **state)
{
    struct pair p;

    (void)state;
    pair_init(&p, NULL);
    pair_run(&p, &p.pri_stop, 400);
    assert_true(p.pres.started);
    assert_int_equal(p.pres.protect.end, RM_PROTECT_STOPPED);
    assert_int_equal(p.pres.outcome, RM_OUTCOME_OK);
    assert_true(p.pres.protect.epochs >= 2);
    assert_int_equal(p.sres.outcome, RM_OUTCOME_OK);
    assert_int_equal(p.sres.receive.end, RM_RECEIVE_STOPPED);
    assert_int_equal(mb(p.sec_be)->activated, 0);
    assert_int_equal(mb(p.pri_be)->paused, 0);
    pair_free(&p);
}

static void test_handover_activates(void **state)
{
    struct pair p;

    (void)state;
    pair_init(&p, NULL);
    pair_run(&p, &p.pri_handover, 400);
    assert_int_equal(p.handover_rc, 0);
    assert_non_null(strstr(p.handover_reply, "handed over"));
    assert_int_equal(p.pres.protect.end, RM_PROTECT_HANDED_OVER);
    assert_int_equal(p.pres.outcome, RM_OUTCOME_OK);
    assert_int_equal(mb(p.pri_be)->paused, 1);
    assert_true(mb(p.pri_be)->stop_requests >= 1);
    assert_int_equal(p.sres.outcome, RM_OUTCOME_FAILED_OVER);
    assert_true(p.sres.receive.handover);
    assert_int_equal(mb(p.sec_be)->activated, 1);
    /* The replica took over at the primary's last acknowledged epoch. */
    assert_int_equal(p.sres.receive.committed_epoch, p.pres.protect.epochs);
    pair_free(&p);
}

static void test_failed_fence_holds_back(void **state)
{
    struct pair p;
    char cmd[200];

    (void)state;
    snprintf(cmd, sizeof(cmd), "echo \"$REMUS_NAME\" > %s/fenced; exit 7",
             tmpdir);
    pair_init(&p, cmd);
    pair_run(&p, &p.pri_handover, 300);
    assert_int_equal(p.pres.protect.end, RM_PROTECT_HANDED_OVER);
    assert_int_equal(p.sres.outcome, RM_OUTCOME_HELD_BACK);
    assert_int_equal(mb(p.sec_be)->activated, 0);
    pair_free(&p);
}

static void test_fence_then_takeover(void **state)
{
    struct pair p;
    char cmd[200], path[128], buf[64] = { 0 };
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s/fenced", tmpdir);
    unlink(path);
    snprintf(cmd, sizeof(cmd), "echo \"$REMUS_NAME\" > %s", path);
    pair_init(&p, cmd);
    pair_run(&p, &p.pri_handover, 300);
    assert_int_equal(p.sres.outcome, RM_OUTCOME_FAILED_OVER);
    assert_int_equal(mb(p.sec_be)->activated, 1);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "memvm\n");
    pair_free(&p);
}

/* Break the secondary's side of every connection the primary made to it
 * (the sockets of this process bound to its port, but the listener). */
static void cut_secondary(struct pair *p)
{
    int fd, cut = 0;

    for (fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);

        if (fd == p->listen_fd ||
            getsockname(fd, (struct sockaddr *)&a, &alen) ||
            a.sin_family != AF_INET || ntohs(a.sin_port) != p->port)
            continue;
        shutdown(fd, SHUT_RDWR);
        cut++;
    }
    assert_true(cut >= 2);        /* the control channel and the stream */
}

/* The secondary goes (its connections break): a VM this process does not
 * run (a Xen domain: wait() times out while it runs) is held, its control
 * socket served, until a stop is asked; then the run ends as a lost
 * secondary, the VM running on. */
static void test_lost_secondary_holds_domain(void **state)
{
    struct pair p;
    pthread_t st, pt;
    struct rm_error err = { 0 };
    char reply[200] = "";
    int i;

    (void)state;
    pair_init(&p, NULL);
    mb(p.pri_be)->runs_on = true;
    assert_int_equal(pthread_create(&st, NULL, secondary_main, &p), 0);
    assert_int_equal(pthread_create(&pt, NULL, primary_main, &p), 0);
    usleep(400 * 1000);
    /* The secondary's host goes: its connections break. */
    cut_secondary(&p);
    p.sec_stop = 1;               /* (its replica, taken over, ends) */
    pthread_join(st, NULL);
    /* Lost, and held: the process still answers for its VM. */
    for (i = 0; i < 100; i++) {
        if (rm_ctlsock_request(p.pri_be->vm_name, "status", -1, reply,
                               sizeof(reply), &err) == 0 &&
            !strcmp(reply, "ok unprotected"))
            break;
        usleep(50 * 1000);
    }
    assert_string_equal(reply, "ok unprotected");
    usleep(300 * 1000);
    assert_false(__atomic_load_n(&p.pri_returned, __ATOMIC_ACQUIRE));
    p.pri_stop = 1;
    pthread_join(pt, NULL);
    assert_true(p.pres.started);
    assert_int_equal(p.pres.protect.end, RM_PROTECT_PEER_LOST);
    assert_int_equal(p.pres.outcome, RM_OUTCOME_OK);
    assert_int_equal(mb(p.pri_be)->paused, 0);      /* it runs on */
    assert_int_equal(mb(p.pri_be)->stop_requests, 0);
    pair_free(&p);
}

/* Does the file at @path hold @what (in its first 4 KiB)? */
static bool file_has(const char *path, const char *what)
{
    char buf[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, what) != NULL;
}

/* A stop asked of the secondary while the primary streams (SIGTERM to
 * `remus receive`, a service's stop): protection ends from there, at
 * once, the replica discarded, never activated; the primary runs on. */
static void test_secondary_stop_ends_protection(void **state)
{
    struct pair p;
    pthread_t st, pt;
    char status[160];
    int i;

    (void)state;
    pair_init(&p, NULL);
    assert_int_equal(pthread_create(&st, NULL, secondary_main, &p), 0);
    assert_int_equal(pthread_create(&pt, NULL, primary_main, &p), 0);
    /* A replica first (its status says so; slow under valgrind). */
    snprintf(status, sizeof(status), "%s/run/memvm.secondary.status.json",
             tmpdir);
    for (i = 0; i < 400 && !file_has(status, "\"state\": \"replica\""); i++)
        usleep(50 * 1000);
    assert_true(i < 400);
    usleep(200 * 1000);
    p.sec_stop = 1;
    /* Bounded: a secondary that never looks at its stop fails here. */
    for (i = 0; i < 100 && pthread_tryjoin_np(st, NULL); i++)
        usleep(50 * 1000);
    if (i == 100) {
        p.pri_stop = 1;           /* ends the pair, then fails */
        pthread_join(pt, NULL);
        pthread_join(st, NULL);
        pair_free(&p);
        fail_msg("the secondary did not stop within 5 s of being asked");
    }
    pthread_join(pt, NULL);
    assert_int_equal(p.sres.outcome, RM_OUTCOME_OK);
    assert_int_equal(p.sres.receive.end, RM_RECEIVE_STOPPED);
    assert_true(p.sres.receive.stop_asked);
    assert_true(p.sres.receive.committed_epoch >= 2);
    assert_int_equal(mb(p.sec_be)->activated, 0);
    assert_int_equal(p.pres.protect.end, RM_PROTECT_PEER_LOST);
    assert_non_null(strstr(rm_error_str(&p.pres.protect.why),
                           "the secondary stopped the protection"));
    assert_int_equal(mb(p.pri_be)->paused, 0);
    pair_free(&p);
}

static int setup(void **state)
{
    char run[96];
    struct rm_error err = { 0 };

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/remus-test-sessions.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(run, sizeof(run), "%s/run", tmpdir);
    setenv("REMUS_RUN_DIR", run, 1);
    signal(SIGPIPE, SIG_IGN);
    return rm_auth_init(&err) ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_init),
        cmocka_unit_test(test_clean_stop_discards),
        cmocka_unit_test(test_handover_activates),
        cmocka_unit_test(test_failed_fence_holds_back),
        cmocka_unit_test(test_fence_then_takeover),
        cmocka_unit_test(test_lost_secondary_holds_domain),
        cmocka_unit_test(test_secondary_stop_ends_protection),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
