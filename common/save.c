/* SPDX-License-Identifier: MIT */
/*
 * The generic save engine: non-live, live pre-copy and checkpointed
 * (Remus) saves over a backend's rm_save_ops (common/sr.h).
 *
 * Checkpointed mode, per epoch:
 *   suspend -> harvest dirty log, cut the disk log -> cb.suspended ->
 *   stage dirty pages and state into a memory buffer -> resume -> stage
 *   the sealed epoch's disk writes and EPOCH_INFO -> hand the buffer to
 *   the sink -> cb.checkpoint (waits for the ack, releases output, sleeps)
 *   -> the disk log frees the acknowledged epoch.
 * The guest is paused only while pages are copied into the staging
 * buffer, never while bytes cross the network.
 */
#define RM_LOG_PREFIX "save"
#include "common/sr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "common/compress.h"
#include "common/disklog.h"
#include "common/log.h"
#include "common/save_stage.h"

struct rm_save_priv {
    unsigned long *dirty;        /* nr_pfns bits */
    uint64_t *batch_pfns;        /* RM_PAGE_DATA_BATCH */
    uint32_t *batch_types;
    void **batch_ptrs;           /* as mapped (for unmap_pages) */
    void **send_ptrs;            /* what is sent: bounce / normalised */
    uint32_t batch_count;
    struct rm_buf stage;         /* one staged checkpoint */
    struct rm_sink stage_sink;
    uint64_t digest;             /* FNV over pages since last CHECKPOINT */
    uint64_t digest_pages;
    bool logdirty;
    struct rm_compressor *comp;  /* params.compress only */
    bool comp_deferred;          /* staging raw: compress after resume */
    bool digest_deferred;        /* staging: digest the staged copies
                                    after resume (rm_stage_digest) */
    struct rm_buf packed;        /* the compressed form of a staged CP */
    /* what each buffer keeps resident between checkpoints */
    struct rm_stage_size stage_size, packed_size;
    uint8_t *bounce;             /* stable copies of a running VM's pages */
    uint64_t map_ns;             /* in ops->map_pages since take_checkpoint
                                    began (rm_epoch_stats.pages_map_ns) */
};

void rm_save_params_default(struct rm_save_params *p, enum rm_save_mode m)
{
    memset(p, 0, sizeof(*p));
    p->mode = m;
    p->max_iters = 5;
    p->dirty_threshold = 50;
    p->max_factor = 3;
}

uint64_t rm_bitmap_weight(const unsigned long *bm, uint64_t nbits)
{
    uint64_t i, w = 0, longs = RM_BITMAP_LONGS(nbits);

    for (i = 0; i < longs; i++) {
        unsigned long v = bm[i];

        if (i == longs - 1 && nbits % RM_BITS_PER_LONG)
            v &= (1ul << (nbits % RM_BITS_PER_LONG)) - 1;
        /* A dirty log is mostly zero words, and without -mpopcnt each
         * popcount is a libgcc call (a Xen PVH guest's log is 16,320
         * words for ~450 dirty pages: counted in the pause). */
        if (v)
            w += (uint64_t)__builtin_popcountl(v);
    }
    return w;
}

/* ------------------------------------------------------------ batches */

static bool all_notab(const uint32_t *types, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++)
        if (types[i] != RM_PT_NOTAB)
            return false;
    return true;
}

static int flush_batch(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    const struct rm_save_ops *ops = ctx->ops;
    uint32_t i, n = p->batch_count;
    uint64_t t0;
    int rc;

    if (n == 0)
        return 0;
    memset(p->batch_ptrs, 0, n * sizeof(p->batch_ptrs[0]));
    t0 = rm_now_ns();
    rc = ops->map_pages(ctx, n, p->batch_pfns, p->batch_types, p->batch_ptrs);
    p->map_ns += rm_now_ns() - t0;
    if (rc) {
        rm_error_set(ctx->err, rc, "backend could not map %u pages", n);
        return rc;
    }
    memcpy(p->send_ptrs, p->batch_ptrs, n * sizeof(p->send_ptrs[0]));
    for (i = 0; i < n; i++) {
        uint32_t t = p->batch_types[i];

        if (!rm_page_type_valid(t)) {
            rc = rm_error_set(ctx->err, -EIO,
                              "backend returned invalid type 0x%x for pfn "
                              "0x%" PRIx64, t, p->batch_pfns[i]);
            goto unmap;
        }
        if (!rm_page_type_has_data(t))
            continue;
        if (!p->batch_ptrs[i]) {
            rc = rm_error_set(ctx->err, -EIO,
                              "backend mapped no data for pfn 0x%" PRIx64,
                              p->batch_pfns[i]);
            goto unmap;
        }
        /*
         * A running guest may change a page while we send it.  Digest,
         * compression cache and the bytes on the wire must all be one
         * and the same copy, so take it first.
         */
        if (!ctx->suspended) {
            uint8_t *copy = p->bounce + (size_t)i * RM_PAGE_SIZE;

            memcpy(copy, p->batch_ptrs[i], RM_PAGE_SIZE);
            p->send_ptrs[i] = copy;
        }
        if (ops->normalise_page) {
            rc = ops->normalise_page(ctx, p->batch_pfns[i], t,
                                     &p->send_ptrs[i]);
            if (rc) {
                rm_error_set(ctx->err, rc, "normalising pfn 0x%" PRIx64,
                             p->batch_pfns[i]);
                goto unmap;
            }
        }
        if (!p->digest_deferred) {
            p->digest = rm_fnv64(p->digest, &p->batch_pfns[i], 8);
            p->digest = rm_hash_words(p->digest, p->send_ptrs[i],
                                      RM_PAGE_SIZE);
        }
        p->digest_pages++;
    }
    if (p->comp && !p->comp_deferred && all_notab(p->batch_types, n))
        rc = rm_compress_write(p->comp, &ctx->w, n, p->batch_pfns,
                               (const void *const *)p->send_ptrs);
    else
        rc = rm_stream_write_page_data(&ctx->w, n, p->batch_pfns,
                                       p->batch_types,
                                       (const void *const *)p->send_ptrs);
    if (rc == 0)
        ctx->pages_sent += n;
unmap:
    if (ops->unmap_pages)
        ops->unmap_pages(ctx, n, p->batch_ptrs);
    p->batch_count = 0;
    return rc;
}

static int queue_pfn(struct rm_save_ctx *ctx, uint64_t pfn)
{
    struct rm_save_priv *p = ctx->priv;

    p->batch_pfns[p->batch_count++] = pfn;
    if (p->batch_count == RM_PAGE_DATA_BATCH)
        return flush_batch(ctx);
    return 0;
}

/*
 * Send every page whose bit is set in @bm (NULL: every page).  With
 * @spread, visit pfns in a permutation that spreads consecutive sends
 * across guest memory (i * stride mod n, stride coprime to n), so that a
 * region the guest is busy writing is not sent page after page while it
 * is still changing.
 */
static int send_pages(struct rm_save_ctx *ctx, const unsigned long *bm,
                      bool spread)
{
    uint64_t n = ctx->nr_pfns, i, stride = 1;
    int rc;

    if (spread && n > 2) {
        stride = (n * 618) / 1000 | 1;
        while (stride > 1) {
            uint64_t a = n, b = stride;

            while (b) {
                uint64_t t = a % b;

                a = b;
                b = t;
            }
            if (a == 1)
                break;
            stride += 2;
            if (stride >= n)
                stride = 1;
        }
    }
    if (bm && stride == 1) {
        /* In order: a word at a time, so that a checkpoint with a handful
         * of dirty pages does not test every pfn of the guest (131,072
         * for 512 MiB: ~300 us of a pause). */
        for (i = 0; i < RM_BITMAP_LONGS(n); i++) {
            unsigned long w = bm[i];

            while (w) {
                uint64_t pfn = i * RM_BITS_PER_LONG +
                               (uint64_t)__builtin_ctzl(w);

                w &= w - 1;
                if (pfn >= n)
                    break;
                rc = queue_pfn(ctx, pfn);
                if (rc)
                    return rc;
            }
        }
        return flush_batch(ctx);
    }
    for (i = 0; i < n; i++) {
        uint64_t pfn = stride == 1 ? i : (uint64_t)(((__uint128_t)i * stride) % n);

        if (bm && !rm_bitmap_test(bm, pfn))
            continue;
        rc = queue_pfn(ctx, pfn);
        if (rc)
            return rc;
    }
    return flush_batch(ctx);
}

/* ------------------------------------------------------------ steps */

static int harvest(struct rm_save_ctx *ctx, uint64_t *count)
{
    struct rm_save_priv *p = ctx->priv;
    int rc;

    memset(p->dirty, 0, RM_BITMAP_LONGS(ctx->nr_pfns) * sizeof(unsigned long));
    rc = ctx->ops->harvest_dirty(ctx, p->dirty);
    if (rc)
        return rm_error_set(ctx->err, rc, "harvesting the dirty log failed");
    *count = rm_bitmap_weight(p->dirty, ctx->nr_pfns);
    return 0;
}

static int check_vm(struct rm_save_ctx *ctx)
{
    int rc = ctx->ops->check_vm_state(ctx);

    if (rc)
        rm_error_set(ctx->err, rc, "the VM changed under the save "
                     "(backend check failed)");
    return rc;
}

static int do_suspend(struct rm_save_ctx *ctx)
{
    int rc = ctx->ops->suspend(ctx);

    if (rc)
        return rm_error_set(ctx->err, rc, "suspending the VM failed");
    ctx->suspended = true;
    return 0;
}

static int do_resume(struct rm_save_ctx *ctx)
{
    int rc = ctx->ops->resume(ctx);

    if (rc)
        return rm_error_set(ctx->err, rc, "resuming the VM failed");
    ctx->suspended = false;
    return 0;
}

static int write_empty(struct rm_save_ctx *ctx, uint32_t type)
{
    return rm_stream_write_record(&ctx->w, type, NULL, 0);
}

/* VERIFY, then every page again (the receiver compares). */
static int send_verify(struct rm_save_ctx *ctx)
{
    int rc = write_empty(ctx, RM_REC_VERIFY);

    if (rc)
        return rc;
    return send_pages(ctx, NULL, false);
}

/*
 * Live pre-copy: pass 1 sends everything, then iterate on the dirty log
 * until few pages stay dirty, max_iters passes were made, or max_factor
 * times guest memory has been sent.  Returns with the VM running and the
 * last harvest not yet taken.
 */
static int precopy(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    uint64_t limit = (uint64_t)ctx->params.max_factor * ctx->nr_pfns;
    uint64_t dirty = ctx->nr_pfns;
    int rc;

    rc = ctx->ops->enable_logdirty(ctx);
    if (rc)
        return rm_error_set(ctx->err, rc, "enabling dirty logging failed");
    p->logdirty = true;

    ctx->iterations = 0;
    for (;;) {
        rc = check_vm(ctx);
        if (rc)
            return rc;
        if (ctx->iterations == 0) {
            rc = send_pages(ctx, NULL, true);
        } else {
            rc = send_pages(ctx, p->dirty, true);
        }
        if (rc)
            return rc;
        ctx->iterations++;
        rc = harvest(ctx, &dirty);
        if (rc)
            return rc;
        if (ctx->cb.progress)
            ctx->cb.progress(ctx->cb.opaque, ctx->iterations, ctx->pages_sent,
                             dirty);
        LOG_DBG("iteration %u: %" PRIu64 " pages sent in all, %" PRIu64
                " dirty", ctx->iterations, ctx->pages_sent, dirty);
        if (dirty < ctx->params.dirty_threshold) {
            LOG_INFO("pre-copy converged after %u iterations (%" PRIu64
                     " pages dirty)", ctx->iterations, dirty);
            break;
        }
        if (ctx->iterations >= ctx->params.max_iters) {
            LOG_INFO("pre-copy stopped at the iteration limit %u (%" PRIu64
                     " pages still dirty)", ctx->params.max_iters, dirty);
            break;
        }
        if (limit && ctx->pages_sent + dirty > limit) {
            LOG_INFO("pre-copy stopped at the limit of %u x guest memory "
                     "(%" PRIu64 " pages still dirty)",
                     ctx->params.max_factor, dirty);
            break;
        }
    }
    /* p->dirty holds the pages dirtied during the last pass; they are sent
     * (with whatever is dirtied until the suspend) in the final pass. */
    return 0;
}

/* Merge a fresh harvest into p->dirty (keeps bits already set). */
static int harvest_merge(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    uint64_t longs = RM_BITMAP_LONGS(ctx->nr_pfns), i, dummy;
    unsigned long *keep;
    int rc;

    keep = malloc(longs * sizeof(unsigned long));
    if (!keep)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    memcpy(keep, p->dirty, longs * sizeof(unsigned long));
    rc = harvest(ctx, &dummy);
    if (rc == 0)
        for (i = 0; i < longs; i++)
            p->dirty[i] |= keep[i];
    free(keep);
    return rc;
}

static bool have_disks(const struct rm_save_ctx *ctx)
{
    return rm_disklog_nr_disks(ctx->disks) > 0;
}

/* Start logging disk writes and send the queued resync chunks (epoch 0);
 * a plain save queues a full copy first. */
static int send_disk_resync(struct rm_save_ctx *ctx, bool full)
{
    int rc;

    if (!have_disks(ctx))
        return 0;
    rm_disklog_start(ctx->disks);
    if (full) {
        rc = rm_disklog_resync_all(ctx->disks, ctx->err);
        if (rc)
            return rc;
    }
    rc = rm_disklog_emit(ctx->disks, 0, &ctx->w, NULL);
    if (rc)
        rm_error_prefix(ctx->err, "sending the disks' resync chunks: ");
    return rc;
}

/* With the VM suspended: the disk writes up to here are epoch @epoch. */
static int cut_disks(struct rm_save_ctx *ctx, uint64_t epoch)
{
    return have_disks(ctx) ? rm_disklog_cut(ctx->disks, epoch, ctx->err) : 0;
}

static int send_disk_epoch(struct rm_save_ctx *ctx, uint64_t epoch,
                           uint64_t *bytes)
{
    int rc;

    *bytes = 0;
    if (!have_disks(ctx))
        return 0;
    rc = rm_disklog_emit(ctx->disks, epoch, &ctx->w, bytes);
    if (rc)
        rm_error_prefix(ctx->err, "sending the disk writes of epoch %"
                        PRIu64 ": ", epoch);
    return rc;
}

static int write_epoch_state(struct rm_save_ctx *ctx)
{
    int rc = ctx->ops->end_of_checkpoint(ctx);

    if (rc)
        return rm_error_set(ctx->err, rc, "writing the VM state failed");
    return 0;
}

/* The state records the guest cannot change: after the resume. */
static int write_epoch_state_running(struct rm_save_ctx *ctx)
{
    int rc;

    if (!ctx->ops->end_of_checkpoint_running)
        return 0;
    rc = ctx->ops->end_of_checkpoint_running(ctx);
    if (rc)
        return rm_error_set(ctx->err, rc, "writing the VM state failed");
    return 0;
}

/* EPOCH_INFO (remus streams) and CHECKPOINT: the end of a checkpoint. */
static int write_epoch_trailer(struct rm_save_ctx *ctx, uint64_t epoch)
{
    struct rm_save_priv *p = ctx->priv;
    int rc;

    if (rm_dhdr_is_remus(ctx->dtype)) {
        struct rm_epoch_info ei = {
            .epoch = epoch,
            .dirty_pages = p->digest_pages,
            .state_digest = ctx->w.state_hash,
            .digest = p->digest,
        };

        rc = rm_stream_write_record(&ctx->w, RM_REC_EPOCH_INFO, &ei,
                                    sizeof(ei));
        if (rc)
            return rc;
    }
    return write_empty(ctx, RM_REC_CHECKPOINT);
}

static int compress_stage(struct rm_save_ctx *ctx);

static const char *const pause_phase_names[RM_PAUSE_PHASES] = {
    [RM_PAUSE_SUSPEND] = "suspend",
    [RM_PAUSE_HARVEST] = "harvest",
    [RM_PAUSE_DISK_CUT] = "disk cut",
    [RM_PAUSE_EPOCH_CB] = "output epoch",
    [RM_PAUSE_PAGES] = "pages",
    [RM_PAUSE_STATE] = "state",
    [RM_PAUSE_RESUME] = "resume",
};

const char *rm_pause_phase_name(unsigned phase)
{
    return phase < RM_PAUSE_PHASES ? pause_phase_names[phase] : "?";
}

/* The pause's part @phase ended now; it began at *@since (now after). */
static void phase_done(struct rm_epoch_stats *st, enum rm_pause_phase phase,
                       uint64_t *since)
{
    uint64_t now = rm_now_ns();

    st->phase_ns[phase] = now - *since;
    *since = now;
}

/* A pause this long is logged with its parts: it nears the secondary's
 * stall timeout (a checkpoint that stops the data flowing that long ends
 * the protection), and says where the time went. */
#define RM_SLOW_PAUSE_NS 1000000000ull

static void log_slow_pause(const struct rm_epoch_stats *st, uint64_t ns)
{
    char parts[256];
    size_t n = 0;
    int i;

    parts[0] = 0;
    for (i = 0; i < RM_PAUSE_PHASES && n < sizeof(parts); i++)
        n += (size_t)snprintf(parts + n, sizeof(parts) - n, "%s%s %.1f ms",
                              i ? ", " : "", rm_pause_phase_name(i),
                              (double)st->phase_ns[i] / 1e6);
    LOG_WARN("checkpoint %" PRIu64 ": the VM was paused %.1f s (%s)",
             st->epoch, (double)ns / 1e9, parts);
}

/* Page faults this thread has taken (minor and major). */
static uint64_t thread_faults(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_THREAD, &ru))
        return 0;
    return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

/*
 * One checkpoint with the VM running on entry: suspend, harvest, stage the
 * dirty pages and the state, resume, send.  @first: the final part of
 * epoch 1 (p->dirty already holds the last pre-copy harvest).
 */
static int take_checkpoint(struct rm_save_ctx *ctx, uint64_t epoch,
                           bool first, struct rm_epoch_stats *st)
{
    struct rm_save_priv *p = ctx->priv;
    uint64_t t0, t1, t2, tp, faults0;
    int rc;

    memset(st, 0, sizeof(*st));
    st->epoch = epoch;
    rc = check_vm(ctx);
    if (rc)
        return rc;

    faults0 = thread_faults();
    t0 = rm_now_ns();
    tp = t0;
    rc = do_suspend(ctx);
    if (rc)
        return rc;
    phase_done(st, RM_PAUSE_SUSPEND, &tp);
    rc = first ? harvest_merge(ctx) : harvest(ctx, &st->dirty_pages);
    if (rc)
        return rc;
    phase_done(st, RM_PAUSE_HARVEST, &tp);
    rc = cut_disks(ctx, epoch);
    if (rc)
        return rc;
    phase_done(st, RM_PAUSE_DISK_CUT, &tp);
    if (ctx->cb.suspended) {
        rc = ctx->cb.suspended(ctx->cb.opaque, epoch);
        if (rc)
            return rm_error_set(ctx->err, rc, "suspended callback failed");
    }
    if (ctx->cb.peer_dirty) {
        rc = ctx->cb.peer_dirty(ctx->cb.opaque, epoch, p->dirty,
                                ctx->nr_pfns);
        if (rc)
            return rm_error_set(ctx->err, rc, "the peer's dirty pages");
    }
    phase_done(st, RM_PAUSE_EPOCH_CB, &tp);

    /* Stage into memory while the VM is paused. */
    rm_buf_reset(&p->stage);
    rm_sink_init_buf(&p->stage_sink, &p->stage);
    ctx->w.sink = &p->stage_sink;
    /* Checkpoint pages are only NOTAB on backends that compress (remus
     * streams): stage them raw, compress once the VM runs again.  The
     * staged pages are stable copies, so their digest waits too. */
    p->comp_deferred = p->comp != NULL;
    /* The digest is taken over the staged copies, after the resume: what
     * is sent, whatever changes in guest memory meanwhile (on Xen the
     * backends and the hypervisor write into a paused guest's pages). */
    p->digest_deferred = true;
    if (!first) {
        p->digest = RM_FNV64_INIT;
        p->digest_pages = 0;
        ctx->w.state_hash = RM_FNV64_INIT;
        rc = ctx->ops->start_of_checkpoint(ctx);
        if (rc) {
            rm_error_set(ctx->err, rc, "start of checkpoint failed");
            goto restore_sink;
        }
    }
    p->map_ns = 0;
    rc = send_pages(ctx, p->dirty, false);
    st->pages_map_ns = p->map_ns;
    if (rc)
        goto restore_sink;
    phase_done(st, RM_PAUSE_PAGES, &tp);
    rc = write_epoch_state(ctx);
    phase_done(st, RM_PAUSE_STATE, &tp);
    st->pause_faults = thread_faults() - faults0;
restore_sink:
    ctx->w.sink = ctx->out;
    p->comp_deferred = false;
    if (rc) {
        p->digest_deferred = false;
        return rc;
    }

    /* What reached the log since the cut, the VM still suspended: in
     * flight at the cut (on Xen, blkback's requests completing). */
    if (have_disks(ctx))
        st->disk_late = rm_disklog_current_changes(ctx->disks);
    rc = do_resume(ctx);
    if (rc) {
        p->digest_deferred = false;
        return rc;
    }
    phase_done(st, RM_PAUSE_RESUME, &tp);
    if (ctx->ops->resumed_at) {
        uint64_t at = ctx->ops->resumed_at(ctx);
        uint64_t began = tp - st->phase_ns[RM_PAUSE_RESUME];

        if (at > began && at < tp) {     /* released within the call */
            st->phase_ns[RM_PAUSE_RESUME] = at - began;
            tp = at;
        }
    }
    t1 = tp;
    if (t1 - t0 >= RM_SLOW_PAUSE_NS)
        log_slow_pause(st, t1 - t0);

    /* The state the guest cannot change, the sealed epoch's disk writes
     * and the trailer are staged with the VM running (a sealed epoch does
     * not change): they add nothing to the pause. */
    ctx->w.sink = &p->stage_sink;
    rc = write_epoch_state_running(ctx);
    if (!rc)
        rc = send_disk_epoch(ctx, epoch, &st->disk_bytes);
    if (!rc)
        rc = write_epoch_trailer(ctx, epoch);
    ctx->w.sink = ctx->out;
    if (rc) {
        p->digest_deferred = false;
        return rc;
    }

    if (p->digest_deferred) {
        p->digest_deferred = false;
        rc = rm_stage_digest(&p->stage, rm_dhdr_is_remus(ctx->dtype),
                             &p->digest, ctx->err);
        if (rc)
            return rc;
    }

    if (p->comp) {
        rc = compress_stage(ctx);
        if (rc)
            return rc;
    }
    {
        const struct rm_buf *out = p->comp ? &p->packed : &p->stage;

        rc = rm_sink_write(ctx->out, out->data, out->len);
        if (rc)
            return rm_error_set(ctx->err, rc, "sending checkpoint %" PRIu64
                                " (%zu bytes) failed: %s", epoch, out->len,
                                strerror(-rc));
        st->bytes = out->len;
    }
    t2 = rm_now_ns();
    rm_stage_ready(&p->stage, &p->stage_size,
                   rm_stage_trim(&p->stage, &p->stage_size));
    if (p->comp)
        rm_stage_trim(&p->packed, &p->packed_size);

    st->dirty_pages = p->digest_pages;
    st->pause_ns = t1 - t0;
    st->send_ns = t2 - t1;
    st->digest = p->digest;
    ctx->epoch = epoch;
    return 0;
}

/*
 * Re-encode a staged checkpoint (plain records) with compressed page data,
 * in stream order, into p->packed.  Runs after the VM was resumed, so the
 * compression costs no pause time.  The staged pages are stable copies.
 */
static int compress_stage(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    struct rm_sink sink;
    struct rm_stream_writer w;
    size_t off = 0;
    int rc = 0;

    rm_buf_reset(&p->packed);
    rm_sink_init_buf(&sink, &p->packed);
    rm_stream_writer_init(&w, &sink, ctx->err);
    while (off + RM_RHDR_SIZE <= p->stage.len && !rc) {
        struct rm_rhdr h;
        size_t body = off + RM_RHDR_SIZE, padded;

        memcpy(&h, p->stage.data + off, sizeof(h));
        padded = ((size_t)h.length + 7) & ~(size_t)7;
        if (h.type == RM_REC_PAGE_DATA) {
            uint32_t count, i;
            const uint64_t *e;
            const void **pages;

            memcpy(&count, p->stage.data + body, 4);
            e = (const uint64_t *)(p->stage.data + body + 8);
            pages = malloc(count * sizeof(*pages));
            if (!pages)
                return rm_error_set(ctx->err, -ENOMEM, "out of memory");
            for (i = 0; i < count; i++) {
                p->batch_pfns[i] = rm_pfn_of(e[i]);
                pages[i] = p->stage.data + body + 8 + (size_t)count * 8 +
                           (size_t)i * RM_PAGE_SIZE;
            }
            rc = rm_compress_write(p->comp, &w, count, p->batch_pfns,
                                   (const void *const *)pages);
            free(pages);
        } else {
            rc = rm_buf_append(&p->packed, p->stage.data + off,
                               RM_RHDR_SIZE + padded);
        }
        off = body + padded;
    }
    return rc;
}

static int run_checkpointed(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    struct rm_epoch_stats st;
    uint64_t epoch = 1;
    int rc;

    if (!ctx->cb.checkpoint)
        return rm_error_set(ctx->err, -EINVAL,
                            "checkpointed save without a checkpoint "
                            "callback");
    p->digest = RM_FNV64_INIT;
    p->digest_pages = 0;
    ctx->w.state_hash = RM_FNV64_INIT;
    rc = ctx->ops->start_of_checkpoint(ctx);
    if (rc)
        return rm_error_set(ctx->err, rc, "start of checkpoint failed");
    rc = send_disk_resync(ctx, false);
    if (rc)
        return rc;
    rc = precopy(ctx);
    if (rc)
        return rc;
    /* From here on pages are copied with the VM suspended (staged): the
     * bounce buffer's memory goes back (its pages fault in again if a
     * running VM's pages are ever sent again). */
    (void)madvise(p->bounce, (size_t)RM_PAGE_DATA_BATCH * RM_PAGE_SIZE,
                  MADV_DONTNEED);
    rc = take_checkpoint(ctx, epoch, true, &st);
    for (;;) {
        if (rc)
            return rc;
        rc = ctx->cb.checkpoint(ctx->cb.opaque, &st);
        if (rc < 0)
            return rm_error_set(ctx->err, rc, "checkpoint %" PRIu64
                                " was not acknowledged", epoch);
        if (have_disks(ctx))
            rm_disklog_acked(ctx->disks, epoch);
        if (rc == 0)
            break;
        epoch++;
        rc = take_checkpoint(ctx, epoch, false, &st);
    }
    return write_empty(ctx, RM_REC_END);
}

static int run_plain(struct rm_save_ctx *ctx)
{
    struct rm_save_priv *p = ctx->priv;
    bool live = ctx->params.mode == RM_SAVE_LIVE;
    uint64_t dummy;
    int rc;

    p->digest = RM_FNV64_INIT;
    rc = ctx->ops->start_of_checkpoint(ctx);
    if (rc)
        return rm_error_set(ctx->err, rc, "start of checkpoint failed");
    rc = send_disk_resync(ctx, true);
    if (rc)
        return rc;
    if (live) {
        rc = precopy(ctx);
        if (rc)
            return rc;
        rc = do_suspend(ctx);
        if (rc)
            return rc;
        rc = harvest_merge(ctx);
        if (rc)
            return rc;
        rc = send_pages(ctx, p->dirty, false);
    } else {
        rc = do_suspend(ctx);
        if (rc)
            return rc;
        rc = check_vm(ctx);
        if (rc)
            return rc;
        rc = send_pages(ctx, NULL, false);
    }
    if (rc)
        return rc;
    rc = write_epoch_state(ctx);
    if (!rc)
        rc = write_epoch_state_running(ctx);
    if (rc)
        return rc;
    /* The disk writes made since the full copy began, up to the suspend
     * (the VM has not run since). */
    rc = cut_disks(ctx, 1);
    if (!rc)
        rc = send_disk_epoch(ctx, 1, &dummy);
    if (rc)
        return rc;
    if (ctx->params.verify) {
        rc = send_verify(ctx);
        if (rc)
            return rc;
    }
    rc = write_empty(ctx, RM_REC_END);
    if (rc)
        return rc;
    if (ctx->params.resume_after)
        rc = do_resume(ctx);
    return rc;
}

int rm_save(struct rm_save_ctx *ctx, struct rm_sink *out)
{
    struct rm_save_priv *p;
    bool setup_called = false;
    int rc;

    if (!ctx->ops || !out)
        return rm_error_set(ctx->err, -EINVAL, "save: no backend or sink");
    p = calloc(1, sizeof(*p));
    if (!p)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->priv = p;
    ctx->out = out;
    ctx->epoch = 0;
    ctx->pages_sent = 0;
    ctx->iterations = 0;
    ctx->suspended = false;
    rm_stream_writer_init(&ctx->w, out, ctx->err);

    if (ctx->params.verify && ctx->params.mode == RM_SAVE_CHECKPOINTED) {
        rc = rm_error_set(ctx->err, -EINVAL,
                          "verify mode is for non-checkpointed saves");
        goto out;
    }

    setup_called = true;
    rc = ctx->ops->setup(ctx);
    if (rc) {
        rm_error_set(ctx->err, rc, "backend setup failed");
        goto out;
    }
    if (ctx->nr_pfns == 0 || ctx->nr_pfns > RM_PAGE_PFN_MASK) {
        rc = rm_error_set(ctx->err, -EINVAL, "backend reports %" PRIu64
                          " guest pages", ctx->nr_pfns);
        goto out;
    }
    p->dirty = calloc(RM_BITMAP_LONGS(ctx->nr_pfns), sizeof(unsigned long));
    p->batch_pfns = calloc(RM_PAGE_DATA_BATCH, sizeof(*p->batch_pfns));
    p->batch_types = calloc(RM_PAGE_DATA_BATCH, sizeof(*p->batch_types));
    p->batch_ptrs = calloc(RM_PAGE_DATA_BATCH, sizeof(*p->batch_ptrs));
    p->send_ptrs = calloc(RM_PAGE_DATA_BATCH, sizeof(*p->send_ptrs));
    p->bounce = aligned_alloc(RM_PAGE_SIZE,        /* madvise()d */
                              (size_t)RM_PAGE_DATA_BATCH * RM_PAGE_SIZE);
    if (!p->dirty || !p->batch_pfns || !p->batch_types || !p->batch_ptrs ||
        !p->bounce || !p->send_ptrs) {
        rc = rm_error_set(ctx->err, -ENOMEM, "out of memory for %" PRIu64
                          " pages", ctx->nr_pfns);
        goto out;
    }

    /* Disk records: in a remus stream, or in the checkpoints of an HVM/
     * PVH protection (never in a file Xen's own tools may read). */
    if (have_disks(ctx) && !rm_dhdr_is_remus(ctx->dtype) &&
        !(ctx->dtype == RM_DHDR_TYPE_X86_HVM &&
          ctx->params.mode == RM_SAVE_CHECKPOINTED)) {
        rc = rm_error_set(ctx->err, -EINVAL, "disk replication needs a "
                          "remus stream or a protection (not a plain save "
                          "of a %s stream)", rm_dhdr_type_name(ctx->dtype));
        goto out;
    }
    if (ctx->params.compress) {
        if (!rm_dhdr_is_remus(ctx->dtype)) {
            rc = rm_error_set(ctx->err, -EINVAL, "compression is only "
                              "possible between two remus ends (not in a "
                              "%s stream)", rm_dhdr_type_name(ctx->dtype));
            goto out;
        }
        p->comp = rm_compressor_new(0);
        if (!p->comp) {
            rc = rm_error_set(ctx->err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = rm_stream_write_headers(&ctx->w, ctx->dtype, ctx->dhdr_major,
                                 ctx->dhdr_minor);
    if (rc)
        goto out;
    rc = ctx->ops->static_data(ctx);
    if (rc) {
        rm_error_set(ctx->err, rc, "writing static data failed");
        goto out;
    }
    if (have_disks(ctx)) {
        rc = rm_disklog_emit_info(ctx->disks, &ctx->w);
        if (rc)
            goto out;
    }
    rc = write_empty(ctx, RM_REC_STATIC_DATA_END);
    if (rc)
        goto out;
    ctx->w.hash_state = true;
    ctx->w.state_hash = RM_FNV64_INIT;
    rc = ctx->ops->start_of_stream(ctx);
    if (rc) {
        rm_error_set(ctx->err, rc, "start of stream failed");
        goto out;
    }

    if (ctx->params.mode == RM_SAVE_CHECKPOINTED)
        rc = run_checkpointed(ctx);
    else
        rc = run_plain(ctx);

out:
    if (p->logdirty) {
        int rc2 = ctx->ops->disable_logdirty(ctx);

        if (rc2 && !rc)
            rc = rm_error_set(ctx->err, rc2, "disabling dirty logging");
    }
    /* A checkpointed VM keeps running whatever happened; a failed plain
     * save resumes the VM it suspended (the VM must survive our failure). */
    if (ctx->suspended && (rc || ctx->params.mode == RM_SAVE_CHECKPOINTED)) {
        int rc2 = ctx->ops->resume(ctx);

        if (rc2)
            LOG_WARN("could not resume the VM after a failed save: %d", rc2);
        else
            ctx->suspended = false;
    }
    if (setup_called)
        ctx->ops->cleanup(ctx);
    if (p) {
        free(p->dirty);
        free(p->batch_pfns);
        free(p->batch_types);
        free(p->batch_ptrs);
        free(p->bounce);
        free(p->send_ptrs);
        rm_buf_free(&p->stage);
        rm_buf_free(&p->packed);
        if (p->comp) {
            const struct rm_compress_stats *cs = rm_compressor_stats(p->comp);

            LOG_DBG("compression: %" PRIu64 " pages (%" PRIu64 " zero, %"
                    PRIu64 " delta, %" PRIu64 " raw), %" PRIu64 " -> %"
                    PRIu64 " bytes", cs->pages, cs->zero, cs->delta,
                    cs->raw, cs->bytes_in, cs->bytes_out);
            rm_compressor_free(p->comp);
        }
        free(p);
    }
    ctx->priv = NULL;
    return rc;
}
