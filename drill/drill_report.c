/* SPDX-License-Identifier: MIT */
/*
 * The failover drill's report (drill.h, drill_run.h): what its logs say
 * (the primary's stats file, the secondary's log), and the report as JSON.
 */
#include "drill/drill_run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

uint64_t drill_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    uint64_t n = 0;
    int c;

    if (!f)
        return 0;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

void drill_read_epochs(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    char line[256];
    uint64_t *pause = NULL, n = 0, cap = 0, bytes = 0, dirty = 0;
    FILE *f;

    f = fopen(d->epochs, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long e, p, dp, b;

        if (sscanf(line, "%llu %llu %llu %llu", &e, &p, &dp, &b) != 4)
            continue;
        if (n == cap) {
            uint64_t *np = realloc(pause, (cap ? cap * 2 : 1024) *
                                   sizeof(*np));

            if (!np)
                break;
            pause = np;
            cap = cap ? cap * 2 : 1024;
        }
        pause[n++] = p;
        bytes += b;
        dirty += dp;
    }
    fclose(f);
    rep->epochs = n;
    if (n) {
        qsort(pause, n, sizeof(*pause), cmp_u64);
        rep->pause_ms_p50 = (double)pause[n / 2] / 1000.0;
        rep->pause_ms_p99 = (double)pause[(n * 99) / 100] / 1000.0;
        rep->pause_ms_max = (double)pause[n - 1] / 1000.0;
        rep->bytes_per_epoch = (double)bytes / (double)n;
        rep->dirty_per_epoch = (double)dirty / (double)n;
    }
    free(pause);
    if (rm_drill_pause_parts_read(d->epochs, &rep->parts))
        memset(&rep->parts, 0, sizeof(rep->parts));
}

void drill_read_failover_line(struct drill *d)
{
    char line[1024];
    FILE *f;

    f = fopen(d->log_s, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "resumed from checkpoint ");
        const char *c = strstr(line, "it ran from checkpoint ");  /* COLO */

        if (p)
            d->rep->committed_epoch = strtoull(p + 24, NULL, 10);
        else if (c)
            d->rep->committed_epoch = strtoull(c + 23, NULL, 10);
        rm_drill_colo_log_line(&d->rep->colo_st, line);
    }
    fclose(f);
}

int rm_drill_report_json(const struct rm_drill_report *rep, const char *path,
                         struct rm_error *err)
{
    FILE *f = fopen(path, "w");
    const char *p;

    if (!f)
        return rm_error_set(err, -errno, "cannot write %s: %s", path,
                            strerror(errno));
    fprintf(f, "{\n  \"result\": \"%s\",\n  \"why\": \"",
            rep->passed ? "PASS" : "FAIL");
    for (p = rep->why; *p; p++) {         /* a JSON string */
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*p);
        else
            fputc(*p, f);
    }
    fprintf(f, "\",\n"
            "  \"epochs\": %" PRIu64 ",\n"
            "  \"pause_ms_p50\": %.3f,\n"
            "  \"pause_ms_p99\": %.3f,\n"
            "  \"pause_ms_max\": %.3f,\n"
            "  \"bytes_per_epoch\": %.0f,\n"
            "  \"dirty_pages_per_epoch\": %.1f,\n"
            "  \"failover_ms\": %.1f,\n"
            "  \"acked_ops\": %" PRIu64 ",\n"
            "  \"acked_before_kill\": %" PRIu64 ",\n"
            "  \"lost_ops\": %" PRIu64 ",\n"
            "  \"replica_checkpoint\": %" PRIu64 ",\n"
            "  \"kill_after_ms\": %u,\n"
            "  \"epochs_per_s\": %.1f,\n"
            "  \"latency_ms_p50\": %.3f,\n"
            "  \"latency_ms_p99\": %.3f,\n"
            "  \"latency_ms_max\": %.3f,\n"
            "  \"guest_writes_per_s\": %.0f,\n"
            "  \"primary_cpu\": %.3f,\n"
            "  \"secondary_cpu\": %.3f,\n"
            "  \"disk_mib\": %u,\n"
            "  \"disk_records\": %" PRIu64 ",\n"
            "  \"cold_boot_records\": %" PRIu64 ",\n"
            "  \"cold_boot_ms\": %.1f,\n"
            "  \"disk_checked\": %s,\n"
            "  \"survived\": %s", rep->epochs, rep->pause_ms_p50, rep->pause_ms_p99,
            rep->pause_ms_max, rep->bytes_per_epoch, rep->dirty_per_epoch,
            rep->failover_ms, rep->acked_ops, rep->acked_before_kill,
            rep->lost_ops, rep->committed_epoch, rep->kill_after_ms,
            rep->epochs_per_s, rep->latency_ms_p50, rep->latency_ms_p99,
            rep->latency_ms_max, rep->guest_writes_per_s, rep->primary_cpu,
            rep->secondary_cpu, rep->disk_mib,
            rep->disk_records, rep->cold_records, rep->cold_boot_ms,
            rep->disk_checked ? "true" : "false",
            rep->survived ? "true" : "false");
    if (rep->parts.n) {
        const struct rm_drill_pause_parts *pp = &rep->parts;
        unsigned i;
        const char *s;

        /* "pause_parts": {"suspend": [p50, p99, max], ...} in ms; the
         * part names as common/save.c says them, blanks as '_'. */
        fprintf(f, ",\n  \"pause_parts\": {");
        for (i = 0; i < RM_PAUSE_PHASES; i++) {
            fprintf(f, "%s\"", i ? ", " : "");
            for (s = rm_pause_phase_name(i); *s; s++)
                fputc(*s == ' ' ? '_' : *s, f);
            fprintf(f, "\": [%.3f, %.3f, %.3f]", pp->p50_ms[i],
                    pp->p99_ms[i], pp->max_ms[i]);
        }
        fprintf(f, "},\n  \"pause_tail\": {\"checkpoints\": %" PRIu64
                ", \"pause_ms_p50\": %.3f, \"pause_ms_p99\": %.3f, "
                "\"slowest\": %" PRIu64 ", \"part\": \"", pp->n,
                pp->pause_ms_p50, pp->pause_ms_p99, pp->tail_n);
        for (s = rm_pause_phase_name(pp->tail_part); *s; s++)
            fputc(*s == ' ' ? '_' : *s, f);
        fprintf(f, "\", \"share\": %.3f}", pp->tail_share);
    }
    if (rep->colo) {
        const struct rm_drill_colo *c = &rep->colo_st;

        fprintf(f, ",\n  \"colo\": {\"sampled\": %s, \"mode\": \"%s\", "
                "\"ever_buffered\": %s, \"checkpoints\": {\"mismatch\": %"
                PRIu64 ", \"timeout\": %" PRIu64 ", \"overflow\": %" PRIu64
                ", \"periodic\": %" PRIu64 "}, \"per_s_under_load\": "
                "{\"mismatch\": %.3f, \"timeout\": %.3f, \"overflow\": %.3f, "
                "\"periodic\": %.3f}, \"fallbacks\": %" PRIu64 ", "
                "\"buffered_checkpoints\": %" PRIu64 ", \"held_max_vm\": %"
                PRIu64 ", \"held_max_replica\": %" PRIu64 ", "
                "\"replica_pause_mean_ms\": %.3f, \"replica_pause_max_ms\": "
                "%.3f, \"takeover_sectors_folded\": %" PRId64 ", "
                "\"takeover_sectors_dropped\": %" PRIu64 "}",
                c->sampled ? "true" : "false", c->mode,
                c->ever_buffered ? "true" : "false", c->last[0], c->last[1],
                c->last[2], c->last[3], rm_drill_colo_rate(c, 0),
                rm_drill_colo_rate(c, 1), rm_drill_colo_rate(c, 2),
                rm_drill_colo_rate(c, 3), c->fallbacks,
                c->buffered_checkpoints, c->held_max_vm,
                c->held_max_replica, c->replica_pause_mean_ms,
                c->replica_pause_max_ms, c->takeover_folded,
                c->takeover_dropped);
    }
    fprintf(f, "\n}\n");
    if (fclose(f))
        return rm_error_set(err, -EIO, "writing %s failed", path);
    return 0;
}
