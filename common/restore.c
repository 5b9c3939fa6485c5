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
 *
 * The buffer counts what its records really cost in memory (the record
 * slot, the body's allocation with its header and rounding:
 * rm_buffered_cost()).  Beyond params.max_buffer_bytes a checkpoint is not
 * refused: the bodies that do not fit are staged in an unlinked temporary
 * file (in $TMPDIR, else /var/tmp) and read back one at a time when the
 * checkpoint is applied, so an oversize checkpoint still commits whole.
 * The file is bounded too (twice the guest's memory and 64 MiB: no honest
 * checkpoint comes near it); beyond that the checkpoint fails over.
 */
#define RM_LOG_PREFIX "restore"
#include "common/sr.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/compress.h"
#include "common/disklog.h"
#include "common/log.h"

struct rm_restore_priv {
    struct rm_stream_reader rd;
    bool static_done;
    bool verify_mode;
    bool buffering;           /* after the first CHECKPOINT */
    struct rm_record *buf;    /* records of the open checkpoint */
    off_t *spill_at;          /* per record: offset in spill_fd, or -1 */
    size_t nbuf, capbuf;
    uint64_t buf_bytes;       /* memory the buffered records cost */
    int spill_fd;             /* -1 until a checkpoint overflows */
    uint64_t spill_bytes;     /* staged in spill_fd (open checkpoint) */
    uint64_t spilled_epochs;  /* checkpoints that overflowed (for logs) */
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
    /* params.track_mem_hash: each pfn's page hash as last applied, and
     * their XOR (rm_restore_mem_hashes) */
    uint64_t *page_hash;
    uint64_t mem_hash;
    bool disk_info_seen;
    bool disk_applying;       /* between begin_apply and end_apply */
};

static void drop_buffer(struct rm_restore_priv *p)
{
    size_t i;

    for (i = 0; i < p->nbuf; i++)
        rm_record_free(&p->buf[i]);
    p->nbuf = 0;
    p->buf_bytes = 0;
    p->spill_bytes = 0;
    if (p->spill_fd >= 0 && ftruncate(p->spill_fd, 0))
        (void)0;   /* the space comes back when the file is closed */
}

uint64_t rm_buffered_cost(uint32_t length)
{
    /* glibc: a chunk is the body plus a size word, rounded to 16 bytes
     * (32 at least); from 128 KiB on it is mmap'd: whole pages plus a
     * header.  Plus the record's slot in the buffer array, counted twice
     * (the array doubles as it grows). */
    uint64_t chunk = 0;

    if (length >= (128u << 10))
        chunk = ((uint64_t)length + 16 + 4095) & ~(uint64_t)4095;
    else if (length)
        chunk = ((uint64_t)length + sizeof(size_t) + 15) & ~(uint64_t)15;
    if (length && chunk < 32)
        chunk = 32;
    return chunk + 2 * sizeof(struct rm_record) + sizeof(off_t);
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

/* The disk records: refused whole without --disk, else checked by the
 * replica (nothing is written on arrival). */
static int check_disk_record(struct rm_restore_ctx *ctx,
                             const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    uint32_t disk = 0;

    /* Both records name their (first) disk at byte 8; the shape was
     * checked by the reader. */
    if (rec->length >= 12)
        memcpy(&disk, (const uint8_t *)rec->data + 8, 4);
    if (!ctx->disks)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "byte %" PRIu64 ": the "
                            "stream carries disk %u but this receiver has "
                            "no --disk", rec->offset, le32toh(disk));
    if (rec->type == RM_REC_DISK_INFO) {
        if (p->static_done || p->disk_info_seen)
            return rm_error_set(ctx->err, -EBADMSG, "byte %" PRIu64 ": "
                                "DISK_INFO %s", rec->offset, p->static_done ?
                                "after STATIC_DATA_END" : "given twice");
        p->disk_info_seen = true;
        return rm_disk_replica_info(ctx->disks, rec, ctx->err);
    }
    if (!p->static_done)
        return rm_error_set(ctx->err, -EBADMSG, "byte %" PRIu64 ": "
                            "DISK_WRITES before the end of static data",
                            rec->offset);
    return rm_disk_replica_check(ctx->disks, ctx->committed_epoch + 1, rec,
                                 ctx->err);
}

/* Apply a checked DISK_WRITES record: the first of a checkpoint (or of the
 * resync) marks the images dirty until end_disk_apply(). */
static int apply_disk_writes(struct rm_restore_ctx *ctx,
                             const struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    int rc;

    if (!p->disk_applying) {
        rc = rm_disk_replica_begin_apply(ctx->disks,
                                         ctx->committed_epoch + 1, ctx->err);
        if (rc)
            return rc;
        p->disk_applying = true;
    }
    return rm_disk_replica_apply(ctx->disks, rec, ctx->err);
}

static int end_disk_apply(struct rm_restore_ctx *ctx, uint64_t epoch)
{
    struct rm_restore_priv *p = ctx->priv;

    if (!p->disk_applying)
        return 0;
    p->disk_applying = false;
    return rm_disk_replica_end_apply(ctx->disks, epoch, ctx->err);
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
    case RM_REC_DISK_INFO:
    case RM_REC_DISK_WRITES:
        return check_disk_record(ctx, rec);
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

/* One page's part of the memory hash (rm_restore_mem_hashes). */
static uint64_t page_hash(uint64_t pfn, const void *page)
{
    uint64_t h = rm_hash_words(RM_FNV64_INIT, page, RM_PAGE_SIZE);

    return rm_fnv64(h, &pfn, 8);
}

/* The memory before any page: zeros (a fresh replica's). */
static int start_mem_hash(struct rm_restore_ctx *ctx)
{
    struct rm_restore_priv *p = ctx->priv;
    static const uint8_t zero[RM_PAGE_SIZE];
    uint64_t zh = rm_hash_words(RM_FNV64_INIT, zero, RM_PAGE_SIZE), pfn;

    free(p->page_hash);
    p->page_hash = malloc(ctx->nr_pfns * sizeof(*p->page_hash));
    if (!p->page_hash)
        return rm_error_set(ctx->err, -ENOMEM, "no memory for the hashes "
                            "of %" PRIu64 " pages", ctx->nr_pfns);
    p->mem_hash = 0;
    for (pfn = 0; pfn < ctx->nr_pfns; pfn++) {
        p->page_hash[pfn] = rm_fnv64(zh, &pfn, 8);
        p->mem_hash ^= p->page_hash[pfn];
    }
    return 0;
}

int rm_restore_mem_hashes(struct rm_restore_ctx *ctx, uint64_t *expected,
                          uint64_t *actual)
{
    struct rm_restore_priv *p = ctx->priv;
    uint64_t pfn = 0, h = 0;
    int rc = 0;

    if (!p || !p->page_hash)
        return -EINVAL;
    while (pfn < ctx->nr_pfns && !rc) {
        uint32_t n = ctx->nr_pfns - pfn < RM_PAGE_DATA_BATCH
                         ? (uint32_t)(ctx->nr_pfns - pfn) : RM_PAGE_DATA_BATCH;
        uint32_t i;

        for (i = 0; i < n; i++) {
            p->pfns[i] = pfn + i;
            p->types[i] = RM_PT_NOTAB;
            p->ptrs[i] = NULL;
        }
        rc = ctx->ops->map_pages(ctx, n, p->pfns, p->types, p->ptrs);
        for (i = 0; i < n && !rc; i++) {
            if (!p->ptrs[i])
                rc = -EIO;
            else
                h ^= page_hash(pfn + i, p->ptrs[i]);
        }
        if (ctx->ops->unmap_pages)
            ctx->ops->unmap_pages(ctx, n, p->ptrs);
        pfn += n;
    }
    if (rc)
        return rc;
    *expected = p->mem_hash;
    *actual = h;
    return 0;
}

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
            if (p->page_hash) {
                uint64_t nh = page_hash(p->pfns[i], p->ptrs[i]);

                p->mem_hash ^= p->page_hash[p->pfns[i]] ^ nh;
                p->page_hash[p->pfns[i]] = nh;
            }
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
    case RM_REC_DISK_INFO:
        return 0;
    case RM_REC_DISK_WRITES:
        return apply_disk_writes(ctx, rec);
    case RM_REC_STATIC_DATA_END:
        if (ctx->disks && !p->disk_info_seen)
            return rm_error_set(ctx->err, -EINVAL, "this receiver has "
                                "--disk but the stream carries no disk "
                                "(the primary does not replicate one)");
        p->static_done = true;
        rc = ctx->ops->static_data_complete(ctx);
        if (rc)
            return rm_error_set(ctx->err, rc, "backend refused the static "
                                "data");
        if (ctx->nr_pfns == 0 || ctx->nr_pfns > RM_PAGE_PFN_MASK)
            return rm_error_set(ctx->err, -EBADMSG,
                                "the stream's static data gives the guest "
                                "%" PRIu64 " pages", ctx->nr_pfns);
        return ctx->params.track_mem_hash ? start_mem_hash(ctx) : 0;
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

static int unspill(struct rm_restore_ctx *ctx, size_t i);

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
        rc = unspill(ctx, i);
        if (!rc)
            rc = apply_record(ctx, &p->buf[i]);
        if (p->spill_at[i] >= 0)
            rm_record_free(&p->buf[i]);  /* one staged body at a time */
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
    rc = end_disk_apply(ctx, epoch);
    if (rc) {
        rm_error_prefix(ctx->err, "checkpoint %" PRIu64 " failed at the "
                        "end of its disk writes, the replica's disk is "
                        "marked dirty and must not run: ", epoch);
        drop_buffer(p);
        return -EIO;
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

/* Open the spill file: unlinked, private, in $TMPDIR or /var/tmp. */
static int open_spill(struct rm_restore_ctx *ctx)
{
    struct rm_restore_priv *p = ctx->priv;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (!dir || !*dir)
        dir = "/var/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s/remus-spill.XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0)
        return rm_error_set(ctx->err, -errno, "checkpoint %" PRIu64 " is "
                            "larger than the buffer and no spill file can "
                            "be made in %s: %s", ctx->committed_epoch + 1,
                            dir, strerror(errno));
    p->spill_fd = fd;
    return 0;
}

/* Stage @rec's body in the spill file; the record keeps its header. */
static int spill(struct rm_restore_ctx *ctx, struct rm_record *rec,
                 off_t *at)
{
    struct rm_restore_priv *p = ctx->priv;
    uint64_t limit = 2 * ctx->nr_pfns * (RM_PAGE_SIZE + 8) + (64ull << 20);
    size_t done = 0;
    int rc;

    if (p->spill_bytes + rec->length > limit)
        return rm_error_set(ctx->err, -E2BIG, "byte %" PRIu64 ": checkpoint "
                            "%" PRIu64 " exceeds its buffer and %" PRIu64
                            " bytes staged on disk (twice the guest)",
                            rec->offset, ctx->committed_epoch + 1, limit);
    if (p->spill_fd < 0) {
        rc = open_spill(ctx);
        if (rc)
            return rc;
    }
    if (!p->spill_bytes && !p->spilled_epochs++)
        LOG_INFO("checkpoint %" PRIu64 " exceeds the buffer of %" PRIu64
                 " bytes: staging the rest on disk (logged once)",
                 ctx->committed_epoch + 1, ctx->params.max_buffer_bytes);
    while (done < rec->length) {
        ssize_t n = pwrite(p->spill_fd, (uint8_t *)rec->data + done,
                           rec->length - done,
                           (off_t)(p->spill_bytes + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return rm_error_set(ctx->err, n < 0 ? -errno : -ENOSPC,
                                "staging checkpoint %" PRIu64 " on disk: %s",
                                ctx->committed_epoch + 1,
                                n < 0 ? strerror(errno) : "disk full");
        done += (size_t)n;
    }
    *at = (off_t)p->spill_bytes;
    p->spill_bytes += rec->length;
    free(rec->data);
    rec->data = NULL;
    return 0;
}

/* Read a spilled body back before it is applied.  0 or -EIO. */
static int unspill(struct rm_restore_ctx *ctx, size_t i)
{
    struct rm_restore_priv *p = ctx->priv;
    struct rm_record *rec = &p->buf[i];
    size_t done = 0;

    if (p->spill_at[i] < 0 || !rec->length)
        return 0;
    rec->data = malloc(rec->length);
    if (!rec->data)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    while (done < rec->length) {
        ssize_t n = pread(p->spill_fd, (uint8_t *)rec->data + done,
                          rec->length - done, p->spill_at[i] + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return rm_error_set(ctx->err, -EIO, "reading back a staged "
                                "record: %s", n < 0 ? strerror(errno)
                                                    : "short file");
        done += (size_t)n;
    }
    return 0;
}

static int buffer_record(struct rm_restore_ctx *ctx, struct rm_record *rec)
{
    struct rm_restore_priv *p = ctx->priv;
    uint64_t max = ctx->params.max_buffer_bytes ? ctx->params.max_buffer_bytes
                                                : RM_RESTORE_BUFFER_DEFAULT;
    uint64_t cost = rm_buffered_cost(rec->length);
    off_t at = -1;
    int rc;

    if (p->nbuf == p->capbuf) {
        size_t cap = p->capbuf ? p->capbuf * 2 : 64;
        struct rm_record *nb = realloc(p->buf, cap * sizeof(*nb));
        off_t *ns;

        if (!nb)
            return rm_error_set(ctx->err, -ENOMEM, "out of memory");
        p->buf = nb;
        ns = realloc(p->spill_at, cap * sizeof(*ns));
        if (!ns)
            return rm_error_set(ctx->err, -ENOMEM, "out of memory");
        p->spill_at = ns;
        p->capbuf = cap;
    }
    if (p->buf_bytes + cost > max && rec->length) {
        rc = spill(ctx, rec, &at);
        if (rc)
            return rc;
        cost = rm_buffered_cost(0);   /* only the header stays */
    }
    p->spill_at[p->nbuf] = at;
    p->buf[p->nbuf++] = *rec;   /* the buffer owns the body now */
    p->buf_bytes += cost;
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
    if (ctx->cb.end_expected && ctx->cb.end_expected(ctx->cb.opaque))
        LOG_INFO("the stream ended as asked: the replica stays at "
                 "checkpoint %" PRIu64 ", discarding %zu records of the "
                 "incomplete one", ctx->committed_epoch, p->nbuf);
    else
        LOG_WARN("the stream ended: the replica stays at checkpoint %"
                 PRIu64 ", discarding %zu records of the incomplete one: %s",
                 ctx->committed_epoch, p->nbuf,
                 rm_error_str(&ctx->failover_reason));
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
            !rm_rec_type_known(rec.type)) {
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
            rc = end_disk_apply(ctx, ctx->committed_epoch + 1);
            if (rc)
                return rc;
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
        if (rc == 0 && p->buffering && ctx->params.test_disk_on_arrival &&
            rec.type == RM_REC_DISK_WRITES) {      /* wrong on purpose */
            rc = apply_disk_writes(ctx, &rec);
            if (rc == 0)
                rc = end_disk_apply(ctx, ctx->committed_epoch + 1);
        }
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
    p->spill_fd = -1;
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
    if (p->spill_fd >= 0)
        close(p->spill_fd);
    free(p->buf);
    free(p->spill_at);
    free(p->pfns);
    free(p->types);
    free(p->ptrs);
    free(p->scratch);
    free(p->page_hash);
    free(p);
    ctx->priv = NULL;
    return rc;
}
