/* SPDX-License-Identifier: MIT */
/*
 * A memory-only backend for the engines, for tests only.
 *
 * Save side: a "guest" of nr_pfns pages in a malloc'd array with a
 * software dirty log (mem_guest_write marks pages dirty), a workload hook
 * called at every harvest (so the guest "runs" between iterations and
 * checkpoints), holes (pfns reported as XTAB), and a knob that makes
 * check_vm_state report a layout change at a given call.
 * Restore side: the replica's pages and the log of what was applied.
 * Domain type: x86 HVM (writes HVM_CONTEXT, X86_TSC_INFO,
 * X86_CPUID_POLICY, X86_MSR_POLICY, and HVM_PARAMS as Xen's backend does:
 * in end_of_checkpoint_running) or remus KVM (KVM_VM_INFO, KVM_VCPU,
 * KVM_DEVICE).
 */
#ifndef REMUS_TESTS_MEM_BACKEND_H
#define REMUS_TESTS_MEM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sr.h"

struct mem_guest {
    uint64_t nr_pfns;
    uint32_t dtype;
    uint8_t *pages;                 /* nr_pfns * RM_PAGE_SIZE */
    unsigned long *dirty;           /* software dirty log */
    bool *hole;                     /* pfn not populated (XTAB) */
    uint64_t vcpu_state;            /* "register" saved in state records */
    uint64_t rng;

    /* The guest "runs": called at every harvest of a running guest (live
     * pre-copy) and at every resume (checkpoints). */
    void (*workload)(struct mem_guest *g, void *opaque);
    void *workload_opaque;

    /* suspend / resume take at least this long (0: no delay). */
    unsigned suspend_delay_us, resume_delay_us;
    /* resume(): after it lets the guest run (released_ns), it keeps its
     * caller this long more, as a checkpointing thread preempted by the
     * vCPUs it woke would be (mem_save_ops.resumed_at says when). */
    unsigned resume_linger_us;
    uint64_t released_ns;

    /* check_vm_state fails with -ESTALE on this call (0: never). */
    unsigned layout_change_at;
    unsigned checks;

    /* Counters */
    unsigned suspends, resumes, harvests;
    /* end_of_checkpoint_running (HVM: writes HVM_PARAMS, its second value
     * the resumes so far): calls, and calls with the guest suspended. */
    unsigned late_states, late_suspended;
    bool suspended;
    bool logdirty;
};

struct mem_guest *mem_guest_new(uint64_t nr_pfns, uint32_t dtype,
                                uint64_t seed);
void mem_guest_free(struct mem_guest *g);
/* Write one byte pattern into a page and mark it dirty. */
void mem_guest_write(struct mem_guest *g, uint64_t pfn, uint64_t value);
/* Dirty @count random pages. */
void mem_guest_scribble(struct mem_guest *g, unsigned count);

extern const struct rm_save_ops mem_save_ops;   /* backend_arg: mem_guest */

struct mem_replica {
    uint64_t nr_pfns;              /* from the stream */
    uint8_t *pages;
    uint64_t vcpu_state;           /* applied state */
    bool have_state;
    bool completed;                /* stream_complete called */
    /* HVM_PARAMS records applied, and the last one's second value. */
    unsigned params_applied;
    uint64_t params_late_value;
    unsigned records_processed;
    uint64_t max_pfns;             /* refuse larger guests (0: 1<<20) */
    /* map_pages refusals: the engine asked for a page the backend cannot
     * apply, which its checks on arrival should have refused (always a
     * bug: the fuzzers abort on it). */
    unsigned map_refused;
    /* Simulated I/O failure: the map_pages call number fail_map_at
     * (counting from 1; 0: never) fails with -EIO. */
    unsigned fail_map_at, map_calls;
};

struct mem_replica *mem_replica_new(void);
void mem_replica_free(struct mem_replica *r);

extern const struct rm_restore_ops mem_restore_ops; /* arg: mem_replica */

#endif
