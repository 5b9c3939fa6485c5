/* SPDX-License-Identifier: MIT */
/*
 * Checkpoint page compression, negotiated between two remus ends only
 * (never in a stream a Xen tool reads).
 *
 * RM_REC_PAGE_DATA_COMPRESSED body:
 *   struct rm_cpage_hdr { u32 count; u32 reserved; }
 *   count x { struct rm_cpage_entry { u64 pfn; u32 kind; u32 len; }
 *             payload[len], zero-padded to 8 bytes }
 * kinds:
 *   RM_CPAGE_RAW   len 4096: the page as is
 *   RM_CPAGE_ZERO  len 0: a page of zeros
 *   RM_CPAGE_DELTA the page XOR the receiver's current content of the
 *                  same pfn, run-length encoded as a sequence of
 *                  { u16 skip; u16 copy; u8 bytes[copy] }: skip bytes are
 *                  unchanged (XOR 0), then copy bytes of XOR data.
 *
 * The sender keeps a direct-mapped cache of the last content it sent per
 * pfn (8,192 pages by default, as Xen 4.2's Remus did); a page is sent as
 * a delta only when its slot holds that pfn, i.e. when the receiver's
 * copy is known to be exactly the cached content.  The receiver decodes
 * against its committed copy of the page (in a checkpoint each pfn appears
 * at most once, and nothing changes the replica between checkpoints).
 *
 * The decoder trusts nothing: every length and run is checked against the
 * record and the page, and a bad entry refuses the whole record.
 */
#ifndef REMUS_COMMON_COMPRESS_H
#define REMUS_COMMON_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/io.h"
#include "common/stream.h"

#define RM_CPAGE_RAW 0u
#define RM_CPAGE_ZERO 1u
#define RM_CPAGE_DELTA 2u

struct rm_cpage_hdr {
    uint32_t count;
    uint32_t reserved;
};

struct rm_cpage_entry {
    uint64_t pfn;
    uint32_t kind;
    uint32_t len;
};

#define RM_COMPRESS_CACHE_DEFAULT 8192u

struct rm_compressor;

/* @cache_pages: slots in the last-sent cache (0: the default).  NULL on
 * allocation failure. */
struct rm_compressor *rm_compressor_new(uint32_t cache_pages);
void rm_compressor_free(struct rm_compressor *c);
/* Forget everything (after a full resync). */
void rm_compressor_reset(struct rm_compressor *c);

struct rm_compress_stats {
    uint64_t pages, raw, zero, delta;
    uint64_t bytes_in, bytes_out;
};
const struct rm_compress_stats *rm_compressor_stats(
    const struct rm_compressor *c);

/*
 * Write one RM_REC_PAGE_DATA_COMPRESSED record for @count pages (all data
 * pages: NOTAB) through @w, and update the cache.  0 or -errno.
 */
int rm_compress_write(struct rm_compressor *c, struct rm_stream_writer *w,
                      uint32_t count, const uint64_t *pfns,
                      const void *const *pages);

/*
 * Decode a compressed record into a plain PAGE_DATA record (a malloc'd
 * body in @out, type RM_REC_PAGE_DATA, same offset).  @base(opaque, pfn)
 * returns the receiver's current content of pfn (RM_PAGE_SIZE bytes) or
 * NULL if it has none; it is only called for DELTA entries.  Every pfn
 * must be < @nr_pfns.  0, or -EBADMSG with the reason.
 */
int rm_decompress_record(const struct rm_record *in, uint64_t nr_pfns,
                         const void *(*base)(void *opaque, uint64_t pfn),
                         void *opaque, struct rm_record *out,
                         struct rm_error *err);

#endif
