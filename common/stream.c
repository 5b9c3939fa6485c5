/* SPDX-License-Identifier: MIT */
/*
 * Reader and writer of the libxc migration stream (v3; v2 readable) and
 * the remus extension.  See common/stream.h for the layout and the trust
 * model: nothing read from a stream is used before it is checked.
 */
#define RM_LOG_PREFIX "stream"
#include "common/stream.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/disklog.h"
#include "common/log.h"

/* ------------------------------------------------------------ names */

static const struct { uint32_t type; const char *name; } rec_names[] = {
    { RM_REC_END, "END" },
    { RM_REC_PAGE_DATA, "PAGE_DATA" },
    { RM_REC_X86_PV_INFO, "X86_PV_INFO" },
    { RM_REC_X86_PV_P2M_FRAMES, "X86_PV_P2M_FRAMES" },
    { RM_REC_X86_PV_VCPU_BASIC, "X86_PV_VCPU_BASIC" },
    { RM_REC_X86_PV_VCPU_EXTENDED, "X86_PV_VCPU_EXTENDED" },
    { RM_REC_X86_PV_VCPU_XSAVE, "X86_PV_VCPU_XSAVE" },
    { RM_REC_SHARED_INFO, "SHARED_INFO" },
    { RM_REC_X86_TSC_INFO, "X86_TSC_INFO" },
    { RM_REC_HVM_CONTEXT, "HVM_CONTEXT" },
    { RM_REC_HVM_PARAMS, "HVM_PARAMS" },
    { RM_REC_TOOLSTACK, "TOOLSTACK" },
    { RM_REC_X86_PV_VCPU_MSRS, "X86_PV_VCPU_MSRS" },
    { RM_REC_VERIFY, "VERIFY" },
    { RM_REC_CHECKPOINT, "CHECKPOINT" },
    { RM_REC_CHECKPOINT_DIRTY_PFN_LIST, "CHECKPOINT_DIRTY_PFN_LIST" },
    { RM_REC_STATIC_DATA_END, "STATIC_DATA_END" },
    { RM_REC_X86_CPUID_POLICY, "X86_CPUID_POLICY" },
    { RM_REC_X86_MSR_POLICY, "X86_MSR_POLICY" },
    { RM_REC_KVM_VM_INFO, "REMUS_KVM_VM_INFO" },
    { RM_REC_KVM_VCPU, "REMUS_KVM_VCPU" },
    { RM_REC_KVM_DEVICE, "REMUS_KVM_DEVICE" },
    { RM_REC_PAGE_DATA_COMPRESSED, "REMUS_PAGE_DATA_COMPRESSED" },
    { RM_REC_EPOCH_INFO, "REMUS_EPOCH_INFO" },
    { RM_REC_DISK_INFO, "REMUS_DISK_INFO" },
    { RM_REC_DISK_WRITES, "REMUS_DISK_WRITES" },
};

/* The entry for @type (its optional bit ignored), or NULL. */
static const char *rec_name(uint32_t type)
{
    size_t i;

    type &= ~RM_REC_OPTIONAL;
    for (i = 0; i < sizeof(rec_names) / sizeof(rec_names[0]); i++)
        if (rec_names[i].type == type)
            return rec_names[i].name;
    return NULL;
}

const char *rm_rec_type_name(uint32_t type)
{
    const char *n = rec_name(type);

    return n ? n : "UNKNOWN";
}

bool rm_rec_type_known(uint32_t type)
{
    return rec_name(type) != NULL;
}

const char *rm_dhdr_type_name(uint32_t type)
{
    switch (type) {
    case RM_DHDR_TYPE_X86_PV: return "x86 PV";
    case RM_DHDR_TYPE_X86_HVM: return "x86 HVM";
    case RM_DHDR_TYPE_REMUS_KVM: return "remus KVM";
    default: return "unknown";
    }
}

const char *rm_page_type_name(uint32_t t)
{
    switch (t) {
    case RM_PT_NOTAB: return "NOTAB";
    case RM_PT_L1TAB: return "L1TAB";
    case RM_PT_L2TAB: return "L2TAB";
    case RM_PT_L3TAB: return "L3TAB";
    case RM_PT_L4TAB: return "L4TAB";
    case RM_PT_L1TAB | RM_PT_LPINTAB: return "L1TAB|PIN";
    case RM_PT_L2TAB | RM_PT_LPINTAB: return "L2TAB|PIN";
    case RM_PT_L3TAB | RM_PT_LPINTAB: return "L3TAB|PIN";
    case RM_PT_L4TAB | RM_PT_LPINTAB: return "L4TAB|PIN";
    case RM_PT_BROKEN: return "BROKEN";
    case RM_PT_XALLOC: return "XALLOC";
    case RM_PT_XTAB: return "XTAB";
    default: return "INVALID";
    }
}

bool rm_page_type_valid(uint32_t t)
{
    switch (t) {
    case RM_PT_NOTAB:
    case RM_PT_L1TAB: case RM_PT_L2TAB: case RM_PT_L3TAB: case RM_PT_L4TAB:
    case RM_PT_L1TAB | RM_PT_LPINTAB: case RM_PT_L2TAB | RM_PT_LPINTAB:
    case RM_PT_L3TAB | RM_PT_LPINTAB: case RM_PT_L4TAB | RM_PT_LPINTAB:
    case RM_PT_BROKEN: case RM_PT_XALLOC: case RM_PT_XTAB:
        return true;
    default:
        return false;
    }
}

uint64_t rm_fnv64(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t rm_hash_words(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

bool rm_rec_is_state(uint32_t type)
{
    switch (type) {
    case RM_REC_PAGE_DATA: case RM_REC_PAGE_DATA_COMPRESSED:
    case RM_REC_EPOCH_INFO: case RM_REC_CHECKPOINT: case RM_REC_END:
    case RM_REC_VERIFY: case RM_REC_STATIC_DATA_END:
    case RM_REC_KVM_VM_INFO: case RM_REC_X86_CPUID_POLICY:
    case RM_REC_X86_MSR_POLICY: case RM_REC_DISK_INFO:
        return false;
    default:
        return true;
    }
}

uint64_t rm_state_hash(uint64_t h, uint32_t type, uint32_t length,
                       const struct iovec *iov, int iovcnt)
{
    int i;

    h = rm_fnv64(h, &type, sizeof(type));
    h = rm_fnv64(h, &length, sizeof(length));
    for (i = 0; i < iovcnt; i++)
        h = rm_fnv64(h, iov[i].iov_base, iov[i].iov_len);
    return h;
}

/* ------------------------------------------------------------ reading */

void rm_record_free(struct rm_record *rec)
{
    if (!rec)
        return;
    free(rec->data);
    rec->data = NULL;
    rec->length = 0;
}

void rm_stream_reader_init(struct rm_stream_reader *r, struct rm_src *src,
                           struct rm_error *err)
{
    memset(r, 0, sizeof(*r));
    r->src = src;
    r->err = err;
}

static int read_fail(struct rm_stream_reader *r, int rc, uint64_t at,
                     const char *what)
{
    if (rc == -ENODATA)
        return rm_error_set(r->err, -ENODATA,
                            "stream ends at byte %" PRIu64 " before %s",
                            at, what);
    if (rc == -EPIPE)
        return rm_error_set(r->err, -EPIPE,
                            "stream truncated at byte %" PRIu64
                            " inside %s (starting at byte %" PRIu64 ")",
                            r->src->offset, what, at);
    if (rc == -ETIMEDOUT)
        return rm_error_set(r->err, -ETIMEDOUT,
                            "no data for %d ms while reading %s at byte %"
                            PRIu64, r->src->timeout_ms, what, at);
    return rm_error_set(r->err, rc, "read error at byte %" PRIu64
                        " while reading %s: %s", at, what, strerror(-rc));
}

int rm_stream_read_headers(struct rm_stream_reader *r)
{
    uint8_t raw[RM_IHDR_SIZE];
    struct rm_dhdr d;
    struct rm_ihdr *h = &r->ihdr;
    uint64_t at = r->src->offset;
    int rc;

    rc = rm_src_read_exact(r->src, raw, sizeof(raw));
    if (rc)
        return read_fail(r, rc, at, "the image header");

    memcpy(&h->marker, raw, 8);
    memcpy(&h->id, raw + 8, 4);
    memcpy(&h->version, raw + 12, 4);
    memcpy(&h->options, raw + 16, 2);
    memcpy(&h->reserved1, raw + 18, 2);
    memcpy(&h->reserved2, raw + 20, 4);
    h->marker = be64toh(h->marker);
    h->id = be32toh(h->id);
    h->version = be32toh(h->version);
    h->options = be16toh(h->options);
    h->reserved1 = be16toh(h->reserved1);
    h->reserved2 = be32toh(h->reserved2);

    if (h->marker != RM_IHDR_MARKER)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": bad image header marker "
                            "0x%016" PRIx64 " (expected 0x%016llx): not a "
                            "migration stream", at, h->marker,
                            RM_IHDR_MARKER);
    if (h->id != RM_IHDR_ID)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": bad image id 0x%08x "
                            "(expected 0x%08x \"XENF\")", at + 8, h->id,
                            RM_IHDR_ID);
    if (h->version < RM_IHDR_VERSION_MIN || h->version > RM_IHDR_VERSION)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": unsupported stream version "
                            "%u (this reader knows 2 and 3)", at + 12,
                            h->version);
    if (h->options & RM_IHDR_OPT_RESERVED_MASK)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": reserved image option bits "
                            "set: 0x%04x", at + 16,
                            h->options & RM_IHDR_OPT_RESERVED_MASK);
    if (h->reserved1 || h->reserved2)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": reserved image header "
                            "fields are not zero", at + 18);
    if (h->options & RM_IHDR_OPT_BIG_ENDIAN)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": big-endian stream: only "
                            "little-endian streams are supported", at + 16);

    at = r->src->offset;
    rc = rm_src_read_exact(r->src, &d, sizeof(d));
    if (rc)
        return read_fail(r, rc, at, "the domain header");
    d.type = le32toh(d.type);
    d.page_shift = le16toh(d.page_shift);
    d.reserved = le16toh(d.reserved);
    d.xen_major = le32toh(d.xen_major);
    d.xen_minor = le32toh(d.xen_minor);

    if (d.type != RM_DHDR_TYPE_X86_PV && d.type != RM_DHDR_TYPE_X86_HVM &&
        d.type != RM_DHDR_TYPE_REMUS_KVM)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": unknown domain type 0x%08x",
                            at, d.type);
    if (d.page_shift != RM_PAGE_SHIFT)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": page shift %u (only 12, "
                            "4 KiB pages, is supported)", at + 4,
                            d.page_shift);
    if (d.reserved)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": reserved domain header "
                            "field is not zero", at + 6);
    if (rm_dhdr_is_remus(d.type) && h->version < 3)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": a remus KVM stream must be "
                            "version 3, not %u", at, h->version);
    r->dhdr = d;
    r->have_headers = true;
    return 0;
}

static bool pad_is_zero(const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int rm_stream_read_record(struct rm_stream_reader *r, struct rm_record *rec)
{
    struct rm_rhdr h;
    uint64_t at = r->src->offset;
    uint32_t max = RM_REC_LENGTH_MAX;
    size_t padded;
    uint8_t *buf = NULL;
    int rc;

    memset(rec, 0, sizeof(*rec));
    rec->offset = at;
    if (r->max_length && r->max_length < max)
        max = r->max_length;

    rc = rm_src_read_exact(r->src, &h, sizeof(h));
    if (rc)
        return read_fail(r, rc, at, "a record header");
    h.type = le32toh(h.type);
    h.length = le32toh(h.length);
    rec->type = h.type;
    rec->length = h.length;

    if (h.length > max)
        return rm_error_set(r->err, -EBADMSG,
                            "byte %" PRIu64 ": record %s (0x%08x) length %u "
                            "exceeds the maximum %u", at,
                            rm_rec_type_name(h.type), h.type, h.length, max);

    padded = ((size_t)h.length + RM_REC_ALIGN - 1) & ~(size_t)(RM_REC_ALIGN - 1);
    if (padded) {
        buf = malloc(padded);
        if (!buf)
            return rm_error_set(r->err, -ENOMEM,
                                "out of memory for a %u-byte record",
                                h.length);
        rc = rm_src_read_exact(r->src, buf, padded);
        if (rc) {
            free(buf);
            if (rc == -ENODATA)
                rc = -EPIPE;
            return read_fail(r, rc, at, rm_rec_type_name(h.type));
        }
        if (!pad_is_zero(buf + h.length, padded - h.length)) {
            free(buf);
            return rm_error_set(r->err, -EBADMSG,
                                "byte %" PRIu64 ": record %s has non-zero "
                                "padding", at + RM_RHDR_SIZE + h.length,
                                rm_rec_type_name(h.type));
        }
    }
    rec->data = buf;

    rc = rm_record_validate(r->dhdr.type, r->ihdr.version, rec, r->err);
    if (rc)
        rm_error_prefix(r->err, "byte %" PRIu64 ": ", at);
    return rc;
}

/* ------------------------------------------------------------ validation */

static int bad(struct rm_error *err, const struct rm_record *rec,
               const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(struct rm_error *err, const struct rm_record *rec,
               const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rm_error_set(err, -EBADMSG, "record %s (length %u): %s",
                        rm_rec_type_name(rec->type), rec->length, msg);
}

static int expect_len(struct rm_error *err, const struct rm_record *rec,
                      uint32_t want)
{
    if (rec->length != want)
        return bad(err, rec, "length must be %u", want);
    return 0;
}

static uint32_t get32(const void *p, size_t off)
{
    uint32_t v;

    memcpy(&v, (const uint8_t *)p + off, 4);
    return le32toh(v);
}

static uint64_t get64(const void *p, size_t off)
{
    uint64_t v;

    memcpy(&v, (const uint8_t *)p + off, 8);
    return le64toh(v);
}

int rm_page_data_view(const struct rm_record *rec,
                      struct rm_page_data_view *view, struct rm_error *err)
{
    uint32_t count, i, nr_data = 0;
    uint64_t need;

    if (rec->length < sizeof(struct rm_page_data_hdr) + 8)
        return bad(err, rec, "too short for a count and one pfn");
    count = get32(rec->data, 0);
    if (get32(rec->data, 4))
        return bad(err, rec, "reserved field is not zero");
    if (count == 0)
        return bad(err, rec, "page count is zero");
    if (count > RM_PAGE_DATA_MAX_COUNT)
        return bad(err, rec, "page count %u exceeds the maximum %u", count,
                   RM_PAGE_DATA_MAX_COUNT);
    need = 8 + (uint64_t)count * 8;
    if (need > rec->length)
        return bad(err, rec, "%u pfns do not fit", count);
    for (i = 0; i < count; i++) {
        uint64_t e = get64(rec->data, 8 + (size_t)i * 8);
        uint32_t t = rm_ptype_of(e);

        if (e & RM_PAGE_RESERVED_MASK)
            return bad(err, rec, "pfn[%u] 0x%016" PRIx64
                       " has reserved bits set", i, e);
        if (!rm_page_type_valid(t))
            return bad(err, rec, "pfn[%u] has invalid page type 0x%x", i, t);
        if (rm_page_type_has_data(t))
            nr_data++;
    }
    need += (uint64_t)nr_data * RM_PAGE_SIZE;
    if (need != rec->length)
        return bad(err, rec, "%u pfns with %u data pages need %" PRIu64
                   " bytes", count, nr_data, need);
    if (view) {
        view->count = count;
        view->pfns = (const uint64_t *)((const uint8_t *)rec->data + 8);
        view->pages = (const uint8_t *)rec->data + 8 + (size_t)count * 8;
        view->nr_data_pages = nr_data;
    }
    return 0;
}

static int validate_xen_record(uint32_t dtype, uint32_t version,
                               const struct rm_record *rec,
                               struct rm_error *err)
{
    uint32_t t = rec->type;
    bool pv = dtype == RM_DHDR_TYPE_X86_PV;
    bool hvm = dtype == RM_DHDR_TYPE_X86_HVM;
    bool remus = rm_dhdr_is_remus(dtype);
    const void *d = rec->data;

    switch (t) {
    case RM_REC_END:
    case RM_REC_VERIFY:
    case RM_REC_CHECKPOINT:
        return expect_len(err, rec, 0);
    case RM_REC_STATIC_DATA_END:
        if (version < 3)
            return bad(err, rec, "not allowed in a version %u stream",
                       version);
        return expect_len(err, rec, 0);
    case RM_REC_PAGE_DATA:
        return rm_page_data_view(rec, NULL, err);
    case RM_REC_CHECKPOINT_DIRTY_PFN_LIST:
        if (remus)
            return bad(err, rec, "not used in remus KVM streams");
        if (rec->length % 8)
            return bad(err, rec, "length is not a multiple of 8");
        return 0;
    case RM_REC_X86_CPUID_POLICY:
        if (version < 3)
            return bad(err, rec, "not allowed in a version %u stream",
                       version);
        if (remus)
            return bad(err, rec, "a Xen record in a remus KVM stream");
        if (rec->length == 0 || rec->length % sizeof(struct rm_x86_cpuid_leaf))
            return bad(err, rec, "length is not a non-zero multiple of %zu",
                       sizeof(struct rm_x86_cpuid_leaf));
        return 0;
    case RM_REC_X86_MSR_POLICY:
        if (version < 3)
            return bad(err, rec, "not allowed in a version %u stream",
                       version);
        if (remus)
            return bad(err, rec, "a Xen record in a remus KVM stream");
        if (rec->length == 0 || rec->length % sizeof(struct rm_x86_msr_entry))
            return bad(err, rec, "length is not a non-zero multiple of %zu",
                       sizeof(struct rm_x86_msr_entry));
        return 0;
    case RM_REC_X86_TSC_INFO:
        if (remus)
            return bad(err, rec, "a Xen record in a remus KVM stream");
        if (expect_len(err, rec, sizeof(struct rm_x86_tsc_info)))
            return -EBADMSG;
        if (get32(d, 20))
            return bad(err, rec, "reserved field is not zero");
        return 0;
    case RM_REC_HVM_CONTEXT:
        if (!hvm)
            return bad(err, rec, "only valid in an x86 HVM stream");
        if (rec->length == 0)
            return bad(err, rec, "empty HVM context");
        return 0;
    case RM_REC_HVM_PARAMS: {
        uint32_t count;

        if (!hvm)
            return bad(err, rec, "only valid in an x86 HVM stream");
        if (rec->length < 8)
            return bad(err, rec, "too short for a count");
        count = get32(d, 0);
        if (get32(d, 4))
            return bad(err, rec, "reserved field is not zero");
        if ((uint64_t)rec->length != 8 + (uint64_t)count * 16)
            return bad(err, rec, "%u params need %" PRIu64 " bytes", count,
                       8 + (uint64_t)count * 16);
        return 0;
    }
    case RM_REC_X86_PV_INFO: {
        uint8_t width, levels;

        if (!pv)
            return bad(err, rec, "only valid in an x86 PV stream");
        if (expect_len(err, rec, sizeof(struct rm_x86_pv_info)))
            return -EBADMSG;
        width = ((const uint8_t *)d)[0];
        levels = ((const uint8_t *)d)[1];
        if (width != 4 && width != 8)
            return bad(err, rec, "guest width %u (expected 4 or 8)", width);
        if (levels != 3 && levels != 4)
            return bad(err, rec, "%u page-table levels (expected 3 or 4)",
                       levels);
        if (get32(d, 0) >> 16 || get32(d, 4))
            return bad(err, rec, "reserved fields are not zero");
        return 0;
    }
    case RM_REC_X86_PV_P2M_FRAMES:
        if (!pv)
            return bad(err, rec, "only valid in an x86 PV stream");
        if (rec->length < 8 || rec->length % 8)
            return bad(err, rec, "length must be a multiple of 8, >= 8");
        if (get32(d, 0) > get32(d, 4))
            return bad(err, rec, "start pfn 0x%x after end pfn 0x%x",
                       get32(d, 0), get32(d, 4));
        return 0;
    case RM_REC_X86_PV_VCPU_BASIC:
    case RM_REC_X86_PV_VCPU_EXTENDED:
    case RM_REC_X86_PV_VCPU_XSAVE:
    case RM_REC_X86_PV_VCPU_MSRS:
        if (!pv)
            return bad(err, rec, "only valid in an x86 PV stream");
        if (rec->length < 8)
            return bad(err, rec, "too short for a vcpu header");
        if (get32(d, 4))
            return bad(err, rec, "reserved field is not zero");
        return 0;
    case RM_REC_SHARED_INFO:
        if (!pv)
            return bad(err, rec, "only valid in an x86 PV stream");
        return expect_len(err, rec, RM_PAGE_SIZE);
    case RM_REC_TOOLSTACK:
        return bad(err, rec, "the obsolete TOOLSTACK record is refused");
    default:
        return -ENOENT;
    }
}

static int validate_remus_record(uint32_t dtype, const struct rm_record *rec,
                                 struct rm_error *err)
{
    const void *d = rec->data;

    /* The disk records also travel in a Xen HVM/PVH protection's stream
     * (a domain whose served disks are replicated: backends/xen/
     * xen_disks.h); Xen's own tools never see such a stream. */
    if (!rm_dhdr_is_remus(dtype) &&
        !(dtype == RM_DHDR_TYPE_X86_HVM &&
          (rec->type == RM_REC_DISK_INFO || rec->type == RM_REC_DISK_WRITES)))
        return bad(err, rec, "a remus record in a %s stream",
                   rm_dhdr_type_name(dtype));

    switch (rec->type) {
    case RM_REC_KVM_VM_INFO: {
        struct rm_kvm_vm_info vi;

        if (expect_len(err, rec, sizeof(vi)))
            return -EBADMSG;
        memcpy(&vi, d, sizeof(vi));
        if (vi.mem_bytes == 0 || vi.mem_bytes % RM_PAGE_SIZE ||
            vi.mem_bytes > (1ull << 40))
            return bad(err, rec, "guest memory size %" PRIu64
                       " is not a page multiple in (0, 1 TiB]",
                       (uint64_t)vi.mem_bytes);
        if (vi.nr_vcpus == 0 || vi.nr_vcpus > RM_KVM_MAX_VCPUS)
            return bad(err, rec, "%u vcpus (1..%u allowed)", vi.nr_vcpus,
                       RM_KVM_MAX_VCPUS);
        if (vi.flags || vi.reserved)
            return bad(err, rec, "reserved fields are not zero");
        return 0;
    }
    case RM_REC_KVM_VCPU:
    case RM_REC_KVM_DEVICE:
        if (rec->length < sizeof(struct rm_kvm_state_hdr))
            return bad(err, rec, "too short for its header");
        if (rec->type == RM_REC_KVM_VCPU &&
            get32(d, 0) >= RM_KVM_MAX_VCPUS)
            return bad(err, rec, "vcpu id %u out of range", get32(d, 0));
        return 0;
    case RM_REC_PAGE_DATA_COMPRESSED:
        /* Shape checked by the decompressor (common/compress.c), which
         * validates every entry before anything is applied. */
        if (rec->length < 8)
            return bad(err, rec, "too short for its header");
        return 0;
    case RM_REC_EPOCH_INFO:
        if (expect_len(err, rec, sizeof(struct rm_epoch_info)))
            return -EBADMSG;
        if (get64(d, 0) == 0)
            return bad(err, rec, "epoch 0 is not valid");
        return 0;
    case RM_REC_DISK_INFO: {
        struct rm_disk_info_hdr h;
        struct rm_disk_info_entry e[RM_DISK_MAX];

        return rm_disk_info_parse(rec, &h, e, err);
    }
    case RM_REC_DISK_WRITES: {
        struct rm_disk_writes_hdr h;

        return rm_disk_writes_walk(rec, &h, NULL, NULL, err);
    }
    default:
        return -ENOENT;
    }
}

int rm_record_validate(uint32_t dtype, uint32_t version,
                       const struct rm_record *rec, struct rm_error *err)
{
    int rc;

    if (rec->length && !rec->data)
        return bad(err, rec, "no body");
    if (rm_rec_is_remus(rec->type))
        rc = validate_remus_record(dtype, rec, err);
    else
        rc = validate_xen_record(dtype, version, rec, err);
    if (rc != -ENOENT)
        return rc;
    if (rec->type & RM_REC_OPTIONAL)
        return 0; /* unknown optional record: the caller skips it */
    return rm_error_set(err, -EBADMSG,
                        "unknown mandatory record type 0x%08x (length %u)",
                        rec->type, rec->length);
}

/* ------------------------------------------------------------ writing */

static const uint8_t zero_pad[RM_REC_ALIGN];

void rm_stream_writer_init(struct rm_stream_writer *w, struct rm_sink *sink,
                           struct rm_error *err)
{
    memset(w, 0, sizeof(*w));
    w->sink = sink;
    w->err = err;
}

static int write_fail(struct rm_stream_writer *w, int rc, const char *what)
{
    return rm_error_set(w->err, rc, "writing %s at byte %" PRIu64 ": %s",
                        what, w->sink->offset, strerror(-rc));
}

int rm_stream_write_headers(struct rm_stream_writer *w, uint32_t dtype,
                            uint32_t major, uint32_t minor)
{
    uint8_t raw[RM_IHDR_SIZE + RM_DHDR_SIZE];
    uint64_t marker = htobe64(RM_IHDR_MARKER);
    uint32_t id = htobe32(RM_IHDR_ID), version = htobe32(RM_IHDR_VERSION);
    uint32_t v32;
    uint16_t v16;
    int rc;

    memset(raw, 0, sizeof(raw));
    memcpy(raw, &marker, 8);
    memcpy(raw + 8, &id, 4);
    memcpy(raw + 12, &version, 4);
    /* options (little-endian bit clear) and reserved fields stay zero */
    v32 = htole32(dtype);
    memcpy(raw + 24, &v32, 4);
    v16 = htole16(RM_PAGE_SHIFT);
    memcpy(raw + 28, &v16, 2);
    v32 = htole32(major);
    memcpy(raw + 32, &v32, 4);
    v32 = htole32(minor);
    memcpy(raw + 36, &v32, 4);

    rc = rm_sink_write(w->sink, raw, sizeof(raw));
    if (rc)
        return write_fail(w, rc, "the stream headers");
    w->dtype = dtype;
    w->version = RM_IHDR_VERSION;
    return 0;
}

int rm_stream_write_recordv(struct rm_stream_writer *w, uint32_t type,
                            const struct iovec *iov, int iovcnt)
{
    struct iovec stack_iov[16];
    struct iovec *v = stack_iov;
    struct rm_rhdr h;
    uint64_t len = 0;
    size_t pad;
    int i, n = 0, rc;

    for (i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (len > RM_REC_LENGTH_MAX)
        return rm_error_set(w->err, -E2BIG,
                            "record %s of %" PRIu64 " bytes exceeds the "
                            "maximum %u", rm_rec_type_name(type), len,
                            RM_REC_LENGTH_MAX);
    if (iovcnt + 2 > (int)(sizeof(stack_iov) / sizeof(stack_iov[0]))) {
        v = calloc((size_t)iovcnt + 2, sizeof(*v));
        if (!v)
            return rm_error_set(w->err, -ENOMEM, "out of memory");
    }
    h.type = htole32(type);
    h.length = htole32((uint32_t)len);
    v[n].iov_base = &h;
    v[n++].iov_len = sizeof(h);
    for (i = 0; i < iovcnt; i++)
        if (iov[i].iov_len)
            v[n++] = iov[i];
    pad = (size_t)(-len & (RM_REC_ALIGN - 1));
    if (pad) {
        v[n].iov_base = (void *)zero_pad;
        v[n++].iov_len = pad;
    }
    rc = rm_sink_writev(w->sink, v, n);
    if (v != stack_iov)
        free(v);
    if (rc)
        return write_fail(w, rc, rm_rec_type_name(type));
    if (w->hash_state && rm_rec_is_state(type))
        w->state_hash = rm_state_hash(w->state_hash, type, (uint32_t)len,
                                      iov, iovcnt);
    return 0;
}

int rm_stream_write_record(struct rm_stream_writer *w, uint32_t type,
                           const void *body, uint32_t length)
{
    struct iovec v = { .iov_base = (void *)body, .iov_len = length };

    return rm_stream_write_recordv(w, type, &v, length ? 1 : 0);
}

int rm_stream_write_page_data(struct rm_stream_writer *w, uint32_t count,
                              const uint64_t *pfns, const uint32_t *types,
                              const void *const *pages)
{
    struct rm_page_data_hdr hdr;
    struct iovec *v = NULL;
    uint64_t *entries = NULL;
    uint32_t i;
    int n = 0, rc;

    if (count == 0 || count > RM_PAGE_DATA_MAX_COUNT)
        return rm_error_set(w->err, -EINVAL,
                            "PAGE_DATA with %u pages (1..%u allowed)", count,
                            RM_PAGE_DATA_MAX_COUNT);
    entries = malloc((size_t)count * sizeof(*entries));
    v = malloc(((size_t)count + 2) * sizeof(*v));
    if (!entries || !v) {
        rc = rm_error_set(w->err, -ENOMEM, "out of memory");
        goto out;
    }
    hdr.count = htole32(count);
    hdr.reserved = 0;
    v[n].iov_base = &hdr;
    v[n++].iov_len = sizeof(hdr);
    for (i = 0; i < count; i++) {
        uint32_t t = types ? types[i] : RM_PT_NOTAB;

        if (pfns[i] > RM_PAGE_PFN_MASK || !rm_page_type_valid(t)) {
            rc = rm_error_set(w->err, -EINVAL,
                              "PAGE_DATA entry %u: pfn 0x%" PRIx64
                              " type 0x%x cannot be written", i, pfns[i], t);
            goto out;
        }
        entries[i] = htole64(pfns[i] | ((uint64_t)t << RM_PAGE_TYPE_SHIFT));
    }
    v[n].iov_base = entries;
    v[n++].iov_len = (size_t)count * sizeof(*entries);
    for (i = 0; i < count; i++) {
        uint32_t t = types ? types[i] : RM_PT_NOTAB;

        if (rm_page_type_has_data(t)) {
            v[n].iov_base = (void *)pages[i];
            v[n++].iov_len = RM_PAGE_SIZE;
        }
    }
    /* The page data is a multiple of 8 bytes: no padding needed. */
    rc = rm_stream_write_recordv(w, RM_REC_PAGE_DATA, v, n);
out:
    free(entries);
    free(v);
    return rc;
}
