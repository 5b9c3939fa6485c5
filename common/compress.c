/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "compress"
#include "common/compress.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/io.h"
#include "common/log.h"

struct rm_compressor {
    uint32_t slots;
    uint64_t *slot_pfn;       /* UINT64_MAX: empty */
    uint8_t *slot_data;       /* slots * RM_PAGE_SIZE */
    struct rm_buf out;        /* record body under construction */
    uint8_t *delta;           /* scratch for one encoded delta */
    struct rm_compress_stats stats;
};

/* @len bytes of memory between two PROT_NONE pages, or NULL. */
static uint8_t *cache_map(size_t len)
{
    uint8_t *base = mmap(NULL, len + 2 * RM_PAGE_SIZE, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base + RM_PAGE_SIZE, len, PROT_READ | PROT_WRITE)) {
        munmap(base, len + 2 * RM_PAGE_SIZE);
        return NULL;
    }
    rm_name_mapping(base + RM_PAGE_SIZE, len, "remus-compress-cache");
    return base + RM_PAGE_SIZE;
}

struct rm_compressor *rm_compressor_new(uint32_t cache_pages)
{
    struct rm_compressor *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->slots = cache_pages ? cache_pages : RM_COMPRESS_CACHE_DEFAULT;
    c->slot_pfn = malloc((size_t)c->slots * sizeof(*c->slot_pfn));
    /* Its own mapping, touched only as pages are cached, between two
     * guard pages (an overrun faults; no neighbour merges with it, so
     * /proc/PID/smaps shows what it costs). */
    c->slot_data = cache_map((size_t)c->slots * RM_PAGE_SIZE);
    /* worst case of the encoding: 4 bytes of header per 1 byte changed
     * alternating; cap at 2 pages, beyond which RAW is sent anyway */
    c->delta = malloc(2 * RM_PAGE_SIZE);
    if (!c->slot_pfn || !c->slot_data || !c->delta) {
        rm_compressor_free(c);
        return NULL;
    }
    rm_compressor_reset(c);
    return c;
}

void rm_compressor_free(struct rm_compressor *c)
{
    if (!c)
        return;
    free(c->slot_pfn);
    if (c->slot_data)
        munmap(c->slot_data - RM_PAGE_SIZE,
               (size_t)c->slots * RM_PAGE_SIZE + 2 * RM_PAGE_SIZE);
    free(c->delta);
    rm_buf_free(&c->out);
    free(c);
}

void rm_compressor_reset(struct rm_compressor *c)
{
    uint32_t i;

    for (i = 0; i < c->slots; i++)
        c->slot_pfn[i] = UINT64_MAX;
}

const struct rm_compress_stats *rm_compressor_stats(
    const struct rm_compressor *c)
{
    return &c->stats;
}

static bool is_zero_page(const uint8_t *p)
{
    const uint64_t *q = (const uint64_t *)p;
    size_t i;

    for (i = 0; i < RM_PAGE_SIZE / 8; i++)
        if (q[i])
            return false;
    return true;
}

/*
 * Encode page XOR old as runs.  Returns the encoded length, or 0 when the
 * encoding would not be smaller than RM_PAGE_SIZE - 64 (send RAW).
 */
static size_t encode_delta(uint8_t *out, const uint8_t *page,
                           const uint8_t *old)
{
    const size_t limit = RM_PAGE_SIZE - 64;
    size_t pos = 0, o = 0;

    while (pos < RM_PAGE_SIZE) {
        size_t skip = 0, copy = 0;
        uint16_t v;

        while (pos + skip < RM_PAGE_SIZE && skip < 0xffff &&
               page[pos + skip] == old[pos + skip])
            skip++;
        pos += skip;
        /* Copy until at least 4 equal bytes in a row (a new run pays). */
        while (pos + copy < RM_PAGE_SIZE && copy < 0xffff) {
            size_t k = 0;

            while (k < 4 && pos + copy + k < RM_PAGE_SIZE &&
                   page[pos + copy + k] == old[pos + copy + k])
                k++;
            if (k == 4 || pos + copy + k == RM_PAGE_SIZE)
                break;
            copy += k + 1;
        }
        if (pos + copy > RM_PAGE_SIZE)
            copy = RM_PAGE_SIZE - pos;
        if (skip == 0 && copy == 0)
            break;
        if (o + 4 + copy > limit)
            return 0;
        v = htole16((uint16_t)skip);
        memcpy(out + o, &v, 2);
        v = htole16((uint16_t)copy);
        memcpy(out + o + 2, &v, 2);
        o += 4;
        for (size_t i = 0; i < copy; i++)
            out[o + i] = page[pos + i] ^ old[pos + i];
        o += copy;
        pos += copy;
    }
    return o;
}

static int append_entry(struct rm_buf *b, uint64_t pfn, uint32_t kind,
                        const void *payload, uint32_t len)
{
    static const uint8_t zeros[8];
    struct rm_cpage_entry e = {
        .pfn = htole64(pfn), .kind = htole32(kind), .len = htole32(len),
    };
    int rc = rm_buf_append(b, &e, sizeof(e));

    if (!rc && len)
        rc = rm_buf_append(b, payload, len);
    if (!rc && (len & 7))
        rc = rm_buf_append(b, zeros, 8 - (len & 7));
    return rc;
}

int rm_compress_write(struct rm_compressor *c, struct rm_stream_writer *w,
                      uint32_t count, const uint64_t *pfns,
                      const void *const *pages)
{
    struct rm_cpage_hdr h = { .count = htole32(count), .reserved = 0 };
    uint32_t i;
    int rc;

    if (count == 0 || count > RM_PAGE_DATA_MAX_COUNT)
        return rm_error_set(w->err, -EINVAL, "compressed record with %u "
                            "pages", count);
    rm_buf_reset(&c->out);
    rc = rm_buf_append(&c->out, &h, sizeof(h));
    for (i = 0; i < count && !rc; i++) {
        const uint8_t *page = pages[i];
        uint32_t slot = (uint32_t)(pfns[i] % c->slots);
        uint8_t *cached = c->slot_data + (size_t)slot * RM_PAGE_SIZE;
        size_t dlen = 0;

        c->stats.pages++;
        c->stats.bytes_in += RM_PAGE_SIZE;
        if (is_zero_page(page)) {
            rc = append_entry(&c->out, pfns[i], RM_CPAGE_ZERO, NULL, 0);
            c->stats.zero++;
        } else {
            if (c->slot_pfn[slot] == pfns[i])
                dlen = encode_delta(c->delta, page, cached);
            if (dlen) {
                rc = append_entry(&c->out, pfns[i], RM_CPAGE_DELTA, c->delta,
                                  (uint32_t)dlen);
                c->stats.delta++;
            } else {
                rc = append_entry(&c->out, pfns[i], RM_CPAGE_RAW, page,
                                  RM_PAGE_SIZE);
                c->stats.raw++;
            }
        }
        /* The receiver's copy is now exactly this page. */
        c->slot_pfn[slot] = pfns[i];
        memcpy(cached, page, RM_PAGE_SIZE);
    }
    if (rc)
        return rm_error_set(w->err, rc, "out of memory compressing pages");
    if (c->out.len > RM_REC_LENGTH_MAX)
        return rm_error_set(w->err, -E2BIG, "compressed record too long");
    c->stats.bytes_out += c->out.len;
    return rm_stream_write_record(w, RM_REC_PAGE_DATA_COMPRESSED,
                                  c->out.data, (uint32_t)c->out.len);
}

static int decode_delta(uint8_t *page, const uint8_t *in, uint32_t len,
                        struct rm_error *err, uint64_t pfn)
{
    uint32_t i = 0;
    size_t pos = 0;

    while (i < len) {
        uint16_t skip, copy;

        if (len - i < 4)
            return rm_error_set(err, -EBADMSG, "delta for pfn 0x%" PRIx64
                                " has a truncated run header", pfn);
        memcpy(&skip, in + i, 2);
        memcpy(&copy, in + i + 2, 2);
        skip = le16toh(skip);
        copy = le16toh(copy);
        i += 4;
        if (pos + skip + copy > RM_PAGE_SIZE)
            return rm_error_set(err, -EBADMSG, "delta for pfn 0x%" PRIx64
                                " runs past the end of the page", pfn);
        if (copy > len - i)
            return rm_error_set(err, -EBADMSG, "delta for pfn 0x%" PRIx64
                                " is shorter than its runs", pfn);
        pos += skip;
        for (uint16_t k = 0; k < copy; k++)
            page[pos + k] ^= in[i + k];
        pos += copy;
        i += copy;
    }
    return 0;
}

int rm_decompress_record(const struct rm_record *in, uint64_t nr_pfns,
                         const void *(*base)(void *opaque, uint64_t pfn),
                         void *opaque, struct rm_record *out,
                         struct rm_error *err)
{
    const uint8_t *d = in->data;
    struct rm_cpage_hdr h;
    uint8_t *body = NULL;
    uint64_t *pfn_out;
    uint8_t *page_out;
    size_t off = sizeof(h), body_len;
    uint32_t i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (in->length < sizeof(h))
        return rm_error_set(err, -EBADMSG, "compressed page record too "
                            "short");
    memcpy(&h, d, sizeof(h));
    h.count = le32toh(h.count);
    if (h.count == 0 || h.count > RM_PAGE_DATA_MAX_COUNT || h.reserved)
        return rm_error_set(err, -EBADMSG, "compressed page record: count "
                            "%u / reserved %u invalid", h.count, h.reserved);
    body_len = 8 + (size_t)h.count * (8 + RM_PAGE_SIZE);
    body = calloc(1, body_len);
    if (!body)
        return rm_error_set(err, -ENOMEM, "out of memory");
    {
        uint32_t c32 = htole32(h.count);

        memcpy(body, &c32, 4);
    }
    pfn_out = (uint64_t *)(body + 8);
    page_out = body + 8 + (size_t)h.count * 8;

    for (i = 0; i < h.count; i++) {
        struct rm_cpage_entry e;
        uint8_t *page = page_out + (size_t)i * RM_PAGE_SIZE;
        size_t padded;

        if (in->length - off < sizeof(e)) {
            rc = rm_error_set(err, -EBADMSG, "compressed entry %u "
                              "truncated", i);
            goto fail;
        }
        memcpy(&e, d + off, sizeof(e));
        off += sizeof(e);
        e.pfn = le64toh(e.pfn);
        e.kind = le32toh(e.kind);
        e.len = le32toh(e.len);
        padded = ((size_t)e.len + 7) & ~(size_t)7;
        if (e.pfn >= nr_pfns) {
            rc = rm_error_set(err, -EBADMSG, "compressed entry %u: pfn 0x%"
                              PRIx64 " beyond the guest's %" PRIu64
                              " pages", i, e.pfn, nr_pfns);
            goto fail;
        }
        if (e.len > RM_PAGE_SIZE || padded > in->length - off) {
            rc = rm_error_set(err, -EBADMSG, "compressed entry %u: length "
                              "%u does not fit", i, e.len);
            goto fail;
        }
        for (size_t k = e.len; k < padded; k++)
            if (d[off + k]) {
                rc = rm_error_set(err, -EBADMSG, "compressed entry %u: "
                                  "non-zero padding", i);
                goto fail;
            }
        pfn_out[i] = htole64(e.pfn);
        switch (e.kind) {
        case RM_CPAGE_RAW:
            if (e.len != RM_PAGE_SIZE) {
                rc = rm_error_set(err, -EBADMSG, "raw entry %u of %u bytes",
                                  i, e.len);
                goto fail;
            }
            memcpy(page, d + off, RM_PAGE_SIZE);
            break;
        case RM_CPAGE_ZERO:
            if (e.len) {
                rc = rm_error_set(err, -EBADMSG, "zero entry %u carries "
                                  "data", i);
                goto fail;
            }
            break;
        case RM_CPAGE_DELTA: {
            const void *old = base ? base(opaque, e.pfn) : NULL;

            if (!old) {
                rc = rm_error_set(err, -EBADMSG, "delta for pfn 0x%" PRIx64
                                  " but no base page", e.pfn);
                goto fail;
            }
            memcpy(page, old, RM_PAGE_SIZE);
            rc = decode_delta(page, d + off, e.len, err, e.pfn);
            if (rc)
                goto fail;
            break;
        }
        default:
            rc = rm_error_set(err, -EBADMSG, "compressed entry %u: unknown "
                              "kind %u", i, e.kind);
            goto fail;
        }
        off += padded;
    }
    if (off != in->length) {
        rc = rm_error_set(err, -EBADMSG, "compressed page record has %zu "
                          "trailing bytes", (size_t)in->length - off);
        goto fail;
    }
    out->type = RM_REC_PAGE_DATA;
    out->length = (uint32_t)body_len;
    out->offset = in->offset;
    out->data = body;
    return 0;
fail:
    free(body);
    return rc;
}
