/* SPDX-License-Identifier: MIT */
/* The drill's pause by part, and the part behind its tail (pause_tail.h). */
#include "drill/pause_tail.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One checkpoint's line: its pause and parts, in us. */
struct pause_row {
    uint64_t pause_us;
    uint64_t part_us[RM_PAUSE_PHASES];
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* p-th percentile (p50: n/2, p99: n*99/100) of the sorted @v, in ms. */
static double pct_ms(const uint64_t *v, uint64_t n, unsigned p)
{
    return (double)v[(n * p) / 100] / 1000.0;
}

static bool parse_row(const char *line, struct pause_row *r)
{
    unsigned long long f[7 + RM_PAUSE_PHASES];
    unsigned i;
    int used = 0, at = 0;

    for (i = 0; i < 7 + RM_PAUSE_PHASES; i++) {
        if (sscanf(line + at, "%llu%n", &f[i], &used) != 1)
            return false;
        at += used;
    }
    if (f[0] < 2)                       /* checkpoint 1: the initial copy */
        return false;
    r->pause_us = f[1];
    for (i = 0; i < RM_PAUSE_PHASES; i++)
        r->part_us[i] = f[7 + i];
    return true;
}

static void summarise(const struct pause_row *rows, uint64_t n,
                      uint64_t *scratch, struct rm_drill_pause_parts *out)
{
    uint64_t sum[RM_PAUSE_PHASES] = { 0 }, total = 0, threshold, i;
    unsigned p, best = 0;

    for (i = 0; i < n; i++)
        scratch[i] = rows[i].pause_us;
    qsort(scratch, n, sizeof(*scratch), cmp_u64);
    out->pause_ms_p50 = pct_ms(scratch, n, 50);
    out->pause_ms_p99 = pct_ms(scratch, n, 99);
    threshold = scratch[(n * 99) / 100];
    for (p = 0; p < RM_PAUSE_PHASES; p++) {
        for (i = 0; i < n; i++)
            scratch[i] = rows[i].part_us[p];
        qsort(scratch, n, sizeof(*scratch), cmp_u64);
        out->p50_ms[p] = pct_ms(scratch, n, 50);
        out->p99_ms[p] = pct_ms(scratch, n, 99);
        out->max_ms[p] = (double)scratch[n - 1] / 1000.0;
    }
    for (i = 0; i < n; i++) {
        if (rows[i].pause_us < threshold)
            continue;
        out->tail_n++;
        for (p = 0; p < RM_PAUSE_PHASES; p++) {
            sum[p] += rows[i].part_us[p];
            total += rows[i].part_us[p];
        }
    }
    for (p = 1; p < RM_PAUSE_PHASES; p++)
        if (sum[p] > sum[best])
            best = p;
    out->tail_part = best;
    out->tail_share = total ? (double)sum[best] / (double)total : 0.0;
}

int rm_drill_pause_parts_read(const char *path,
                              struct rm_drill_pause_parts *out)
{
    struct pause_row *rows = NULL, r;
    uint64_t n = 0, cap = 0, *scratch = NULL;
    char line[512];
    FILE *f;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    f = fopen(path, "r");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (!parse_row(line, &r))
            continue;
        if (n == cap) {
            uint64_t ncap = cap ? cap * 2 : 1024;
            struct pause_row *nr = realloc(rows, ncap * sizeof(*nr));

            if (!nr) {
                rc = -ENOMEM;
                goto out;
            }
            rows = nr;
            cap = ncap;
        }
        rows[n++] = r;
    }
    if (!n)
        goto out;
    scratch = malloc(n * sizeof(*scratch));
    if (!scratch) {
        rc = -ENOMEM;
        goto out;
    }
    out->n = n;
    summarise(rows, n, scratch, out);
out:
    fclose(f);
    free(rows);
    free(scratch);
    return rc;
}
