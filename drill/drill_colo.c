/* SPDX-License-Identifier: MIT */
/* The drill's COLO samples (drill/drill_colo.h). */
#include "drill/drill_colo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/io.h"
#include "common/status.h"

/* NAME's @role status in @run_dir.  0 or -errno (-ENOENT: none yet). */
static int read_status(const char *run_dir, const char *name,
                       const char *role, struct rm_status *st)
{
    struct rm_error err = { 0 };
    char path[512];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s.status.json",
                         run_dir, name, role) >= sizeof(path))
        return -ENAMETOOLONG;
    return rm_status_read(path, st, &err);
}

int rm_drill_colo_sample(struct rm_drill_colo *c, const char *run_dir,
                         const char *name)
{
    struct rm_status st;
    unsigned i;
    int rc;

    rc = read_status(run_dir, name, "primary", &st);
    if (rc)
        return rc;
    if (!st.colo_mode[0])
        return -ENOENT;
    if (!c->sampled) {
        memcpy(c->first, st.colo_checkpoints, sizeof(c->first));
        c->first_ns = rm_now_ns();
    }
    c->sampled = true;
    memcpy(c->last, st.colo_checkpoints, sizeof(c->last));
    c->last_ns = rm_now_ns();
    snprintf(c->mode, sizeof(c->mode), "%s", st.colo_mode);
    if (!strcmp(st.colo_mode, "buffered"))
        c->ever_buffered = true;
    c->buffered_checkpoints = st.colo_buffered_checkpoints;
    c->fallbacks = st.colo_fallbacks;
    if (st.colo_held_primary > c->held_max_vm)
        c->held_max_vm = st.colo_held_primary;
    if (st.colo_held_replica > c->held_max_replica)
        c->held_max_replica = st.colo_held_replica;
    for (i = 0; i < 4; i++)
        if (c->last[i] < c->first[i])     /* a new protection: restart */
            memcpy(c->first, c->last, sizeof(c->first));
    return 0;
}

void rm_drill_colo_init(struct rm_drill_colo *c)
{
    memset(c, 0, sizeof(*c));
    c->takeover_folded = -1;
}

int rm_drill_colo_epoch(const char *run_dir, const char *name,
                        const char *role, uint64_t *epoch)
{
    struct rm_status st;
    int rc = read_status(run_dir, name, role, &st);

    if (rc == 0)
        *epoch = st.epoch;
    return rc;
}

int rm_drill_colo_wait_replica(const char *run_dir, const char *name,
                               unsigned min_ms, unsigned timeout_ms,
                               struct rm_drill_colo_wait *w)
{
    uint64_t start = rm_now_ns(), seen_at = 0, now;
    struct rm_status st;
    int rc;

    memset(w, 0, sizeof(*w));
    rc = rm_drill_colo_epoch(run_dir, name, "primary", &w->taken);
    if (rc)
        return rc;
    for (;;) {
        now = rm_now_ns();
        w->waited_ms = (now - start) / 1000000;
        if (!read_status(run_dir, name, "secondary", &st)) {
            w->committed = st.epoch;
            w->sectors = st.colo_replica_sectors;
            if (w->committed >= w->taken) {
                if (!seen_at)
                    seen_at = now;
                if (w->sectors && now - seen_at >= min_ms * 1000000ull)
                    return 0;
            }
        }
        if (w->waited_ms >= timeout_ms)
            return -ETIMEDOUT;
        rm_sleep_ms(10);
    }
}

void rm_drill_colo_log_line(struct rm_drill_colo *c, const char *line)
{
    const char *p = strstr(line, "its pause per checkpoint mean ");
    const char *folded = strstr(line, "COLO: ");
    double mean, max;
    unsigned long long n;

    if (folded && sscanf(folded, "COLO: %llu sectors the replica wrote "
                         "since its checkpoint written into its image",
                         &n) == 1 && strstr(folded, "written into its image"))
        c->takeover_folded = (int64_t)n;
    if (folded && sscanf(folded, "COLO: TEST MODE: %llu sectors", &n) == 1 &&
        strstr(folded, "DROPPED"))
        c->takeover_dropped = n;

    if (p && sscanf(p, "its pause per checkpoint mean %lf ms, max %lf ms",
                    &mean, &max) == 2) {
        c->replica_pause_mean_ms = mean;
        c->replica_pause_max_ms = max;
    }
}

double rm_drill_colo_rate(const struct rm_drill_colo *c, unsigned i)
{
    if (!c->sampled || i > 3 || c->last_ns <= c->first_ns)
        return 0;
    return (double)(c->last[i] - c->first[i]) /
           ((double)(c->last_ns - c->first_ns) / 1e9);
}
