/* SPDX-License-Identifier: MIT */
/*
 * remus reprotect [OPTIONS] NAME HOST:PORT: protect a running VM again
 * (failback: after a failover, the replica that took over, in the `remus
 * receive` process that runs it; or a VM whose secondary was lost, in its
 * `remus protect`) to a new or repaired secondary, with a full resync, in
 * one command.  remus reprotect --stop NAME ends it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctlsock.h"
#include "cli/cli.h"
#include "common/net.h"
#include "proto/timing.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus reprotect [OPTIONS] NAME HOST:PORT\n"
            "       remus reprotect --stop NAME\n"
            "\n"
            "Protect the running VM NAME (KVM, or a Xen domain) again, from\n"
            "the process that runs or holds it (after a failover: the `remus\n"
            "receive` whose replica took over; a `remus protect` that lost\n"
            "its secondary; a `remus run`), to the `remus receive` at\n"
            "HOST:PORT: a full resync, then a checkpoint every interval with\n"
            "the VM's output held until acknowledged, as `remus protect`.\n"
            "Returns once the full resync is acknowledged; protection goes on\n"
            "in the VM's process.  --stop ends it cleanly (the secondary\n"
            "discards its replica).\n"
            "\n"
            "  -i MS                    checkpoint interval (default 200)\n"
            "  -F -n                    no output buffering (unsafe)\n"
            "  -F -d                    disks not replicated (unsafe; a Xen\n"
            "                           domain whose disks are not served by\n"
            "                           `remus disk serve` needs it)\n"
            "  --heartbeat MS           heartbeat period (default 100)\n"
            "  --heartbeat-timeout MS   secondary lost after (default 1000,\n"
            "                           or -i + 4 heartbeats when longer)\n"
            "  --colo                   COLO mode (as `remus protect --colo`,\n"
            "                           its defaults; the secondary runs\n"
            "                           `remus receive --colo`)\n"
            "  --insecure               without a key (else the key the\n"
            "                           VM's process ran with, or this host's\n"
            "                           default: $REMUS_KEY_FILE,\n"
            "                           /etc/remus/remus.key)\n"
            "Exit status: 0 protected again (or stopped); 1 failed; 2 usage.\n");
}

int cmd_reprotect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "stop", no_argument, NULL, 's' },
        { "insecure", no_argument, NULL, 0x301 },
        { "colo", no_argument, NULL, 0x302 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_hostport hp;
    struct rm_error err = { 0 };
    unsigned interval = 200, hb = 100, hbto = 0;
    bool unsafe = false, nonet = false, nodisk = false, stop = false;
    bool insecure = false;
    bool colo = false;
    unsigned long long epoch = 0, pause = 0, dirty = 0;
    char req[192], reply[600];
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:Fndh", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (cli_uint32("reprotect", "-i", optarg, 1,
                           CLI_MS_MAX, &interval))
                return RM_EXIT_USAGE;
            break;
        case 'F': unsafe = true; break;
        case 'n': nonet = true; break;
        case 'd': nodisk = true; break;
        case 'H':
            if (cli_uint32("reprotect", "--heartbeat", optarg, 1,
                           CLI_MS_MAX, &hb))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (cli_uint32("reprotect", "--heartbeat-timeout", optarg, 2,
                           CLI_MS_MAX, &hbto))
                return RM_EXIT_USAGE;
            break;
        case 's': stop = true; break;
        case 0x301: insecure = true; break;
        case 0x302: colo = true; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("reprotect", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (stop) {
        if (argc - optind != 1)
            return cli_usage_error("reprotect", "--stop takes one NAME");
        if (rm_ctlsock_request(argv[optind], "unprotect", -1, reply,
                             sizeof(reply), &err))
            return cli_fail("reprotect", "%s", rm_error_str(&err));
        fprintf(stderr, "remus reprotect: '%s': protection ended after %s\n",
                argv[optind], reply + 3);
        return RM_EXIT_OK;
    }
    if (colo && nonet)
        return cli_usage_error("reprotect", "--colo compares the VM's output "
                               "with the replica's: not with -n");
    if ((nonet || nodisk) && !unsafe)
        return cli_usage_error("reprotect", "%s%sneeds -F (unsafe mode): "
                               "without %s the protection does not hold "
                               "its promise", nonet ? "-n " : "",
                               nodisk ? "-d " : "",
                               nonet ? "output buffering" :
                               "disk replication");
    if (colo && nodisk)
        return cli_usage_error("reprotect", "--colo with -d: the replica's "
                               "disk would not be the primary's");
    if (argc - optind != 2)
        return cli_usage_error("reprotect", "expected NAME and HOST:PORT");
    if (!hbto)                 /* not given: as protect (proto/timing.h) */
        hbto = rm_timing_default_timeout(interval, hb);
    if (hbto <= hb)
        return cli_usage_error("reprotect", "--heartbeat-timeout %u must "
                               "exceed --heartbeat %u", hbto, hb);
    if (rm_parse_hostport(argv[optind + 1], &hp, &err))
        return cli_usage_error("reprotect", "%s", rm_error_str(&err));
    snprintf(req, sizeof(req), "protect %s %u %u %u %d %s%s%s",
             argv[optind + 1], interval, hb, hbto, nonet ? 0 : 1,
             insecure ? "insecure" : "keyed", colo ? " colo" : "",
             nodisk ? " nodisk" : "");
    if (rm_ctlsock_request(argv[optind], req, -1, reply, sizeof(reply), &err))
        return cli_fail("reprotect", "'%s' is not protected: %s",
                        argv[optind], rm_error_str(&err));
    sscanf(reply + 3, "%llu %llu %llu", &epoch, &pause, &dirty);
    fprintf(stderr, "remus reprotect: '%s' is protected again by %s: full "
            "resync of %llu pages acknowledged as checkpoint %llu (pause "
            "%llu us); protection goes on in the VM's process\n",
            argv[optind], argv[optind + 1], dirty, epoch, pause);
    return RM_EXIT_OK;
}
