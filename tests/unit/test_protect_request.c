/* SPDX-License-Identifier: MIT */
/* The control socket's "protect" request (primary/protect_request.h): what
 * `remus reprotect` writes is what the VM's process reads, every option
 * included; a bad request is refused naming what is wrong; the settings
 * reach the protection as `remus protect` sets them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/ctlsock.h"
#include "primary/protect.h"
#include "primary/protect_request.h"
#include "tests/support/case_filter.h"

static void assert_same(const struct rm_protect_request *a,
                        const struct rm_protect_request *b)
{
    assert_string_equal(a->peer, b->peer);
    assert_int_equal(a->interval_ms, b->interval_ms);
    assert_int_equal(a->hb_ms, b->hb_ms);
    assert_int_equal(a->hb_timeout_ms, b->hb_timeout_ms);
    assert_int_equal(a->insecure, b->insecure);
    assert_int_equal(a->again.output, b->again.output);
    assert_int_equal(a->again.no_disk, b->again.no_disk);
    assert_true(a->again.netbuf_max_bytes == b->again.netbuf_max_bytes);
    assert_int_equal(a->again.compare_timeout_ms, b->again.compare_timeout_ms);
    assert_int_equal(a->no_compress, b->no_compress);
    assert_int_equal(a->colo_max_interval_ms, b->colo_max_interval_ms);
    assert_int_equal(a->colo_fallback_set, b->colo_fallback_set);
    assert_int_equal(a->colo_fallback_rate, b->colo_fallback_rate);
    assert_int_equal(a->colo_fallback_hold_ms, b->colo_fallback_hold_ms);
}

static void round_trip(const struct rm_protect_request *r, const char *want)
{
    struct rm_protect_request back;
    struct rm_error err = { 0 };
    char line[RM_CTLSOCK_REQ_MAX + 1];

    assert_int_equal(rm_protect_request_format(r, line, sizeof(line), &err),
                     0);
    if (want)
        assert_string_equal(line, want);
    assert_int_equal(rm_protect_request_parse(line, &back, &err), 0);
    assert_same(r, &back);
}

/* Every setting comes back as it went, the longest request included. */
static void test_round_trip(void **state)
{
    struct rm_protect_request r;

    (void)state;
    rm_protect_request_init(&r);
    strcpy(r.peer, "10.0.0.2:7070");
    round_trip(&r, "protect 10.0.0.2:7070 200 100 1000 1 keyed");

    r.again.output = RM_AGAIN_DIRECT;
    r.again.no_disk = true;
    r.insecure = true;
    r.no_compress = true;
    round_trip(&r, "protect 10.0.0.2:7070 200 100 1000 0 insecure nodisk "
               "nocompress");

    rm_protect_request_init(&r);
    strcpy(r.peer, "[fe80::1]:7070");
    r.interval_ms = 20;
    r.hb_ms = 50;
    r.hb_timeout_ms = 3000;
    r.again.netbuf_max_bytes = 1 << 20;
    round_trip(&r, "protect [fe80::1]:7070 20 50 3000 1 keyed "
               "netbuf-max=1048576");

    r.again.output = RM_AGAIN_COLO;
    r.again.compare_timeout_ms = 50;
    r.colo_max_interval_ms = 300;
    r.colo_fallback_set = true;
    r.colo_fallback_rate = 0;         /* 0: never, and it is sent */
    r.colo_fallback_hold_ms = 4000;
    round_trip(&r, "protect [fe80::1]:7070 20 50 3000 1 keyed colo "
               "netbuf-max=1048576 compare-timeout=50 colo-max-interval=300 "
               "colo-fallback=0 colo-fallback-hold=4000");

    /* the longest: every field at its widest */
    memset(r.peer, 'h', sizeof(r.peer) - 6);
    strcpy(r.peer + sizeof(r.peer) - 6, ":7070");
    r.interval_ms = r.hb_ms = 3599999;
    r.hb_timeout_ms = 3600000;
    r.insecure = true;
    r.no_compress = true;
    r.again.netbuf_max_bytes = UINT64_MAX;
    r.again.compare_timeout_ms = r.colo_max_interval_ms = 3600000;
    r.colo_fallback_rate = 100000;
    r.colo_fallback_hold_ms = 3600000;
    round_trip(&r, NULL);
}

/* Refused, naming the word or the rule. */
static void test_refusals(void **state)
{
    static const struct {
        const char *line, *why;
    } cases[] = {
        { "protect 127.0.0.1:9 10 50 3000 1", "not 'protect" },
        { "protect 127.0.0.1:9 10 50 3000 2 keyed", "not 'protect" },
        { "protect 127.0.0.1:9 10 50 3000 1 secret", "not 'protect" },
        { "protect 127.0.0.1:9 0 50 3000 1 keyed", "interval 0 ms" },
        { "protect 127.0.0.1:9 10 50 50 1 keyed", "must exceed" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed nodisks",
          "unknown flag 'nodisks'" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed nodisk nodisk",
          "nodisk given twice" },
        { "protect 127.0.0.1:9 10 50 3000 0 keyed colo",
          "colo with the output not held" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo nodisk",
          "colo with nodisk" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed compare-timeout=5",
          "compare-timeout is for COLO" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo-fallback=0",
          "colo-fallback is for COLO" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo compare-timeout=0",
          "'compare-timeout=0': not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo compare-timeout=9x",
          "'compare-timeout=9x': not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo compare-timeout=",
          "not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo "
          "colo-max-interval=3600001", "not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo colo-fallback=100001",
          "not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed colo compare-timeout=5 "
          "compare-timeout=6", "compare-timeout given twice" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed netbuf-max=4095",
          "netbuf-max 4095 below 4096" },
        { "protect 127.0.0.1:9 10 50 3000 0 keyed netbuf-max=8192",
          "netbuf-max with the output not held" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed "
          "netbuf-max=18446744073709551616", "not a value" },
        { "protect 127.0.0.1:9 10 50 3000 1 keyed netbuf-max=-1",
          "not a value" },
    };
    unsigned i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rm_protect_request r;
        struct rm_error err = { 0 };

        if (rm_protect_request_parse(cases[i].line, &r, &err) == 0)
            fail_msg("accepted: %s", cases[i].line);
        if (!strstr(rm_error_str(&err), cases[i].why))
            fail_msg("'%s' refused as '%s', not '%s'", cases[i].line,
                     rm_error_str(&err), cases[i].why);
    }
}

/* What reaches the protection: as `remus protect` sets it. */
static void test_apply(void **state)
{
    struct rm_protect_request r;
    struct rm_protect_cfg pc;

    (void)state;
    rm_protect_request_init(&r);
    strcpy(r.peer, "h:1");
    r.interval_ms = 40;
    r.hb_ms = 20;
    r.hb_timeout_ms = 900;
    rm_protect_cfg_init(&pc);
    rm_protect_request_apply(&r, &pc);
    assert_int_equal(pc.interval_ms, 40);
    assert_int_equal(pc.hb_interval_ms, 20);
    assert_int_equal(pc.hb_timeout_ms, 900);
    assert_true(pc.compress);
    assert_false(pc.colo);

    r.no_compress = true;
    rm_protect_cfg_init(&pc);
    rm_protect_request_apply(&r, &pc);
    assert_false(pc.compress);

    /* COLO, its options not given: no compression, the fallback rate
     * 1000 / interval, the rest COLO's defaults (0) */
    rm_protect_request_init(&r);
    strcpy(r.peer, "h:1");
    r.interval_ms = 40;
    r.again.output = RM_AGAIN_COLO;
    rm_protect_cfg_init(&pc);
    rm_protect_request_apply(&r, &pc);
    assert_true(pc.colo);
    assert_false(pc.compress);
    assert_int_equal(pc.colo_fallback_rate, 25);
    assert_int_equal(pc.colo_max_interval_ms, 0);
    assert_int_equal(pc.colo_fallback_hold_ms, 0);
    r.interval_ms = 1500;
    rm_protect_request_apply(&r, &pc);
    assert_int_equal(pc.colo_fallback_rate, 1);

    /* ... and given */
    r.colo_max_interval_ms = 300;
    r.colo_fallback_set = true;
    r.colo_fallback_rate = 0;
    r.colo_fallback_hold_ms = 4000;
    rm_protect_request_apply(&r, &pc);
    assert_int_equal(pc.colo_max_interval_ms, 300);
    assert_int_equal(pc.colo_fallback_rate, 0);
    assert_int_equal(pc.colo_fallback_hold_ms, 4000);
}

/* A request too long for the control socket is refused by format. */
static void test_too_long(void **state)
{
    struct rm_protect_request r;
    struct rm_error err = { 0 };
    char line[50];   /* the request without its last flag fits */

    (void)state;
    rm_protect_request_init(&r);
    strcpy(r.peer, "127.0.0.1:7070");
    r.again.netbuf_max_bytes = 1 << 20;
    assert_int_equal(rm_protect_request_format(&r, line, sizeof(line), &err),
                     -ENOSPC);
    assert_non_null(strstr(rm_error_str(&err), "does not fit"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_too_long),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
