/* SPDX-License-Identifier: MIT */
/*
 * kvm_bench: numbers for the KVM backend and the checkpoint path, measured
 * in one run on this machine (ratios are what to compare; absolute times
 * drift on shared machines).  Writes a markdown report to stdout.
 *
 *   - guest start time (create -> the guest's service answers)
 *   - guest page-writes/s without and with dirty logging (harvest every
 *     25 ms, as a checkpointing primary does)
 *   - dirty-log harvest throughput (pages/s)
 *   - checkpoint pause against dirty pages, beside the memcpy floor of the
 *     same pages, and bytes per epoch with and without compression
 *   - full non-live save and restore of a 256 MiB guest
 *   - end to end, with `remus protect` -> `remus receive` (the drill, run
 *     in child processes): the highest checkpoint rate for an idle, a
 *     light and a busy guest; guest throughput at 10, 25 and 100 ms
 *     against the unprotected guest; added request latency (buffered
 *     output against -n); failover time; COLO against buffered Remus
 *     and unheld output (latency, checkpoints by cause, pause, CPU)
 *   - the disk (bench/disk rows, below): the guest's 4 KiB writes/s and
 *     their latency (its DISKLOAD workload) protected at 10, 25 and 100 ms
 *     against unprotected, disk bytes per epoch, the pause with and without
 *     disk traffic, and the resync of a 1 GiB image with 1% of its chunks
 *     changed against a full copy
 *
 *   kvm_bench [DATA-DIR]   also writes gnuplot data files into DATA-DIR
 *                          (bench/plots.gp turns them into PNGs)
 *   REMUS_BENCH_ONLY=disk kvm_bench   only the disk rows
 *   REMUS_BENCH_ONLY=colo kvm_bench   only COLO against Remus
 *   REMUS_BENCH_ONLY=pause kvm_bench  only the pause against dirty pages
 *                                     and its parts (#21, goals 1 and 2)
 *
 * Needs root (private network namespace) and /dev/kvm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "backends/backend.h"
#include "backends/kvm/kvm_disks.h"
#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmm.h"
#include "bench/pause_parts.h"
#include "common/disklog.h"
#include "common/io.h"
#include "common/log.h"
#include "drill/drill.h"
#include "drill/kvclient.h"

static char image[PATH_MAX];
static char remus_bin[PATH_MAX];
static char data_dir[PATH_MAX];

/* A data file for the plots, or NULL (no DATA-DIR given). */
static FILE *data_file(const char *name)
{
    char path[PATH_MAX + 64];

    if (!data_dir[0])
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    return fopen(path, "w");
}

struct gvm {
    struct rm_vm *vm;
    struct kv_client kc;
    double start_ms;
};

static int kv(struct gvm *g, const char *cmd, struct kv_reply *r)
{
    return kv_call(&g->kc, cmd, r, 50, rm_now_ns() + 10000000000ull, NULL);
}

/* Start a guest: dirty-tracking @mode (0 bitmap, 1 ring, 2 manual
 * clear); @disk: its disk image, or NULL. */
static int start_disk(struct gvm *g, unsigned mib, unsigned vcpus, int mode,
                      const char *disk)
{
    struct rm_vm_config cfg;
    struct rm_error err = { 0 };
    struct kv_reply r;
    uint64_t t0 = rm_now_ns();

    memset(g, 0, sizeof(*g));
    rm_vm_config_default(&cfg);
    cfg.image = image;
    cfg.mem_bytes = (uint64_t)mib << 20;
    cfg.nr_vcpus = vcpus;
    cfg.tap = "rmbench0";
    cfg.ipv4 = htonl(0x0a4d0002);
    cfg.netmask = htonl(0xffffff00);
    cfg.console_path = "/dev/null";
    cfg.dirty_ring = mode == 1;
    cfg.dirty_manual_clear = mode == 2;
    cfg.disk = disk;
    if (rm_vm_create(&cfg, &g->vm, &err) ||
        system("ip addr replace 10.77.0.1/24 dev rmbench0 && "
               "ip link set rmbench0 up") ||
        rm_vm_start(g->vm, &err)) {
        fprintf(stderr, "kvm_bench: %s\n", rm_error_str(&err));
        return -1;
    }
    kv_open(&g->kc, 7, "10.77.0.2", 7000);
    if (kv(g, "STATS", &r))
        return -1;
    g->start_ms = (double)(rm_now_ns() - t0) / 1e6;
    return 0;
}

static int start(struct gvm *g, unsigned mib, unsigned vcpus, int mode)
{
    return start_disk(g, mib, vcpus, mode, NULL);
}

static void stop(struct gvm *g)
{
    kv_close(&g->kc);
    rm_vm_destroy(g->vm);
}

static uint64_t writes(struct gvm *g)
{
    struct kv_reply r;

    return kv(g, "STATS", &r) ? 0 : r.value;
}

/* Page-writes/s over @ms, optionally harvesting every 25 ms. */
static double write_rate(struct gvm *g, bool logdirty, unsigned ms,
                         double *harvest_pages_s)
{
    uint64_t pages = rm_vm_mem_bytes(g->vm) / 4096, w0, w1, t0, t1;
    unsigned long *bm = calloc(RM_BITMAP_LONGS(pages), sizeof(long));
    uint64_t harvested = 0, harvest_ns = 0;

    if (logdirty)
        rm_vm_logdirty(g->vm, true);
    w0 = writes(g);
    t0 = rm_now_ns();
    while (rm_now_ns() - t0 < (uint64_t)ms * 1000000) {
        rm_sleep_ms(25);
        if (logdirty) {
            uint64_t h0 = rm_now_ns();

            memset(bm, 0, RM_BITMAP_LONGS(pages) * sizeof(long));
            rm_vm_harvest_dirty(g->vm, bm);
            harvest_ns += rm_now_ns() - h0;
            harvested += rm_bitmap_weight(bm, pages);
        }
    }
    w1 = writes(g);
    t1 = rm_now_ns();
    if (logdirty)
        rm_vm_logdirty(g->vm, false);
    if (harvest_pages_s)
        *harvest_pages_s = harvest_ns ? (double)harvested /
                                        ((double)harvest_ns / 1e9) : 0;
    free(bm);
    return (double)(w1 - w0) / ((double)(t1 - t0) / 1e9);
}

/* The suspend's parts summed over a row's checkpoints (ns). */
struct suspend_sum {
    uint64_t n;
    struct rm_vm_suspend_parts sum;
};

struct cp {
    struct rm_vm *vm;
    unsigned epochs, want, sleep_ms, skip;
    uint64_t pause_sum, bytes_sum, dirty_sum, faults_sum;
    uint64_t pauses[64];
    struct pause_parts parts;
    struct suspend_sum suspend;
};

static void suspend_add(struct suspend_sum *s, struct rm_vm *vm)
{
    struct rm_vm_suspend_parts p;

    if (rm_vm_suspend_parts(vm, &p))
        return;
    s->sum.total += p.total;
    s->sum.kick += p.kick;
    s->sum.wake += p.wake;
    s->sum.io += p.io;
    s->sum.state += p.state;
    s->sum.park += p.park;
    s->n++;
}

static void suspend_row(const char *label, const struct suspend_sum *s)
{
    const struct rm_vm_suspend_parts *p = &s->sum;
    double n = s->n ? (double)s->n : 1, t = p->total ? (double)p->total : 1;

    printf("| %s | %" PRIu64 " | %.1f | %.1f (%.0f%%) | %.1f (%.0f%%) | "
           "%.1f (%.0f%%) | %.1f (%.0f%%) | %.1f (%.0f%%) |\n", label, s->n,
           (double)p->total / n / 1e3, (double)p->kick / n / 1e3,
           100 * (double)p->kick / t, (double)p->wake / n / 1e3,
           100 * (double)p->wake / t, (double)p->io / n / 1e3,
           100 * (double)p->io / t, (double)p->state / n / 1e3,
           100 * (double)p->state / t, (double)p->park / n / 1e3,
           100 * (double)p->park / t);
}

static int on_cp(void *o, const struct rm_epoch_stats *st)
{
    struct cp *c = o;

    if (st->epoch > c->skip && c->epochs < 64) {   /* skip the warm-up */
        c->pauses[c->epochs++] = st->pause_ns;
        pause_parts_add(&c->parts, st);
        suspend_add(&c->suspend, c->vm);
        c->faults_sum += st->pause_faults;
        c->bytes_sum += st->bytes;
        c->dirty_sum += st->dirty_pages;
    }
    rm_sleep_ms(c->sleep_ms);
    return c->epochs < c->want;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Checkpoints of a guest dirtying @wss pages flat out. */
static int checkpoints(struct gvm *g, uint64_t wss, bool compress,
                       struct cp *c)
{
    struct rm_save_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_sink sink;
    struct kv_reply r;
    char cmd[64];
    int null = open("/dev/null", O_WRONLY), rc;

    snprintf(cmd, sizeof(cmd), "DIRTY 0 %" PRIu64, wss);
    kv(g, cmd, &r);
    memset(c, 0, sizeof(*c));
    c->vm = g->vm;
    /* With dirty logging on, a PVM guest re-faults every page it writes
     * after each harvest, so sweeping a large working set takes longer:
     * give each epoch time to dirty it. */
    c->want = wss > 50000 ? 4 : wss > 5000 ? 8 : 20;
    /* The first pass, and for a large working set the checkpoints while
     * its dirty set still grows (pages turning hot, the staging buffer
     * growing with it: those first touches are the table of faults'). */
    c->skip = wss >= 20000 ? 4 : 2;
    c->sleep_ms = 25 + (unsigned)(wss / 30);
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &rm_kvm_save_ops;
    ctx.backend_arg = g->vm;
    ctx.err = &err;
    rm_save_params_default(&ctx.params, RM_SAVE_CHECKPOINTED);
    ctx.params.compress = compress;
    ctx.cb.opaque = c;
    ctx.cb.checkpoint = on_cp;
    rm_sink_init_fd(&sink, null);
    rc = rm_save(&ctx, &sink);
    close(null);
    kv(g, "DIRTY 0 0", &r);
    if (rc)
        fprintf(stderr, "kvm_bench: %s\n", rm_error_str(&err));
    qsort(c->pauses, c->epochs, sizeof(c->pauses[0]), cmp);
    return rc;
}

static volatile uint8_t floor_sink;

/* The floor: copying the same number of pages (from guest memory). */
static double memcpy_floor_ms(struct gvm *g, uint64_t pages)
{
    uint8_t *dst = malloc(pages * 4096);
    uint8_t *src = rm_vm_mem(g->vm) + (4ull << 20);
    uint64_t t0, dt, best = UINT64_MAX, i;
    int k;

    memset(dst, 1, pages * 4096);        /* fault the buffer in first */
    for (k = 0; k < 5; k++) {
        t0 = rm_now_ns();
        memcpy(dst, src, pages * 4096);
        dt = rm_now_ns() - t0;
        for (i = 0; i < pages; i++)
            floor_sink ^= dst[i * 4096 + (k & 7)];
        if (dt < best)
            best = dt;
    }
    free(dst);
    return (double)best / 1e6;
}

/* Rows that could not be measured: each says so in the report, and the
 * run exits non-zero (make bench fails). */
static unsigned unmeasured;

static void not_measured(const char *row, const char *why)
{
    printf("| %s | NOT MEASURED: %s |\n", row, why);
    fflush(stdout);
    unmeasured++;
}

/* A drill row is measured when the drill ran and passed (@lossy: when it
 * ran and the guest survived: -n rows lose operations by design). */
static bool drill_failed(int rc, const struct rm_drill_report *rep,
                         bool lossy, const char *row)
{
    char why[300];

    if (rc)
        snprintf(why, sizeof(why), "the drill could not run (%s)",
                 strerror(-rc));
    else if (lossy ? !rep->survived : !rep->passed)
        snprintf(why, sizeof(why), "the drill failed: %s",
                 rep->why[0] ? rep->why : "the guest did not survive");
    else
        return false;
    not_measured(row, why);
    return true;
}

/*
 * One drill (protect -> receive, clients, kill -9 of the primary) in a
 * child process: rm_drill_run() moves its caller into a new network
 * namespace and forks the remus processes.  0 with @rep filled.
 */
#define DRILL_NOBUF 1u      /* protect -F -n */
#define DRILL_COLO 2u       /* --colo */
#define DRILL_NODISK 4u     /* no disk */

static int drill(unsigned interval_ms, uint64_t rate, uint64_t wss,
                 unsigned flags, struct rm_drill_report *rep)
{
    int fds[2], status;
    pid_t pid;
    ssize_t n;

    memset(rep, 0, sizeof(*rep));
    if (pipe(fds))
        return -errno;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct rm_drill_cfg cfg;
        struct rm_drill_report r;
        struct rm_error err = { 0 };

        close(fds[0]);
        rm_drill_cfg_default(&cfg);
        cfg.self = remus_bin;
        cfg.image = image;
        cfg.interval_ms = interval_ms;
        cfg.dirty_rate = rate;
        cfg.dirty_wss = wss;
        cfg.no_buffer = flags & DRILL_NOBUF;
        cfg.colo = flags & DRILL_COLO;
        if (flags & (DRILL_COLO | DRILL_NODISK))
            cfg.disk_mib = 0;
        cfg.kill_after_ms = 4000;
        cfg.after_ms = 500;
        cfg.quiet = true;
        cfg.seed = 1;
        if (rm_drill_run(&cfg, &r, &err)) {
            fprintf(stderr, "kvm_bench: drill: %s\n", rm_error_str(&err));
            _exit(1);
        }
        _exit(write(fds[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -errno;
    }
    n = read(fds[0], rep, sizeof(*rep));
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status))
        return -EIO;
    return n == (ssize_t)sizeof(*rep) ? 0 : -EIO;
}

/* Page-writes/s of the drill's guest (64 MiB, 2 vCPUs) unprotected. */
static double unprotected_rate(uint64_t wss)
{
    struct gvm g;
    struct kv_reply r;
    char cmd[64];
    double rate;

    if (start(&g, 64, 2, 2))
        return 0;
    snprintf(cmd, sizeof(cmd), "DIRTY 0 %" PRIu64, wss);
    kv(&g, cmd, &r);
    rm_sleep_ms(300);
    rate = write_rate(&g, false, 3000, NULL);
    stop(&g);
    return rate;
}

/* One row of the COLO table. */
static void colo_row(const char *mode, const struct rm_drill_report *r,
                     double unheld_p99)
{
    const struct rm_drill_colo *c = &r->colo_st;

    printf("| %s | %.3f / %.3f | %.2f | %.1f | ", mode, r->latency_ms_p50,
           r->latency_ms_p99, unheld_p99 > 0 ? r->latency_ms_p99 / unheld_p99
                                             : 0, r->epochs_per_s);
    if (r->colo)
        printf("%.2f, %.2f, %.2f, %.2f", rm_drill_colo_rate(c, 0),
               rm_drill_colo_rate(c, 1), rm_drill_colo_rate(c, 2),
               rm_drill_colo_rate(c, 3));
    else
        printf("-");
    printf(" | %.3f | ", r->pause_ms_p50);
    if (r->colo)
        printf("%.3f / %.3f", c->replica_pause_mean_ms,
               c->replica_pause_max_ms);
    else
        printf("-");
    printf(" | %.0f | %.2f / %.2f | %" PRIu64 " |\n", r->dirty_per_epoch,
           r->primary_cpu, r->secondary_cpu, r->lost_ops);
}

/* COLO against buffered Remus and unheld output (#20), one run. */
static void colo_rows(void)
{
    struct rm_drill_report nb, rb, co;
    bool have_nb, have_rb, have_co;

    printf("\n## COLO against Remus\n\n"
           "Three drills one after the other: the light guest (5,000 "
           "page-writes/s over 2,048 pages, 64 MiB, 2 vCPUs), 4 closed-loop "
           "clients of its key-value service (replies that depend only on "
           "the requests), no disk, kill -9 of the primary after 4 s.  "
           "Output not held (`-F -n` at 25 ms: the service's own latency "
           "but for the checkpoints' pauses), buffered Remus at 25 ms, and "
           "COLO (`--colo`: a checkpoint on a difference, a timeout, a full "
           "queue or every 2 s).  Goal: COLO p99 within 2x the unheld "
           "p99.  CPU: the remus processes, each running its VM in COLO "
           "mode.\n\n"
           "| mode | latency p50 / p99 (ms) | p99 / unheld p99 | "
           "checkpoints/s under load | COLO checkpoints/s by cause "
           "(mismatch, timeout, full queue, periodic) | pause p50 (ms) | "
           "replica's pause mean / max (ms) | dirty pages per checkpoint | "
           "CPU primary / secondary (cores) | lost ops |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    have_nb = !drill_failed(drill(25, 5000, 2048, DRILL_NOBUF | DRILL_NODISK,
                                  &nb), &nb, true, "COLO table: -n");
    have_rb = !drill_failed(drill(25, 5000, 2048, DRILL_NODISK, &rb), &rb,
                            false, "COLO table: Remus 25 ms");
    have_co = !drill_failed(drill(25, 5000, 2048, DRILL_COLO, &co), &co,
                            false, "COLO table: COLO");
    if (have_nb)
        colo_row("output not held (-n, 25 ms)", &nb, nb.latency_ms_p99);
    if (have_rb)
        colo_row("Remus, 25 ms", &rb, have_nb ? nb.latency_ms_p99 : 0);
    if (have_co)
        colo_row("COLO", &co, have_nb ? nb.latency_ms_p99 : 0);
    fflush(stdout);
}

static void end_to_end(void)
{
    static const unsigned intervals[] = { 10, 25, 100 };
    static const struct {
        const char *name;
        uint64_t rate, wss;
    } loads[] = {
        { "idle (no memory workload)", 0, 0 },
        { "light (5,000 page-writes/s over 2,048 pages)", 5000, 2048 },
        { "busy (flat out over 2,048 pages)", 0, 2048 },
    };
    struct rm_drill_report rep, nb;
    FILE *lat = data_file("latency.dat"), *thr = data_file("throughput.dat");
    double base;
    unsigned i;

    printf("\n## End to end: `remus protect` -> `remus receive`\n\n"
           "Each row is one drill (kill -9 of the primary after 4 s; the "
           "guest: 64 MiB, 2 vCPUs; 4 closed-loop clients of its "
           "key-value service).\n\n"
           "Highest checkpoint rate (interval 1 ms, the minimum):\n\n"
           "| guest | checkpoints/s | pause p50 (ms) | pause p99 (ms) | "
           "dirty pages/epoch | failover (ms) | lost ops |\n"
           "|---|---|---|---|---|---|---|\n");
    for (i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        if (drill_failed(drill(1, loads[i].rate, loads[i].wss, 0, &rep),
                         &rep, false, loads[i].name))
            continue;
        printf("| %s | %.0f | %.3f | %.3f | %.0f | %.1f | %" PRIu64 " |\n",
               loads[i].name, rep.epochs_per_s, rep.pause_ms_p50,
               rep.pause_ms_p99, rep.dirty_per_epoch, rep.failover_ms,
               rep.lost_ops);
        fflush(stdout);
    }

    base = unprotected_rate(2048);
    printf("\nA memory-busy guest (flat out over 2,048 pages): throughput "
           "against the unprotected guest (%.0f page-writes/s, same "
           "run):\n\n"
           "| interval (ms) | checkpoints/s | guest page-writes/s | vs "
           "unprotected | pause p50 (ms) | pause p99 (ms) | dirty pages/"
           "epoch | latency p50 / p99 (ms) | failover (ms) | lost ops |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n", base);
    if (thr)
        fprintf(thr, "# interval_ms writes_per_s unprotected ratio "
                "checkpoints_per_s pause_p50_ms pause_p99_ms\n");
    for (i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
        char row[32];

        snprintf(row, sizeof(row), "%u", intervals[i]);
        if (drill_failed(drill(intervals[i], 0, 2048, 0, &rep), &rep,
                         false, row))
            continue;
        printf("| %u | %.1f | %.0f | %.3f | %.3f | %.3f | %.0f | %.2f / "
               "%.2f | %.1f | %" PRIu64 " |\n", intervals[i],
               rep.epochs_per_s, rep.guest_writes_per_s,
               base > 0 ? rep.guest_writes_per_s / base : 0,
               rep.pause_ms_p50, rep.pause_ms_p99, rep.dirty_per_epoch,
               rep.latency_ms_p50, rep.latency_ms_p99, rep.failover_ms,
               rep.lost_ops);
        if (thr)
            fprintf(thr, "%u %.0f %.0f %.4f %.2f %.4f %.4f\n", intervals[i],
                    rep.guest_writes_per_s, base,
                    base > 0 ? rep.guest_writes_per_s / base : 0,
                    rep.epochs_per_s, rep.pause_ms_p50, rep.pause_ms_p99);
        fflush(stdout);
    }

    printf("\nAdded output latency: request -> reply of 4 closed-loop "
           "clients, light guest (5,000 page-writes/s over 2,048 pages), "
           "output held until the checkpoint is acknowledged against `-n` "
           "(unbuffered) at the same interval; goal: p99 at most one "
           "interval + 1 ms:\n\n"
           "| interval (ms) | latency p50 (ms) | latency p99 (ms) | p99 - "
           "interval (ms) | -n p50 (ms) | -n p99 (ms) | added p50 (ms) | "
           "lost ops (buffered / -n) |\n"
           "|---|---|---|---|---|---|---|---|\n");
    if (lat)
        fprintf(lat, "# interval_ms p50 p99 nobuf_p50 nobuf_p99\n");
    for (i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++) {
        char row[32];

        snprintf(row, sizeof(row), "%u", intervals[i]);
        if (drill_failed(drill(intervals[i], 5000, 2048, 0, &rep), &rep,
                         false, row) ||
            drill_failed(drill(intervals[i], 5000, 2048, DRILL_NOBUF, &nb), &nb,
                         true, row))
            continue;
        printf("| %u | %.3f | %.3f | %+.3f | %.3f | %.3f | %.3f | %" PRIu64
               " / %" PRIu64 " |\n", intervals[i], rep.latency_ms_p50,
               rep.latency_ms_p99, rep.latency_ms_p99 - intervals[i],
               nb.latency_ms_p50, nb.latency_ms_p99,
               rep.latency_ms_p50 - nb.latency_ms_p50, rep.lost_ops,
               nb.lost_ops);
        if (lat)
            fprintf(lat, "%u %.3f %.3f %.3f %.3f\n", intervals[i],
                    rep.latency_ms_p50, rep.latency_ms_p99,
                    nb.latency_ms_p50, nb.latency_ms_p99);
        fflush(stdout);
    }
    printf("\nFailover: kill -9 of the primary closes its TCP connections, "
           "so the secondary notices at once; with the primary's host gone "
           "silent (no RST) the heartbeat timeout (500 ms here) bounds it "
           "(tests/integration/kvm_protect.sh cuts the link).  With `-n` "
           "the clients saw replies whose state the replica never "
           "received: the lost ops column is why output is buffered.\n");
    if (lat)
        fclose(lat);
    if (thr)
        fclose(thr);
}

/* ------------------------------------------------------------------ disk */

/* The guest's disk workload counters (guest/PROTOCOL.md, DISKLOAD). */
struct dstat {
    uint64_t w, w_ns, t_ns;
};

static int dstat(struct gvm *g, struct dstat *d)
{
    struct kv_reply r;
    const char *w, *ns;

    if (kv(g, "STATS", &r) || !r.ok)
        return -1;
    w = strstr(r.text, " disk_w=");
    ns = strstr(r.text, " disk_w_ns=");
    if (!w || !ns)
        return -1;
    d->w = strtoull(w + 8, NULL, 10);
    d->w_ns = strtoull(ns + 11, NULL, 10);
    d->t_ns = rm_now_ns();
    return 0;
}

/* Writes/s and mean latency (us) between two samples; 0 when none. */
static double dstat_rate(const struct dstat *a, const struct dstat *b)
{
    return b->t_ns > a->t_ns ? (double)(b->w - a->w) /
                               ((double)(b->t_ns - a->t_ns) / 1e9) : 0;
}

static double dstat_lat_us(const struct dstat *a, const struct dstat *b)
{
    return b->w > a->w ? (double)(b->w_ns - a->w_ns) /
                         (double)(b->w - a->w) / 1e3 : 0;
}

/* Checkpoints of a guest with a disk, its workload sampled after the
 * first pass and at the end. */
struct dcp {
    struct gvm *g;
    unsigned epochs, want, sleep_ms;
    uint64_t pauses[256];
    uint64_t disk_bytes, dirty;
    struct pause_parts parts;
    struct dstat s0, s1;
    int sample_err;
};

static int on_dcp(void *o, const struct rm_epoch_stats *st)
{
    struct dcp *c = o;

    if (st->epoch > 2 && c->epochs < c->want) {  /* skip the first pass */
        if (c->epochs == 0)
            c->sample_err |= dstat(c->g, &c->s0);
        c->pauses[c->epochs++] = st->pause_ns;
        pause_parts_add(&c->parts, st);
        c->disk_bytes += st->disk_bytes;
        c->dirty += st->dirty_pages;
    }
    rm_sleep_ms(c->sleep_ms);
    if (c->epochs == c->want)
        c->sample_err |= dstat(c->g, &c->s1);
    return c->epochs < c->want;
}

/*
 * Protect @g's disk and take checkpoints every @interval_ms for about
 * @ms through the real save engine (the disk log, its cut, its records),
 * written to /dev/null and acknowledged at once.  0 with @c filled.
 */
static int disk_checkpoints(struct gvm *g, unsigned interval_ms, unsigned ms,
                            struct dcp *c, char *why, size_t whylen)
{
    struct rm_backend b;
    struct rm_save_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_sink sink;
    int null = open("/dev/null", O_WRONLY), rc;

    memset(c, 0, sizeof(*c));
    memset(&b, 0, sizeof(b));
    c->g = g;
    c->sleep_ms = interval_ms;
    c->want = ms / interval_ms;
    if (c->want > 256)
        c->want = 256;
    rc = rm_kvm_disks_protect(g->vm, false, 0, &b, &err);
    if (!rc && !b.disklog)
        rc = rm_error_set(&err, -ENODEV, "the guest has no disk");
    if (rc) {
        snprintf(why, whylen, "%s", rm_error_str(&err));
        close(null);
        return rc;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &rm_kvm_save_ops;
    ctx.backend_arg = g->vm;
    ctx.err = &err;
    ctx.disks = b.disklog;
    rm_save_params_default(&ctx.params, RM_SAVE_CHECKPOINTED);
    ctx.cb.opaque = c;
    ctx.cb.checkpoint = on_dcp;
    rm_sink_init_fd(&sink, null);
    rc = rm_save(&ctx, &sink);
    rm_kvm_disks_unprotect(g->vm, b.disklog);
    close(null);
    if (rc)
        snprintf(why, whylen, "%s", rm_error_str(&err));
    else if (c->sample_err || c->epochs < c->want) {
        rc = -EIO;
        snprintf(why, whylen, "the guest's STATS did not answer during "
                 "the checkpoints");
    }
    qsort(c->pauses, c->epochs, sizeof(c->pauses[0]), cmp);
    return rc;
}

/* The unprotected guest's disk writes over @ms. */
static int disk_unprotected(struct gvm *g, unsigned ms, double *rate,
                            double *lat_us)
{
    struct dstat a, b;

    if (dstat(g, &a))
        return -1;
    rm_sleep_ms(ms);
    if (dstat(g, &b) || b.w == a.w)
        return -1;
    *rate = dstat_rate(&a, &b);
    *lat_us = dstat_lat_us(&a, &b);
    return 0;
}

/* Pauses of several checkpoint runs pooled. */
#define PAUSE_PAIRS 6
struct pool {
    uint64_t pauses[PAUSE_PAIRS * 256];
    unsigned n;
    uint64_t dirty, disk_bytes;
    struct pause_parts parts;
    double rate;               /* the runs' guest writes/s, summed */
    double run_p50[PAUSE_PAIRS];   /* each run's own pause p50 (ns) */
    unsigned runs;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Send @cmd to the guest, then add a run of checkpoints every 25 ms for
 * 2.5 s to @p.  0, or -1 with @why. */
static int pause_pool(struct gvm *g, const char *cmd, struct pool *p,
                      char *why, size_t whylen)
{
    static struct dcp c;
    struct kv_reply r;

    if (kv(g, cmd, &r) || !r.ok) {
        snprintf(why, whylen, "the guest refused %s", cmd);
        return -1;
    }
    rm_sleep_ms(200);
    if (disk_checkpoints(g, 25, 2500, &c, why, whylen))
        return -1;
    if (p->n + c.epochs > sizeof(p->pauses) / sizeof(p->pauses[0])) {
        snprintf(why, whylen, "too many pauses to pool");
        return -1;
    }
    if (!c.epochs || c.epochs > 256 || p->runs >= PAUSE_PAIRS) {
        snprintf(why, whylen, "%u checkpoints in a run", c.epochs);
        return -1;
    }
    memcpy(p->pauses + p->n, c.pauses, c.epochs * sizeof(c.pauses[0]));
    /* disk_checkpoints() sorted the run's pauses */
    p->run_p50[p->runs++] = (double)c.pauses[c.epochs / 2];
    p->n += c.epochs;
    p->dirty += c.dirty;
    p->disk_bytes += c.disk_bytes;
    pause_parts_merge(&p->parts, &c.parts);
    p->rate += dstat_rate(&c.s0, &c.s1);
    return 0;
}

/*
 * Where the disk's time in the pause goes: the parts of the pooled pauses
 * without and with disk traffic, and the disk's own part.  The cut is the
 * only disk work done while the VM is paused (the sealed epoch's records
 * are staged after the resume); a vCPU inside a disk write when the pause
 * begins delays its park, which shows in "suspend".
 */
static void disk_pause_parts(const struct pool *off, const struct pool *on)
{
    double cut = pause_parts_mean_us(&on->parts, RM_PAUSE_DISK_CUT);
    double pause = pause_parts_pause_us(&on->parts);
    double susp_off = pause_parts_mean_us(&off->parts, RM_PAUSE_SUSPEND);
    double susp_on = pause_parts_mean_us(&on->parts, RM_PAUSE_SUSPEND);

    printf("\nThe same pauses by part (means over the pooled checkpoints; "
           "the parts of a pause add up to it):\n\n");
    pause_parts_header("disk workload");
    pause_parts_row("off", &off->parts);
    pause_parts_row("flat out", &on->parts);
    printf("\nThe disk's own work in the pause (its cut), with disk "
           "traffic: %.1f us, %.2f%% of the mean pause (goal: < 5%%).  The "
           "suspend (kick, park: a vCPU inside a disk write finishes it "
           "first) with / without disk traffic: %.1f / %.1f us (%+.1f us, "
           "%.2f%% of the mean pause with traffic).\n", cut,
           pause > 0 ? 100 * cut / pause : 0, susp_on, susp_off,
           susp_on - susp_off,
           pause > 0 ? 100 * (susp_on - susp_off) / pause : 0);
}

static void disk_guest_rows(const char *dir)
{
    static const unsigned intervals[] = { 10, 25, 100 };
    const unsigned n = sizeof(intervals) / sizeof(intervals[0]);
    static struct dcp runs[3];
    static struct pool off, on;
    bool ok;
    char img[PATH_MAX], why[3][300];
    struct kv_reply r;
    struct gvm g;
    double base, base_lat, u0, u1, u0_lat, u1_lat;
    unsigned i;
    int fd;

    snprintf(img, sizeof(img), "%s/guest.img", dir);
    fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 64u << 20)) {
        not_measured("guest disk writes", "cannot create the guest's "
                     "64 MiB image");
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    printf("\n## The disk\n\nThe guest (64 MiB, 2 vCPUs, a 64 MiB sparse "
           "raw image in /var/tmp) writes 4 KiB blocks to the last quarter "
           "of its disk as fast as it can (`DISKLOAD 1000000`, no FUA), "
           "each write timed by the guest's clock.  Protected: the real "
           "save engine with the disk log in this process (cut at each "
           "checkpoint, DISK_WRITES records), checkpoints written to "
           "/dev/null and acknowledged at once: no network, no secondary "
           "(the end-to-end drill rows measure those).  The unprotected "
           "rate is measured before and after the protected rows; the "
           "ratios are against their mean.\n\n");
    if (start_disk(&g, 64, 2, 2, img)) {
        not_measured("guest disk writes", "the guest with a disk did not "
                     "start");
        return;
    }
    if (kv(&g, "DISKLOAD 1000000", &r) || !r.ok) {
        not_measured("guest disk writes", "the guest refused DISKLOAD");
        stop(&g);
        return;
    }
    rm_sleep_ms(300);
    if (disk_unprotected(&g, 2000, &u0, &u0_lat)) {
        not_measured("guest disk writes, unprotected", "no write counted");
        stop(&g);
        return;
    }
    for (i = 0; i < n; i++)
        if (disk_checkpoints(&g, intervals[i], 2500, &runs[i], why[i],
                             sizeof(why[i])))
            runs[i].epochs = 0;
    if (disk_unprotected(&g, 2000, &u1, &u1_lat)) {
        not_measured("guest disk writes, unprotected (after)", "no write "
                     "counted");
        stop(&g);
        return;
    }
    base = (u0 + u1) / 2;
    base_lat = (u0_lat + u1_lat) / 2;
    printf("| interval (ms) | checkpoints/s | guest writes/s | vs "
           "unprotected | mean write latency (us) | vs unprotected | disk "
           "bytes/epoch | pause p50 (ms) | pause p99 (ms) |\n"
           "|---|---|---|---|---|---|---|---|---|\n"
           "| unprotected (before / after) | - | %.0f / %.0f | 1 | %.1f / "
           "%.1f | 1 | - | - | - |\n", u0, u1, u0_lat, u1_lat);
    fflush(stdout);
    for (i = 0; i < n; i++) {
        struct dcp *d = &runs[i];
        double rate, lat, secs;
        char row[64];

        snprintf(row, sizeof(row), "%u", intervals[i]);
        if (!d->epochs) {
            not_measured(row, why[i]);
            continue;
        }
        rate = dstat_rate(&d->s0, &d->s1);
        lat = dstat_lat_us(&d->s0, &d->s1);
        secs = (double)(d->s1.t_ns - d->s0.t_ns) / 1e9;
        printf("| %u | %.1f | %.0f | %.2f | %.1f | %.2f | %" PRIu64 " | "
               "%.3f | %.3f |\n", intervals[i],
               secs > 0 ? d->epochs / secs : 0, rate, rate / base, lat,
               base_lat > 0 ? lat / base_lat : 0, d->disk_bytes / d->epochs,
               (double)d->pauses[d->epochs / 2] / 1e6,
               (double)d->pauses[(d->epochs * 99) / 100] / 1e6);
        fflush(stdout);
    }

    /* The pause at 25 ms with a light memory load, without and with the
     * disk workload (same guest, same run), alternated twice. */
    printf("\nThe pause with and without disk traffic: checkpoints every "
           "25 ms of the same guest with a light memory load (20,000 "
           "page-writes/s over 2,048 pages), the disk workload off, then "
           "flat out, %d times in turn; the pauses pooled, and the ratio of "
           "each on/off pair's p50s (the pairs' median and range: a drift "
           "of the machine's load moves both halves of a pair) (goal: the "
           "disk adds < 5%%):\n\n"
           "| disk workload | pause p50 (ms) | pause p99 (ms) | dirty "
           "pages/epoch | disk bytes/epoch | guest writes/s |\n"
           "|---|---|---|---|---|---|\n", PAUSE_PAIRS);
    why[0][0] = '\0';
    memset(&off, 0, sizeof(off));
    memset(&on, 0, sizeof(on));
    ok = !kv(&g, "DIRTY 20000 2048", &r) && r.ok;
    for (i = 0; ok && i < PAUSE_PAIRS; i++)
        ok = !pause_pool(&g, "DISKLOAD 0", &off, why[0], sizeof(why[0])) &&
             !pause_pool(&g, "DISKLOAD 1000000", &on, why[0],
                         sizeof(why[0]));
    if (!ok) {
        not_measured("pause with and without disk traffic", why[0][0] ?
                     why[0] : "the guest did not answer");
    } else {
        double p0, p1, pair[PAUSE_PAIRS];

        for (i = 0; i < PAUSE_PAIRS; i++)
            pair[i] = on.run_p50[i] / off.run_p50[i];
        qsort(pair, PAUSE_PAIRS, sizeof(pair[0]), cmp_double);
        qsort(off.pauses, off.n, sizeof(off.pauses[0]), cmp);
        qsort(on.pauses, on.n, sizeof(on.pauses[0]), cmp);
        p0 = (double)off.pauses[off.n / 2] / 1e6;
        p1 = (double)on.pauses[on.n / 2] / 1e6;
        printf("| off | %.3f | %.3f | %" PRIu64 " | %" PRIu64 " | %.0f |\n"
               "| flat out | %.3f | %.3f | %" PRIu64 " | %" PRIu64 " | %.0f "
               "|\n\nPause p50 with / without disk traffic, pooled: %.3f "
               "(%+.1f%%); per dirty page: %.3f.  The %d pairs' ratios: "
               "median %.3f (%+.1f%%), from %.3f to %.3f.\n", p0,
               (double)off.pauses[(off.n * 99) / 100] / 1e6,
               off.dirty / off.n, off.disk_bytes / off.n,
               off.rate / PAUSE_PAIRS, p1,
               (double)on.pauses[(on.n * 99) / 100] / 1e6, on.dirty / on.n,
               on.disk_bytes / on.n, on.rate / PAUSE_PAIRS, p1 / p0,
               (p1 / p0 - 1) * 100,
               (p1 / (double)(on.dirty / on.n)) /
               (p0 / (double)(off.dirty / off.n)), PAUSE_PAIRS,
               (pair[PAUSE_PAIRS / 2 - 1] + pair[PAUSE_PAIRS / 2]) / 2,
               ((pair[PAUSE_PAIRS / 2 - 1] + pair[PAUSE_PAIRS / 2]) / 2 - 1) *
               100, pair[0], pair[PAUSE_PAIRS - 1]);
        disk_pause_parts(&off, &on);
    }
    fflush(stdout);
    stop(&g);
    unlink(img);
}

/* The secondary's end of a resync: read the stream from @fd, check each
 * DISK_WRITES record and apply it (the restore engine's calls). */
struct pump {
    int fd;
    struct rm_disk_replica *r;
    struct rm_error err;
    int rc;
};

static void *pump_main(void *o)
{
    struct pump *p = o;
    struct rm_stream_reader rd;
    struct rm_src src;
    struct rm_record rec;
    bool begun = false;
    int rc;

    rm_src_init_fd(&src, p->fd);
    rm_stream_reader_init(&rd, &src, &p->err);
    rc = rm_stream_read_headers(&rd);
    while (!rc && (rc = rm_stream_read_record(&rd, &rec)) == 0) {
        if (rec.type == RM_REC_DISK_INFO) {
            rc = rm_disk_replica_info(p->r, &rec, &p->err);
        } else if (rec.type == RM_REC_DISK_WRITES) {
            rc = rm_disk_replica_check(p->r, 1, &rec, &p->err);
            if (!rc && !begun) {
                rc = rm_disk_replica_begin_apply(p->r, 1, &p->err);
                begun = !rc;
            }
            if (!rc)
                rc = rm_disk_replica_apply(p->r, &rec, &p->err);
        }
        rm_record_free(&rec);
    }
    if (rc == -ENODATA) {           /* the writer closed: all read */
        rm_error_clear(&p->err);
        rc = 0;
    }
    if (!rc && begun)
        rc = rm_disk_replica_end_apply(p->r, 1, &p->err);
    p->rc = rc;
    return NULL;
}

/* The secondary's hashing, in its own thread as on its own host. */
struct replica_hashing {
    struct rm_disk_replica *r;
    uint32_t chunk;
    uint8_t *h;
    struct rm_error err;
    int rc;
};

static void *replica_hashing_main(void *o)
{
    struct replica_hashing *rh = o;

    rh->rc = rm_disk_replica_hash(rh->r, 0, rh->chunk, rh->h, &rh->err);
    return NULL;
}

/*
 * One resync of the replica image @rpath from the primary's @pfd (@size
 * bytes) through the real code: the secondary hashes its image
 * (rm_disk_replica_hash, in a thread) while the primary hashes its own
 * (rm_disklog_hash), as the two hosts do, then the primary queues the
 * differing chunks (rm_disklog_resync_hashed; @hashed false: every chunk,
 * a full copy) and
 * emits them into a pipe, the secondary checks and applies them (its
 * final fdatasync included).  Then, not timed, the two images must hash
 * the same.  0 with *ms (all), *hash_ms (both hashes, until the chunks
 * are queued), *chunks and *bytes set, or -errno with @why.
 */
static int resync_once(int pfd, uint64_t size, const char *rpath,
                       const char *statedir, bool hashed, double *ms,
                       double *hash_ms, uint64_t *chunks, uint64_t *bytes,
                       char *why, size_t whylen)
{
    const uint32_t chunk = RM_DISK_CHUNK_DEFAULT;
    uint64_t nr = (size + chunk - 1) / chunk, t0;
    uint8_t *h = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t *hp = malloc(nr * RM_DISK_HASH_BYTES);
    struct rm_disk_replica_params rp = { .state_dir = statedir };
    struct rm_disk_replica *r = NULL;
    struct rm_disklog *log = NULL;
    struct rm_error err = { 0 };
    struct rm_stream_writer w;
    struct rm_sink sink;
    struct pump p;
    pthread_t th;
    int fds[2] = { -1, -1 }, rc;

    memset(&p, 0, sizeof(p));
    rc = !h || !hp ? -ENOMEM : 0;
    if (!rc)
        rc = rm_disk_replica_open(&r, &rp, &err);
    if (!rc)
        rc = rm_disk_replica_add(r, 0, rpath, true, &err);
    if (!rc)
        rc = rm_disklog_open(&log, NULL, &err);
    if (!rc)
        rc = rm_disklog_add_disk(log, 0, pfd, size, &err);
    if (rc)
        goto out;
    t0 = rm_now_ns();
    rm_disklog_start(log);
    if (hashed) {
        struct replica_hashing rh = { .r = r, .chunk = chunk, .h = h };
        pthread_t ht;

        rc = -pthread_create(&ht, NULL, replica_hashing_main, &rh);
        if (!rc) {
            rc = rm_disklog_hash(log, 0, chunk, hp, NULL, &err);
            pthread_join(ht, NULL);
            if (!rc && rh.rc) {
                rc = rh.rc;
                err = rh.err;
            }
        }
    }
    if (!rc)
        rc = rm_disklog_resync_hashed(log, 0, chunk, hashed ? h : NULL,
                                      hashed ? hp : NULL, nr, chunks, &err);
    *hash_ms = (double)(rm_now_ns() - t0) / 1e6;
    if (!rc && pipe(fds))
        rc = -errno;
    if (rc)
        goto out;
    p.fd = fds[0];
    p.r = r;
    if ((rc = -pthread_create(&th, NULL, pump_main, &p)))
        goto out;
    rm_sink_init_fd(&sink, fds[1]);
    rm_stream_writer_init(&w, &sink, &err);
    rc = rm_stream_write_headers(&w, RM_DHDR_TYPE_REMUS_KVM, 0, 0);
    if (!rc)
        rc = rm_disklog_emit_info(log, &w);
    if (!rc)
        rc = rm_disklog_emit(log, 0, &w, bytes);
    close(fds[1]);
    fds[1] = -1;
    pthread_join(th, NULL);
    *ms = (double)(rm_now_ns() - t0) / 1e6;
    if (!rc && p.rc) {
        rc = p.rc;
        err = p.err;
    }
    if (!rc)
        rc = rm_disk_replica_hash(r, 0, chunk, h, &err);
    if (!rc)
        rc = rm_disk_hash_chunks(pfd, size, chunk, hp, &err);
    if (!rc && memcmp(h, hp, nr * RM_DISK_HASH_BYTES))
        rc = rm_error_set(&err, -EIO, "the replica differs from the "
                          "primary after the resync");
out:
    if (rc)
        snprintf(why, whylen, "%s", err.msg[0] ? rm_error_str(&err) :
                 strerror(-rc));
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    rm_disklog_close(log);
    rm_disk_replica_close(r);
    free(h);
    free(hp);
    return rc;
}

/* Resync of a 1 GiB image with 1% of its chunks changed, against a full
 * copy, over two sparse files in @dir. */
/*
 * The two 1 GiB images of a resync row: dense (both full of the same
 * pseudo-random data, as a used disk is) or sparse (both empty, as a fresh
 * thin image is); then 1% of the chunks (every 100th) get 4 KiB of other
 * data on the primary.  *pfd is the primary's, open; 0 or -1.
 */
static int resync_images(const char *ppath, const char *rpath, uint64_t size,
                         bool dense, int *pfd, uint64_t *changed)
{
    const uint64_t chunk = RM_DISK_CHUNK_DEFAULT, nr = size / chunk;
    const size_t mib = 1u << 20;
    uint64_t i, x = 0x9e3779b97f4a7c15ull;
    uint8_t *buf = malloc(mib);
    int rfd, rc = 0;

    *pfd = open(ppath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    rfd = open(rpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (!buf || *pfd < 0 || rfd < 0 || ftruncate(*pfd, (off_t)size) ||
        ftruncate(rfd, (off_t)size))
        rc = -1;
    for (i = 0; dense && !rc && i < size / mib; i++) {
        for (size_t k = 0; k < mib; k += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(buf + k, &x, 8);
        }
        if (pwrite(*pfd, buf, mib, (off_t)(i * mib)) != (ssize_t)mib ||
            pwrite(rfd, buf, mib, (off_t)(i * mib)) != (ssize_t)mib)
            rc = -1;
    }
    srand(1);
    *changed = 0;
    for (i = 0; !rc && i < nr; i += 100, (*changed)++) {
        for (size_t k = 0; k < 4096; k++)
            buf[k] = (uint8_t)rand();
        if (pwrite(*pfd, buf, 4096, (off_t)(i * chunk)) != 4096)
            rc = -1;
    }
    if (rfd >= 0)
        close(rfd);
    free(buf);
    return rc;
}

/* One row: @name, a resync of @rpath from @pfd; "full" with @hashed false. */
static void resync_row(const char *name, int pfd, uint64_t size,
                       const char *rpath, const char *dir, bool hashed,
                       double *ms)
{
    double hash_ms = 0;
    uint64_t chunks = 0, bytes = 0;
    char why[300] = "";

    *ms = 0;
    if (resync_once(pfd, size, rpath, dir, hashed, ms, &hash_ms, &chunks,
                    &bytes, why, sizeof(why))) {
        not_measured(name, why);
        *ms = 0;
        return;
    }
    if (hashed)
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %.0f | %.0f |\n", name,
               chunks, bytes, *ms, hash_ms);
    else
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %.0f | - |\n", name,
               chunks, bytes, *ms);
    fflush(stdout);
}

static void disk_resync_rows(const char *dir)
{
    const uint64_t size = 1ull << 30, nr = size / RM_DISK_CHUNK_DEFAULT;
    char ppath[PATH_MAX], rpath[PATH_MAX];
    double ms_dense = 0, ms_full = 0, ms_sparse = 0;
    uint64_t changed = 0;
    int pfd = -1;

    snprintf(ppath, sizeof(ppath), "%s/primary.img", dir);
    snprintf(rpath, sizeof(rpath), "%s/replica.img", dir);
    printf("\nResync of a 1 GiB image (raw files in /var/tmp, 64 KiB chunks,"
           " 1%% of the %" PRIu64 " chunks changed on the primary: every "
           "100th gets 4 KiB of other data) through the real code in this "
           "process: the secondary hashes its image (BLAKE2b, in a thread) "
           "while the primary hashes its own, the primary emits the "
           "differing chunks as DISK_WRITES records into a pipe, the "
           "secondary checks and applies them and fdatasyncs; a full copy "
           "sends every chunk.  Dense: both images full of the same data "
           "(a used disk); sparse: both empty but the changes (a fresh thin "
           "image: holes are hashed without reading them).  Each ends with "
           "the images compared (not timed):\n\n"
           "| resync | chunks sent | bytes sent | time (ms) | of which "
           "hashing (ms) |\n|---|---|---|---|---|\n", nr);
    if (resync_images(ppath, rpath, size, true, &pfd, &changed)) {
        not_measured("resync of a dense 1 GiB image", "cannot create the "
                     "images in /var/tmp");
    } else {
        resync_row("hash-based, dense, 1% changed", pfd, size, rpath, dir,
                   true, &ms_dense);
        if (truncate(rpath, 0) || truncate(rpath, (off_t)size))
            not_measured("full copy", "cannot reset the replica");
        else
            resync_row("full copy", pfd, size, rpath, dir, false, &ms_full);
    }
    if (pfd >= 0)
        close(pfd);
    if (resync_images(ppath, rpath, size, false, &pfd, &changed))
        not_measured("resync of a sparse 1 GiB image", "cannot create the "
                     "images in /var/tmp");
    else
        resync_row("hash-based, sparse, 1% changed", pfd, size, rpath, dir,
                   true, &ms_sparse);
    if (ms_dense > 0 && ms_full > 0 && ms_sparse > 0)
        printf("\nHash-based / full copy, time: dense %.2f, sparse %.3f.  "
               "Here the link is a pipe in one process; over a 1 Gbit/s link"
               " the full copy's bytes alone take %.0f ms on the wire, the "
               "hash-based one's %.0f ms (plus its hashing).\n",
               ms_dense / ms_full, ms_sparse / ms_full,
               (double)size * 8 / 1e6,
               (double)changed * RM_DISK_CHUNK_DEFAULT * 8 / 1e6);
    fflush(stdout);
    if (pfd >= 0)
        close(pfd);
    unlink(ppath);
    unlink(rpath);
}

static void disk_rows(void)
{
    char dir[] = "/var/tmp/remus-bench-disk.XXXXXX", cmd[64];

    if (!mkdtemp(dir)) {
        not_measured("the disk rows", "cannot create a directory in "
                     "/var/tmp");
        return;
    }
    disk_guest_rows(dir);
    disk_resync_rows(dir);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd))
        fprintf(stderr, "kvm_bench: cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    char self[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct gvm g;
    double r0, r1, hp = 0;
    bool only_pause;
    static const uint64_t sizes[] = { 1, 10, 100, 1000, 5000, 20000,
                                      100000 };
    static struct pause_parts parts[sizeof(sizes) / sizeof(sizes[0])];
    static struct suspend_sum suspends[sizeof(sizes) / sizeof(sizes[0])];
    static double faults[sizeof(sizes) / sizeof(sizes[0])];
    FILE *pdat;
    unsigned i;

    rm_log_init(RM_LOG_ERROR, NULL);
    if (n <= 0 || access("/dev/kvm", R_OK | W_OK) || unshare(CLONE_NEWNET) ||
        system("ip link set lo up")) {
        fprintf(stderr, "kvm_bench: needs root and /dev/kvm\n");
        return 1;
    }
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(image, sizeof(image), "%.*s/guest/remus-guest.elf",
             (int)(strrchr(self, '/') - self), self);
    snprintf(remus_bin, sizeof(remus_bin), "%.*s/remus",
             (int)(strrchr(self, '/') - self), self);
    if (argc > 1)
        snprintf(data_dir, sizeof(data_dir), "%s", argv[1]);
    pdat = data_file("pause.dat");
    if (pdat)
        fprintf(pdat, "# dirty_pages pause_p50_ms memcpy_floor_ms "
                "pause_p99_ms compressed_pause_p50_ms\n");

    printf("# remus benchmark (KVM backend), one run\n\n");
    if (getenv("REMUS_BENCH_ONLY") &&
        !strcmp(getenv("REMUS_BENCH_ONLY"), "disk")) {
        disk_rows();
        return unmeasured ? 1 : 0;
    }
    if (getenv("REMUS_BENCH_ONLY") &&
        !strcmp(getenv("REMUS_BENCH_ONLY"), "colo")) {
        colo_rows();
        return unmeasured ? 1 : 0;
    }
    only_pause = getenv("REMUS_BENCH_ONLY") &&
                 !strcmp(getenv("REMUS_BENCH_ONLY"), "pause");
    if (start(&g, 512, 2, 2))
        return 1;
    printf("Guest start (create to first answer of its service), 512 MiB, "
           "2 vCPUs: %.1f ms\n\n", g.start_ms);
    {
        struct kv_reply r;

        kv(&g, "DIRTY 0 16384", &r);
    }
    rm_sleep_ms(200);
    if (!only_pause) {
        r0 = write_rate(&g, false, 1000, NULL);
        r1 = write_rate(&g, true, 1000, &hp);
        printf("| guest page-writes/s (64 MiB working set, flat out) | "
               "value |\n|---|---|\n"
               "| without dirty logging | %.0f |\n"
               "| with dirty logging, harvest every 25 ms | %.0f |\n"
               "| ratio with/without | %.2f |\n"
               "| dirty-log harvest throughput (pages/s) | %.0f |\n\n",
               r0, r1, r1 / r0, hp);
    }
    {
        struct kv_reply r;

        kv(&g, "DIRTY 0 0", &r);
    }

    printf("Checkpoints of a guest dirtying a working set flat out (the "
           "first pass not counted, nor from 20,000 pages on the next two "
           "while the dirty set still grows; pause = suspend .. "
           "resume):\n\n"
           "| working set (pages) | dirty pages/epoch | pause p50 (ms) | "
           "pause p99 (ms) | memcpy floor (ms) | pause / floor | "
           "bytes/epoch | compressed: dirty pages/epoch | compressed: "
           "bytes/epoch | compressed: bytes/page vs raw | compressed: pause "
           "p50 (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct cp a, b;
        double floor_ms, p50;

        memset(&parts[i], 0, sizeof(parts[i]));

        if (checkpoints(&g, sizes[i], false, &a) ||
            checkpoints(&g, sizes[i], true, &b) || !a.epochs || !b.epochs) {
            char row[32];

            snprintf(row, sizeof(row), "%" PRIu64, sizes[i]);
            not_measured(row, "no checkpoint of this size completed");
            continue;
        }
        parts[i] = a.parts;
        suspends[i] = a.suspend;
        faults[i] = (double)a.faults_sum / a.epochs;
        floor_ms = memcpy_floor_ms(&g, a.dirty_sum / a.epochs + 1);
        p50 = (double)a.pauses[a.epochs / 2] / 1e6;
        if (pdat)
            fprintf(pdat, "%" PRIu64 " %.4f %.4f %.4f %.4f\n",
                    a.dirty_sum / a.epochs, p50, floor_ms,
                    (double)a.pauses[(a.epochs * 99) / 100] / 1e6,
                    (double)b.pauses[b.epochs / 2] / 1e6);
        printf("| %" PRIu64 " | %" PRIu64 " | %.3f | %.3f | %.3f | %.1f | %"
               PRIu64 " | %" PRIu64 " | %" PRIu64 " | %.3f | %.3f |\n",
               sizes[i], a.dirty_sum / a.epochs, p50,
               (double)a.pauses[(a.epochs * 99) / 100] / 1e6, floor_ms,
               p50 / floor_ms, a.bytes_sum / a.epochs,
               b.dirty_sum / b.epochs, b.bytes_sum / b.epochs,
               ((double)b.bytes_sum / (double)(b.dirty_sum + 1)) /
               ((double)a.bytes_sum / (double)(a.dirty_sum + 1)),
               (double)b.pauses[b.epochs / 2] / 1e6);
        fflush(stdout);
    }
    stop(&g);
    if (pdat)
        fclose(pdat);
    printf("\nThe same pauses (uncompressed) by part, means over each "
           "row's checkpoints; the parts of a pause add up to it.  On KVM "
           "\"suspend\" is the kick, the vCPUs' park and their state read "
           "(each vCPU reads its own as it parks):\n\n");
    pause_parts_header("working set (pages)");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char label[32];

        if (!parts[i].n)
            continue;
        snprintf(label, sizeof(label), "%" PRIu64, sizes[i]);
        pause_parts_row(label, &parts[i]);
    }
    if (parts[0].n)
        printf("\nThe fixed cost of a pause (idle guest, 2 vCPUs: the "
               "working set of 1 page): mean %.1f us (goal: <= 150 us).\n",
               pause_parts_pause_us(&parts[0]));
    printf("\nThe suspend of the same pauses in parts, along the vCPU "
           "that parked last (the one the pause waited for; means in us): "
           "kick = the priority boost, signals and eventfd write; wake = "
           "from the kick to that vCPU seeing the request (its thread "
           "scheduled, out of KVM_RUN or its idle poll); port I/O = "
           "completing the I/O the kick interrupted (a KVM_RUN that exits "
           "at once); state = reading its registers; park = from its state "
           "read to the pause returning (the lock, the pauser woken):\n\n"
           "| working set (pages) | checkpoints | suspend (us) | kick | "
           "wake | port I/O | state | park |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char label[32];

        if (!suspends[i].n)
            continue;
        snprintf(label, sizeof(label), "%" PRIu64, sizes[i]);
        suspend_row(label, &suspends[i]);
    }
    printf("\nFirst touches in the same pauses: page faults of the "
           "checkpointing thread from the suspend to the end of staging, "
           "mean per pause (the staging buffer is made resident ahead, the "
           "VM running, up to 1.25x the recent checkpoints' size):\n\n"
           "| working set (pages) | faults per pause |\n|---|---|\n");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (parts[i].n)
            printf("| %" PRIu64 " | %.1f |\n", sizes[i], faults[i]);
    if (only_pause)
        return unmeasured ? 1 : 0;

    /* Full non-live save and restore of a 256 MiB guest. */
    if (start(&g, 256, 1, 2) == 0) {
        struct rm_save_ctx ctx;
        struct rm_restore_ctx rctx;
        struct rm_kvm_restore_arg arg;
        struct rm_error err = { 0 };
        struct rm_sink sink;
        struct rm_src src;
        char path[] = "/tmp/remus-bench.XXXXXX";
        int fd = mkstemp(path);
        uint64_t t0, t1, t2;

        memset(&ctx, 0, sizeof(ctx));
        ctx.ops = &rm_kvm_save_ops;
        ctx.backend_arg = g.vm;
        ctx.err = &err;
        rm_save_params_default(&ctx.params, RM_SAVE_NONLIVE);
        rm_sink_init_fd(&sink, fd);
        t0 = rm_now_ns();
        if (rm_save(&ctx, &sink) == 0) {
            t1 = rm_now_ns();
            lseek(fd, 0, SEEK_SET);
            memset(&arg, 0, sizeof(arg));
            rm_vm_config_default(&arg.cfg);
            memset(&rctx, 0, sizeof(rctx));
            rctx.ops = &rm_kvm_restore_ops;
            rctx.backend_arg = &arg;
            rctx.err = &err;
            rm_src_init_fd(&src, fd);
            if (rm_restore(&rctx, &src) == 0) {
                t2 = rm_now_ns();
                printf("\nFull non-live save of a 256 MiB guest: %.0f ms "
                       "(%" PRIu64 " MB stream); restore from it: %.0f ms\n",
                       (double)(t1 - t0) / 1e6, sink.offset >> 20,
                       (double)(t2 - t1) / 1e6);
            } else {
                not_measured("full restore of a 256 MiB guest",
                             rm_error_str(&err));
            }
            rm_vm_destroy(arg.vm);
        } else {
            not_measured("full save of a 256 MiB guest", rm_error_str(&err));
        }
        close(fd);
        unlink(path);
        stop(&g);
    } else {
        not_measured("full save and restore of a 256 MiB guest",
                     "the guest did not start");
    }
    /* The same guest with the other dirty-tracking modes, same run. */
    {
        static const char *const names[] = { "bitmap (get-and-clear)",
                                              "dirty ring",
                                              "bitmap, manual clear" };
        int mode;

        printf("\nDirty tracking modes, same run (guest: 512 MiB, 2 vCPUs; "
               "page-writes/s flat out over 64 MiB with a harvest every "
               "25 ms):\n\n| mode | page-writes/s | harvest pages/s | pause "
               "p50 at ~1003 pages (ms) | pause p50 at ~5003 pages (ms) |\n"
               "|---|---|---|---|---|\n");
        for (mode = 0; mode < 3; mode++) {
            double hpm = 0, rm, p1 = 0, p2 = 0;
            struct kv_reply r;
            struct cp a;

            if (start(&g, 512, 2, mode)) {
                not_measured(names[mode], "the guest did not start");
                continue;
            }
            kv(&g, "DIRTY 0 16384", &r);
            rm_sleep_ms(200);
            rm = write_rate(&g, true, 1000, &hpm);
            kv(&g, "DIRTY 0 0", &r);
            if (!checkpoints(&g, 1000, false, &a) && a.epochs)
                p1 = (double)a.pauses[a.epochs / 2] / 1e6;
            if (!checkpoints(&g, 5000, false, &a) && a.epochs)
                p2 = (double)a.pauses[a.epochs / 2] / 1e6;
            printf("| %s | %.0f | %.0f | %.3f | %.3f |\n", names[mode], rm,
                   hpm, p1, p2);
            fflush(stdout);
            stop(&g);
        }
    }
    printf("\nremus uses the manual-clear bitmap by default (falling back "
           "to get-and-clear; backends/kvm: cfg.dirty_ring selects the "
           "ring).\n");
    disk_rows();
    end_to_end();
    colo_rows();
    if (unmeasured) {
        printf("\n%u row%s could not be measured (NOT MEASURED above)\n",
               unmeasured, unmeasured == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
