/* SPDX-License-Identifier: MIT */
/*
 * remus netbuf: the Xen output buffering (IFB + ingress redirect + plug
 * qdisc) as an operator's tool: check that a host can hold a VIF's output
 * back, and remove what crashed runs left.
 */
#define RM_LOG_PREFIX "netbuf"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/io.h"
#include "common/log.h"
#include "netbuf/netbuf_plug.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: remus netbuf check [--ifb IFB] [--no-plug] [--hold S] [--steps] VIF\n"
            "       remus netbuf cleanup [VIF]\n"
            "\n"
            "Xen output buffering, as `remus protect` sets it up for a VM's\n"
            "backend interface VIF (e.g. vif3.0): an IFB device, an ingress\n"
            "qdisc on VIF with a match-all u32 filter (every protocol) that\n"
            "redirects to the IFB, and a plug qdisc on the IFB.  Over\n"
            "rtnetlink (libnl-3); needs CAP_NET_ADMIN.\n"
            "\n"
            "  check      set it all up, buffer an epoch and release it, tear\n"
            "             it down; says which step fails and why (a kernel\n"
            "             without sch_plug is named as such)\n"
            "    --ifb IFB    use this existing IFB device (default: create\n"
            "                 rmifb<ifindex of VIF>)\n"
            "    --no-plug    stop after the redirect (kernels without plug)\n"
            "    --hold S     keep the setup S seconds before tearing it down\n"
            "                 (SIGINT/SIGTERM end it early, cleanly)\n"
            "    --epochs N --interval MS  then run N epochs of MS each: the\n"
            "                 VIF's input is held and let out at each epoch's\n"
            "                 end, as under protection (a drill for the plug)\n"
            "    --steps      then read steps from standard input, one a line:\n"
            "                 'buffer' ends the current epoch (what the VIF\n"
            "                 received so far is one epoch, still held),\n"
            "                 'release' lets the oldest ended epoch out,\n"
            "                 'discard' drops everything held; each step is\n"
            "                 answered 'netbuf: STEP done' (tests drive the\n"
            "                 plug this way)\n"
            "  cleanup    remove the IFBs and ingress redirects of remus runs\n"
            "             that died (of VIF only, if given)\n");
}

static volatile sig_atomic_t stop_req;

static void on_signal(int sig)
{
    (void)sig;
    stop_req = 1;
}

/* --steps: buffer / release / discard as standard input says, one a line,
 * until end of input or a stop signal.  Returns 0 or -errno of a step. */
static int run_steps(struct rm_netbuf *nb, uint64_t epoch)
{
    uint64_t ended = 0;   /* the newest ended, not yet released epoch */
    char line[64];
    int rc = 0;

    while (!stop_req && rc == 0 && fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strcmp(line, "buffer")) {
            rc = rm_netbuf_start_epoch(nb, epoch);
            ended = epoch++;
        } else if (!strcmp(line, "release")) {
            rc = ended ? rm_netbuf_release(nb, ended) : 0;
            ended = 0;
        } else if (!strcmp(line, "discard")) {
            rc = rm_netbuf_discard(nb);
            ended = 0;
        } else if (line[0]) {
            fprintf(stderr, "netbuf: unknown step '%s' (buffer, release, "
                    "discard)\n", line);
            return -EINVAL;
        } else {
            continue;
        }
        if (rc == 0)
            printf("netbuf: %s done\n", line);
        fflush(stdout);
    }
    return rc;
}

static int check(int argc, char **argv)
{
    static const struct option opts[] = {
        { "ifb", required_argument, NULL, 'i' },
        { "no-plug", no_argument, NULL, 'n' },
        { "hold", required_argument, NULL, 'H' },
        { "epochs", required_argument, NULL, 'e' },
        { "interval", required_argument, NULL, 'I' },
        { "steps", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_netbuf_plug_cfg cfg = { 0 };
    struct rm_error err = { 0 };
    struct rm_netbuf *nb;
    struct sigaction sa;
    unsigned hold = 0, epochs = 0, interval_ms = 100;
    bool steps = false;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': cfg.ifb = optarg; break;
        case 'n': cfg.no_plug = true; break;
        case 's': steps = true; break;
        case 'H':
            if (cli_uint32("netbuf", "--hold", optarg, 0, 86400, &hold))
                return RM_EXIT_USAGE;
            break;
        case 'e':
            if (cli_uint32("netbuf", "--epochs", optarg, 0, 1000000,
                           &epochs))
                return RM_EXIT_USAGE;
            break;
        case 'I':
            if (cli_uint32("netbuf", "--interval", optarg, 1, 60000,
                           &interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        case ':':
            return cli_usage_error("netbuf", "%s needs a value",
                                   argv[optind - 1]);
        default:
            return cli_usage_error("netbuf", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("netbuf", "check needs one VIF");
    cfg.vif = argv[optind];

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    nb = rm_netbuf_plug_new(&cfg, &err);
    if (!nb)
        return cli_fail("netbuf", "%s", rm_error_str(&err));
    printf("netbuf: %s -> ingress qdisc + u32 match-all (all protocols) -> "
           "mirred redirect -> %s%s\n", cfg.vif, rm_netbuf_plug_ifb(nb),
           cfg.no_plug ? "" : " -> plug qdisc");
    rc = rm_netbuf_start_epoch(nb, 1);
    if (rc == 0)
        rc = rm_netbuf_release(nb, 1);
    if (rc) {
        rm_netbuf_free(nb);
        return cli_fail("netbuf", "buffering or releasing an epoch on %s "
                        "failed: %s", cfg.vif, strerror(-rc));
    }
    if (!cfg.no_plug)
        printf("netbuf: an epoch was buffered and released\n");
    fflush(stdout);
    if (epochs) {
        long e;

        for (e = 2; e < epochs + 2 && !stop_req; e++) {
            rm_sleep_ms(interval_ms);
            rc = rm_netbuf_start_epoch(nb, (uint64_t)e);
            if (rc == 0)
                rc = rm_netbuf_release(nb, (uint64_t)e);
            if (rc) {
                rm_netbuf_free(nb);
                return cli_fail("netbuf", "epoch %ld on %s failed: %s", e,
                                cfg.vif, strerror(-rc));
            }
        }
        printf("netbuf: %ld epochs of %u ms run\n", e - 2, interval_ms);
        fflush(stdout);
    }
    if (steps) {
        rc = run_steps(nb, (uint64_t)epochs + 2);
        if (rc) {
            rm_netbuf_free(nb);
            return cli_fail("netbuf", "a step on %s failed: %s", cfg.vif,
                            strerror(-rc));
        }
    }
    if (hold) {
        long ticks;

        if (!cfg.no_plug)
            rm_netbuf_passthrough(nb);   /* let traffic through meanwhile */
        for (ticks = 0; ticks < hold * 10 && !stop_req; ticks++)
            rm_sleep_ms(100);
    }
    rm_netbuf_free(nb);
    printf("netbuf: torn down\n");
    return RM_EXIT_OK;
}

static int cleanup(int argc, char **argv)
{
    struct rm_error err = { 0 };
    unsigned removed = 0;

    if (argc > 2)
        return cli_usage_error("netbuf", "cleanup takes at most one VIF");
    if (rm_netbuf_plug_cleanup_stale(argc == 2 ? argv[1] : NULL, &removed,
                                     &err))
        return cli_fail("netbuf", "%s", rm_error_str(&err));
    printf("netbuf: %u stale setup%s removed\n", removed,
           removed == 1 ? "" : "s");
    return RM_EXIT_OK;
}

int cmd_netbuf(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RM_EXIT_USAGE : RM_EXIT_OK;
    }
    if (!strcmp(argv[1], "check"))
        return check(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cleanup"))
        return cleanup(argc - 1, argv + 1);
    return cli_usage_error("netbuf", "unknown action '%s' (check, cleanup)",
                           argv[1]);
}
