/* SPDX-License-Identifier: MIT */
/*
 * Inside the failover drill (drill.h): the state one rm_drill_run() shares
 * with its parts -- the clients that load the guest and judge what
 * survived (drill_clients.c) and the report read from the drill's logs
 * (drill_report.c).  Not for use outside drill/.
 */
#ifndef REMUS_DRILL_DRILL_RUN_H
#define REMUS_DRILL_DRILL_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "drill/drill.h"
#include "drill/drill_disk.h"
#include "drill/kvclient.h"

#define DRILL_GUEST_IP "10.77.0.2"
#define DRILL_GUEST_PORT 7000
#define DRILL_MAX_CLIENTS 64
#define DRILL_MAX_LAT_SAMPLES 262144

struct drill;

struct drill_client {
    struct drill *d;
    unsigned idx;
    pthread_t thread;
    struct kv_client kc;
    uint64_t acked;
    uint64_t acked_at_kill;
    uint64_t lost;
    uint64_t doubled;
    bool interrupted;            /* stopped with a request that the guest
                                    may have applied, unanswered */
    int error;
    uint32_t *lat_us;            /* request latencies while protected */
    size_t nlat;
};

struct drill {
    const struct rm_drill_cfg *cfg;
    struct rm_drill_report *rep;
    char dir[128];                /* its logs */
    char path_cfg[256];           /* the guest's description */
    char log_p[256], log_s[256];  /* the primary's and secondary's logs */
    char epochs[256];             /* the primary's --stats-file */
    char rundir[256];             /* $REMUS_RUN_DIR of both */
    char keyf[256];               /* a key of the drill's own */
    const char *key;              /* the key both run with; NULL: none */
    pid_t primary, secondary;
    volatile int stop;
    uint64_t t_kill;              /* 0 until the kill */
    uint64_t t_first_after;       /* first reply to a request sent later */
    uint64_t t_start;
    unsigned started;             /* clients running */
    struct drill_client clients[DRILL_MAX_CLIENTS];
    uint64_t want[DRILL_MAX_CLIENTS];  /* each key's value on the replica */
    struct rm_drill_disk disk;
    pthread_mutex_t lock;
};

/* A progress line on stderr (unless quiet): the time, @phase, the
 * operations acknowledged so far.  drill.c */
void drill_progress(struct drill *d, const char *phase);

/* ---- drill_clients.c */
/* Start cfg->clients clients (d->started counts them), each incrementing
 * its own key until d->stop.  0, or -EAGAIN naming the one that could not
 * start (those started run on: drill_clients_end stops them). */
int drill_clients_start(struct drill *d, struct rm_error *err);
/* Operations acknowledged so far, all clients. */
uint64_t drill_total_acked(struct drill *d);
/* At the kill: what each client had acknowledged. */
void drill_clients_mark_kill(struct drill *d);
/* Stop and join every client. */
void drill_clients_stop(struct drill *d);
/* After the failover: every acknowledged increment must be in the
 * replica's state, none applied twice (rep->acked_ops, lost_ops,
 * survived, why; d->want). */
void drill_clients_verify(struct drill *d);
/* A client that stopped with an error, or a drill in which nothing was
 * acknowledged before the kill, fails the drill (rep->why, if not set). */
void drill_clients_judge(struct drill *d);
/* The request latencies (rep->latency_ms_*); then the clients' sockets
 * and samples are freed. */
void drill_clients_end(struct drill *d);

/* ---- drill_report.c */
/* Newlines in @path (0 when it cannot be read). */
uint64_t drill_count_lines(const char *path);
/* The primary's stats file: checkpoints, pause percentiles and parts,
 * bytes and dirty pages per checkpoint. */
void drill_read_epochs(struct drill *d);
/* The secondary's log: the checkpoint it resumed from, COLO's words. */
void drill_read_failover_line(struct drill *d);

#endif
