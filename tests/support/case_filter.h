/* SPDX-License-Identifier: MIT */
/*
 * One unit case alone: `make check T=test_auth C='*replay*'` runs the unit
 * binary with TEST_CASE set; every unit test's main() calls
 * tu_case_filter() before cmocka_run_group_tests().  Include after
 * <cmocka.h>.
 */
#ifndef REMUS_TESTS_CASE_FILTER_H
#define REMUS_TESTS_CASE_FILTER_H

#include <stdlib.h>

static inline void tu_case_filter(void)
{
    const char *pattern = getenv("TEST_CASE");

    if (pattern && *pattern)
        cmocka_set_test_filter(pattern);
}

#endif
