/* SPDX-License-Identifier: MIT */
/*
 * remus restore FILE|- [OPTIONS]: restore a KVM VM from a stream and run it
 * in this process until it halts or SIGINT/SIGTERM;
 * remus restore --xen --config CFG FILE|-: a Xen domain
 * (backends/xen/xen_domain_sr.h).
 */
#define RM_LOG_PREFIX "restore"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/guestcfg.h"
#include "backends/kvm/kvm_disks.h"
#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmctl.h"
#include "backends/xen/xen_domain_sr.h"
#include "backends/xen/xl_config.h"
#include "cli/cli.h"
#include "common/log.h"

static struct rm_vm *restore_vm;

static void on_signal(int sig)
{
    (void)sig;
    if (restore_vm)
        rm_vm_request_stop(restore_vm);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus restore [OPTIONS] FILE|-\n"
            "\n"
            "Restore a VM saved by `remus save` (a remus KVM stream) and run it\n"
            "here until it halts or SIGINT/SIGTERM.  Memory, vCPUs, MAC and IP\n"
            "come from the stream; the host side is given here:\n"
            "\n"
            "  --name NAME     VM name (control socket for `remus save`)\n"
            "  --tap NAME      TAP interface for the guest NIC\n"
            "  --disk PATH     the image the saved VM's disk is restored\n"
            "                  into (the same size; the VM runs on it)\n"
            "  --console FILE  guest console log (default: stderr)\n"
            "  --paused        restore, validate and exit without running\n"
            "\n"
            "A corrupt or truncated stream is refused with the byte offset and\n"
            "the reason; no VM is left running.\n"
            "Exit status: the guest's halt code, 0 when stopped by a signal,\n"
            "1 on an error, 2 usage.\n");
}

int cmd_restore(int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, 'n' },
        { "tap", required_argument, NULL, 't' },
        { "console", required_argument, NULL, 'o' },
        { "paused", no_argument, NULL, 'p' },
        { "disk", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_kvm_restore_arg arg;
    struct rm_restore_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_vmctl *ctl = NULL;
    struct rm_disk_replica *disks = NULL;
    const char *disk = NULL;
    struct rm_src src;
    struct sigaction sa;
    bool paused = false;
    int64_t code = 0;
    int c, fd, rc, ret = RM_EXIT_FAIL;

    memset(&arg, 0, sizeof(arg));
    rm_vm_config_default(&arg.cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': arg.cfg.name = optarg; break;
        case 't': arg.cfg.tap = optarg; break;
        case 'o': arg.cfg.console_path = optarg; break;
        case 'p': paused = true; break;
        case 'd': disk = optarg; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("restore", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("restore", "expected one FILE (or -)");
    fd = cli_open_in(argv[optind]);
    if (fd < 0)
        return cli_fail("restore", "cannot open '%s': %s", argv[optind],
                        strerror(-fd));
    /* The saved disk, written into --disk as the file is read. */
    if (disk && rm_disk_replica_open_images(&disk, 1, true, &disks, &err)) {
        if (fd != STDIN_FILENO)
            close(fd);
        return cli_fail("restore", "%s", rm_error_str(&err));
    }
    arg.cfg.disk_override = disk;
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &rm_kvm_restore_ops;
    ctx.backend_arg = &arg;
    ctx.err = &err;
    ctx.disks = disks;
    rm_src_init_fd(&src, fd);
    rc = rm_restore(&ctx, &src);
    if (fd != STDIN_FILENO)
        close(fd);
    rm_disk_replica_close(disks);
    if (rc || ctx.result != RM_RESTORE_COMPLETE || !arg.vm) {
        rm_vm_destroy(arg.vm);
        return cli_fail("restore", "%s", rc ? rm_error_str(&err)
                        : "the stream is an incomplete checkpointed stream");
    }
    LOG_INFO("restored %" PRIu64 " pages; guest '%s' resumes",
             ctx.pages_applied, arg.cfg.name);
    if (paused) {
        rm_vm_destroy(arg.vm);
        return RM_EXIT_OK;
    }
    restore_vm = arg.vm;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ctl = rm_vmctl_start(arg.vm, arg.cfg.name, &err);
    if (!ctl)
        LOG_WARN("no control socket: %s", rm_error_str(&err));
    rc = rm_vm_start(arg.vm, &err);
    if (rc) {
        ret = cli_fail("restore", "%s", rm_error_str(&err));
        goto out;
    }
    rm_vm_wait(arg.vm, -1, &code);
    if (rm_vm_end_kind(arg.vm) == RM_VM_HALTED) {
        LOG_INFO("%s", rm_vm_end_reason(arg.vm));
        ret = code < 0 || code > 125 ? RM_EXIT_FAIL : (int)code;
    } else if (rm_vm_end_kind(arg.vm) == RM_VM_STOPPED) {
        ret = RM_EXIT_OK;
    } else {
        ret = cli_fail("restore", "%s", rm_vm_end_reason(arg.vm));
    }
out:
    rm_vmctl_stop(ctl);
    restore_vm = NULL;
    rm_vm_destroy(arg.vm);
    return ret;
}

/* ---------------------------------------------------------------- Xen */

static void xen_usage(FILE *out)
{
    fprintf(out,
            "usage: remus restore --xen --config CFG [--name NAME] [--paused]"
            " FILE|-\n"
            "\n"
            "Restore a Xen HVM/PVH or 64-bit PV guest from a libxc stream\n"
            "(`remus save --xen`, or the libxc part of `xl save`).  The domain is created\n"
            "paused from the guest's own xl config CFG (`xl create -p`: same\n"
            "memory layout, its devices on this host), filled from the\n"
            "stream, and unpaused.  A bad stream is refused with its byte\n"
            "offset and no domain is left behind.\n"
            "\n"
            "  --name NAME   domain name (default: the config's)\n"
            "  --paused      leave it paused\n");
}

int cmd_restore_xen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "config", required_argument, NULL, 'C' },
        { "name", required_argument, NULL, 'n' },
        { "paused", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_restore_result res;
    struct rm_xen_host *host = NULL;
    struct rm_error err = { 0 };
    const char *config = NULL, *name = NULL;
    char cfg_name[64];
    bool paused = false;
    int c, fd, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'C': config = optarg; break;
        case 'n': name = optarg; break;
        case 'p': paused = true; break;
        case 'h': xen_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("restore", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("restore", "expected one FILE (or -)");
    if (!config)
        return cli_usage_error("restore", "--config CFG (the guest's xl "
                               "config) is required with --xen");
    if (!name) {
        if (rm_xl_config_name(config, cfg_name, sizeof(cfg_name), &err))
            return cli_usage_error("restore", "%s", rm_error_str(&err));
        name = cfg_name;
    }
    fd = cli_open_in(argv[optind]);
    if (fd < 0)
        return cli_fail("restore", "cannot open '%s': %s", argv[optind],
                        strerror(-fd));
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_restore_domain(host, config, name, fd, paused, &res,
                                   &err);
    if (fd != STDIN_FILENO)
        close(fd);
    rm_xen_host_close(host);
    if (rc)
        return cli_fail("restore", "%s", rm_error_str(&err));
    fprintf(stderr, "remus restore: domain %u ('%s') restored: %" PRIu64
            " pages%s\n", res.domid, name, res.pages,
            paused ? "; paused" : "; running");
    return RM_EXIT_OK;
}
