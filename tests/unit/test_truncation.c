/* SPDX-License-Identifier: MIT */
/*
 * Every truncation point of a small checkpointed stream: the receiver ends
 * on the last complete checkpoint (FAILOVER, replica exactly as the
 * primary was at that checkpoint), or refuses with "no consistent state"
 * before the first one.  Run for plain and compressed streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/support/testutil.h"

#define NP 6
#define EPOCHS 3

static void run(bool compress)
{
    struct mem_guest *g = mem_guest_new(NP, RM_DHDR_TYPE_REMUS_KVM, 77);
    struct tu_snapshots snaps = { 0 };
    struct tu_save_opts o = { .mode = RM_SAVE_CHECKPOINTED, .epochs = EPOCHS,
                              .dirty_per_epoch = 2, .compress = compress,
                              .snaps = &snaps };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    size_t cp_end[EPOCHS + 1] = { 0 }, off = 40, cut;
    unsigned cps = 0, refused = 0, failovers = 0;

    rm_log_init(RM_LOG_ERROR, NULL);
    assert_int_equal(tu_save(g, &o, &out, NULL, &err), 0);
    while (off + 8 <= out.len) {
        uint32_t type, len;

        memcpy(&type, out.data + off, 4);
        memcpy(&len, out.data + off + 4, 4);
        off += 8 + ((len + 7) & ~7u);
        if (type == RM_REC_CHECKPOINT)
            cp_end[++cps] = off;
    }
    assert_int_equal(cps, EPOCHS);

    for (cut = 0; cut <= out.len; cut++) {
        struct mem_replica *r = mem_replica_new();
        struct rm_restore_ctx rctx;
        unsigned k = 0;
        int rc;

        memset(&err, 0, sizeof(err));
        while (k < EPOCHS && cp_end[k + 1] <= cut)
            k++;
        rc = tu_restore(out.data, cut, r, compress, true, NULL, &rctx, &err);
        if (cut == out.len) {
            assert_int_equal(rc, 0);
            assert_int_equal(rctx.result, RM_RESTORE_COMPLETE);
            assert_int_equal(rctx.committed_epoch, EPOCHS);
        } else if (k == 0) {
            if (rc == 0)
                fail_msg("cut at %zu (before checkpoint 1) was accepted",
                         cut);
            assert_int_equal(rctx.committed_epoch, 0);
            if (cut >= 40 && !strstr(err.msg, "no consistent state"))
                fail_msg("cut at %zu: '%s'", cut, err.msg);
            refused++;
        } else {
            if (rc)
                fail_msg("cut at %zu: %s", cut, err.msg);
            assert_int_equal(rctx.result, RM_RESTORE_FAILOVER);
            if (rctx.committed_epoch != k)
                fail_msg("cut at %zu: committed %llu, expected %u", cut,
                         (unsigned long long)rctx.committed_epoch, k);
            if (memcmp(r->pages, snaps.pages[k - 1], NP * RM_PAGE_SIZE))
                fail_msg("cut at %zu: replica is not checkpoint %u", cut, k);
            assert_int_equal(r->vcpu_state, snaps.vcpu_state[k - 1]);
            assert_true(r->completed);
            failovers++;
        }
        mem_replica_free(r);
    }
    assert_true(refused > 0);
    assert_true(failovers > 0);
    tu_snapshots_free(&snaps);
    rm_buf_free(&out);
    mem_guest_free(g);
}

static void test_every_cut_plain(void **s) { (void)s; run(false); }
static void test_every_cut_compressed(void **s) { (void)s; run(true); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cut_plain),
        cmocka_unit_test(test_every_cut_compressed),
    };

    tu_case_filter();

    return cmocka_run_group_tests(tests, NULL, NULL);
}
