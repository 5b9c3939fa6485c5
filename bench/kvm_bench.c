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
 *   REMUS_BENCH_SMOKE=1 kvm_bench     the machinery only, for a test on a
 *                                     slow machine (kvm_bench_smoke): pause
 *                                     rows at 1 and 1,000 pages, a 64 MiB
 *                                     resync; no figure means anything
 *
 * Needs root (private network namespace) and /dev/kvm.  This file: the
 * run, the guest's write rates, the pause rows (against dirty pages, the
 * memcpy floor, by part), the full save and restore, the dirty-tracking
 * modes; the other rows are in bench/e2e_rows.c, bench/disk_rows.c and
 * bench/resync_rows.c (what they share: bench/kvm_bench.h).
 */
#include "bench/kvm_bench.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmm.h"
#include "bench/pause_parts.h"
#include "common/io.h"
#include "common/log.h"

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
    gvm_kv(g, cmd, &r);
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
    gvm_kv(g, "DIRTY 0 0", &r);
    if (rc)
        fprintf(stderr, "kvm_bench: %s\n", rm_error_str(&err));
    qsort(c->pauses, c->epochs, sizeof(c->pauses[0]), bench_cmp_u64);
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

int main(int argc, char **argv)
{
    static struct bench_run the_run;
    struct bench_run *run = &the_run;
    char self[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct gvm g;
    double r0, r1, hp = 0;
    bool only_pause;
    static const uint64_t all_sizes[] = { 1, 10, 100, 1000, 5000, 20000,
                                          100000 };
    static const uint64_t smoke_sizes[] = { 1, 1000 };
    static struct pause_parts parts[sizeof(all_sizes) / sizeof(all_sizes[0])];
    static struct suspend_sum suspends[sizeof(all_sizes) /
                                       sizeof(all_sizes[0])];
    static double faults[sizeof(all_sizes) / sizeof(all_sizes[0])];
    const uint64_t *sizes = all_sizes;
    unsigned nr_sizes = sizeof(all_sizes) / sizeof(all_sizes[0]);
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
    snprintf(run->image, sizeof(run->image), "%.*s/guest/remus-guest.elf",
             (int)(strrchr(self, '/') - self), self);
    snprintf(run->remus_bin, sizeof(run->remus_bin), "%.*s/remus",
             (int)(strrchr(self, '/') - self), self);
    if (argc > 1)
        snprintf(run->data_dir, sizeof(run->data_dir), "%s", argv[1]);
    run->smoke = getenv("REMUS_BENCH_SMOKE") &&
                 !strcmp(getenv("REMUS_BENCH_SMOKE"), "1");
    run->resync_bytes = run->smoke ? 64ull << 20 : 1ull << 30;
    if (run->smoke) {
        sizes = smoke_sizes;
        nr_sizes = sizeof(smoke_sizes) / sizeof(smoke_sizes[0]);
    }
    pdat = bench_data_file(run, "pause.dat");
    if (pdat)
        fprintf(pdat, "# dirty_pages pause_p50_ms memcpy_floor_ms "
                "pause_p99_ms compressed_pause_p50_ms\n");

    printf("# remus benchmark (KVM backend), one run\n\n");
    if (run->smoke)
        printf("SMOKE RUN (REMUS_BENCH_SMOKE=1): the bench's machinery "
               "only, few and small rows; no figure here means anything.\n\n");
    if (getenv("REMUS_BENCH_ONLY") &&
        !strcmp(getenv("REMUS_BENCH_ONLY"), "disk")) {
        bench_disk_rows(run);
        return run->unmeasured ? 1 : 0;
    }
    if (getenv("REMUS_BENCH_ONLY") &&
        !strcmp(getenv("REMUS_BENCH_ONLY"), "colo")) {
        bench_colo_rows(run);
        return run->unmeasured ? 1 : 0;
    }
    only_pause = getenv("REMUS_BENCH_ONLY") &&
                 !strcmp(getenv("REMUS_BENCH_ONLY"), "pause");
    if (gvm_start(run, &g, 512, 2, 2, NULL))
        return 1;
    printf("Guest start (create to first answer of its service), 512 MiB, "
           "2 vCPUs: %.1f ms\n\n", g.start_ms);
    {
        struct kv_reply r;

        gvm_kv(&g, "DIRTY 0 16384", &r);
    }
    rm_sleep_ms(200);
    if (!only_pause) {
        r0 = gvm_write_rate(&g, false, 1000, NULL);
        r1 = gvm_write_rate(&g, true, 1000, &hp);
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

        gvm_kv(&g, "DIRTY 0 0", &r);
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
    for (i = 0; i < nr_sizes; i++) {
        struct cp a, b;
        double floor_ms, p50;

        memset(&parts[i], 0, sizeof(parts[i]));

        if (checkpoints(&g, sizes[i], false, &a) ||
            checkpoints(&g, sizes[i], true, &b) || !a.epochs || !b.epochs) {
            char row[32];

            snprintf(row, sizeof(row), "%" PRIu64, sizes[i]);
            bench_not_measured(run, row,
                               "no checkpoint of this size completed");
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
    gvm_stop(&g);
    if (pdat)
        fclose(pdat);
    printf("\nThe same pauses (uncompressed) by part, means over each "
           "row's checkpoints; the parts of a pause add up to it.  On KVM "
           "\"suspend\" is the kick, the vCPUs' park and their state read "
           "(each vCPU reads its own as it parks):\n\n");
    pause_parts_header("working set (pages)");
    for (i = 0; i < nr_sizes; i++) {
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
    for (i = 0; i < nr_sizes; i++) {
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
    for (i = 0; i < nr_sizes; i++)
        if (parts[i].n)
            printf("| %" PRIu64 " | %.1f |\n", sizes[i], faults[i]);
    if (only_pause)
        return run->unmeasured ? 1 : 0;

    /* Full non-live save and restore of a 256 MiB guest. */
    if (gvm_start(run, &g, 256, 1, 2, NULL) == 0) {
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
                bench_not_measured(run, "full restore of a 256 MiB guest",
                                   rm_error_str(&err));
            }
            rm_vm_destroy(arg.vm);
        } else {
            bench_not_measured(run, "full save of a 256 MiB guest",
                               rm_error_str(&err));
        }
        close(fd);
        unlink(path);
        gvm_stop(&g);
    } else {
        bench_not_measured(run, "full save and restore of a 256 MiB guest",
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

            if (gvm_start(run, &g, 512, 2, mode, NULL)) {
                bench_not_measured(run, names[mode],
                                   "the guest did not start");
                continue;
            }
            gvm_kv(&g, "DIRTY 0 16384", &r);
            rm_sleep_ms(200);
            rm = gvm_write_rate(&g, true, 1000, &hpm);
            gvm_kv(&g, "DIRTY 0 0", &r);
            if (!checkpoints(&g, 1000, false, &a) && a.epochs)
                p1 = (double)a.pauses[a.epochs / 2] / 1e6;
            if (!checkpoints(&g, 5000, false, &a) && a.epochs)
                p2 = (double)a.pauses[a.epochs / 2] / 1e6;
            printf("| %s | %.0f | %.0f | %.3f | %.3f |\n", names[mode], rm,
                   hpm, p1, p2);
            fflush(stdout);
            gvm_stop(&g);
        }
    }
    printf("\nremus uses the manual-clear bitmap by default (falling back "
           "to get-and-clear; backends/kvm: cfg.dirty_ring selects the "
           "ring).\n");
    bench_disk_rows(run);
    bench_e2e_rows(run);
    bench_colo_rows(run);
    if (run->unmeasured) {
        printf("\n%u row%s could not be measured (NOT MEASURED above)\n",
               run->unmeasured, run->unmeasured == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
