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
 *     output against -n); failover time
 *
 *   kvm_bench [DATA-DIR]   also writes gnuplot data files into DATA-DIR
 *                          (bench/plots.gp turns them into PNGs)
 *
 * Needs root (private network namespace) and /dev/kvm.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmm.h"
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

static int start(struct gvm *g, unsigned mib, unsigned vcpus, int mode)
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

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
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
        sleep_ms(25);
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

struct cp {
    unsigned epochs, want, sleep_ms;
    uint64_t pause_sum, bytes_sum, dirty_sum;
    uint64_t pauses[64];
};

static int on_cp(void *o, const struct rm_epoch_stats *st)
{
    struct cp *c = o;

    if (st->epoch > 2 && c->epochs < 64) {   /* skip the first pass */
        c->pauses[c->epochs++] = st->pause_ns;
        c->bytes_sum += st->bytes;
        c->dirty_sum += st->dirty_pages;
    }
    sleep_ms(c->sleep_ms);
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
    /* With dirty logging on, a PVM guest re-faults every page it writes
     * after each harvest, so sweeping a large working set takes longer:
     * give each epoch time to dirty it. */
    c->want = wss > 50000 ? 4 : wss > 5000 ? 8 : 20;
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
static int drill(unsigned interval_ms, uint64_t rate, uint64_t wss,
                 bool no_buffer, struct rm_drill_report *rep)
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
        cfg.no_buffer = no_buffer;
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
    sleep_ms(300);
    rate = write_rate(&g, false, 3000, NULL);
    stop(&g);
    return rate;
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
        if (drill_failed(drill(1, loads[i].rate, loads[i].wss, false, &rep),
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
        if (drill_failed(drill(intervals[i], 0, 2048, false, &rep), &rep,
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
        if (drill_failed(drill(intervals[i], 5000, 2048, false, &rep), &rep,
                         false, row) ||
            drill_failed(drill(intervals[i], 5000, 2048, true, &nb), &nb,
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

int main(int argc, char **argv)
{
    char self[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct gvm g;
    double r0, r1, hp = 0;
    static const uint64_t sizes[] = { 1, 10, 100, 1000, 5000, 20000,
                                      100000 };
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
    if (start(&g, 512, 2, 2))
        return 1;
    printf("Guest start (create to first answer of its service), 512 MiB, "
           "2 vCPUs: %.1f ms\n\n", g.start_ms);
    {
        struct kv_reply r;

        kv(&g, "DIRTY 0 16384", &r);
    }
    sleep_ms(200);
    r0 = write_rate(&g, false, 1000, NULL);
    r1 = write_rate(&g, true, 1000, &hp);
    printf("| guest page-writes/s (64 MiB working set, flat out) | "
           "value |\n|---|---|\n"
           "| without dirty logging | %.0f |\n"
           "| with dirty logging, harvest every 25 ms | %.0f |\n"
           "| ratio with/without | %.2f |\n"
           "| dirty-log harvest throughput (pages/s) | %.0f |\n\n",
           r0, r1, r1 / r0, hp);
    {
        struct kv_reply r;

        kv(&g, "DIRTY 0 0", &r);
    }

    printf("Checkpoints of a guest dirtying a working set flat out (the "
           "first pass not counted; pause = suspend .. resume):\n\n"
           "| dirty pages/epoch | pause p50 (ms) | pause p99 (ms) | memcpy "
           "floor (ms) | pause / floor | bytes/epoch | compressed: dirty "
           "pages/epoch | bytes/epoch | bytes/page vs raw | pause p50 "
           "(ms) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct cp a, b;
        double floor_ms, p50;

        if (checkpoints(&g, sizes[i], false, &a) ||
            checkpoints(&g, sizes[i], true, &b) || !a.epochs || !b.epochs) {
            char row[32];

            snprintf(row, sizeof(row), "%" PRIu64, sizes[i]);
            not_measured(row, "no checkpoint of this size completed");
            continue;
        }
        floor_ms = memcpy_floor_ms(&g, a.dirty_sum / a.epochs + 1);
        p50 = (double)a.pauses[a.epochs / 2] / 1e6;
        if (pdat)
            fprintf(pdat, "%" PRIu64 " %.4f %.4f %.4f %.4f\n",
                    a.dirty_sum / a.epochs, p50, floor_ms,
                    (double)a.pauses[(a.epochs * 99) / 100] / 1e6,
                    (double)b.pauses[b.epochs / 2] / 1e6);
        printf("| %" PRIu64 " | %.3f | %.3f | %.3f | %.1f | %" PRIu64
               " | %" PRIu64 " | %" PRIu64 " | %.3f | %.3f |\n",
               a.dirty_sum / a.epochs, p50,
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
            sleep_ms(200);
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
    end_to_end();
    if (unmeasured) {
        printf("\n%u row%s could not be measured (NOT MEASURED above)\n",
               unmeasured, unmeasured == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
