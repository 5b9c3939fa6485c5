/* SPDX-License-Identifier: MIT */
/*
 * kvm_bench's disk rows (see kvm_bench.h): a guest with a disk writing 4
 * KiB blocks flat out, protected at 10, 25 and 100 ms through the real
 * save engine and disk log (to /dev/null, acknowledged at once) against
 * unprotected; the pause with and without disk traffic, by part; then
 * the resync rows (bench/resync_rows.c) in the same directory.
 */
#include "bench/kvm_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/kvm/kvm_disks.h"
#include "backends/kvm/kvm_sr.h"
#include "bench/pause_parts.h"
#include "common/io.h"

/* The guest's disk workload counters (guest/PROTOCOL.md, DISKLOAD). */
struct dstat {
    uint64_t w, w_ns, t_ns;
};

static int dstat(struct gvm *g, struct dstat *d)
{
    struct kv_reply r;
    const char *w, *ns;

    if (gvm_kv(g, "STATS", &r) || !r.ok)
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
    qsort(c->pauses, c->epochs, sizeof(c->pauses[0]), bench_cmp_u64);
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

    if (gvm_kv(g, cmd, &r) || !r.ok) {
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

static void disk_guest_rows(struct bench_run *run, const char *dir)
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
        bench_not_measured(run, "guest disk writes", "cannot create the "
                           "guest's 64 MiB image");
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
    if (gvm_start(run, &g, 64, 2, 2, img)) {
        bench_not_measured(run, "guest disk writes", "the guest with a "
                           "disk did not start");
        return;
    }
    if (gvm_kv(&g, "DISKLOAD 1000000", &r) || !r.ok) {
        bench_not_measured(run, "guest disk writes",
                           "the guest refused DISKLOAD");
        gvm_stop(&g);
        return;
    }
    rm_sleep_ms(300);
    if (disk_unprotected(&g, 2000, &u0, &u0_lat)) {
        bench_not_measured(run, "guest disk writes, unprotected",
                           "no write counted");
        gvm_stop(&g);
        return;
    }
    for (i = 0; i < n; i++)
        if (disk_checkpoints(&g, intervals[i], 2500, &runs[i], why[i],
                             sizeof(why[i])))
            runs[i].epochs = 0;
    if (disk_unprotected(&g, 2000, &u1, &u1_lat)) {
        bench_not_measured(run, "guest disk writes, unprotected (after)",
                           "no write counted");
        gvm_stop(&g);
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
            bench_not_measured(run, row, why[i]);
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
    ok = !gvm_kv(&g, "DIRTY 20000 2048", &r) && r.ok;
    for (i = 0; ok && i < PAUSE_PAIRS; i++)
        ok = !pause_pool(&g, "DISKLOAD 0", &off, why[0], sizeof(why[0])) &&
             !pause_pool(&g, "DISKLOAD 1000000", &on, why[0],
                         sizeof(why[0]));
    if (!ok) {
        bench_not_measured(run, "pause with and without disk traffic",
                           why[0][0] ? why[0] : "the guest did not answer");
    } else {
        double p0, p1, pair[PAUSE_PAIRS];

        for (i = 0; i < PAUSE_PAIRS; i++)
            pair[i] = on.run_p50[i] / off.run_p50[i];
        qsort(pair, PAUSE_PAIRS, sizeof(pair[0]), cmp_double);
        qsort(off.pauses, off.n, sizeof(off.pauses[0]), bench_cmp_u64);
        qsort(on.pauses, on.n, sizeof(on.pauses[0]), bench_cmp_u64);
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
    gvm_stop(&g);
    unlink(img);
}

void bench_disk_rows(struct bench_run *run)
{
    char dir[] = "/var/tmp/remus-bench-disk.XXXXXX", cmd[64];

    if (!mkdtemp(dir)) {
        bench_not_measured(run, "the disk rows", "cannot create a "
                           "directory in /var/tmp");
        return;
    }
    disk_guest_rows(run, dir);
    bench_resync_rows(run, dir);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd))
        fprintf(stderr, "kvm_bench: cannot remove %s\n", dir);
}
