/* SPDX-License-Identifier: MIT */
/*
 * main() of a cmocka unit test whose cases run real guests on the KVM
 * backend.  Include after <cmocka.h>.
 */
#ifndef REMUS_TESTS_KVM_UNIT_H
#define REMUS_TESTS_KVM_UNIT_H

#include <stddef.h>

#include "common/log.h"
#include "tests/support/case_filter.h"
#include "tests/support/testutil.h"

/*
 * Quiet logging; /dev/kvm and a private network namespace
 * (tu_kvm_test_setup: @image gets the guest's path; 77, a skip, without
 * /dev/kvm, which tests/run-tests.sh counts as a failure where /dev/kvm
 * exists); the case filter; then the @n @tests as the group @name.
 */
static inline int tu_kvm_unit_main(const char *name,
                                   const struct CMUnitTest *tests, size_t n,
                                   char *image, size_t len)
{
    int rc;

    rm_log_init(RM_LOG_ERROR, NULL);
    rc = tu_kvm_test_setup(image, len);
    if (rc)
        return rc;
    tu_case_filter();
    return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}

#define TU_KVM_UNIT_MAIN(tests, image)                                     \
    tu_kvm_unit_main(#tests, tests, sizeof(tests) / sizeof((tests)[0]),    \
                     image, sizeof(image))

#endif
