/* SPDX-License-Identifier: MIT */
/*
 * remus disk serve IMAGE --socket PATH: serve a disk image over NBD
 * (nbd/), the disk that a protection of a Xen guest replicates.
 */
#define RM_LOG_PREFIX "disk"
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "nbd/attach.h"
#include "nbd/kernel.h"
#include "nbd/server.h"

static volatile sig_atomic_t stop_serving;

static void on_signal(int sig)
{
    (void)sig;
    stop_serving = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus disk serve IMAGE (--socket PATH | --device /dev/nbdN)\n"
            "                        [--name NAME] [--read-only] [--timeout MS]\n"
            "                        [--control NAME | --no-control]\n"
            "                        [--cache auto|direct|page] [--hold-while FILE]\n"
            "\n"
            "Serve IMAGE (a raw image file or a block device) over NBD on the\n"
            "Unix socket PATH (mode 0600), one client at a time, or as the\n"
            "kernel's NBD device /dev/nbdN (modprobe nbd; e.g. a Xen guest's\n"
            "phy:/dev/nbdN disk), until SIGINT/SIGTERM (which disconnects the\n"
            "device).  Writes go through to IMAGE before they are\n"
            "answered (FUA and FLUSH: fdatasync).  Any NBD client can use\n"
            "it, e.g. `qemu-io -f raw nbd+unix:///?socket=PATH` or\n"
            "`nbdinfo nbd+unix:///?socket=PATH`.\n"
            "\n"
            "  --socket PATH   where to listen (a stale socket file is\n"
            "                  replaced; a live server's is refused)\n"
            "  --device DEV    attach the kernel's NBD device DEV instead\n"
            "                  (this process's memory is locked: mlockall)\n"
            "  --name NAME     the export's name (default: \"\"; a client\n"
            "                  asking for \"\" gets it too)\n"
            "  --read-only     refuse writes (EPERM)\n"
            "  --timeout MS    a begun request or negotiation must arrive\n"
            "                  whole within MS (default 30000); an idle\n"
            "                  client may wait as long as it likes\n"
            "  --control NAME  the control socket a protection attaches to\n"
            "                  ($REMUS_RUN_DIR/NAME.sock; default with\n"
            "                  --device /dev/nbdN: disk-nbdN, which is where\n"
            "                  `remus protect --xen` looks for a guest's\n"
            "                  phy:/dev/nbdN disk); while one is attached,\n"
            "                  every change reaches its disk-epoch log before\n"
            "                  it is answered (none with --read-only)\n"
            "  --no-control    no control socket: a plain disk server\n"
            "  --cache MODE    direct: IMAGE is also opened O_DIRECT and a\n"
            "                  request aligned to 4 KiB bypasses the page\n"
            "                  cache (no dirty pages of ours for the host's\n"
            "                  reclaim to wait on); a file system that\n"
            "                  refuses O_DIRECT is an error; page: through\n"
            "                  the page cache; auto (default): direct where\n"
            "                  the file system allows it, else page (logged)\n"
            "  --hold-while FILE  while FILE exists, each request waits\n"
            "                  before it is served: a stalled disk, for\n"
            "                  tests and drills (the guest's I/O stays in\n"
            "                  flight; stopping this process with a signal\n"
            "                  instead would end the kernel's NBD device)\n"
            "\n"
            "Exit status: 0 when stopped by a signal; 1 on an error; 2 for a\n"
            "usage error.\n");
}

static int serve(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "device", required_argument, NULL, 'd' },
        { "name", required_argument, NULL, 'n' },
        { "read-only", no_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "control", required_argument, NULL, 'c' },
        { "no-control", no_argument, NULL, 'C' },
        { "cache", required_argument, NULL, 'm' },
        { "hold-while", required_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_nbd_params p = { .cache = RM_NBD_CACHE_AUTO };
    struct rm_nbd_export *e = NULL;
    struct rm_nbd_server *s = NULL;
    struct rm_error err = { 0 };
    const char *sock = NULL, *dev = NULL, *ctl = NULL;
    char ctl_name[64];
    bool no_ctl = false;
    struct rm_nbd_attach_point *ap = NULL;
    struct rm_nbd_kernel *k = NULL;
    struct rm_nbd_conn_stats st = { 0 };
    int kfd = -1;
    struct sigaction sa;
    int c, ret = RM_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'd': dev = optarg; break;
        case 'n': p.name = optarg; break;
        case 'r': p.read_only = true; break;
        case 'c': ctl = optarg; break;
        case 'C': no_ctl = true; break;
        case 'H': p.hold_while = optarg; break;
        case 'm':
            if (!strcmp(optarg, "auto"))
                p.cache = RM_NBD_CACHE_AUTO;
            else if (!strcmp(optarg, "direct"))
                p.cache = RM_NBD_CACHE_DIRECT;
            else if (!strcmp(optarg, "page"))
                p.cache = RM_NBD_CACHE_PAGE;
            else
                return cli_usage_error("disk serve", "--cache '%s': expected "
                                       "auto, direct or page", optarg);
            break;
        case 't':
            if (cli_uint32("disk serve", "--timeout", optarg, 1, CLI_MS_MAX,
                           &p.request_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("disk serve", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind == argc)
        return cli_usage_error("disk serve", "expected the image to serve");
    if (optind != argc - 1)
        return cli_usage_error("disk serve", "unexpected argument '%s'",
                               argv[optind + 1]);
    if (!sock == !dev)
        return cli_usage_error("disk serve", "give one of --socket PATH and "
                               "--device /dev/nbdN");
    if (ctl && no_ctl)
        return cli_usage_error("disk serve", "--control and --no-control "
                               "exclude each other");
    if (!ctl && !no_ctl && dev && !p.read_only) {
        if (rm_nbd_attach_name(dev, ctl_name, sizeof(ctl_name), &err))
            return cli_usage_error("disk serve", "%s (or give --control "
                                   "NAME)", rm_error_str(&err));
        ctl = ctl_name;
    }
    if (ctl && p.read_only)
        return cli_usage_error("disk serve", "--control with --read-only: "
                               "a read-only disk has nothing to replicate");
    p.image = argv[optind];
    if (rm_nbd_export_open(&e, &p, &err) ||
        (ctl && rm_nbd_attach_point_open(&ap, e, p.image, ctl, &err)) ||
        (sock && rm_nbd_server_open_unix(&s, e, sock, &err)) ||
        (dev && rm_nbd_kernel_attach(&k, dev, e, &kfd, &err))) {
        ret = cli_fail("disk serve", "%s", rm_error_str(&err));
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    LOG_INFO("serving '%s' (%" PRIu64 " bytes%s%s) on %s%s%s", p.image,
             rm_nbd_export_size(e), p.read_only ? ", read-only" : "",
             rm_nbd_export_direct(e) ? ", O_DIRECT" : ", page cache",
             sock ? sock : dev, ctl ? ", protections attach at " : "",
             ctl ? ctl : "");
    if (k && rm_nbd_kernel_serving_thread(&err))
        LOG_WARN("%s", rm_error_str(&err));
    if (s ? rm_nbd_server_run(s, &stop_serving, &err)
          : rm_nbd_serve_transmission(e, kfd, &stop_serving, &st, &err))
        ret = cli_fail("disk serve", "%s", rm_error_str(&err));
    else
        ret = RM_EXIT_OK;
    if (k)
        LOG_INFO("%s: %" PRIu64 " requests (%" PRIu64 " reads, %" PRIu64
                 " writes, %" PRIu64 " flushes, %" PRIu64 " trims, %" PRIu64
                 " errors)", dev, st.requests, st.reads, st.writes,
                 st.flushes, st.trims, st.errors);
out:
    rm_nbd_attach_point_close(ap);
    rm_nbd_kernel_detach(k);
    rm_nbd_server_close(s);
    rm_nbd_export_close(e);
    return ret;
}

int cmd_disk(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return serve(argc - 1, argv + 1);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RM_EXIT_USAGE : RM_EXIT_OK;
    }
    return cli_usage_error("disk", "unknown subcommand '%s' (serve)",
                           argv[1]);
}
