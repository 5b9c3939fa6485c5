/* SPDX-License-Identifier: MIT */
/*
 * remus run [OPTIONS]: start a guest on the embedded KVM micro-VMM and run
 * it until it halts or SIGINT/SIGTERM.
 */
#define RM_LOG_PREFIX "run"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/kvm/guestcfg.h"
#include "backends/kvm/vmctl.h"
#include "cli/cli.h"
#include "common/log.h"

static struct rm_vm *run_vm;   /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (run_vm)
        rm_vm_request_stop(run_vm);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus run [OPTIONS]\n"
            "\n"
            "Start a guest on the embedded KVM micro-VMM and run it until it\n"
            "halts or the process gets SIGINT/SIGTERM.\n"
            "\n" RM_GUESTCFG_HELP
            "  --timeout SEC   stop the guest after SEC seconds\n"
            "\n"
            "Exit status: the guest's halt code (0..125), 0 when stopped by a\n"
            "signal or the timeout, 1 on an error or a guest crash, 2 usage.\n");
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        RM_GUESTCFG_OPTS,
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_guestcfg g;
    struct rm_error err = { 0 };
    struct rm_vm *vm = NULL;
    struct rm_vmctl *ctl = NULL;
    struct sigaction sa;
    int64_t code = 0;
    unsigned timeout_s = 0;          /* 0: none */
    int c, rc, ret = RM_EXIT_FAIL;

    rm_guestcfg_init(&g, argv[0]);
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return RM_EXIT_OK;
        }
        if (c == 't') {   /* seconds, as milliseconds in an int */
            if (cli_uint32("run", "--timeout", optarg, 1, INT_MAX / 1000,
                           &timeout_s))
                return RM_EXIT_USAGE;
            continue;
        }
        rc = rm_guestcfg_opt(&g, c, optarg, &err);
        if (rc < 0) {
            ret = cli_usage_error("run", "%s", rm_error_str(&err));
            goto out;
        }
        if (rc == 0) {
            ret = cli_usage_error("run", "unknown option '%s'",
                                  argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc) {
        ret = cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!g.vm.image) {
        ret = cli_usage_error("run", "no guest image: give --image or "
                              "--config (build/guest/remus-guest.elf is the "
                              "default when it exists)");
        goto out;
    }
    rc = rm_vm_create(&g.vm, &vm, &err);
    if (rc) {
        ret = cli_fail("run", "%s", rm_error_str(&err));
        goto out;
    }
    run_vm = vm;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ctl = rm_vmctl_start(vm, g.vm.name, &err);
    if (!ctl)
        LOG_WARN("no control socket (remus save will not reach this VM): "
                 "%s", rm_error_str(&err));
    rc = rm_vm_start(vm, &err);
    if (rc) {
        ret = cli_fail("run", "%s", rm_error_str(&err));
        goto out;
    }
    LOG_INFO("guest '%s' started: %" PRIu64 " MiB, %u vcpus",
             g.vm.name, g.vm.mem_bytes >> 20, g.vm.nr_vcpus);
    rc = rm_vm_wait(vm, timeout_s ? (int)(timeout_s * 1000) : -1, &code);
    if (rc == -ETIMEDOUT) {
        LOG_INFO("timeout: stopping the guest");
        ret = RM_EXIT_OK;
    } else if (rm_vm_end_kind(vm) == RM_VM_HALTED) {
        LOG_INFO("%s", rm_vm_end_reason(vm));
        ret = code < 0 || code > 125 ? RM_EXIT_FAIL : (int)code;
    } else if (rm_vm_end_kind(vm) == RM_VM_STOPPED) {
        LOG_INFO("stopped");
        ret = RM_EXIT_OK;
    } else {
        ret = cli_fail("run", "%s", rm_vm_end_reason(vm));
    }
out:
    rm_vmctl_stop(ctl);
    run_vm = NULL;
    rm_vm_destroy(vm);
    rm_guestcfg_free(&g);
    return ret;
}
