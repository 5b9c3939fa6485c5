/* SPDX-License-Identifier: MIT */
/*
 * kvm_bench's end-to-end rows (see kvm_bench.h): each a drill (`remus
 * protect` -> `remus receive`, clients, kill -9 of the primary) in a
 * child process: the highest checkpoint rate, a busy guest's throughput
 * against the unprotected guest, the added output latency, and COLO
 * against buffered Remus and unheld output.
 */
#include "bench/kvm_bench.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "common/io.h"
#include "drill/drill.h"

/* A drill row is measured when the drill ran and passed (@lossy: when it
 * ran and the guest survived: -n rows lose operations by design). */
static bool drill_failed(struct bench_run *run, int rc,
                         const struct rm_drill_report *rep, bool lossy,
                         const char *row)
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
    bench_not_measured(run, row, why);
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

static int drill(struct bench_run *run, unsigned interval_ms,
                 uint64_t rate, uint64_t wss, unsigned flags,
                 struct rm_drill_report *rep)
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
        cfg.self = run->remus_bin;
        cfg.image = run->image;
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
static double unprotected_rate(struct bench_run *run, uint64_t wss)
{
    struct gvm g;
    struct kv_reply r;
    char cmd[64];
    double rate;

    if (gvm_start(run, &g, 64, 2, 2, NULL))
        return 0;
    snprintf(cmd, sizeof(cmd), "DIRTY 0 %" PRIu64, wss);
    gvm_kv(&g, cmd, &r);
    rm_sleep_ms(300);
    rate = gvm_write_rate(&g, false, 3000, NULL);
    gvm_stop(&g);
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
void bench_colo_rows(struct bench_run *run)
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
    have_nb = !drill_failed(run, drill(run, 25, 5000, 2048,
                                       DRILL_NOBUF | DRILL_NODISK, &nb),
                            &nb, true, "COLO table: -n");
    have_rb = !drill_failed(run, drill(run, 25, 5000, 2048, DRILL_NODISK,
                                       &rb),
                            &rb, false, "COLO table: Remus 25 ms");
    have_co = !drill_failed(run, drill(run, 25, 5000, 2048, DRILL_COLO,
                                       &co),
                            &co, false, "COLO table: COLO");
    if (have_nb)
        colo_row("output not held (-n, 25 ms)", &nb, nb.latency_ms_p99);
    if (have_rb)
        colo_row("Remus, 25 ms", &rb, have_nb ? nb.latency_ms_p99 : 0);
    if (have_co)
        colo_row("COLO", &co, have_nb ? nb.latency_ms_p99 : 0);
    fflush(stdout);
}

void bench_e2e_rows(struct bench_run *run)
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
    FILE *lat = bench_data_file(run, "latency.dat");
    FILE *thr = bench_data_file(run, "throughput.dat");
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
        if (drill_failed(run, drill(run, 1, loads[i].rate, loads[i].wss, 0,
                                    &rep),
                         &rep, false, loads[i].name))
            continue;
        printf("| %s | %.0f | %.3f | %.3f | %.0f | %.1f | %" PRIu64 " |\n",
               loads[i].name, rep.epochs_per_s, rep.pause_ms_p50,
               rep.pause_ms_p99, rep.dirty_per_epoch, rep.failover_ms,
               rep.lost_ops);
        fflush(stdout);
    }

    base = unprotected_rate(run, 2048);
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
        if (drill_failed(run, drill(run, intervals[i], 0, 2048, 0, &rep), &rep,
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
        if (drill_failed(run, drill(run, intervals[i], 5000, 2048, 0,
                                    &rep),
                         &rep, false, row) ||
            drill_failed(run, drill(run, intervals[i], 5000, 2048,
                                    DRILL_NOBUF, &nb),
                         &nb, true, row))
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
