/* SPDX-License-Identifier: MIT */
/* Helpers shared by the unit tests and fuzzers (tests only). */
#ifndef REMUS_TESTS_TESTUTIL_H
#define REMUS_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/io.h"
#include "common/sr.h"
#include "tests/support/mem_backend.h"

/* Snapshots of the guest at each checkpoint (for convergence checks). */
struct tu_snapshots {
    unsigned count, cap;
    uint8_t **pages;         /* [epoch - 1] */
    uint64_t *vcpu_state;
    uint64_t *digest;
    uint64_t nr_pfns;
};

struct tu_save_opts {
    enum rm_save_mode mode;
    unsigned epochs;          /* checkpointed: stop after this many */
    unsigned dirty_per_epoch; /* pages the workload dirties per harvest */
    bool compress;
    bool verify;
    struct tu_snapshots *snaps;  /* optional */
    unsigned max_iters;       /* 0: default */
    uint64_t dirty_threshold; /* 0: default */
    unsigned max_factor;      /* 0: default */
    uint64_t *later_bytes;    /* optional: bytes of checkpoints >= 2 */
    struct rm_epoch_stats *stats;  /* optional: checkpoint n's in [n - 1] */
    /* optional: the guest's workload instead of dirty_per_epoch's */
    void (*workload)(struct mem_guest *g, void *opaque);
    unsigned nstats;               /* ... for n <= nstats */
};

/* Save @g into @out (appended).  Returns rm_save's result. */
int tu_save(struct mem_guest *g, const struct tu_save_opts *o,
            struct rm_buf *out, struct rm_save_ctx *ctx_out,
            struct rm_error *err);

struct tu_restore_log {
    unsigned commits;
    uint64_t last_epoch;
    uint64_t digests[256];
    struct tu_snapshots *snaps;   /* compare replica at each commit */
    struct mem_replica *replica;
    unsigned mismatched_commits;  /* replica != snapshot at commit */
    uint64_t max_buffer_bytes;    /* restore's buffer (0: the default) */
};

/* Restore @len bytes at @data into @r. */
int tu_restore(const void *data, size_t len, struct mem_replica *r,
               bool allow_compressed, bool checkpointed,
               struct tu_restore_log *log, struct rm_restore_ctx *ctx_out,
               struct rm_error *err);

void tu_snapshots_free(struct tu_snapshots *s);

/*
 * For a unit test that runs our guest on the micro-VMM: 77 (a skip, which
 * the runner fails where /dev/kvm exists) without /dev/kvm; 1 when no
 * private network namespace can be made; else 0 with the guest image that
 * sits beside the test binary (BUILD/tests/X -> BUILD/guest/remus-guest.elf)
 * in @image.  Prints why it does not return 0.
 */
int tu_kvm_test_setup(char *image, size_t len);

#endif
