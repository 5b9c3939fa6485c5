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
 *     protection from there (replica discarded, the primary runs on);
 *   - `remus reprotect`'s request reaches the held VM's backend as asked
 *     (its output, -F -d), and a malformed one is refused before it;
 *   - the process's first signal ends a reprotection of a VM it runs
 *     (one that came before the reprotection does not), a second stops
 *     the VM.
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
#include <sys/un.h>
#include <unistd.h>

#include "backends/backend.h"
#include "common/auth.h"
#include "primary/session.h"
#include "proto/timing.h"
#include "secondary/session.h"
#include "tests/support/case_filter.h"
#include "common/ctlsock.h"
#include "common/log.h"
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
    int agains;                   /* protect_again() calls, */
    struct rm_again_opts again;   /* the last one's options */
    bool again_works;             /* protect_again() lends the guest */
    bool borrowed;                /* the guest is another mem_be's */
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
    if (ms < 0 && b->in_process) {   /* a VM this process runs: until it
                                        is stopped */
        while (!__atomic_load_n(&mb(b)->stop_requests, __ATOMIC_ACQUIRE))
            usleep(20 * 1000);
        return 0;
    }
    usleep((useconds_t)(ms < 0 || ms > 50 ? 50 : ms) * 1000);
    return -ETIMEDOUT;
}

static void m_request_stop(struct rm_backend *b)
{
    __atomic_add_fetch(&mb(b)->stop_requests, 1, __ATOMIC_RELEASE);
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
    if (!mb(b)->borrowed)
        mem_guest_free(mb(b)->g);
    mem_replica_free(mb(b)->r);
    free(b);
}

static const struct rm_backend_ops mem_be_ops;

/* Records what it was asked; then lends its guest to a protected-role
 * mem_be when again_works, else refuses.  (A VM's own borrowing, its
 * output and disks, is the backends': kvm_failback, the Xen lab's
 * xenfailback and xendevices.) */
static int m_protect_again(struct rm_backend *b,
                           const struct rm_again_opts *o,
                           struct rm_backend **out, struct rm_error *err)
{
    struct mem_be *m = mb(b), *lent;

    *out = NULL;
    m->again = *o;
    m->agains++;
    if (!m->again_works)
        return rm_error_set(err, -EOPNOTSUPP, "recorded (output %d, "
                            "no_disk %d)", (int)o->output, (int)o->no_disk);
    lent = calloc(1, sizeof(*lent));
    if (!lent)
        return rm_error_set(err, -ENOMEM, "out of memory");
    lent->b = m->b;               /* name, kind, sizes */
    lent->b.ops = &mem_be_ops;
    lent->b.in_process = false;
    lent->g = m->g;
    lent->borrowed = true;
    *out = &lent->b;
    return 0;
}

static const struct rm_backend_ops mem_be_ops = {
    .save_ops = m_save_ops, .pause = m_pause,
    .restore_ops = m_restore_ops, .activate = m_activate,
    .wait = m_wait, .request_stop = m_request_stop, .end = m_end,
    .protect_again = m_protect_again, .close = m_close,
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
    char status[160];

    snprintf(status, sizeof(status), "%s/run/memvm.secondary.status.json",
             tmpdir);
    unlink(status);               /* an earlier pair's (wait_replica) */
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

/* Until the secondary holds a replica (its status says so, after the
 * first checkpoint; slow under valgrind), at most 20 s.  (pair_init
 * removes an earlier pair's status.) */
static bool wait_replica(void)
{
    char status[160];
    int i;

    snprintf(status, sizeof(status), "%s/run/memvm.secondary.status.json",
             tmpdir);
    for (i = 0; i < 400 && !file_has(status, "\"state\": \"replica\""); i++)
        usleep(50 * 1000);
    return i < 400;
}

/* Run both sessions; @ms after the secondary holds a replica, raise
 * *@flag (the primary's stop), or for &p->pri_handover ask the VM's
 * control socket for a handover, as `remus handover` does. */
static void pair_run(struct pair *p, volatile sig_atomic_t *flag, int ms)
{
    pthread_t st, pt;
    struct rm_error err = { 0 };

    assert_int_equal(pthread_create(&st, NULL, secondary_main, p), 0);
    assert_int_equal(pthread_create(&pt, NULL, primary_main, p), 0);
    wait_replica();               /* (the assertions below say if not) */
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
    /* The control channel and the stream; the first cut may be enough:
     * the secondary closes the other one as soon as it sees it go (a
     * closed fd is not found). */
    assert_true(cut >= 1);
}

/* Ask the VM's control socket @req; its answer, or the error's text. */
static const char *ask(const char *req, char *reply, size_t len)
{
    struct rm_error err = { 0 };

    if (rm_ctlsock_request("memvm", req, -1, reply, len, &err))
        snprintf(reply, len, "%s", rm_error_str(&err));
    return reply;
}

/* A pair whose secondary went (its connections broke) while the primary
 * protected a VM that runs on (@in_process: one its process runs, as KVM;
 * else a Xen domain: wait() times out while it runs): on return the
 * primary holds it, its control socket answering "unprotected"; @pt its
 * thread. */
static void lose_secondary(struct pair *p, bool in_process, pthread_t *pt)
{
    char reply[200] = "";
    pthread_t st;
    int i;

    pair_init(p, NULL);
    mb(p->pri_be)->runs_on = true;
    p->pri_be->in_process = in_process;
    assert_int_equal(pthread_create(&st, NULL, secondary_main, p), 0);
    assert_int_equal(pthread_create(pt, NULL, primary_main, p), 0);
    assert_true(wait_replica());  /* both connections are up */
    usleep(100 * 1000);
    /* The secondary's host goes: its connections break. */
    cut_secondary(p);
    p->sec_stop = 1;              /* (its replica, taken over, ends) */
    pthread_join(st, NULL);
    /* Lost, and held: the process still answers for its VM. */
    for (i = 0; i < 100 && strcmp(ask("status", reply, sizeof(reply)),
                                  "ok unprotected"); i++)
        usleep(50 * 1000);
    assert_string_equal(reply, "ok unprotected");
}

/* The secondary goes: the VM is held, its control socket served, until a
 * stop is asked; then the run ends as a lost secondary, the VM running
 * on. */
static void test_lost_secondary_holds_domain(void **state)
{
    struct pair p;
    pthread_t pt;

    (void)state;
    lose_secondary(&p, false, &pt);
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

/* `remus reprotect`'s requests to a held VM (cli/cmd_reprotect.c writes
 * them): each well-formed one reaches the backend's protect_again with
 * the output and -F -d it asked for, its refusal answered; a malformed
 * one is refused before the backend is asked. */
/* @req (with its NUL) to VM @name's control socket as it is, whatever
 * its length; the answer line into @reply.  0 or -1. */
static int raw_request(const char *name, const char *req, char *reply,
                       size_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    ssize_t n;
    size_t got = 0;
    int s;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock",
             getenv("REMUS_RUN_DIR"), name);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) ||
        write(s, req, strlen(req) + 1) != (ssize_t)(strlen(req) + 1)) {
        if (s >= 0)
            close(s);
        return -1;
    }
    while (got + 1 < len && (n = read(s, reply + got, len - 1 - got)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(s);
    return 0;
}

static void test_reprotect_request_options(void **state)
{
    static const struct {
        const char *req;
        int output;               /* enum rm_again_output; -1: refused */
        bool no_disk;
        uint64_t netbuf_max;
        unsigned compare_ms;
    } cases[] = {
        { "protect 127.0.0.1:9 10 50 3000 1 insecure", RM_AGAIN_BUFFERED,
          false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure nodisk",
          RM_AGAIN_BUFFERED, true, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 0 insecure nodisk",
          RM_AGAIN_DIRECT, true, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure colo", RM_AGAIN_COLO,
          false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 0 insecure colo", -1, false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure colo nodisk", -1,
          false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure nodisk nodisk", -1,
          false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure nodisks", -1, false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1", -1, false, 0, 0 },
        { "protect 127.0.0.1:9 10 50 50 1 keyed", -1, false, 0, 0 },
        /* the options the backend applies, as `remus reprotect` sends them */
        { "protect 127.0.0.1:9 10 50 3000 1 insecure netbuf-max=65536",
          RM_AGAIN_BUFFERED, false, 65536, 0 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure colo netbuf-max=8192 "
          "compare-timeout=45 colo-max-interval=300", RM_AGAIN_COLO, false,
          8192, 45 },
        { "protect 127.0.0.1:9 10 50 3000 1 insecure compare-timeout=45", -1,
          false, 0, 0 },
    };
    struct pair p;
    pthread_t pt;
    unsigned i;

    (void)state;
    lose_secondary(&p, false, &pt);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rm_error err = { 0 };
        char reply[600] = "";
        int before = mb(p.pri_be)->agains;

        /* Every answer here is an error: a refusal, or the backend's. */
        assert_true(rm_ctlsock_request(p.pri_be->vm_name, cases[i].req, -1,
                                       reply, sizeof(reply), &err) < 0);
        if (cases[i].output < 0) {
            assert_non_null(strstr(rm_error_str(&err),
                                   "bad protect request"));
            assert_int_equal(mb(p.pri_be)->agains, before);
            continue;
        }
        assert_non_null(strstr(rm_error_str(&err), "recorded"));
        assert_int_equal(mb(p.pri_be)->agains, before + 1);
        assert_int_equal(mb(p.pri_be)->again.output, cases[i].output);
        assert_int_equal(mb(p.pri_be)->again.no_disk, cases[i].no_disk);
        assert_true(mb(p.pri_be)->again.netbuf_max_bytes ==
                    cases[i].netbuf_max);
        assert_int_equal(mb(p.pri_be)->again.compare_timeout_ms,
                         cases[i].compare_ms);
    }
    {   /* longer than a request may be: refused before it is sent */
        struct rm_error err = { 0 };
        char req[RM_CTLSOCK_REQ_MAX + 40], reply[600] = "";
        int before = mb(p.pri_be)->agains;

        snprintf(req, sizeof(req), "protect 127.0.0.1:9 10 50 3000 1 insecure");
        memset(req + strlen(req), ' ', sizeof(req) - strlen(req) - 1);
        req[sizeof(req) - 1] = '\0';
        assert_int_equal(rm_ctlsock_request(p.pri_be->vm_name, req, -1,
                                            reply, sizeof(reply), &err),
                         -E2BIG);
        assert_non_null(strstr(rm_error_str(&err), "longer than 511"));
        assert_int_equal(mb(p.pri_be)->agains, before);
        /* ... and by the VM's process, from a client that sends it anyway
         * (not cut to a shorter request that may mean something else) */
        assert_int_equal(raw_request(p.pri_be->vm_name, req, reply,
                                     sizeof(reply)), 0);
        assert_non_null(strstr(reply, "error request longer than 511"));
        assert_int_equal(mb(p.pri_be)->agains, before);
    }
    p.pri_stop = 1;
    pthread_join(pt, NULL);
    assert_int_equal(p.pres.protect.end, RM_PROTECT_PEER_LOST);
    pair_free(&p);
}

/* A VM this process runs (KVM), held after its secondary was lost, then
 * protected again to a new secondary (`remus reprotect`): the process's
 * first signal after that ends the reprotection cleanly (the new
 * secondary discards its replica; the VM runs on, held), even when a
 * signal came before the reprotection (that one ended nothing running);
 * a second signal (request_stop, as cli/cli_stop.c) stops the VM. */
static void test_reprotect_ends_on_first_signal(void **state)
{
    struct pair p, q;             /* q: the new secondary only */
    pthread_t pt, qt;
    char req[96], reply[600];
    int i;

    (void)state;
    lose_secondary(&p, true, &pt);
    mb(p.pri_be)->again_works = true;
    p.pri_stop = 1;               /* a first signal while it is held */
    usleep(200 * 1000);
    assert_false(__atomic_load_n(&p.pri_returned, __ATOMIC_ACQUIRE));
    pair_init(&q, NULL);
    q.key = p.key;                /* the pair's key */
    assert_int_equal(pthread_create(&qt, NULL, secondary_main, &q), 0);
    snprintf(req, sizeof(req), "protect 127.0.0.1:%u 10 50 3000 1 keyed",
             (unsigned)q.port);
    assert_non_null(strstr(ask(req, reply, sizeof(reply)), "ok "));
    usleep(300 * 1000);           /* it goes on (the earlier signal spent) */
    assert_non_null(strstr(ask("status", reply, sizeof(reply)),
                           "ok protected 127.0.0.1:"));
    p.pri_stop = 1;               /* the first signal since */
    for (i = 0; i < 100 && pthread_tryjoin_np(qt, NULL); i++)
        usleep(50 * 1000);
    if (i == 100) {
        ask("unprotect", reply, sizeof(reply));
        pthread_join(qt, NULL);
        m_request_stop(p.pri_be);
        pthread_join(pt, NULL);
        pair_free(&q);
        pair_free(&p);
        fail_msg("the reprotection did not end within 5 s of a signal");
    }
    assert_int_equal(q.sres.outcome, RM_OUTCOME_OK);
    assert_int_equal(q.sres.receive.end, RM_RECEIVE_STOPPED);
    assert_false(q.sres.receive.stop_asked);
    assert_int_equal(mb(q.sec_be)->activated, 0);
    assert_string_equal(ask("status", reply, sizeof(reply)),
                        "ok unprotected");
    usleep(200 * 1000);           /* the VM runs on, held */
    assert_false(__atomic_load_n(&p.pri_returned, __ATOMIC_ACQUIRE));
    assert_int_equal(mb(p.pri_be)->stop_requests, 0);
    m_request_stop(p.pri_be);     /* the second signal */
    pthread_join(pt, NULL);
    assert_int_equal(p.pres.outcome, RM_OUTCOME_OK);
    pair_free(&q);
    pair_free(&p);
}

/* A stop asked of the secondary while the primary streams (SIGTERM to
 * `remus receive`, a service's stop): protection ends from there, at
 * once, the replica discarded, never activated; the primary runs on. */
static void test_secondary_stop_ends_protection(void **state)
{
    struct pair p;
    pthread_t st, pt;
    char logged[16384];
    FILE *log = tmpfile();
    size_t n;
    int i;

    (void)state;
    assert_non_null(log);
    rm_log_init(RM_LOG_INFO, log);  /* what the stop logs, read below */
    pair_init(&p, NULL);
    assert_int_equal(pthread_create(&st, NULL, secondary_main, &p), 0);
    assert_int_equal(pthread_create(&pt, NULL, primary_main, &p), 0);
    assert_true(wait_replica());  /* a replica first */
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
        rm_log_init(RM_LOG_INFO, NULL);
        fclose(log);
        fail_msg("the secondary did not stop within 5 s of being asked");
    }
    pthread_join(pt, NULL);
    rm_log_init(RM_LOG_INFO, NULL);
    rewind(log);
    n = fread(logged, 1, sizeof(logged) - 1, log);
    logged[n] = 0;
    fclose(log);
    fputs(logged, stderr);
    /* The stream's end was asked for: news, not a warning. */
    assert_non_null(strstr(logged, "the stream ended as asked"));
    assert_null(strstr(logged, "warning: the stream ended"));
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
        cmocka_unit_test(test_reprotect_request_options),
        cmocka_unit_test(test_reprotect_ends_on_first_signal),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
