/* SPDX-License-Identifier: MIT */
/*
 * COLO's network path on two real VMs of the micro-VMM, without
 * checkpoints: the primary's input is mirrored (rm_vm_set_net_in_tap) into
 * the second VM's input queue (colo/input_queue.h, rm_vm_set_net_in), both
 * VMs' output goes through the comparator (COLO's netbuf), and a client's
 * request is answered only once both VMs produced the same reply.  A reply
 * that carries the guest's clock (STATS) diverges: held, and a checkpoint
 * is asked for.  The second VM boots like the first (same image and
 * configuration), so it is in the same state as far as the key-value
 * service goes: what a COLO checkpoint will establish.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/kvm_unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/vmm.h"
#include "colo/input_queue.h"
#include "common/io.h"
#include "common/log.h"
#include "drill/kvclient.h"
#include "netbuf/netbuf_colo.h"
#include "tests/support/testutil.h"

static char image[PATH_MAX];

struct pair {
    struct rm_vm *pri, *rep;
    struct rm_colo_inq *inq;
    struct rm_netbuf *nb;
    uint64_t mirrored;            /* input frames mirrored (the seq) */
    int diverged;
    struct rm_divergence why;
    int mirror_errors;
};

/* The primary's input tap: every frame it reads goes to the replica. */
static void mirror(void *o, const void *frame, size_t len)
{
    struct pair *p = o;
    struct rm_error err = { 0 };

    if (rm_colo_inq_push(p->inq, ++p->mirrored, frame, len, &err))
        p->mirror_errors++;
}

static int primary_out(void *o, const void *frame, size_t len)
{
    struct pair *p = o;

    return rm_netbuf_output(p->nb, frame, len);
}

static int replica_out(void *o, const void *frame, size_t len)
{
    struct pair *p = o;

    return rm_netbuf_replica_output(p->nb, frame, len);
}

static int to_tap(void *o, const void *frame, size_t len)
{
    struct pair *p = o;

    return rm_vm_tap_write(p->pri, frame, len);
}

static void on_diverge(void *o, const struct rm_divergence *d)
{
    struct pair *p = o;

    __atomic_store_n(&p->why.cause, d->cause, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->diverged, 1, __ATOMIC_RELEASE);
}

static struct rm_vm *boot(const char *tap)
{
    struct rm_vm_config cfg;
    struct rm_error err = { 0 };
    struct rm_vm *vm = NULL;

    rm_vm_config_default(&cfg);
    cfg.image = image;
    cfg.tap = tap;
    cfg.ipv4 = htonl(0x0a4d0902);       /* 10.77.9.2 */
    cfg.netmask = htonl(0xffffff00);
    cfg.console_path = "/dev/null";
    if (rm_vm_create(&cfg, &vm, &err))
        fail_msg("%s", rm_error_str(&err));
    return vm;
}

static void start_pair(struct pair *p)
{
    struct rm_compare_cfg cc = {
        .timeout_ns = 2000000000ull,   /* a loaded host: no timeouts here */
        .sink = to_tap, .sink_opaque = p,
        .on_diverge = on_diverge, .diverge_opaque = p,
    };
    struct rm_error err = { 0 };
    struct rm_vm_net_in in;

    memset(p, 0, sizeof(*p));
    p->inq = rm_colo_inq_new(0, &err);
    assert_non_null(p->inq);
    p->nb = rm_netbuf_colo_new(&cc, &err);
    assert_non_null(p->nb);
    p->pri = boot("rmcolo0");
    p->rep = boot("rmcolo1");            /* never up: it reads the queue */
    in = (struct rm_vm_net_in){ .opaque = p->inq,
                                .poll_fd = rm_colo_inq_fd(p->inq),
                                .read = rm_colo_inq_read };
    rm_vm_set_net_in(p->rep, &in);
    rm_vm_set_net_out(p->rep, replica_out, p);
    rm_vm_set_net_in_tap(p->pri, mirror, p);
    rm_vm_set_net_out(p->pri, primary_out, p);
    assert_int_equal(system("ip addr add 10.77.9.1/24 dev rmcolo0 && "
                            "ip link set rmcolo0 up"), 0);
    assert_int_equal(rm_vm_start(p->pri, &err), 0);
    assert_int_equal(rm_vm_start(p->rep, &err), 0);
}

static void stop_pair(struct pair *p)
{
    rm_vm_destroy(p->pri);
    rm_vm_destroy(p->rep);
    rm_netbuf_free(p->nb);
    rm_colo_inq_free(p->inq);
}

static void test_replies_leave_when_both_agree(void **state)
{
    struct pair p;
    struct kv_client c;
    struct kv_reply r;
    struct rm_compare_stats st;
    struct rm_colo_inq_stats is;
    char cmd[32];
    int i;

    (void)state;
    start_pair(&p);
    assert_int_equal(kv_open(&c, 9, "10.77.9.2", 7000), 0);
    for (i = 1; i <= 20; i++) {
        snprintf(cmd, sizeof(cmd), i % 2 ? "INCR k%d" : "GET k%d", i % 3);
        assert_int_equal(kv_call(&c, cmd, &r, 200,
                                 rm_now_ns() + 20000000000ull, NULL), 0);
        assert_true(r.ok);
    }
    /* (the counters follow each send: the last one may be on its way) */
    for (i = 0; i < 100; i++) {
        rm_netbuf_colo_stats(p.nb, &st);
        if (st.released_frames == st.matched)
            break;
        usleep(10000);
    }
    rm_colo_inq_stats(p.inq, &is);
    printf("colo: %llu input frames mirrored, %llu read by the replica; "
           "%llu primary frames, %llu matched, %llu released\n",
           (unsigned long long)p.mirrored, (unsigned long long)is.read,
           (unsigned long long)st.primary_frames,
           (unsigned long long)st.matched,
           (unsigned long long)st.released_frames);
    assert_int_equal(p.mirror_errors, 0);
    assert_int_equal(p.diverged, 0);
    assert_true(st.matched >= 20);       /* every reply (and ARP) matched */
    assert_int_equal(st.released_frames, st.matched);
    assert_true(p.mirrored >= 20);

    /* STATS carries the guest's clock: the replies differ.  The primary's
     * is held (the client times out), a checkpoint is asked for. */
    assert_int_equal(kv_call(&c, "STATS", &r, 300, 0, NULL), -ETIMEDOUT);
    for (i = 0; i < 200 && !__atomic_load_n(&p.diverged, __ATOMIC_ACQUIRE); i++)
        usleep(10000);
    assert_int_equal(p.diverged, 1);
    assert_int_equal(p.why.cause, RM_DIVERGE_MISMATCH);
    rm_netbuf_colo_stats(p.nb, &st);
    assert_true(st.held_primary >= 1);
    /* The checkpoint acknowledged: the held reply leaves; the client's
     * retransmission is answered from the guest's cache. */
    rm_netbuf_release(p.nb, 1);
    rm_netbuf_colo_stats(p.nb, &st);
    assert_int_equal(st.held_primary, 0);
    kv_close(&c);
    stop_pair(&p);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_leave_when_both_agree),
    };

    (void)argc;
    (void)argv;
    return TU_KVM_UNIT_MAIN(tests, image);
}
