/* SPDX-License-Identifier: MIT */
/*
 * The checkpoint stream: Xen's libxc migration stream (v3, v2 readable),
 * as defined by Xen's docs/specs/libxc-migration-stream.pandoc, plus a
 * remus extension for our own backends.
 *
 *   stream      := image-header domain-header record* END
 *   record      := u32 type, u32 length, body[length], zero pad to 8 bytes
 *
 * The image header is big-endian; the domain header and every record are
 * in the stream's endianness (we write and accept little-endian only, and
 * refuse a big-endian stream with a clear message).
 *
 * The remus extension
 * -------------------
 * Xen's domain types are small integers (1 = x86 PV, 2 = x86 HVM) and its
 * record types are small integers (0x00..0x12), optionally with bit 31 set.
 * Our backends use:
 *   - their own domain type, RM_DHDR_TYPE_REMUS_KVM (0x524d4b01, "RMK\1"):
 *     a Xen reader refuses it as an unknown domain type, never misreads it;
 *   - records in the block RM_REC_REMUS_BASE (0x524d0000, "RM\0\0") ..
 *     +0xffff: far from Xen's numbers, and with bit 31 clear they are
 *     mandatory, so any reader that does not know them refuses the stream.
 * Our reader accepts remus records only in a stream whose domain type is a
 * remus type (and Xen's guest-specific records only in Xen-typed streams),
 * so a Xen stream carrying a remus record is refused, and vice versa.
 *
 * Trust: the reader trusts no length, count, pfn or type.  Every record is
 * bounded by RM_REC_LENGTH_MAX (and by a caller-set tighter bound), every
 * body is checked for its exact shape by rm_record_validate(), padding must
 * be zero, and unknown mandatory records are refused by name.
 */
#ifndef REMUS_COMMON_STREAM_H
#define REMUS_COMMON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/io.h"

#define RM_PAGE_SHIFT 12
#define RM_PAGE_SIZE (1u << RM_PAGE_SHIFT)

/* ---- Image header (24 bytes, big-endian on the wire) ---- */
#define RM_IHDR_MARKER 0xffffffffffffffffull
#define RM_IHDR_ID 0x58454E46u /* "XENF" */
#define RM_IHDR_VERSION 3u
#define RM_IHDR_VERSION_MIN 2u
#define RM_IHDR_OPT_BIG_ENDIAN (1u << 0)
#define RM_IHDR_OPT_RESERVED_MASK 0xfffeu

struct rm_ihdr {
    uint64_t marker;
    uint32_t id;
    uint32_t version;
    uint16_t options;
    uint16_t reserved1;
    uint32_t reserved2;
};
#define RM_IHDR_SIZE 24u

/* ---- Domain header (16 bytes) ---- */
#define RM_DHDR_TYPE_X86_PV 0x00000001u
#define RM_DHDR_TYPE_X86_HVM 0x00000002u
#define RM_DHDR_TYPE_REMUS_KVM 0x524d4b01u

struct rm_dhdr {
    uint32_t type;
    uint16_t page_shift;
    uint16_t reserved;
    uint32_t xen_major;   /* remus types: stream format minor of ours */
    uint32_t xen_minor;
};
#define RM_DHDR_SIZE 16u

/* ---- Record header ---- */
struct rm_rhdr {
    uint32_t type;
    uint32_t length;
};
#define RM_RHDR_SIZE 8u
#define RM_REC_ALIGN 8u
#define RM_REC_OPTIONAL 0x80000000u

/*
 * Hard upper bound on one record's body.  Xen's writer emits at most 1024
 * pages per PAGE_DATA record (about 4 MiB plus the pfn array); our remus
 * records are smaller.  A reader refuses anything longer before allocating.
 */
#define RM_REC_LENGTH_MAX (8u << 20)
/* Pages per PAGE_DATA record that we write, and the most we accept. */
#define RM_PAGE_DATA_BATCH 1024u
#define RM_PAGE_DATA_MAX_COUNT 2048u

/* Xen's record types */
#define RM_REC_END 0x00000000u
#define RM_REC_PAGE_DATA 0x00000001u
#define RM_REC_X86_PV_INFO 0x00000002u
#define RM_REC_X86_PV_P2M_FRAMES 0x00000003u
#define RM_REC_X86_PV_VCPU_BASIC 0x00000004u
#define RM_REC_X86_PV_VCPU_EXTENDED 0x00000005u
#define RM_REC_X86_PV_VCPU_XSAVE 0x00000006u
#define RM_REC_SHARED_INFO 0x00000007u
#define RM_REC_X86_TSC_INFO 0x00000008u
#define RM_REC_HVM_CONTEXT 0x00000009u
#define RM_REC_HVM_PARAMS 0x0000000au
#define RM_REC_TOOLSTACK 0x0000000bu /* obsolete; refused */
#define RM_REC_X86_PV_VCPU_MSRS 0x0000000cu
#define RM_REC_VERIFY 0x0000000du
#define RM_REC_CHECKPOINT 0x0000000eu
#define RM_REC_CHECKPOINT_DIRTY_PFN_LIST 0x0000000fu
#define RM_REC_STATIC_DATA_END 0x00000010u
#define RM_REC_X86_CPUID_POLICY 0x00000011u
#define RM_REC_X86_MSR_POLICY 0x00000012u

/* The remus extension block (see above). */
#define RM_REC_REMUS_BASE 0x524d0000u
#define RM_REC_REMUS_MASK 0xffff0000u
/* Static description of a remus-KVM VM: struct rm_kvm_vm_info. */
#define RM_REC_KVM_VM_INFO (RM_REC_REMUS_BASE | 0x0001u)
/* One vCPU's complete state: u32 vcpu_id, u32 reserved, backend blob. */
#define RM_REC_KVM_VCPU (RM_REC_REMUS_BASE | 0x0002u)
/* One device's state: u32 device_id, u32 version, backend blob. */
#define RM_REC_KVM_DEVICE (RM_REC_REMUS_BASE | 0x0003u)
/*
 * Compressed page data, only between two remus ends that negotiated it:
 * struct rm_cpage_hdr, then per page one struct rm_cpage_entry and its
 * payload (see common/compress.h).  Valid in any remus-typed stream.
 */
#define RM_REC_PAGE_DATA_COMPRESSED (RM_REC_REMUS_BASE | 0x0010u)
/* Epoch metadata closing a checkpoint: struct rm_epoch_info. */
#define RM_REC_EPOCH_INFO (RM_REC_REMUS_BASE | 0x0011u)

static inline bool rm_rec_is_remus(uint32_t type)
{
    return ((type & ~RM_REC_OPTIONAL) & RM_REC_REMUS_MASK) == RM_REC_REMUS_BASE;
}

static inline bool rm_dhdr_is_remus(uint32_t type)
{
    return type == RM_DHDR_TYPE_REMUS_KVM;
}

/* ---- PAGE_DATA ---- */
struct rm_page_data_hdr {
    uint32_t count;
    uint32_t reserved;
    /* uint64_t pfn[count]; then RM_PAGE_SIZE bytes per page with data */
};

#define RM_PAGE_PFN_MASK ((1ull << 52) - 1)
#define RM_PAGE_RESERVED_MASK (((1ull << 60) - 1) & ~RM_PAGE_PFN_MASK)
#define RM_PAGE_TYPE_SHIFT 60
/* Page types: XEN_DOMCTL_PFINFO_* >> 28, i.e. the top nibble of a pfn. */
#define RM_PT_NOTAB 0x0u
#define RM_PT_L1TAB 0x1u
#define RM_PT_L2TAB 0x2u
#define RM_PT_L3TAB 0x3u
#define RM_PT_L4TAB 0x4u
#define RM_PT_LPINTAB 0x8u /* pin bit, or'd with L1..L4 */
#define RM_PT_BROKEN 0xdu
#define RM_PT_XALLOC 0xeu
#define RM_PT_XTAB 0xfu

/* Does a page of this type carry 4096 bytes of data in PAGE_DATA? */
static inline bool rm_page_type_has_data(uint32_t t)
{
    return (t & 0x7u) <= RM_PT_L4TAB && t != 0x5 && t != 0x6 && t != 0x7 &&
           t < RM_PT_BROKEN;
}
/* Is this a type value Xen defines (0-4, 9-c, d, e, f)? */
bool rm_page_type_valid(uint32_t t);

/* ---- Fixed-shape bodies ---- */
struct rm_x86_pv_info {
    uint8_t guest_width;
    uint8_t pt_levels;
    uint16_t reserved1;
    uint32_t reserved2;
};

struct rm_x86_pv_p2m_frames {
    uint32_t start_pfn;
    uint32_t end_pfn;
    /* uint64_t p2m_pfns[]; */
};

struct rm_x86_pv_vcpu_hdr {
    uint32_t vcpu_id;
    uint32_t reserved;
    /* context bytes */
};

struct rm_x86_tsc_info {
    uint32_t mode;
    uint32_t khz;
    uint64_t nsec;
    uint32_t incarnation;
    uint32_t reserved;
};

struct rm_hvm_params_hdr {
    uint32_t count;
    uint32_t reserved;
};
struct rm_hvm_param {
    uint64_t index;
    uint64_t value;
};

struct rm_x86_cpuid_leaf {
    uint32_t leaf, subleaf, a, b, c, d;
};
struct rm_x86_msr_entry {
    uint32_t idx;
    uint32_t flags;
    uint64_t val;
};

/* remus: RM_REC_KVM_VM_INFO */
struct rm_kvm_vm_info {
    uint64_t mem_bytes;     /* guest RAM, a multiple of RM_PAGE_SIZE */
    uint32_t nr_vcpus;      /* 1..RM_KVM_MAX_VCPUS */
    uint32_t flags;         /* reserved, 0 */
    uint8_t mac[6];         /* guest NIC MAC, kept across failover */
    uint16_t reserved;
    uint32_t ipv4;          /* guest IPv4, network order */
    uint32_t netmask;       /* network order */
    char image_digest[64];  /* hex SHA-256 of the guest image, NUL-padded */
};
#define RM_KVM_MAX_VCPUS 8u

/* remus: RM_REC_KVM_VCPU / RM_REC_KVM_DEVICE header */
struct rm_kvm_state_hdr {
    uint32_t id;       /* vcpu id or device id */
    uint32_t version;  /* vcpu: reserved 0; device: state layout version */
};

/* remus: RM_REC_EPOCH_INFO, last record before CHECKPOINT */
struct rm_epoch_info {
    uint64_t epoch;        /* 1 for the first full pass, then +1 */
    uint64_t dirty_pages;  /* pages sent in this checkpoint */
    uint64_t state_digest; /* rm_state_hash over the checkpoint's state
                              records (see rm_rec_is_state) */
    uint64_t digest;       /* FNV-1a of each pfn + rm_hash_words of its page */
};

/* ---- Names for logs ---- */
const char *rm_rec_type_name(uint32_t type);   /* "PAGE_DATA", "KVM_VCPU", ... */
/* What a record read by rm_stream_read_record() (its length checked) says,
 * in a few words after two spaces ("  vcpu 0", "  epoch 7, ..."); "" when
 * there is nothing to say.  Into @buf (always terminated): common/
 * stream_describe.c. */
struct rm_record;
void rm_record_describe(const struct rm_record *rec, char *buf, size_t len);
/* Is @type (its optional bit ignored) a record type this stream knows? */
bool rm_rec_type_known(uint32_t type);
const char *rm_dhdr_type_name(uint32_t type);  /* "x86 HVM", "remus KVM" */
const char *rm_page_type_name(uint32_t ptype);

/* ---- Reading ---- */

struct rm_record {
    uint32_t type;
    uint32_t length;
    uint64_t offset;   /* stream offset of the record header */
    void *data;        /* malloc'd body (length bytes), owned by the record */
};

void rm_record_free(struct rm_record *rec);

struct rm_stream_reader {
    struct rm_src *src;
    struct rm_error *err;
    uint32_t max_length;   /* 0: RM_REC_LENGTH_MAX; else min of both */
    bool have_headers;
    struct rm_ihdr ihdr;   /* host order */
    struct rm_dhdr dhdr;
};

void rm_stream_reader_init(struct rm_stream_reader *r, struct rm_src *src,
                           struct rm_error *err);

/*
 * Read and validate the image and domain headers.  Refuses: bad marker,
 * id, version (not 2 or 3), reserved bits, big-endian streams, a page
 * shift other than 12, an unknown domain type.  0 or -errno (-EBADMSG for
 * a malformed stream, -ENODATA for an empty one, -EPIPE when truncated),
 * with the byte offset and reason in r->err.
 */
int rm_stream_read_headers(struct rm_stream_reader *r);

/*
 * Read the next record into @rec (rec->data malloc'd; the caller frees
 * with rm_record_free, also on error).  Checks the length bound and zero
 * padding, and runs rm_record_validate() on the body.  An unknown optional
 * record is returned as is (the caller skips it); an unknown mandatory one
 * is refused.  Returns 0, -ENODATA (the source ended cleanly between two
 * records: the stream is incomplete), -EPIPE (ended within a record),
 * -EBADMSG (malformed) or another -errno.
 */
int rm_stream_read_record(struct rm_stream_reader *r, struct rm_record *rec);

/*
 * Validate a record body's shape for a stream of domain type @dtype and
 * version @version: exact lengths, counts that fit, reserved fields zero,
 * page types valid, record allowed for this domain type and version.
 * Returns 0, or -EBADMSG with the reason in @err (which names the record).
 * An unknown optional type validates; an unknown mandatory one does not.
 */
int rm_record_validate(uint32_t dtype, uint32_t version,
                       const struct rm_record *rec, struct rm_error *err);

/* A parsed view of a PAGE_DATA record (points into rec->data). */
struct rm_page_data_view {
    uint32_t count;
    const uint64_t *pfns;   /* raw entries: pfn | type << 60 */
    const uint8_t *pages;   /* data of the pages that carry data, in order */
    uint32_t nr_data_pages;
};

/* 0 or -EBADMSG.  Does the checks of rm_record_validate for PAGE_DATA. */
int rm_page_data_view(const struct rm_record *rec,
                      struct rm_page_data_view *view, struct rm_error *err);

static inline uint64_t rm_pfn_of(uint64_t entry)
{
    return entry & RM_PAGE_PFN_MASK;
}
static inline uint32_t rm_ptype_of(uint64_t entry)
{
    return (uint32_t)(entry >> RM_PAGE_TYPE_SHIFT);
}

/* ---- Writing ---- */

struct rm_stream_writer {
    struct rm_sink *sink;
    struct rm_error *err;
    uint32_t dtype;
    uint32_t version;
    bool hash_state;       /* fold state records into state_hash */
    uint64_t state_hash;
};

/*
 * State records: the records of a checkpoint other than its pages and its
 * framing (PAGE_DATA, PAGE_DATA_COMPRESSED, EPOCH_INFO, CHECKPOINT, END,
 * VERIFY, STATIC_DATA_END) and other than static data (VM_INFO, CPUID and
 * MSR policies).  A remus checkpoint's EPOCH_INFO carries a hash of them,
 * so a corrupted register or device blob is refused like a corrupted page.
 */
bool rm_rec_is_state(uint32_t type);
uint64_t rm_state_hash(uint64_t h, uint32_t type, uint32_t length,
                       const struct iovec *iov, int iovcnt);

void rm_stream_writer_init(struct rm_stream_writer *w, struct rm_sink *sink,
                           struct rm_error *err);

/* Image header (version 3, little-endian) and domain header. */
int rm_stream_write_headers(struct rm_stream_writer *w, uint32_t dtype,
                            uint32_t major, uint32_t minor);

/*
 * One record: header, body, padding, in one writev.  @body may be NULL
 * when @length is 0.  0 or -errno.
 */
int rm_stream_write_record(struct rm_stream_writer *w, uint32_t type,
                           const void *body, uint32_t length);

/* A record whose body is gathered from @iov[0..iovcnt) (one writev). */
int rm_stream_write_recordv(struct rm_stream_writer *w, uint32_t type,
                            const struct iovec *iov, int iovcnt);

/*
 * One PAGE_DATA record for @count (<= RM_PAGE_DATA_MAX_COUNT) pages:
 * @pfns[i] | @types[i] << 60, with the data at @pages[i] for every page
 * whose type carries data (pages[i] ignored otherwise).  @types may be
 * NULL (all RM_PT_NOTAB).  One writev, no copy of the page data.
 */
int rm_stream_write_page_data(struct rm_stream_writer *w, uint32_t count,
                              const uint64_t *pfns, const uint32_t *types,
                              const void *const *pages);

/* FNV-1a 64 helpers used for epoch digests. */
#define RM_FNV64_INIT 0xcbf29ce484222325ull
uint64_t rm_fnv64(uint64_t h, const void *data, size_t len);
/* A faster FNV-style hash over 8-byte words (len a multiple of 8), for
 * whole-memory digests in tests and drills. */
uint64_t rm_hash_words(uint64_t h, const void *data, size_t len);

#endif
