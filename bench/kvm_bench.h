/* SPDX-License-Identifier: MIT */
/*
 * What the files of kvm_bench share (bench/kvm_bench.c: the run, the
 * pause rows; bench/bench_guest.c: a guest to measure; the row groups:
 * bench/e2e_rows.c, bench/disk_rows.c, bench/resync_rows.c).
 */
#ifndef REMUS_BENCH_KVM_BENCH_H
#define REMUS_BENCH_KVM_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "drill/kvclient.h"

struct rm_vm;

/* One run of kvm_bench: filled by main(), passed to every row group. */
struct bench_run {
    char image[PATH_MAX];       /* the guest (guest/remus-guest.elf) */
    char remus_bin[PATH_MAX];   /* the remus beside kvm_bench's build */
    char data_dir[PATH_MAX];    /* plots' data files; "" for none */
    unsigned unmeasured;        /* rows that said NOT MEASURED */
    bool smoke;                 /* REMUS_BENCH_SMOKE=1: few, small rows */
    uint64_t resync_bytes;      /* the resync rows' image (1 GiB) */
};

/* A data file for the plots, open for writing, or NULL (no DATA-DIR). */
FILE *bench_data_file(const struct bench_run *run, const char *name);
/* A row that could not be measured: says so in the report (the run then
 * exits non-zero: make bench fails). */
void bench_not_measured(struct bench_run *run, const char *row,
                        const char *why);
/* qsort's comparison of uint64_t. */
int bench_cmp_u64(const void *a, const void *b);

/* A guest of the micro-VMM on tap rmbench0 (10.77.0.2), its key-value
 * service reached through @kc. */
struct gvm {
    struct rm_vm *vm;
    struct kv_client kc;
    double start_ms;            /* create -> its service's first answer */
};

/* Start a guest of @mib MiB, @vcpus vCPUs, dirty tracking @mode (0
 * bitmap, 1 ring, 2 manual clear), with the disk image @disk or none
 * (NULL); 0, or -1 with the reason on stderr. */
int gvm_start(struct bench_run *run, struct gvm *g, unsigned mib,
              unsigned vcpus, int mode, const char *disk);
void gvm_stop(struct gvm *g);
/* One request to the guest's service (10 s at most); 0 or -1. */
int gvm_kv(struct gvm *g, const char *cmd, struct kv_reply *r);
/* The guest's page-writes so far (its STATS), 0 when it does not say. */
uint64_t gvm_writes(struct gvm *g);
/* Page-writes/s over @ms, with a dirty-log harvest every 25 ms when
 * @logdirty (its pages/s into *@harvest_pages_s, when not NULL). */
double gvm_write_rate(struct gvm *g, bool logdirty, unsigned ms,
                      double *harvest_pages_s);

/* The row groups, each printing its tables (bench/e2e_rows.c: `remus
 * protect` -> `remus receive` drills; bench/disk_rows.c: the guest's
 * disk; bench/resync_rows.c: a disk's resync). */
void bench_e2e_rows(struct bench_run *run);
void bench_colo_rows(struct bench_run *run);
void bench_disk_rows(struct bench_run *run);
void bench_resync_rows(struct bench_run *run, const char *dir);

#endif
