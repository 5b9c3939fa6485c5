/* SPDX-License-Identifier: MIT */
/*
 * xen_pause_watch: how long a Xen domain stays suspended, seen from dom0,
 * whatever tool suspends it (remus protect --xen, xl remus): the same
 * instrument for both in the lab's side-by-side bench (#21 goal 7,
 * lab/xen/scenarios/xenremusbench.sh).
 *
 *   xen_pause_watch DOMID SECONDS [WAIT-S [POLL-US]]
 *
 * Polls the domain's info every POLL-US (default 500) microseconds.  A
 * suspension is a run of polls that find it shut down for suspend (the
 * guest's own part of a checkpoint's pause, its freeze, is not in it: it
 * is the same whoever asked).  Waits at most WAIT-S seconds (default 120)
 * for the first suspension, then counts SECONDS from its start, and prints
 * one line:
 *   suspends N seconds S rate R p50_ms A p99_ms B max_ms C
 * Exit status 1 (with the reason) when the domain never suspended or is
 * gone.  Resolution: the poll period plus a hypercall (under TCG, about
 * 0.1 ms), so only pauses well above it are meaningful.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* 1: suspended, 0: not, -1: gone (errno set). */
static int suspended(xc_interface *xch, uint32_t domid)
{
    xc_dominfo_t info;

    if (xc_domain_getinfo(xch, domid, 1, &info) != 1 || info.domid != domid) {
        errno = ENOENT;
        return -1;
    }
    if (info.dying || info.crashed ||
        (info.shutdown && info.shutdown_reason != SHUTDOWN_suspend)) {
        errno = ESRCH;
        return -1;
    }
    return info.shutdown && info.shutdown_reason == SHUTDOWN_suspend;
}

int main(int argc, char **argv)
{
    uint32_t domid;
    unsigned seconds, wait_s = 120, poll_us = 500;
    uint64_t *pauses = NULL, start = 0, since = 0, t, deadline;
    size_t n = 0, cap = 0;
    xc_interface *xch;
    int was = 0, rc = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: xen_pause_watch DOMID SECONDS [WAIT-S [POLL-US]]\n");
        return 2;
    }
    domid = (uint32_t)strtoul(argv[1], NULL, 10);
    seconds = (unsigned)strtoul(argv[2], NULL, 10);
    if (argc > 3)
        wait_s = (unsigned)strtoul(argv[3], NULL, 10);
    if (argc > 4)
        poll_us = (unsigned)strtoul(argv[4], NULL, 10);
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        perror("xen_pause_watch: xc_interface_open");
        return 1;
    }
    deadline = now_ns() + (uint64_t)wait_s * 1000000000ull;
    for (;;) {
        int s = suspended(xch, domid);

        t = now_ns();
        if (s < 0) {
            fprintf(stderr, "xen_pause_watch: domain %u: %s\n", domid,
                    errno == ENOENT ? "gone" : "shut down or crashed");
            goto out;
        }
        if (s && !was) {
            since = t;
            if (!start)
                start = t;
        } else if (!s && was && start) {
            if (n == cap) {
                uint64_t *np;

                cap = cap ? cap * 2 : 1024;
                np = realloc(pauses, cap * sizeof(*np));
                if (!np) {
                    perror("xen_pause_watch");
                    goto out;
                }
                pauses = np;
            }
            pauses[n++] = t - since;
        }
        was = s;
        if (!start && t > deadline) {
            fprintf(stderr, "xen_pause_watch: domain %u was not suspended "
                    "within %u s\n", domid, wait_s);
            goto out;
        }
        if (start && !s && t - start >= (uint64_t)seconds * 1000000000ull)
            break;
        usleep(poll_us);
    }
    if (!n) {
        fprintf(stderr, "xen_pause_watch: no whole suspension seen\n");
        goto out;
    }
    qsort(pauses, n, sizeof(*pauses), cmp_u64);
    printf("suspends %zu seconds %.1f rate %.2f p50_ms %.1f p99_ms %.1f "
           "max_ms %.1f\n", n, (double)(t - start) / 1e9,
           (double)n * 1e9 / (double)(t - start), (double)pauses[n / 2] / 1e6,
           (double)pauses[(n * 99) / 100] / 1e6, (double)pauses[n - 1] / 1e6);
    rc = 0;
out:
    free(pauses);
    xc_interface_close(xch);
    return rc;
}
