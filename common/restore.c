/* SPDX-License-Identifier: MIT */
/*
 * The generic restore engine over a backend's rm_restore_ops.
 *
 * Records up to the first CHECKPOINT are applied as they arrive (there is
 * no consistent state to protect yet: a stream that breaks before it is an
 * error).  After the first CHECKPOINT every record is checked on arrival
 * and kept in a buffer; only when the next CHECKPOINT arrives -- and the
 * whole checkpoint checked out (pfn ranges, backend records, epoch number,
 * digest) -- is it applied.  A stream that breaks, times out or turns out
 * corrupt or replayed mid-checkpoint leaves the buffer discarded and the
 * last committed checkpoint in place: the result is FAILOVER.
 */
#define RM_LOG_PREFIX "restore"
#include "common/sr.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/compress.h"
#include "common/log.h"

struct rm_restore_priv {
    struct rm_stream_reader rd;
    bool static_done;
    bool verify_mode;
    bool buffering;           /* after the first CHECKPOINT */
    struct rm_record *buf;    /* records of the open checkpoint */
    size_t nbuf, capbuf;
    uint64_t buf_bytes;
    /* epoch bookkeeping for the open checkpoint */
    uint64_t digest;          /* FNV over (pfn, page) seen since last CP */
    uint64_t digest_pages;
    uint64_t state_hash;      /* over the state records since last CP */
    bool have_epoch_info;
    struct rm_epoch_info epoch_info;
    /* batch arrays */
    uint64_t *pfns;
    uint32_t *types;
    void **ptrs;
    uint8_t *scratch;         /* one page, for verify mode */
};

static void drop_buffer(struct rm_restore_priv *p)
{
    size_t i;

    for (i = 0; i < p->nbuf; i++)
        rm_record_free(&p->buf[i]);
    p->nbuf = 0;
    p->buf_bytes = 0;
}

static void reset_epoch(struct rm_restore_priv *p)
{
    p->digest = RM_FNV64_INIT;
    p->digest_pages = 0;
    p->state_hash = RM_FNV64_INIT;
    p->have_epoch_info = false;
}

/* ------------------------------------------------------------ checks */

/* Check a PAGE_DATA record against the guest and fold it into the digest. */
static int check_page_data(struct rm_restore_ctx *ctx,
                           const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    struct rm_page_data_view v;
    const uint8_t *page;
    uint32_t i;
    int rc;

    if (!p->static_done)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": PAGE_DATA before the end of "
                            "static data", rec->offset);
    rc = rm_page_data_view(rec, &v, ctx->err);
    if (rc)
        return rc;
    page = v.pages;
    for (i = 0; i < v.count; i++) {
        uint64_t e = le64toh(v.pfns[i]);
        uint64_t pfn = rm_pfn_of(e);

        if (pfn >= ctx->nr_pfns)
            return rm_error_set(ctx->err, -EBADMSG,
                                "byte %" PRIu64 ": PAGE_DATA pfn 0x%" PRIx64
                                " is beyond the guest's %" PRIu64 " pages",
                                rec->offset, pfn, ctx->nr_pfns);
        p->pfns[i] = pfn;
        p->types[i] = rm_ptype_of(e);
        if (rm_page_type_has_data(rm_ptype_of(e))) {
            p->digest = rm_fnv64(p->digest, &pfn, 8);
            p->digest = rm_hash_words(p->digest, page, RM_PAGE_SIZE);
            p->digest_pages++;
            page += RM_PAGE_SIZE;
        }
    }
    /* The page digest does not cover the types: the backend checks them. */
    if (ctx->ops->check_pages) {
        rc = ctx->ops->check_pages(ctx, v.count, p->pfns, p->types);
        if (rc) {
            rm_error_prefix(ctx->err, "byte %" PRIu64 ": PAGE_DATA refused "
                            "by the backend: ", rec->offset);
            return rc;
        }
    }
    return 0;
}

static int check_epoch_info(struct rm_restore_ctx *ctx,
                            const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    struct rm_epoch_info ei;

    memcpy(&ei, rec->data, sizeof(ei));
    if (ei.epoch != ctx->committed_epoch + 1)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": checkpoint epoch %" PRIu64
                            " out of sequence (expected %" PRIu64 "): a "
                            "replayed or reordered checkpoint", rec->offset,
                            (uint64_t)ei.epoch, ctx->committed_epoch + 1);
    if (p->have_epoch_info)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": two EPOCH_INFO records in "
                            "one checkpoint", rec->offset);
    if (ei.state_digest != p->state_hash)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": checkpoint %" PRIu64
                            " state digest mismatch: the vCPU/device "
                            "records differ from what the sender wrote",
                            rec->offset, (uint64_t)ei.epoch);
    if (ei.dirty_pages != p->digest_pages || ei.digest != p->digest)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": checkpoint %" PRIu64
                            " digest mismatch: sender says %" PRIu64
                            " pages / %016" PRIx64 ", received %" PRIu64
                            " pages / %016" PRIx64, rec->offset,
                            (uint64_t)ei.epoch, (uint64_t)ei.dirty_pages,
                            (uint64_t)ei.digest, p->digest_pages, p->digest);
    p->epoch_info = ei;
    p->have_epoch_info = true;
    return 0;
}

/*
 * Everything that can be checked about a record on arrival, before any of
 * its checkpoint is applied.  0, or -errno with the reason in ctx->err.
 */
static int check_record(struct rm_restore_ctx *ctx,
                        const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    int rc;

    if (p->static_done && rm_rec_is_state(rec->type)) {
        struct iovec v = { rec->data, rec->length };

        p->state_hash = rm_state_hash(p->state_hash, rec->type, rec->length,
                                      &v, rec->length ? 1 : 0);
    }

    switch (rec->type) {
    case RM_REC_PAGE_DATA:
        return check_page_data(ctx, rec);
    case RM_REC_EPOCH_INFO:
        return check_epoch_info(ctx, rec);
    case RM_REC_STATIC_DATA_END:
        if (p->static_done)
            return rm_error_set(ctx->err, -EBADMSG,
                                "byte %" PRIu64 ": a second STATIC_DATA_END",
                                rec->offset);
        return 0;
    case RM_REC_VERIFY:
        if (p->buffering)
            return rm_error_set(ctx->err, -EBADMSG,
                                "byte %" PRIu64 ": VERIFY inside a "
                                "checkpointed stream", rec->offset);
        return 0;
    case RM_REC_CHECKPOINT_DIRTY_PFN_LIST:
        return rm_error_set(ctx->err, -EOPNOTSUPP,
                            "byte %" PRIu64 ": CHECKPOINT_DIRTY_PFN_LIST "
                            "(COLO) is not supported", rec->offset);
    case RM_REC_PAGE_DATA_COMPRESSED:
        return rm_error_set(ctx->err, -EOPNOTSUPP,
                            "byte %" PRIu64 ": compressed page data was "
                            "not negotiated for this stream", rec->offset);
    default:
        break;
    }
    if (rec->type == RM_REC_KVM_VM_INFO && p->static_done)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": %s after STATIC_DATA_END",
                            rec->offset, rm_rec_type_name(rec->type));
    rc = ctx->ops->check_record(ctx, rec);
    if (rc) {
        rm_error_set(ctx->err, rc, "record %s refused by the backend",
                     rm_rec_type_name(rec->type));
        rm_error_prefix(ctx->err, "byte %" PRIu64 ": ", rec->offset);
    }
    return rc;
}

/* ------------------------------------------------------------ apply */

static int apply_page_data(struct rm_restore_ctx *ctx,
                           const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    const struct rm_restore_ops *ops = ctx->ops;
    struct rm_page_data_view v;
    const uint8_t *page;
    uint32_t i;
    int rc;

    rc = rm_page_data_view(rec, &v, ctx->err);
    if (rc)
        return rc;
    for (i = 0; i < v.count; i++) {
        uint64_t e = le64toh(v.pfns[i]);

        p->pfns[i] = rm_pfn_of(e);
        p->types[i] = rm_ptype_of(e);
        p->ptrs[i] = NULL;
    }
    rc = ops->map_pages(ctx, v.count, p->pfns, p->types, p->ptrs);
    if (rc)
        return rm_error_set(ctx->err, rc, "backend could not map %u pages "
                            "for PAGE_DATA at byte %" PRIu64, v.count,
                            rec->offset);
    page = v.pages;
    for (i = 0; i < v.count; i++) {
        if (!rm_page_type_has_data(p->types[i]))
            continue;
        if (!p->ptrs[i]) {
            rc = rm_error_set(ctx->err, -EIO, "backend mapped no page for "
                              "pfn 0x%" PRIx64, p->pfns[i]);
            break;
        }
        if (p->verify_mode) {
            memcpy(p->scratch, page, RM_PAGE_SIZE);
            if (ops->localise_page) {
                rc = ops->localise_page(ctx, p->pfns[i], p->types[i],
                                        p->scratch);
                if (rc)
                    break;
            }
            if (memcmp(p->scratch, p->ptrs[i], RM_PAGE_SIZE)) {
                ctx->verify_mismatches++;
                LOG_WARN("verify: pfn 0x%" PRIx64 " differs", p->pfns[i]);
                if (ctx->cb.verify_mismatch)
                    ctx->cb.verify_mismatch(ctx->cb.opaque, p->pfns[i]);
            }
        } else {
            memcpy(p->ptrs[i], page, RM_PAGE_SIZE);
            if (ops->localise_page) {
                rc = ops->localise_page(ctx, p->pfns[i], p->types[i],
                                        p->ptrs[i]);
                if (rc) {
                    rm_error_set(ctx->err, rc, "localising pfn 0x%" PRIx64,
                                 p->pfns[i]);
                    break;
                }
            }
            ctx->pages_applied++;
        }
        page += RM_PAGE_SIZE;
    }
    if (ops->unmap_pages)
        ops->unmap_pages(ctx, v.count, p->ptrs);
    return rc;
}

/* Apply one record that check_record() accepted. */
static int apply_record(struct rm_restore_ctx *ctx,
                        const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    int rc;

    switch (rec->type) {
    case RM_REC_PAGE_DATA:
        return apply_page_data(ctx, rec);
    case RM_REC_EPOCH_INFO:
        return 0;
    case RM_REC_STATIC_DATA_END:
        p->static_done = true;
        rc = ctx->ops->static_data_complete(ctx);
        if (rc)
            return rm_error_set(ctx->err, rc, "backend refused the static "
                                "data");
        if (ctx->nr_pfns == 0 || ctx->nr_pfns > RM_PAGE_PFN_MASK)
            return rm_error_set(ctx->err, -EBADMSG,
                                "the stream's static data gives the guest "
                                "%" PRIu64 " pages", ctx->nr_pfns);
        return 0;
    case RM_REC_VERIFY:
        p->verify_mode = true;
        LOG_INFO("verify mode: comparing pages instead of writing them");
        return 0;
    default:
        rc = ctx->ops->process_record(ctx, rec);
        if (rc)
            rm_error_set(ctx->err, rc, "applying %s at byte %" PRIu64
                         " failed", rm_rec_type_name(rec->type),
                         rec->offset);
        return rc;
    }
}

static int commit_checkpoint(struct rm_restore_ctx *ctx, uint64_t offset)
{
    struct rm_restore_priv *p = ctx->priv;
    uint64_t epoch = ctx->committed_epoch + 1;
    size_t i;
    int rc = 0;

    if (rm_dhdr_is_remus(ctx->dhdr.type) && !p->have_epoch_info)
        return rm_error_set(ctx->err, -EBADMSG,
                            "byte %" PRIu64 ": CHECKPOINT without "
                            "EPOCH_INFO in a remus stream", offset);
    /* Everything was checked on arrival: apply in order. */
    for (i = 0; i < p->nbuf; i++) {
        rc = apply_record(ctx, &p->buf[i]);
        if (rc) {
            /* Everything a backend can refuse was refused on arrival
             * (check_record, check_pages): only an I/O failure of the
             * backend gets here.  The replica is half applied: it must
             * not run, and the reason says so. */
            rm_error_prefix(ctx->err, "checkpoint %" PRIu64 " failed half "
                            "applied, the replica is inconsistent and must "
                            "not run (its last consistent state was "
                            "checkpoint %" PRIu64 "): ", epoch,
                            ctx->committed_epoch);
            drop_buffer(p);
            return -EIO;
        }
    }
    drop_buffer(p);
    ctx->committed_epoch = epoch;
    LOG_DBG("checkpoint %" PRIu64 " committed (%" PRIu64 " pages)", epoch,
            p->digest_pages);
    if (ctx->cb.checkpoint_committed) {
        rc = ctx->cb.checkpoint_committed(ctx->cb.opaque, epoch, p->digest,
                                          p->digest_pages);
        if (rc) {
            reset_epoch(p);
            return rm_error_set(ctx->err, rc < 0 ? rc : -EPIPE,
                                "acknowledging checkpoint %" PRIu64
                                " failed", epoch);
        }
    }
    reset_epoch(p);
    return 0;
}

static int buffer_record(struct rm_restore_ctx *ctx, struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    uint64_t max = ctx->params.max_buffer_bytes ? ctx->params.max_buffer_bytes
                                                : (1ull << 30);

    if (p->buf_bytes + rec->length > max)
        return rm_error_set(ctx->err, -E2BIG,
                            "byte %" PRIu64 ": checkpoint %" PRIu64
                            " exceeds the buffer limit of %" PRIu64 " bytes",
                            rec->offset, ctx->committed_epoch + 1, max);
    if (p->nbuf == p->capbuf) {
        size_t cap = p->capbuf ? p->capbuf * 2 : 64;
        struct rm_record *nb = realloc(p->buf, cap * sizeof(*nb));

        if (!nb)
            return rm_error_set(ctx->err, -ENOMEM, "out of memory");
        p->buf = nb;
        p->capbuf = cap;
    }
    p->buf[p->nbuf++] = *rec;   /* the buffer owns the body now */
    p->buf_bytes += rec->length;
    rec->data = NULL;
    return 0;
}

/* Base page for a compressed delta: the replica's current content. */
static const void *delta_base(void *opaque, uint64_t pfn)
{
    struct rm_restore_ctx *ctx = opaque;
    struct rm_restore_priv *p = ctx->priv;
    uint32_t type = RM_PT_NOTAB;
    void *ptr = NULL;
    const void *ret = NULL;

    if (ctx->ops->map_pages(ctx, 1, &pfn, &type, &ptr) == 0 && ptr) {
        memcpy(p->scratch, ptr, RM_PAGE_SIZE);
        ret = p->scratch;
    }
    if (ctx->ops->unmap_pages)
        ctx->ops->unmap_pages(ctx, 1, &ptr);
    return ret;
}

/* Replace a compressed record by the plain PAGE_DATA it encodes. */
static int expand_compressed(struct rm_restore_ctx *ctx,
                             struct rm_record *rec)
{
    struct rm_record plain;
    int rc;

    if (!ctx->params.allow_compressed || !ctx->priv->static_done)
        return 0; /* check_record refuses it with the reason */
    rc = rm_decompress_record(rec, ctx->nr_pfns, delta_base, ctx, &plain,
                              ctx->err);
    if (rc) {
        rm_error_prefix(ctx->err, "byte %" PRIu64 ": ", rec->offset);
        return rc;
    }
    rm_record_free(rec);
    *rec = plain;
    return 0;
}

/* ------------------------------------------------------------ main loop */

/*
 * The stream broke (or proved bad) at a point where the last committed
 * checkpoint is consistent: discard the open one and fail over.
 */
static int failover(struct rm_restore_ctx *ctx, int why)
{
    struct rm_restore_priv *p = ctx->priv;
    int rc;

    ctx->failover_reason = *ctx->err;
    if (!ctx->failover_reason.code)
        rm_error_set(&ctx->failover_reason, why, "stream ended");
    LOG_WARN("failing over to checkpoint %" PRIu64 ", discarding %zu "
             "records of the incomplete one: %s", ctx->committed_epoch,
             p->nbuf, rm_error_str(&ctx->failover_reason));
    drop_buffer(p);
    rm_error_clear(ctx->err);
    rc = ctx->ops->stream_complete(ctx);
    if (rc)
        return rm_error_set(ctx->err, rc, "backend could not complete "
                            "the restore at checkpoint %" PRIu64,
                            ctx->committed_epoch);
    ctx->result = RM_RESTORE_FAILOVER;
    return 0;
}

static int restore_loop(struct rm_restore_ctx *ctx)
{
    struct rm_restore_priv *p = ctx->priv;
    struct rm_record rec;
    int rc;

    for (;;) {
        rc = rm_stream_read_record(&p->rd, &rec);
        if (rc == 0 && (rec.type & RM_REC_OPTIONAL) &&
            !strcmp(rm_rec_type_name(rec.type), "UNKNOWN")) {
            LOG_DBG("skipping unknown optional record 0x%08x", rec.type);
            rm_record_free(&rec);
            continue;
        }
        if (rc == 0 && !p->static_done && p->rd.ihdr.version < 3 &&
            rec.type == RM_REC_PAGE_DATA) {
            /* v2 streams have no STATIC_DATA_END: the first page ends the
             * static data. */
            struct rm_record sde = { .type = RM_REC_STATIC_DATA_END };

            rc = apply_record(ctx, &sde);
        }
        if (rc == 0 && rec.type == RM_REC_END) {
            rm_record_free(&rec);
            if (p->buffering && p->nbuf) {
                rm_error_set(ctx->err, -EBADMSG, "END inside an incomplete "
                             "checkpoint (%zu records since checkpoint %"
                             PRIu64 ")", p->nbuf, ctx->committed_epoch);
                return failover(ctx, -EBADMSG);
            }
            rc = ctx->ops->stream_complete(ctx);
            if (rc)
                return rm_error_set(ctx->err, rc, "backend could not "
                                    "complete the restore");
            ctx->result = RM_RESTORE_COMPLETE;
            return 0;
        }
        if (rc == 0 && rec.type == RM_REC_CHECKPOINT) {
            uint64_t off = rec.offset;

            rm_record_free(&rec);
            if (!p->static_done)
                return rm_error_set(ctx->err, -EBADMSG,
                                    "byte %" PRIu64 ": CHECKPOINT before the "
                                    "end of static data", off);
            rc = commit_checkpoint(ctx, off);
            if (rc == -EIO)
                return rc;
            if (rc) {
                if (ctx->committed_epoch == 0 || !p->buffering)
                    goto no_state;
                return failover(ctx, rc);
            }
            p->buffering = true;
            continue;
        }
        if (rc == 0 && rec.type == RM_REC_PAGE_DATA_COMPRESSED)
            rc = expand_compressed(ctx, &rec);
        if (rc == 0)
            rc = check_record(ctx, &rec);
        if (rc == 0) {
            if (p->buffering)
                rc = buffer_record(ctx, &rec);
            else
                rc = apply_record(ctx, &rec);
        }
        rm_record_free(&rec);
        if (rc) {
            if (p->buffering && ctx->committed_epoch > 0)
                return failover(ctx, rc);
            goto no_state;
        }
    }

no_state:
    if (ctx->params.checkpointed_hint || p->buffering)
        rm_error_prefix(ctx->err, "no consistent state (no checkpoint was "
                        "completed): ");
    return ctx->err && ctx->err->code ? ctx->err->code : -EBADMSG;
}

int rm_restore(struct rm_restore_ctx *ctx, struct rm_src *src)
{
    struct rm_restore_priv *p;
    bool setup_called = false;
    int rc;

    if (!ctx->ops || !src)
        return rm_error_set(ctx->err, -EINVAL, "restore: no backend or "
                            "source");
    p = calloc(1, sizeof(*p));
    if (!p)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->priv = p;
    ctx->result = RM_RESTORE_NONE;
    ctx->committed_epoch = 0;
    ctx->pages_applied = 0;
    ctx->verify_mismatches = 0;
    rm_error_clear(&ctx->failover_reason);
    reset_epoch(p);

    p->pfns = calloc(RM_PAGE_DATA_MAX_COUNT, sizeof(*p->pfns));
    p->types = calloc(RM_PAGE_DATA_MAX_COUNT, sizeof(*p->types));
    p->ptrs = calloc(RM_PAGE_DATA_MAX_COUNT, sizeof(*p->ptrs));
    p->scratch = malloc(RM_PAGE_SIZE);
    if (!p->pfns || !p->types || !p->ptrs || !p->scratch) {
        rc = rm_error_set(ctx->err, -ENOMEM, "out of memory");
        goto out;
    }
    if (ctx->params.read_timeout_ms)
        src->timeout_ms = (int)ctx->params.read_timeout_ms;

    rm_stream_reader_init(&p->rd, src, ctx->err);
    rc = rm_stream_read_headers(&p->rd);
    if (rc)
        goto out;
    ctx->dhdr = p->rd.dhdr;
    ctx->version = p->rd.ihdr.version;

    setup_called = true;
    rc = ctx->ops->setup(ctx);
    if (rc) {
        rm_error_set(ctx->err, rc, "backend setup failed for a %s stream",
                     rm_dhdr_type_name(ctx->dhdr.type));
        goto out;
    }
    rc = restore_loop(ctx);

out:
    if (setup_called)
        ctx->ops->cleanup(ctx);
    drop_buffer(p);
    free(p->buf);
    free(p->pfns);
    free(p->types);
    free(p->ptrs);
    free(p->scratch);
    free(p);
    ctx->priv = NULL;
    return rc;
}
