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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctlsock.h"
#include "cli/cli.h"
#include "common/net.h"
#include "primary/protect_request.h"
#include "proto/timing.h"

#define CMD "reprotect"

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
            "  -u                       no checkpoint compression\n"
            "  -F -n                    no output buffering (unsafe)\n"
            "  -F -d                    disks not replicated (unsafe; a Xen\n"
            "                           domain whose disks are not served by\n"
            "                           `remus disk serve` needs it)\n"
            "  --heartbeat MS           heartbeat period (default 100)\n"
            "  --heartbeat-timeout MS   secondary lost after (default 1000,\n"
            "                           or -i + 4 heartbeats when longer)\n"
            "  --netbuf-max-bytes N     bound on held output (KVM; default\n"
            "                           16 MiB)\n"
            "  --colo                   COLO mode (as `remus protect --colo`;\n"
            "                           the secondary runs `remus receive\n"
            "                           --colo`), with, as there:\n"
            "  --compare-timeout MS     (default 20)\n"
            "  --colo-max-interval MS   (default 2000)\n"
            "  --colo-fallback N        (default 1000 / -i; 0: never)\n"
            "  --colo-fallback-hold MS  (default 10000)\n"
            "  --insecure               without a key (else the key the\n"
            "                           VM's process ran with, or this host's\n"
            "                           default: $REMUS_KEY_FILE,\n"
            "                           /etc/remus/remus.key)\n"
            "Each option not given takes `remus protect`'s default, not\n"
            "the first protection's (but for the disk buffer and Xen's\n"
            "suspend timeout, which are the VM's process's own).\n"
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
        { "netbuf-max-bytes", required_argument, NULL, 0x303 },
        { "compare-timeout", required_argument, NULL, 0x304 },
        { "colo-max-interval", required_argument, NULL, 0x305 },
        { "colo-fallback", required_argument, NULL, 0x306 },
        { "colo-fallback-hold", required_argument, NULL, 0x307 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_protect_request rq;
    struct rm_hostport hp;
    struct rm_error err = { 0 };
    unsigned hbto = 0;
    unsigned long long nb_max = 0;
    bool unsafe = false, nonet = false, stop = false, colo = false;
    const char *colo_only = NULL;
    unsigned long long epoch = 0, pause = 0, dirty = 0;
    char req[RM_CTLSOCK_REQ_MAX + 1], reply[600];
    int c;

    rm_protect_request_init(&rq);
    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:Fnduh", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (cli_uint32(CMD, "-i", optarg, 1, CLI_MS_MAX, &rq.interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 'F': unsafe = true; break;
        case 'n': nonet = true; break;
        case 'd': rq.again.no_disk = true; break;
        case 'u': rq.no_compress = true; break;
        case 'H':
            if (cli_uint32(CMD, "--heartbeat", optarg, 1, CLI_MS_MAX,
                           &rq.hb_ms))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (cli_uint32(CMD, "--heartbeat-timeout", optarg, 2, CLI_MS_MAX,
                           &hbto))
                return RM_EXIT_USAGE;
            break;
        case 's': stop = true; break;
        case 0x301: rq.insecure = true; break;
        case 0x302: colo = true; break;
        case 0x303:
            if (cli_uint(CMD, "--netbuf-max-bytes", optarg, 4096, ULLONG_MAX,
                         &nb_max))
                return RM_EXIT_USAGE;
            rq.again.netbuf_max_bytes = nb_max;
            break;
        case 0x304:
            colo_only = "--compare-timeout";
            if (cli_uint32(CMD, colo_only, optarg, 1, CLI_MS_MAX,
                           &rq.again.compare_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 0x305:
            colo_only = "--colo-max-interval";
            if (cli_uint32(CMD, colo_only, optarg, 1, CLI_MS_MAX,
                           &rq.colo_max_interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 0x306:
            colo_only = "--colo-fallback";
            if (cli_uint32(CMD, colo_only, optarg, 0, 100000,
                           &rq.colo_fallback_rate))
                return RM_EXIT_USAGE;
            rq.colo_fallback_set = true;
            break;
        case 0x307:
            colo_only = "--colo-fallback-hold";
            if (cli_uint32(CMD, colo_only, optarg, 1, CLI_MS_MAX,
                           &rq.colo_fallback_hold_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error(CMD, "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (stop) {
        if (argc - optind != 1)
            return cli_usage_error(CMD, "--stop takes one NAME");
        if (rm_ctlsock_request(argv[optind], "unprotect", -1, reply,
                             sizeof(reply), &err))
            return cli_fail(CMD, "%s", rm_error_str(&err));
        fprintf(stderr, "remus reprotect: '%s': protection ended after %s\n",
                argv[optind], reply + 3);
        return RM_EXIT_OK;
    }
    if (colo && nonet)
        return cli_usage_error(CMD, "--colo compares the VM's output with "
                               "the replica's: not with -n");
    if (colo_only && !colo)
        return cli_usage_error(CMD, "%s is for COLO: add --colo", colo_only);
    if (nb_max && nonet)
        return cli_usage_error(CMD, "--netbuf-max-bytes bounds held output: "
                               "not with -n");
    if ((nonet || rq.again.no_disk) && !unsafe)
        return cli_usage_error(CMD, "%s%sneeds -F (unsafe mode): without %s "
                               "the protection does not hold its promise",
                               nonet ? "-n " : "",
                               rq.again.no_disk ? "-d " : "",
                               nonet ? "output buffering" :
                               "disk replication");
    if (colo && rq.again.no_disk)
        return cli_usage_error(CMD, "--colo with -d: the replica's disk "
                               "would not be the primary's");
    if (argc - optind != 2)
        return cli_usage_error(CMD, "expected NAME and HOST:PORT");
    /* not given: as protect (proto/timing.h) */
    rq.hb_timeout_ms = hbto ? hbto : rm_timing_default_timeout(rq.interval_ms,
                                                               rq.hb_ms);
    if (rq.hb_timeout_ms <= rq.hb_ms)
        return cli_usage_error(CMD, "--heartbeat-timeout %u must exceed "
                               "--heartbeat %u", rq.hb_timeout_ms, rq.hb_ms);
    if (rm_parse_hostport(argv[optind + 1], &hp, &err))
        return cli_usage_error(CMD, "%s", rm_error_str(&err));
    if (strlen(argv[optind + 1]) >= sizeof(rq.peer))
        return cli_usage_error(CMD, "HOST:PORT '%s' is longer than %zu "
                               "bytes", argv[optind + 1],
                               sizeof(rq.peer) - 1);
    snprintf(rq.peer, sizeof(rq.peer), "%s", argv[optind + 1]);
    rq.again.output = colo ? RM_AGAIN_COLO : nonet ? RM_AGAIN_DIRECT
                                                   : RM_AGAIN_BUFFERED;
    if (rm_protect_request_format(&rq, req, sizeof(req), &err))
        return cli_usage_error(CMD, "%s", rm_error_str(&err));
    if (rm_ctlsock_request(argv[optind], req, -1, reply, sizeof(reply), &err))
        return cli_fail(CMD, "'%s' is not protected: %s", argv[optind],
                        rm_error_str(&err));
    sscanf(reply + 3, "%llu %llu %llu", &epoch, &pause, &dirty);
    fprintf(stderr, "remus reprotect: '%s' is protected again by %s: full "
            "resync of %llu pages acknowledged as checkpoint %llu (pause "
            "%llu us); protection goes on in the VM's process\n",
            argv[optind], argv[optind + 1], dirty, epoch, pause);
    return RM_EXIT_OK;
}
