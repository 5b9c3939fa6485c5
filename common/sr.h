/* SPDX-License-Identifier: MIT */
/*
 * The generic save and restore engines, and the ops tables a backend
 * implements for them (in the spirit of Xen's xc_sr_save_ops /
 * xc_sr_restore_ops).  The engines own the algorithm and the loop; a
 * backend (backends/kvm, backends/xen, tests/support/mem_backend) only
 * answers questions about its VM.
 *
 * Conventions for every op: return 0 or a negative errno; on failure put
 * the reason in ctx->err with rm_error_set() (the engine adds context).
 * Every op must be implemented (a no-op is fine) unless marked optional.
 * The backend's private state hangs off ctx->backend: setup allocates it,
 * cleanup frees it (cleanup is called exactly once if setup was called,
 * including after setup failed).
 */
#ifndef REMUS_COMMON_SR_H
#define REMUS_COMMON_SR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/io.h"
#include "common/stream.h"

struct rm_save_ctx;
struct rm_restore_ctx;
struct rm_disklog;         /* common/disklog.h */
struct rm_disk_replica;

/* ===================================================================== */
/*                                 Save                                  */
/* ===================================================================== */

enum rm_save_mode {
    RM_SAVE_NONLIVE = 0,     /* suspend, send everything, END */
    RM_SAVE_LIVE,            /* pre-copy iterations, suspend, send rest */
    RM_SAVE_CHECKPOINTED,    /* live first pass, then epochs until stopped */
};

struct rm_save_ops {
    /*
     * Called once, first.  Allocate ctx->backend, set ctx->nr_pfns (the
     * guest's pfn space is [0, nr_pfns)), ctx->dtype and the stream's
     * major/minor (ctx->dhdr_major/minor).  The VM may be running.
     */
    int (*setup)(struct rm_save_ctx *ctx);

    /*
     * Write the static-data records (e.g. KVM_VM_INFO, X86_CPUID_POLICY,
     * X86_MSR_POLICY) with rm_stream_write_record(&ctx->w, ...).  The
     * engine writes STATIC_DATA_END after it.  Called once.
     */
    int (*static_data)(struct rm_save_ctx *ctx);

    /*
     * Called once after static data, before the first page (Xen PV writes
     * X86_PV_INFO and P2M frames here).  May write records.
     */
    int (*start_of_stream)(struct rm_save_ctx *ctx);

    /*
     * Called at the start of each checkpoint (the first full pass is
     * checkpoint 1) in checkpointed mode, and once in the other modes.
     */
    int (*start_of_checkpoint)(struct rm_save_ctx *ctx);

    /*
     * Called with the VM suspended, after the last pages of a final pass
     * or of a checkpoint: write the complete vCPU and device state records
     * (HVM_CONTEXT, HVM_PARAMS, X86_TSC_INFO, KVM_VCPU, KVM_DEVICE ...).
     */
    int (*end_of_checkpoint)(struct rm_save_ctx *ctx);

    /*
     * Optional.  Called once per checkpoint after end_of_checkpoint(),
     * before the checkpoint's trailer: in checkpointed mode with the VM
     * running again (after resume()), in the other modes at once, the VM
     * still suspended.  Writes the state records whose content the guest
     * cannot change (Xen HVM: the params only a toolstack sets), so that
     * reading them costs the pause nothing.  What a guest can change while
     * it runs belongs in end_of_checkpoint().  0 or -errno.
     */
    int (*end_of_checkpoint_running)(struct rm_save_ctx *ctx);

    /*
     * Called once per iteration and per checkpoint before the dirty log is
     * harvested.  Return -ESTALE (with a reason) when the guest's memory
     * layout changed under us (Xen: the p2m generation count moved); the
     * engine aborts the save.
     */
    int (*check_vm_state)(struct rm_save_ctx *ctx);

    /*
     * Make a batch of @count pages readable.  For each i fill types[i]
     * (RM_PT_*; RM_PT_XTAB for a pfn the guest does not have) and, when
     * the type carries data, ptrs[i]: RM_PAGE_SIZE readable bytes, valid
     * until unmap_pages() for the same batch.  @count <= RM_PAGE_DATA_BATCH.
     */
    int (*map_pages)(struct rm_save_ctx *ctx, uint32_t count,
                     const uint64_t *pfns, uint32_t *types, void **ptrs);
    /* Release a batch from map_pages().  Optional. */
    void (*unmap_pages)(struct rm_save_ctx *ctx, uint32_t count,
                        void **ptrs);

    /*
     * Rewrite a page into its stream form before it is written (Xen PV:
     * page tables get mfns replaced by pfns).  May point *page at a buffer
     * the backend owns, which must stay valid until unmap_pages() of the
     * batch: the engine normalises a whole batch, then writes it.
     * Optional.
     */
    int (*normalise_page)(struct rm_save_ctx *ctx, uint64_t pfn,
                          uint32_t type, void **page);

    /* Start / stop logging dirty pages.  enable is called before pass 1. */
    int (*enable_logdirty)(struct rm_save_ctx *ctx);
    int (*disable_logdirty)(struct rm_save_ctx *ctx);

    /*
     * Harvest and clear the dirty log, setting bit pfn in @bitmap (nr_pfns
     * bits, the engine zeroed it) for every page written since the last
     * harvest -- including pages the backend itself wrote into guest
     * memory (device model writes, hypercall results), which a
     * hypervisor's dirty log does not see.
     */
    int (*harvest_dirty)(struct rm_save_ctx *ctx, unsigned long *bitmap);

    /* Pause every vCPU; afterwards guest memory and state do not change. */
    int (*suspend)(struct rm_save_ctx *ctx);
    /* Let the VM run again (checkpointed mode, and at the end of a save of
     * a VM that is to go on running).  */
    int (*resume)(struct rm_save_ctx *ctx);
    /* Optional: when the last resume() let the VM run again (rm_now_ns()'s
     * clock, taken by the backend as it released the vCPUs): the pause
     * ends there.  What resume() takes after it (its thread preempted by
     * the vCPUs it woke, on a host with few cores) is the VM running, not
     * paused.  NULL, or 0 or a time outside the call: when resume()
     * returned. */
    uint64_t (*resumed_at)(struct rm_save_ctx *ctx);

    /* Called exactly once if setup was called.  Frees ctx->backend. */
    void (*cleanup)(struct rm_save_ctx *ctx);
};

/*
 * The parts of a checkpoint's pause, in the order they run.  Each is timed
 * from the end of the one before it, so they add up to pause_ns exactly.
 */
enum rm_pause_phase {
    RM_PAUSE_SUSPEND,   /* ops->suspend: on KVM kick, park, vCPU state read */
    RM_PAUSE_HARVEST,   /* ops->harvest_dirty (and the merge on epoch 1) */
    RM_PAUSE_DISK_CUT,  /* the disk log's cut: the epoch's writes sealed */
    RM_PAUSE_EPOCH_CB,  /* cb.suspended: a new output-buffering epoch */
    RM_PAUSE_PAGES,     /* the dirty pages copied into the staging buffer */
    RM_PAUSE_STATE,     /* the vCPU and device state records staged */
    RM_PAUSE_RESUME,    /* ops->resume */
    RM_PAUSE_PHASES
};

/* A phase's short name ("suspend", "harvest", ...); "?" out of range. */
const char *rm_pause_phase_name(unsigned phase);

/* Statistics for one checkpoint (or the final pass of a plain save). */
struct rm_epoch_stats {
    uint64_t epoch;
    uint64_t dirty_pages;     /* pages sent in this checkpoint */
    uint64_t bytes;           /* stream bytes of this checkpoint */
    uint64_t pause_ns;        /* suspend .. resume */
    uint64_t send_ns;         /* resume .. bytes handed to the sink */
    uint64_t digest;          /* FNV-1a over (pfn, page) sent */
    uint64_t disk_bytes;      /* disk data bytes in this checkpoint */
    uint64_t phase_ns[RM_PAUSE_PHASES];  /* pause_ns by part (checkpoints) */
    uint64_t disk_late;       /* disk changes logged between the cut and
                                 the resume, the VM suspended: in flight
                                 at the cut, so in the next epoch */
    uint64_t pause_faults;    /* page faults the checkpointing thread took
                                 from the suspend to the end of staging
                                 (first touches of the staging buffer) */
    uint64_t pages_map_ns;    /* of phase_ns[RM_PAUSE_PAGES], the time in
                                 ops->map_pages (the rest: the copy into
                                 the staging buffer, the records) */
};

struct rm_save_callbacks {
    void *opaque;
    /*
     * Checkpointed mode, optional.  Called with the VM suspended, right
     * after the dirty log was harvested for @epoch: the primary starts a
     * new output-buffering epoch here.
     */
    int (*suspended)(void *opaque, uint64_t epoch);
    /*
     * Checkpointed mode, optional (COLO).  Called with the VM suspended,
     * after suspended(): OR into @dirty (@nr_pfns bits) the pages the
     * peer's running copy changed since the last checkpoint (the replica's
     * dirty pfn list), so that they are sent too.  0 or -errno (with the
     * reason in the save's err): the checkpoint is abandoned.
     */
    int (*peer_dirty)(void *opaque, uint64_t epoch, unsigned long *dirty,
                      uint64_t nr_pfns);
    /*
     * Checkpointed mode, required there.  Called after checkpoint @st has
     * been written to the sink (the VM is running).  Wait for the
     * secondary's acknowledgement, release the epoch's output, sleep until
     * the next checkpoint is due.  Return 1 to take another checkpoint, 0
     * to end the stream cleanly (END is written), or -errno to abort.
     */
    int (*checkpoint)(void *opaque, const struct rm_epoch_stats *st);
    /* Optional progress report after each live iteration. */
    void (*progress)(void *opaque, unsigned iteration, uint64_t sent,
                     uint64_t dirty_left);
};

struct rm_save_params {
    enum rm_save_mode mode;
    unsigned max_iters;        /* live: pre-copy iterations (default 5) */
    uint64_t dirty_threshold;  /* live: stop when fewer pages dirty (50) */
    unsigned max_factor;       /* live: stop after sending this many times
                                  guest memory (default 3) */
    bool verify;               /* send VERIFY and all pages again at end */
    bool compress;             /* checkpoints: compressed page records
                                  (remus-typed streams only) */
    bool resume_after;         /* non-live/live: resume the VM after the
                                  save instead of leaving it suspended */
};

void rm_save_params_default(struct rm_save_params *p, enum rm_save_mode m);

struct rm_save_ctx {
    const struct rm_save_ops *ops;
    void *backend;             /* backend private state (setup/cleanup) */
    void *backend_arg;         /* given by the caller for setup to use */
    struct rm_save_params params;
    struct rm_save_callbacks cb;
    struct rm_error *err;

    /* Set by ops->setup */
    uint64_t nr_pfns;
    uint32_t dtype;
    uint32_t dhdr_major, dhdr_minor;

    /* The stream being written: records go to ctx->w (which points at the
     * real sink, or at the staging buffer during a checkpoint). */
    struct rm_stream_writer w;
    struct rm_sink *out;       /* the real destination, given by caller */

    /*
     * The VM's disks (optional, NULL or no disk added: none; remus streams
     * only).  The engine writes DISK_INFO after the static data, starts the
     * log, sends the queued resync chunks (epoch 0) before the first pass,
     * cuts the log with the VM suspended at each checkpoint, writes that
     * epoch's DISK_WRITES before its EPOCH_INFO and acknowledges the epoch
     * once cb.checkpoint returned success.  Checkpointed: the caller
     * queues the resync (rm_disklog_resync() with the secondary's hashes)
     * before rm_save.  Plain saves send a full copy, then the final epoch.
     */
    struct rm_disklog *disks;

    /* Results and statistics */
    uint64_t epoch;            /* last checkpoint written */
    uint64_t pages_sent;
    unsigned iterations;
    bool suspended;

    struct rm_save_priv *priv; /* engine private */
};

/*
 * Run a save into @out: headers, static data, pages, state, END (or the
 * endless checkpoints of RM_SAVE_CHECKPOINTED until cb.checkpoint returns
 * 0).  The caller fills ops, backend_arg, params, cb, err.  0 or -errno.
 */
int rm_save(struct rm_save_ctx *ctx, struct rm_sink *out);

/* ===================================================================== */
/*                                Restore                                */
/* ===================================================================== */

struct rm_restore_ops {
    /*
     * Called once, after the headers are read (ctx->dhdr is set).  Check
     * the domain type, allocate ctx->backend.  Set ctx->nr_pfns when known
     * now; otherwise a static-data record sets it (before any page).
     */
    int (*setup)(struct rm_restore_ctx *ctx);

    /*
     * Check a backend-specific record (any record the engine does not
     * handle itself: HVM_CONTEXT, KVM_VCPU, ...) when it arrives, before
     * any of its checkpoint is applied.  Refuse what process_record would
     * refuse, so a checkpoint is never half applied.  Must not change the
     * VM.  -EBADMSG with a reason for a bad record; -EOPNOTSUPP for a
     * record this backend cannot handle.
     */
    int (*check_record)(struct rm_restore_ctx *ctx,
                        const struct rm_record *rec);

    /*
     * Check a PAGE_DATA batch when it arrives, before any of its
     * checkpoint is applied: refuse every (pfn, type) that map_pages
     * would refuse (pfns are < nr_pfns; types are valid Xen types), so a
     * checkpoint is refused whole instead of failing half applied.  Must
     * not change the VM.  0, or -errno with a reason naming the pfn and
     * its type.  Optional only for a backend whose map_pages takes every
     * valid type.
     */
    int (*check_pages)(struct rm_restore_ctx *ctx, uint32_t count,
                       const uint64_t *pfns, const uint32_t *types);

    /*
     * Apply a record accepted by check_record.  Before the first
     * checkpoint it is called in stream order; in a checkpointed stream
     * afterwards only when its checkpoint is complete.  State may be kept
     * aside until stream_complete().
     */
    int (*process_record)(struct rm_restore_ctx *ctx,
                          const struct rm_record *rec);

    /* STATIC_DATA_END seen (or, in a v2 stream, the first page).  nr_pfns
     * must be known afterwards. */
    int (*static_data_complete)(struct rm_restore_ctx *ctx);

    /*
     * Make a batch of pages writable (populating them if needed).
     * types[i] is the stream's type of pfns[i] (pfns are < nr_pfns);
     * fill ptrs[i] for pages that carry data, valid until unmap_pages.
     * XALLOC pages are only populated; BROKEN/XTAB are handled per the
     * backend (a BROKEN page may be marked so).
     */
    int (*map_pages)(struct rm_restore_ctx *ctx, uint32_t count,
                     const uint64_t *pfns, const uint32_t *types,
                     void **ptrs);
    void (*unmap_pages)(struct rm_restore_ctx *ctx, uint32_t count,
                        void **ptrs); /* optional */

    /* Turn a page written in stream form into its local form (Xen PV
     * page tables: pfn -> mfn).  Optional. */
    int (*localise_page)(struct rm_restore_ctx *ctx, uint64_t pfn,
                         uint32_t type, void *page);

    /*
     * The stream ended (END), or the engine fails over to the last
     * committed checkpoint: apply the kept-aside vCPU/device state.  The
     * VM stays paused; the caller decides when to run it.
     */
    int (*stream_complete)(struct rm_restore_ctx *ctx);

    /* Called exactly once if setup was called. */
    void (*cleanup)(struct rm_restore_ctx *ctx);
};

struct rm_restore_callbacks {
    void *opaque;
    /*
     * Optional.  Checkpoint @epoch has been applied whole; @digest is the
     * FNV-1a of the (pfn, page) pairs it applied.  The secondary sends its
     * acknowledgement here.  A failure is treated as a broken channel.
     */
    int (*checkpoint_committed)(void *opaque, uint64_t epoch,
                                uint64_t digest, uint64_t pages);
    /* Optional: a page differed in verify mode. */
    void (*verify_mismatch)(void *opaque, uint64_t pfn);
    /* Optional (NULL: never): the stream has just ended; was that asked
     * for (a stop asked of the secondary shuts it)?  Then its end is
     * logged as news, not as a warning. */
    bool (*end_expected)(void *opaque);
};

enum rm_restore_result {
    RM_RESTORE_NONE = 0,
    RM_RESTORE_COMPLETE,    /* END seen, everything applied */
    RM_RESTORE_FAILOVER,    /* the stream broke after >= 1 committed
                               checkpoint; that checkpoint is applied */
};

struct rm_restore_params {
    bool checkpointed_hint;   /* expect checkpoints (secondary) */
    bool allow_compressed;    /* accept RM_REC_PAGE_DATA_COMPRESSED
                                 (negotiated between two remus ends) */
    uint64_t max_buffer_bytes; /* memory for one buffered checkpoint (0:
                                  RM_RESTORE_BUFFER_DEFAULT); beyond it
                                  the rest is staged on disk
                                  (common/restore.c) */
    unsigned read_timeout_ms;  /* 0: none.  After this long with no byte,
                                  the channel counts as broken */
    bool track_mem_hash;       /* keep the hash of the memory every page
                               applied so far makes (COLO: see
                               rm_restore_mem_hashes) */
    bool test_disk_on_arrival; /* TESTS ONLY: apply each checkpoint's disk
                                  writes as they arrive, not at its commit
                                  (DRBD's protocol C: the disk runs ahead
                                  of the memory it is resumed with).  The
                                  negative control of P2 (common/
                                  disklog.h): never for a real replica */
};

#define RM_RESTORE_BUFFER_DEFAULT (1ull << 30)

/* What one buffered record of @length body bytes costs in memory. */
uint64_t rm_buffered_cost(uint32_t length);

struct rm_restore_ctx {
    const struct rm_restore_ops *ops;
    void *backend;
    void *backend_arg;
    struct rm_restore_params params;
    struct rm_restore_callbacks cb;
    struct rm_error *err;

    struct rm_dhdr dhdr;
    uint32_t version;
    uint64_t nr_pfns;          /* set by setup or a static-data record */

    /*
     * The replica images (optional; NULL: no disk, and a stream with disk
     * records is refused).  DISK_INFO is checked against them, DISK_WRITES
     * checked on arrival and applied with the checkpoint at its commit
     * (resync chunks and the first checkpoint's writes as they arrive).
     */
    struct rm_disk_replica *disks;

    /* Results */
    enum rm_restore_result result;
    uint64_t committed_epoch;  /* last checkpoint applied whole (0: none) */
    uint64_t pages_applied;
    uint64_t verify_mismatches;
    struct rm_error failover_reason; /* why the stream ended in failover */

    struct rm_restore_priv *priv;
};

/*
 * Restore from @src.  Returns 0 with ctx->result COMPLETE or FAILOVER, or
 * -errno (with the reason in ctx->err) when no consistent state exists:
 * a bad stream before its first checkpoint, or a non-checkpointed stream
 * that is cut or corrupt.
 */
int rm_restore(struct rm_restore_ctx *ctx, struct rm_src *src);

/*
 * COLO (params.track_mem_hash): during rm_restore, from its
 * checkpoint_committed callback.  *@expected: the hash of the memory that
 * every page the stream carried so far, the latest of each, makes (the
 * primary's memory at the last cut; pages never sent: zero); *@actual:
 * the same hash of the replica's memory now, every page read through the
 * backend's map_pages.  They differ when the replica's memory holds a
 * change the checkpoints did not replace (a page the running replica
 * wrote that was missing from its dirty list).  The hash: the XOR over
 * the pfns of FNV-1a(pfn, rm_hash_words(page)).  0, -EINVAL (not
 * tracking, or before the static data), or the backend's -errno.
 */
int rm_restore_mem_hashes(struct rm_restore_ctx *ctx, uint64_t *expected,
                          uint64_t *actual);

/* Bitmap helpers shared by the engines and backends. */
#define RM_BITS_PER_LONG (8 * sizeof(unsigned long))
#define RM_BITMAP_LONGS(n) (((n) + RM_BITS_PER_LONG - 1) / RM_BITS_PER_LONG)

static inline void rm_bitmap_set(unsigned long *bm, uint64_t bit)
{
    bm[bit / RM_BITS_PER_LONG] |= 1ul << (bit % RM_BITS_PER_LONG);
}
static inline bool rm_bitmap_test(const unsigned long *bm, uint64_t bit)
{
    return (bm[bit / RM_BITS_PER_LONG] >> (bit % RM_BITS_PER_LONG)) & 1;
}
static inline void rm_bitmap_clear(unsigned long *bm, uint64_t bit)
{
    bm[bit / RM_BITS_PER_LONG] &= ~(1ul << (bit % RM_BITS_PER_LONG));
}
uint64_t rm_bitmap_weight(const unsigned long *bm, uint64_t nbits);

#endif
