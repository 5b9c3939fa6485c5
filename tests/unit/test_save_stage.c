/* SPDX-License-Identifier: MIT */
/* The save engine's staged checkpoint (common/save_stage.h): the digest
 * pass over staged records, and what the staging buffers keep resident
 * between checkpoints.  Pure logic over a buffer, no backend. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/save_stage.h"
#include "common/stream.h"

#define MIB ((size_t)1 << 20)

/* Append a record of @type with @len bytes of @body, padded to 8. */
static void put_record(struct rm_buf *b, uint32_t type, const void *body,
                       uint32_t len)
{
    struct rm_rhdr h = { .type = type, .length = len };
    static const uint8_t zero[8];

    assert_int_equal(rm_buf_append(b, &h, sizeof(h)), 0);
    assert_int_equal(rm_buf_append(b, body, len), 0);
    assert_int_equal(rm_buf_append(b, zero, (8 - len % 8) % 8), 0);
}

/* A PAGE_DATA record of pfns 10 (normal, filled with 0x11), 11 (XTAB: no
 * data), 12 (normal, 0x22). */
static void put_pages(struct rm_buf *b)
{
    uint8_t body[8 + 3 * 8 + 2 * RM_PAGE_SIZE];
    uint32_t count = 3;
    uint64_t e[3] = { 10, 11 | ((uint64_t)RM_PT_XTAB << RM_PAGE_TYPE_SHIFT),
                      12 };

    memset(body, 0, 8);
    memcpy(body, &count, 4);
    memcpy(body + 8, e, sizeof(e));
    memset(body + 32, 0x11, RM_PAGE_SIZE);
    memset(body + 32 + RM_PAGE_SIZE, 0x22, RM_PAGE_SIZE);
    put_record(b, RM_REC_PAGE_DATA, body, sizeof(body));
}

/* What the digest of put_pages() is, from @h: each page with data, its
 * pfn then its bytes. */
static uint64_t pages_digest(uint64_t h)
{
    uint8_t page[RM_PAGE_SIZE];
    uint64_t pfn = 10;

    memset(page, 0x11, sizeof(page));
    h = rm_fnv64(h, &pfn, 8);
    h = rm_hash_words(h, page, sizeof(page));
    pfn = 12;
    memset(page, 0x22, sizeof(page));
    h = rm_fnv64(h, &pfn, 8);
    return rm_hash_words(h, page, sizeof(page));
}

/* The digest covers the pages with data, in order, from the digest so
 * far; it is written into the staged EPOCH_INFO. */
static void test_digest_written_into_epoch_info(void **state)
{
    struct rm_buf b = { 0 };
    struct rm_epoch_info ei = { .epoch = 7, .dirty_pages = 2 };
    struct rm_error err = { 0 };
    uint64_t digest = 12345, want = pages_digest(12345);
    size_t ei_body;

    (void)state;
    put_pages(&b);
    ei_body = b.len + RM_RHDR_SIZE;
    put_record(&b, RM_REC_EPOCH_INFO, &ei, sizeof(ei));
    assert_int_equal(rm_stage_digest(&b, true, &digest, &err), 0);
    assert_true(digest == want);
    memcpy(&ei, b.data + ei_body, sizeof(ei));
    assert_true(ei.digest == want);
    assert_int_equal((int)ei.epoch, 7);
    rm_buf_free(&b);
}

/* Staged records that do not parse are a bug of ours: -EIO, said so, and
 * the digest so far is left alone. */
static void test_digest_refuses_malformed(void **state)
{
    struct rm_buf b = { 0 };
    struct rm_epoch_info ei = { .epoch = 1 };
    struct rm_error err = { 0 };
    uint64_t digest = 99;

    (void)state;
    /* a remus checkpoint without its EPOCH_INFO */
    put_pages(&b);
    assert_int_equal(rm_stage_digest(&b, true, &digest, &err), -EIO);
    assert_non_null(strstr(err.msg, "malformed"));
    assert_true(digest == 99);
    /* ... which a stream of another kind need not have */
    assert_int_equal(rm_stage_digest(&b, false, &digest, &err), 0);
    assert_true(digest == pages_digest(99));
    /* a record cut short */
    put_record(&b, RM_REC_EPOCH_INFO, &ei, sizeof(ei));
    b.len -= 8;
    digest = 99;
    memset(&err, 0, sizeof(err));
    assert_int_equal(rm_stage_digest(&b, true, &digest, &err), -EIO);
    assert_true(digest == 99);
    rm_buf_free(&b);
}

/* A steady checkpoint size never trims; after a burst the buffer is
 * trimmed to 1.25 times what recent checkpoints needed once it may hold
 * more than twice that + 1 MiB resident. */
static void test_trim_after_a_burst(void **state)
{
    struct rm_buf b = { 0 };
    struct rm_stage_size z = { 0 };
    unsigned i, trims = 0;

    (void)state;
    assert_int_equal(rm_buf_reserve(&b, 4 * MIB), 0);
    for (i = 0; i < 200; i++) {
        b.len = 4 * MIB;
        assert_false(rm_stage_trim(&b, &z));
    }
    assert_true(z.hi == 4 * MIB);
    /* a burst of 40 MiB, then 1 MiB checkpoints */
    assert_int_equal(rm_buf_reserve(&b, 40 * MIB), 0);
    b.len = 40 * MIB;
    assert_false(rm_stage_trim(&b, &z));
    assert_true(z.hi == 40 * MIB && z.kept >= 40 * MIB);
    for (i = 0; i < 200; i++) {
        b.len = MIB;
        if (rm_stage_trim(&b, &z)) {
            trims++;
            assert_true(z.kept == z.hi + z.hi / 4);
        }
        assert_true(z.kept <= 2 * z.hi + MIB || z.kept == z.hi + z.hi / 4);
    }
    assert_true(trims >= 1);
    /* hi decayed toward 1 MiB and stays at least what was staged */
    assert_true(z.hi >= MIB && z.hi < 2 * MIB);
    rm_buf_free(&b);
}

/* The buffer is made resident ahead up to 1.25 times hi; after a trim
 * what counts as resident is no more than what was kept. */
static void test_ready_ahead(void **state)
{
    struct rm_buf b = { 0 };
    struct rm_stage_size z = { .hi = 8 * MIB };

    (void)state;
    b.len = 0;
    rm_stage_ready(&b, &z, false);
    assert_true(z.ready == 10 * MIB);
    assert_true(b.cap >= 10 * MIB);
    /* a checkpoint that wrote more counts that */
    assert_int_equal(rm_buf_reserve(&b, 12 * MIB), 0);
    b.len = 12 * MIB;
    rm_stage_ready(&b, &z, false);
    assert_true(z.ready == 12 * MIB);
    /* trimmed to 3 MiB: resident no more than that, then ready again */
    z.kept = 3 * MIB;
    z.hi = 2 * MIB;
    b.len = MIB;
    rm_stage_ready(&b, &z, true);
    assert_true(z.ready == 3 * MIB);
    rm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_written_into_epoch_info),
        cmocka_unit_test(test_digest_refuses_malformed),
        cmocka_unit_test(test_trim_after_a_burst),
        cmocka_unit_test(test_ready_ahead),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
