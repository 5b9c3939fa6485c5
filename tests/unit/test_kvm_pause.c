/* SPDX-License-Identifier: MIT */
/*
 * The KVM backend's pause in parts (#21, goal 1): rm_vm_suspend_parts()
 * after each pause of an idle 2-vCPU guest splits rm_vm_pause() into the
 * kick, the last vCPU's wake, port I/O and state read, and its park; the
 * parts add up to the whole, and the state read is one of them (in the
 * pauses where it did not overlap the kick: an idle guest's vCPUs sleep
 * in their poll until kicked).
 * Prints the means: the bench's table in small.
 * Needs root and /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/kvm_unit.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "backends/kvm/vmm.h"
#include "common/io.h"
#include "common/log.h"
#include "tests/support/testutil.h"

static char image[PATH_MAX];

static void test_suspend_parts(void **state)
{
    struct rm_vm_config cfg;
    struct rm_error err = { 0 };
    struct rm_vm *vm = NULL;
    struct rm_vm_suspend_parts p, sum;
    const unsigned rounds = 30;
    unsigned i, with_state = 0;

    (void)state;
    rm_vm_config_default(&cfg);
    cfg.image = image;
    cfg.console_path = "/dev/null";
    cfg.nr_vcpus = 2;
    if (rm_vm_create(&cfg, &vm, &err))
        fail_msg("%s", rm_error_str(&err));
    assert_int_equal(rm_vm_suspend_parts(vm, &p), -ENODATA);
    assert_int_equal(rm_vm_start(vm, &err), 0);
    memset(&sum, 0, sizeof(sum));
    for (i = 0; i < rounds; i++) {
        rm_sleep_ms(5);
        assert_int_equal(rm_vm_pause(vm), 0);
        assert_int_equal(rm_vm_resume(vm), 0);
        assert_int_equal(rm_vm_suspend_parts(vm, &p), 0);
        assert_true(p.total > 0);
        assert_true(p.kick + p.wake + p.io + p.state + p.park == p.total);
        with_state += p.state > 0;
        sum.total += p.total;
        sum.kick += p.kick;
        sum.wake += p.wake;
        sum.io += p.io;
        sum.state += p.state;
        sum.park += p.park;
    }
    printf("idle 2-vCPU guest, %u pauses, means in us: suspend %.1f = kick "
           "%.1f + wake %.1f + port I/O %.1f + state %.1f + park %.1f\n",
           rounds, (double)sum.total / rounds / 1e3,
           (double)sum.kick / rounds / 1e3, (double)sum.wake / rounds / 1e3,
           (double)sum.io / rounds / 1e3, (double)sum.state / rounds / 1e3,
           (double)sum.park / rounds / 1e3);
    rm_vm_destroy(vm);
    assert_true(with_state > 0);      /* the state read is timed */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suspend_parts),
    };

    (void)argc;
    (void)argv;
    return TU_KVM_UNIT_MAIN(tests, image);
}
