/* SPDX-License-Identifier: MIT */
/* The stream reader and writer: byte-exact round trips and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/stream.h"

/* ---- helpers ---- */

struct sbuf {
    struct rm_buf buf;
    struct rm_sink sink;
    struct rm_stream_writer w;
    struct rm_error err;
};

static void sbuf_init(struct sbuf *s, uint32_t dtype)
{
    memset(s, 0, sizeof(*s));
    rm_sink_init_buf(&s->sink, &s->buf);
    rm_stream_writer_init(&s->w, &s->sink, &s->err);
    assert_int_equal(rm_stream_write_headers(&s->w, dtype, 4, 17), 0);
}

/* Read every record of @s's stream; returns the number read, or the
 * negative error of the first failure (message in *err). */
static int read_all(const uint8_t *data, size_t len, struct rm_record *recs,
                    int max, struct rm_error *err)
{
    struct rm_src src;
    struct rm_stream_reader rd;
    int n = 0, rc;

    rm_src_init_mem(&src, data, len);
    rm_stream_reader_init(&rd, &src, err);
    rc = rm_stream_read_headers(&rd);
    if (rc)
        return rc;
    while (n < max) {
        rc = rm_stream_read_record(&rd, &recs[n]);
        if (rc) {
            rm_record_free(&recs[n]);
            return rc == -ENODATA ? n : rc;
        }
        n++;
    }
    return n;
}

static void free_recs(struct rm_record *recs, int n)
{
    int i;

    for (i = 0; i < n; i++)
        rm_record_free(&recs[i]);
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* ---- headers ---- */

static void test_headers_exact(void **state)
{
    static const uint8_t want[40] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* marker */
        0x58, 0x45, 0x4e, 0x46,                         /* "XENF" */
        0x00, 0x00, 0x00, 0x03,                         /* version 3 BE */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* options, rsvd */
        0x02, 0x00, 0x00, 0x00,                         /* type HVM LE */
        0x0c, 0x00, 0x00, 0x00,                         /* shift 12 */
        0x04, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, /* 4.17 */
    };
    struct sbuf s;

    (void)state;
    sbuf_init(&s, RM_DHDR_TYPE_X86_HVM);
    assert_int_equal(s.buf.len, 40);
    assert_memory_equal(s.buf.data, want, 40);
    rm_buf_free(&s.buf);
}

/* ---- every record type ---- */

struct rec_case {
    uint32_t dtype;
    uint32_t type;
    uint32_t len;
    uint8_t body[128];
};

static void fill_case(struct rec_case *c, uint32_t dtype, uint32_t type,
                      uint32_t len)
{
    memset(c, 0, sizeof(*c));
    c->dtype = dtype;
    c->type = type;
    c->len = len;
}

static void check_roundtrip(const struct rec_case *c)
{
    struct sbuf s;
    struct rm_record recs[2];
    struct rm_error err = { 0 };
    uint32_t padded = (c->len + 7) & ~7u;
    uint8_t hdr[8];
    int n;

    sbuf_init(&s, c->dtype);
    assert_int_equal(rm_stream_write_record(&s.w, c->type, c->body, c->len),
                     0);
    /* Byte-exact: header, body, zero padding to 8 bytes. */
    assert_int_equal(s.buf.len, 40 + 8 + padded);
    put32(hdr, c->type);
    put32(hdr + 4, c->len);
    assert_memory_equal(s.buf.data + 40, hdr, 8);
    if (c->len)
        assert_memory_equal(s.buf.data + 48, c->body, c->len);
    for (uint32_t i = c->len; i < padded; i++)
        assert_int_equal(s.buf.data[48 + i], 0);

    n = read_all(s.buf.data, s.buf.len, recs, 2, &err);
    if (n != 1)
        fail_msg("record %s: read back %d: %s", rm_rec_type_name(c->type), n,
                 rm_error_str(&err));
    assert_int_equal(recs[0].type, c->type);
    assert_int_equal(recs[0].length, c->len);
    if (c->len)
        assert_memory_equal(recs[0].data, c->body, c->len);
    assert_string_not_equal(rm_rec_type_name(c->type), "UNKNOWN");
    free_recs(recs, 1);
    rm_buf_free(&s.buf);
}

static void test_every_record_type(void **state)
{
    struct rec_case c;
    const uint32_t HVM = RM_DHDR_TYPE_X86_HVM, PV = RM_DHDR_TYPE_X86_PV;
    const uint32_t KVM = RM_DHDR_TYPE_REMUS_KVM;

    (void)state;
    fill_case(&c, HVM, RM_REC_END, 0);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_VERIFY, 0);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_CHECKPOINT, 0);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_STATIC_DATA_END, 0);
    check_roundtrip(&c);

    /* X86_PV_INFO: width 8, 4 levels */
    fill_case(&c, PV, RM_REC_X86_PV_INFO, 8);
    c.body[0] = 8;
    c.body[1] = 4;
    check_roundtrip(&c);
    /* P2M frames: start 0, end 0x1ff, two frames */
    fill_case(&c, PV, RM_REC_X86_PV_P2M_FRAMES, 24);
    put32(c.body + 4, 0x1ff);
    c.body[8] = 0x11;
    c.body[16] = 0x22;
    check_roundtrip(&c);
    {
        static const uint32_t vcpu_types[] = {
            RM_REC_X86_PV_VCPU_BASIC, RM_REC_X86_PV_VCPU_EXTENDED,
            RM_REC_X86_PV_VCPU_XSAVE, RM_REC_X86_PV_VCPU_MSRS,
        };
        for (unsigned i = 0; i < 4; i++) {
            fill_case(&c, PV, vcpu_types[i], 8 + 13);
            put32(c.body, 1);
            memset(c.body + 8, 0xa0 + (int)i, 13);
            check_roundtrip(&c);
        }
    }
    /* SHARED_INFO is one page: exercise separately (body > 128) */
    {
        struct sbuf s;
        struct rm_record recs[2];
        struct rm_error err = { 0 };
        uint8_t page[RM_PAGE_SIZE];

        memset(page, 0x5a, sizeof(page));
        sbuf_init(&s, PV);
        assert_int_equal(rm_stream_write_record(&s.w, RM_REC_SHARED_INFO,
                                                page, sizeof(page)), 0);
        assert_int_equal(read_all(s.buf.data, s.buf.len, recs, 2, &err), 1);
        assert_memory_equal(recs[0].data, page, sizeof(page));
        free_recs(recs, 1);
        rm_buf_free(&s.buf);
    }
    /* TSC info */
    fill_case(&c, HVM, RM_REC_X86_TSC_INFO, 24);
    put32(c.body, 1);
    put32(c.body + 4, 2400000);
    c.body[8] = 7;
    put32(c.body + 16, 3);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_HVM_CONTEXT, 37);
    memset(c.body, 0x77, 37);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_HVM_PARAMS, 8 + 32);
    put32(c.body, 2);
    c.body[8] = 1;
    c.body[16] = 0x99;
    c.body[24] = 2;
    c.body[32] = 0x98;
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_CHECKPOINT_DIRTY_PFN_LIST, 16);
    c.body[0] = 5;
    c.body[8] = 6;
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_X86_CPUID_POLICY, 48);
    memset(c.body, 0x31, 48);
    check_roundtrip(&c);
    fill_case(&c, HVM, RM_REC_X86_MSR_POLICY, 32);
    memset(c.body, 0x41, 32);
    put32(c.body + 4, 0);
    check_roundtrip(&c);

    /* remus records */
    fill_case(&c, KVM, RM_REC_KVM_VM_INFO, sizeof(struct rm_kvm_vm_info));
    {
        struct rm_kvm_vm_info vi;

        memset(&vi, 0, sizeof(vi));
        vi.mem_bytes = 64ull << 20;
        vi.nr_vcpus = 2;
        vi.mac[0] = 0x52;
        memcpy(c.body, &vi, sizeof(vi));
    }
    check_roundtrip(&c);
    fill_case(&c, KVM, RM_REC_KVM_VCPU, 8 + 40);
    put32(c.body, 1);
    memset(c.body + 8, 0xc1, 40);
    check_roundtrip(&c);
    fill_case(&c, KVM, RM_REC_KVM_DEVICE, 8 + 3);
    put32(c.body, 2);
    put32(c.body + 4, 1);
    check_roundtrip(&c);
    fill_case(&c, KVM, RM_REC_EPOCH_INFO, sizeof(struct rm_epoch_info));
    c.body[0] = 9;
    check_roundtrip(&c);
    fill_case(&c, KVM, RM_REC_PAGE_DATA_COMPRESSED, 8);
    check_roundtrip(&c);
}

static void test_page_data_roundtrip(void **state)
{
    uint64_t pfns[5] = { 0, 1, 7, 0xfffff, 3 };
    uint32_t types[5] = { RM_PT_NOTAB, RM_PT_L1TAB | RM_PT_LPINTAB,
                          RM_PT_XTAB, RM_PT_BROKEN, RM_PT_XALLOC };
    static uint8_t p0[RM_PAGE_SIZE], p1[RM_PAGE_SIZE];
    const void *pages[5] = { p0, p1, NULL, NULL, NULL };
    struct rm_page_data_view v;
    struct rm_record recs[2];
    struct rm_error err = { 0 };
    struct sbuf s;
    uint64_t e;

    (void)state;
    memset(p0, 0xaa, sizeof(p0));
    memset(p1, 0xbb, sizeof(p1));
    sbuf_init(&s, RM_DHDR_TYPE_X86_PV);
    assert_int_equal(rm_stream_write_page_data(&s.w, 5, pfns, types, pages),
                     0);
    /* 8 header + 8 count/rsvd + 5*8 pfns + 2 pages */
    assert_int_equal(s.buf.len, 40 + 8 + 8 + 40 + 2 * RM_PAGE_SIZE);
    memcpy(&e, s.buf.data + 56 + 8, 8);
    assert_int_equal(le64toh(e), 1 | (9ull << 60));
    assert_int_equal(read_all(s.buf.data, s.buf.len, recs, 2, &err), 1);
    assert_int_equal(rm_page_data_view(&recs[0], &v, &err), 0);
    assert_int_equal(v.count, 5);
    assert_int_equal(v.nr_data_pages, 2);
    assert_int_equal(rm_pfn_of(le64toh(v.pfns[3])), 0xfffff);
    assert_int_equal(rm_ptype_of(le64toh(v.pfns[3])), RM_PT_BROKEN);
    assert_memory_equal(v.pages, p0, RM_PAGE_SIZE);
    assert_memory_equal(v.pages + RM_PAGE_SIZE, p1, RM_PAGE_SIZE);
    free_recs(recs, 1);
    rm_buf_free(&s.buf);
}

/* ---- refusals ---- */

static int read_expect_error(const uint8_t *data, size_t len,
                             const char *needle)
{
    struct rm_record recs[8];
    struct rm_error err = { 0 };
    int n = read_all(data, len, recs, 8, &err);

    if (n >= 0) {
        free_recs(recs, n);
        fail_msg("expected an error containing '%s', read %d records",
                 needle, n);
    }
    if (!strstr(err.msg, needle))
        fail_msg("error '%s' does not mention '%s'", err.msg, needle);
    return n;
}

static void test_bad_headers(void **state)
{
    struct sbuf s;
    uint8_t d[48];

    (void)state;
    sbuf_init(&s, RM_DHDR_TYPE_X86_HVM);
    memcpy(d, s.buf.data, 40);
    rm_buf_free(&s.buf);
    memset(d + 40, 0, 8); /* an END record */

    d[0] = 0xfe;
    read_expect_error(d, 48, "marker");
    d[0] = 0xff;
    d[8] = 'Y';
    read_expect_error(d, 48, "image id");
    d[8] = 'X';
    d[15] = 4;
    read_expect_error(d, 48, "version 4");
    d[15] = 1;
    read_expect_error(d, 48, "version 1");
    d[15] = 3;
    d[17] = 0x02;
    read_expect_error(d, 48, "reserved image option");
    d[17] = 0x01;
    read_expect_error(d, 48, "big-endian");
    d[17] = 0;
    d[21] = 1;
    read_expect_error(d, 48, "reserved image header");
    d[21] = 0;
    d[24] = 9;
    read_expect_error(d, 48, "unknown domain type");
    d[24] = 2;
    d[28] = 13;
    read_expect_error(d, 48, "page shift 13");
    d[28] = 12;
    d[30] = 1;
    read_expect_error(d, 48, "reserved domain header");
    d[30] = 0;
    read_expect_error(d, 10, "truncated");
    {
        struct rm_record r[1];
        struct rm_error err = { 0 };

        assert_int_equal(read_all(d, 0, r, 1, &err), -ENODATA);
    }
}

static size_t stream_with(uint8_t *out, uint32_t dtype, uint32_t type,
                          uint32_t len, const void *body, uint32_t version)
{
    struct sbuf s;
    size_t n;

    sbuf_init(&s, dtype);
    assert_int_equal(rm_stream_write_record(&s.w, type, body, len), 0);
    n = s.buf.len;
    memcpy(out, s.buf.data, n);
    out[15] = (uint8_t)version;
    rm_buf_free(&s.buf);
    return n;
}

static void test_bad_records(void **state)
{
    static uint8_t d[3 * RM_PAGE_SIZE];
    uint8_t body[64];
    size_t n;
    const uint32_t HVM = RM_DHDR_TYPE_X86_HVM;

    (void)state;
    memset(body, 0, sizeof(body));

    /* Length over the maximum: refused before allocating. */
    n = stream_with(d, HVM, RM_REC_END, 0, NULL, 3);
    put32(d + 44, RM_REC_LENGTH_MAX + 1);
    read_expect_error(d, n, "exceeds the maximum");
    /* Non-zero padding */
    n = stream_with(d, HVM, RM_REC_HVM_CONTEXT, 3, "abc", 3);
    d[48 + 5] = 1;
    read_expect_error(d, n, "non-zero padding");
    /* Unknown mandatory record */
    n = stream_with(d, HVM, 0x77, 0, NULL, 3);
    read_expect_error(d, n, "unknown mandatory record type 0x00000077");
    /* Unknown optional record: accepted */
    {
        struct rm_record recs[2];
        struct rm_error err = { 0 };

        n = stream_with(d, HVM, 0x80000077, 4, "abcd", 3);
        assert_int_equal(read_all(d, n, recs, 2, &err), 1);
        free_recs(recs, 1);
    }
    /* A remus record in a Xen stream, and a Xen one in a remus stream */
    n = stream_with(d, HVM, RM_REC_KVM_VCPU, 16, body, 3);
    read_expect_error(d, n, "a remus record in a x86 HVM stream");
    n = stream_with(d, RM_DHDR_TYPE_REMUS_KVM, RM_REC_HVM_CONTEXT, 8, body, 3);
    read_expect_error(d, n, "only valid in an x86 HVM stream");
    n = stream_with(d, RM_DHDR_TYPE_REMUS_KVM, RM_REC_X86_TSC_INFO, 24, body,
                    3);
    read_expect_error(d, n, "a Xen record in a remus KVM stream");
    /* PV records in an HVM stream */
    n = stream_with(d, HVM, RM_REC_X86_PV_INFO, 8, body, 3);
    read_expect_error(d, n, "only valid in an x86 PV stream");
    /* v3-only records in a v2 stream */
    n = stream_with(d, HVM, RM_REC_STATIC_DATA_END, 0, NULL, 2);
    read_expect_error(d, n, "not allowed in a version 2 stream");
    n = stream_with(d, HVM, RM_REC_X86_CPUID_POLICY, 24, body, 2);
    read_expect_error(d, n, "not allowed in a version 2 stream");
    /* Shapes */
    n = stream_with(d, HVM, RM_REC_END, 8, body, 3);
    read_expect_error(d, n, "length must be 0");
    n = stream_with(d, HVM, RM_REC_X86_TSC_INFO, 16, body, 3);
    read_expect_error(d, n, "length must be 24");
    n = stream_with(d, HVM, RM_REC_HVM_PARAMS, 24, body, 3);
    read_expect_error(d, n, "params need");
    n = stream_with(d, HVM, RM_REC_X86_CPUID_POLICY, 25, body, 3);
    read_expect_error(d, n, "multiple of 24");
    n = stream_with(d, HVM, RM_REC_HVM_CONTEXT, 0, NULL, 3);
    read_expect_error(d, n, "empty HVM context");
    n = stream_with(d, HVM, RM_REC_TOOLSTACK, 8, body, 3);
    read_expect_error(d, n, "TOOLSTACK");
    body[0] = 3; /* guest width 3 */
    n = stream_with(d, RM_DHDR_TYPE_X86_PV, RM_REC_X86_PV_INFO, 8, body, 3);
    read_expect_error(d, n, "guest width 3");
    body[0] = 0;
    {
        struct rm_kvm_vm_info vi;

        memset(&vi, 0, sizeof(vi));
        vi.mem_bytes = 4097;
        vi.nr_vcpus = 1;
        n = stream_with(d, RM_DHDR_TYPE_REMUS_KVM, RM_REC_KVM_VM_INFO,
                        sizeof(vi), &vi, 3);
        read_expect_error(d, n, "not a page multiple");
        vi.mem_bytes = 4096;
        vi.nr_vcpus = 99;
        n = stream_with(d, RM_DHDR_TYPE_REMUS_KVM, RM_REC_KVM_VM_INFO,
                        sizeof(vi), &vi, 3);
        read_expect_error(d, n, "99 vcpus");
    }
    n = stream_with(d, RM_DHDR_TYPE_REMUS_KVM, RM_REC_EPOCH_INFO,
                    sizeof(struct rm_epoch_info), body, 3);
    read_expect_error(d, n, "epoch 0");
}

static void test_bad_page_data(void **state)
{
    static uint8_t d[64 + 2 * RM_PAGE_SIZE];
    uint8_t body[32];
    uint64_t e;
    size_t n;
    const uint32_t HVM = RM_DHDR_TYPE_X86_HVM;

    (void)state;
    memset(body, 0, sizeof(body));
    /* count 1, one XTAB pfn: valid, 16 bytes */
    put32(body, 1);
    e = htole64(5 | (0xfull << 60));
    memcpy(body + 8, &e, 8);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    {
        struct rm_record recs[2];
        struct rm_error err = { 0 };

        assert_int_equal(read_all(d, n, recs, 2, &err), 1);
        free_recs(recs, 1);
    }
    /* count says 2, one pfn present */
    put32(body, 2);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "2 pfns do not fit");
    put32(body, 0);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "page count is zero");
    put32(body, 1);
    put32(body + 4, 1);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "reserved field");
    put32(body + 4, 0);
    /* reserved pfn bits */
    e = htole64(5 | (1ull << 55));
    memcpy(body + 8, &e, 8);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "reserved bits");
    /* invalid type 5 */
    e = htole64(5 | (5ull << 60));
    memcpy(body + 8, &e, 8);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "invalid page type 0x5");
    /* NOTAB page without its data */
    e = htole64(5);
    memcpy(body + 8, &e, 8);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "need 4112 bytes");
    /* count over the maximum */
    put32(body, RM_PAGE_DATA_MAX_COUNT + 1);
    n = stream_with(d, HVM, RM_REC_PAGE_DATA, 16, body, 3);
    read_expect_error(d, n, "exceeds the maximum");
}

static void test_truncated_record(void **state)
{
    static uint8_t d[64];
    struct rm_record recs[2];
    struct rm_error err = { 0 };
    size_t n;

    (void)state;
    n = stream_with(d, RM_DHDR_TYPE_X86_HVM, RM_REC_HVM_CONTEXT, 8,
                    "01234567", 3);
    for (size_t cut = 41; cut < n; cut++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(read_all(d, cut, recs, 2, &err), -EPIPE);
        assert_non_null(strstr(err.msg, "truncated"));
    }
    /* Exactly at a record boundary: a clean end (0 records). */
    assert_int_equal(read_all(d, 40, recs, 2, &err), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(rm_rec_type_name(RM_REC_PAGE_DATA), "PAGE_DATA");
    assert_string_equal(rm_rec_type_name(RM_REC_X86_MSR_POLICY),
                        "X86_MSR_POLICY");
    assert_string_equal(rm_rec_type_name(RM_REC_KVM_VCPU), "REMUS_KVM_VCPU");
    assert_string_equal(rm_rec_type_name(0x1234), "UNKNOWN");
    assert_false(rm_rec_type_known(0x1234));
    assert_false(rm_rec_type_known(0x1234 | RM_REC_OPTIONAL));
    assert_true(rm_rec_type_known(RM_REC_EPOCH_INFO));
    assert_true(rm_rec_type_known(RM_REC_PAGE_DATA | RM_REC_OPTIONAL));
    assert_string_equal(rm_dhdr_type_name(RM_DHDR_TYPE_REMUS_KVM),
                        "remus KVM");
    assert_string_equal(rm_page_type_name(RM_PT_XALLOC), "XALLOC");
    /* The remus blocks cannot be confused with Xen's numbers. */
    assert_true(rm_rec_is_remus(RM_REC_KVM_VM_INFO));
    assert_false(rm_rec_is_remus(RM_REC_X86_MSR_POLICY));
    assert_false(rm_rec_is_remus(RM_REC_OPTIONAL | 0x12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_exact),
        cmocka_unit_test(test_every_record_type),
        cmocka_unit_test(test_page_data_roundtrip),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_bad_page_data),
        cmocka_unit_test(test_truncated_record),
        cmocka_unit_test(test_names),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
