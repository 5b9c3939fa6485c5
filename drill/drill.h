/* SPDX-License-Identifier: MIT */
/*
 * The failover drill: on one machine, in a private network namespace, a
 * secondary (`remus receive`) and a primary (`remus protect`) protect our
 * guest; clients put a load on its key-value service; the primary is
 * killed with SIGKILL at a random moment (or after kill_after_ms); the
 * drill measures the failover and checks that no acknowledged operation
 * was lost.
 */
#ifndef REMUS_DRILL_DRILL_H
#define REMUS_DRILL_DRILL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "drill/drill_colo.h"
#include "drill/pause_tail.h"

struct rm_drill_cfg {
    const char *self;            /* path of the remus binary */
    const char *image;           /* guest image */
    unsigned memory_mib;         /* 64 */
    unsigned vcpus;              /* 2 */
    unsigned interval_ms;        /* 25 */
    unsigned hb_interval_ms;     /* 50 */
    unsigned hb_timeout_ms;      /* 500 */
    unsigned clients;            /* 4 */
    unsigned kill_after_ms;      /* 0: random in [2000, 5000) */
    unsigned after_ms;           /* load after the failover (2000) */
    uint64_t dirty_rate;         /* guest workload pages/s (5000) */
    uint64_t dirty_wss;          /* pages (2048) */
    bool compress;               /* true */
    bool no_buffer;              /* protect -F -n: output not held back
                                    (benchmarks: the latency baseline;
                                    acknowledged state may then be lost) */
    bool quiet;                  /* no live progress */
    uint64_t seed;               /* 0: from the clock */
    const char *keep_dir;        /* keep logs here (NULL: temp, removed
                                    when the drill passes) */
    const char *key_file;        /* pre-shared key passed to protect and
                                    receive as --key-file (NULL: a key of
                                    the drill's own, generated in its log
                                    directory) */
    bool insecure;               /* no key at all: protect and receive run
                                    with --insecure (a baseline) */
    unsigned disk_mib;           /* the guest's disk (16; 0: none): the
                                    key-value data on it, replicated */
    bool no_disk_replication;    /* protect -F -d: the disk is not
                                    replicated (a negative control: the
                                    drill must fail) */
    bool colo;                   /* COLO mode (protect/receive --colo;
                                    no disk) */
    unsigned compare_timeout_ms; /* COLO: protect --compare-timeout (0:
                                    protect's default) */
};

struct rm_drill_report {
    uint64_t epochs;
    double pause_ms_p50, pause_ms_p99, pause_ms_max;
    struct rm_drill_pause_parts parts;   /* the pause by part, and the
                                            part behind its tail */
    double bytes_per_epoch;
    double dirty_per_epoch;
    double failover_ms;          /* kill -> first reply from the replica */
    double detect_ms;            /* kill -> the secondary resumed (log) */
    uint64_t acked_ops;
    uint64_t lost_ops;
    uint64_t acked_before_kill;
    uint64_t committed_epoch;    /* the secondary's, at failover */
    double epochs_per_s;         /* while protected, before the kill */
    double latency_ms_p50, latency_ms_p99, latency_ms_max;
                                 /* client request -> reply, protected */
    double guest_writes_per_s;   /* the guest's workload, protected */
    double primary_cpu, secondary_cpu;  /* CPU used under load, in cores
                                           (the remus processes, their VMs
                                           included) */
    unsigned kill_after_ms;
    /* The disk (disk_mib > 0) */
    unsigned disk_mib;
    uint64_t disk_records;       /* the replica's log after the failover */
    uint64_t cold_records;       /* the cold-booted copy's */
    double cold_boot_ms;         /* start of the copy to its first answer */
    bool disk_checked;           /* DISKCHECK and the cold boot held */
    bool colo;                   /* COLO mode: what its status said */
    struct rm_drill_colo colo_st;
    bool survived;
    bool passed;                 /* the verdict: rm_drill_run sets it */
    char logs[256];
    char why[256];               /* why it did not pass ("" if it did) */
};

void rm_drill_cfg_default(struct rm_drill_cfg *cfg);
/* 0 when the drill ran, -errno when it could not run (no /dev/kvm, not
 * root, ...).  When it ran, report->passed is the verdict and report->why
 * says why it failed: the guest did not survive, an acknowledged operation
 * was lost or applied twice, a client stopped with an error, or nothing
 * was acknowledged before the kill (a drill that tested nothing). */
int rm_drill_run(const struct rm_drill_cfg *cfg,
                 struct rm_drill_report *rep, struct rm_error *err);
/* The report as JSON (keys: result ("PASS"/"FAIL"), why, epochs, pause_ms_p50, pause_ms_p99,
 * pause_ms_max, bytes_per_epoch, failover_ms, acked_ops, lost_ops,
 * epochs_per_s, latency_ms_p50/p99/max, guest_writes_per_s, ...). */
int rm_drill_report_json(const struct rm_drill_report *rep, const char *path,
                         struct rm_error *err);

#endif
