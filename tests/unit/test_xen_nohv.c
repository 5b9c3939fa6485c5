/* SPDX-License-Identifier: MIT */
/*
 * The parts of the Xen backend that need no hypervisor: the name of a
 * guest's xl config (backends/xen/xl_config.h), what Xen's page-offline
 * status bits say of a frame (backends/xen/xen_offline.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenctrl.h>

#include "backends/xen/xen_offline.h"
#include "backends/xen/xl_config.h"
#include "tests/support/case_filter.h"

static char cfg_path[64];

static int make_file(void **state)
{
    int fd;

    (void)state;
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/remus-xlcfg.XXXXXX");
    fd = mkstemp(cfg_path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int drop_file(void **state)
{
    (void)state;
    unlink(cfg_path);
    return 0;
}

static void write_cfg(const char *text)
{
    FILE *f = fopen(cfg_path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* rm_xl_config_name on @text: its return, the name in @name. */
static int name_of(const char *text, char *name, size_t len,
                   struct rm_error *err)
{
    write_cfg(text);
    memset(name, 0, len);
    return rm_xl_config_name(cfg_path, name, len, err);
}

static void test_name_forms(void **state)
{
    struct rm_error err = { 0 };
    char name[64];

    (void)state;
    assert_int_equal(name_of("name = \"g1\"\n", name, sizeof(name), &err),
                     0);
    assert_string_equal(name, "g1");
    assert_int_equal(name_of("memory = 128\n  name='pv 2'\nname = \"x\"\n",
                             name, sizeof(name), &err), 0);
    assert_string_equal(name, "pv 2");       /* the first one counts */
    assert_int_equal(name_of("# name = \"no\"\nnamespace = \"no\"\n"
                             "name = \"\"\nname = \"yes\"\n", name,
                             sizeof(name), &err), 0);
    assert_string_equal(name, "yes");        /* comments, others, empty */
}

static void test_no_name(void **state)
{
    struct rm_error err = { 0 };
    char name[8];

    (void)state;
    /* One that does not fit is skipped, as is one without quotes. */
    assert_int_equal(name_of("name = \"longer-than-8\"\nname = g1\n", name,
                             sizeof(name), &err), -ENOENT);
    assert_non_null(strstr(rm_error_str(&err), "has no name"));
    assert_non_null(strstr(rm_error_str(&err), cfg_path));
}

static void test_unreadable(void **state)
{
    struct rm_error err = { 0 };
    char name[64];

    (void)state;
    assert_int_equal(rm_xl_config_name("/nonexistent/remus.cfg", name,
                                       sizeof(name), &err), -ENOENT);
    assert_non_null(strstr(rm_error_str(&err),
                           "cannot read '/nonexistent/remus.cfg'"));
}

static void test_frame_state(void **state)
{
    (void)state;
    assert_int_equal(rm_xen_frame_state_of(0), RM_XEN_FRAME_ONLINE);
    assert_int_equal(rm_xen_frame_state_of(PG_OFFLINE_STATUS_BROKEN),
                     RM_XEN_FRAME_ONLINE);
    assert_int_equal(rm_xen_frame_state_of(PG_OFFLINE_STATUS_OFFLINE_PENDING),
                     RM_XEN_FRAME_PENDING);
    assert_int_equal(rm_xen_frame_state_of(PG_OFFLINE_STATUS_OFFLINED),
                     RM_XEN_FRAME_OFFLINE);
    /* Offline wins over a pending mark still reported with it. */
    assert_int_equal(rm_xen_frame_state_of(PG_OFFLINE_STATUS_OFFLINED |
                                           PG_OFFLINE_STATUS_OFFLINE_PENDING |
                                           PG_OFFLINE_STATUS_BROKEN),
                     RM_XEN_FRAME_OFFLINE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_name_forms, make_file,
                                        drop_file),
        cmocka_unit_test_setup_teardown(test_no_name, make_file, drop_file),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_frame_state),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
