/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend's protection commands, run in dom0:
 *   remus protect --xen [xl remus flags] DOMAIN HOST:PORT
 *   remus receive --xen --config CFG --listen ADDR:PORT [OPTIONS]
 * (main.c sends them here when --xen is among their options; save,
 * restore and offline-page --xen are in cli/cmd_NAME.c.)
 */
#define RM_LOG_PREFIX "xen"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/xen/xl_config.h"
#include "cli/cli.h"
#include "common/auth.h"
#include "common/log.h"
#include "backends/xen/xen_backend.h"
#include "cluster/quorum.h"
#include "primary/session.h"
#include "proto/timing.h"
#include "secondary/session.h"

static volatile sig_atomic_t xen_stop;
static struct rm_backend *xen_be;   /* protect/receive: the session's */
static bool xen_protecting;         /* protect: a second signal stops */
static bool xen_token;              /* receive --quorum: a signal stops
                                       the domain that took over (else it
                                       runs on, no longer held) */

static void on_signal(int sig)
{
    (void)sig;
    if (xen_be && (xen_protecting ? xen_stop != 0 : xen_token))
        xen_be->ops->request_stop(xen_be);
    xen_stop = 1;
}

static void catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------- protect */

static void protect_usage(FILE *out)
{
    fprintf(out,
            "usage: remus protect --xen [OPTIONS] DOMAIN HOST:PORT\n"
            "\n"
            "Protect the running Xen HVM/PVH guest DOMAIN: a checkpoint every\n"
            "interval to the `remus receive --xen` at HOST:PORT (the guest\n"
            "suspended cooperatively, log-dirty pages sent), its VIF's\n"
            "output held by a plug qdisc until the secondary acknowledged\n"
            "the checkpoint that produced it.\n"
            "\n"
            "  -i MS       checkpoint interval in ms (default 200)\n"
            "  -u          no checkpoint compression (Xen streams: none)\n"
            "  -F          unsafe mode: required by -b, -n and -d\n"
            "  -b          blackhole: checkpoints go nowhere\n"
            "  -n          no network output buffering\n"
            "  -d          no disk replication\n"
            "  --heartbeat MS  --heartbeat-timeout MS  (default 100 / 1000, or\n"
            "              the interval + 4 heartbeats when longer)\n"
            "  --suspend-timeout MS  per checkpoint (default 30000)\n"
            "  --progress MS         a progress line every MS (default 1000)\n"
            "  --stats-file FILE     one line per acknowledged checkpoint\n"
            "  --quorum corosync     split-brain protection, as for KVM (see\n"
            "              `remus protect --help`): refuse to start without\n"
            "              quorum; a lost secondary: run on only with quorum\n"
            "              and the VM's token, else pause and destroy the\n"
            "              domain (exit 4); then hold the token while the\n"
            "              domain runs (this process stays)\n"
            "  --quorum-settle MS    (default 10000)\n"
            CLI_KEY_HELP
            "\n"
            "SIGINT/SIGTERM ends protection cleanly; the domain keeps\n"
            "running (with --quorum this process stays while it runs, and a\n"
            "second signal destroys it).  If the secondary is lost the\n"
            "domain runs on unprotected.  Exit: 0 stopped or secondary lost,\n"
            "1 error, 2 usage, 4 --quorum stopped the domain.\n");
}

static int xen_protect(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "suspend-timeout", required_argument, NULL, 's' },
        { "progress", required_argument, NULL, 'P' },
        { "stats-file", required_argument, NULL, 'S' },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 0x300 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_protect_opts xo = { 0 };
    struct rm_backend *be = NULL;
    struct rm_quorum *quorum = NULL;
    struct rm_auth_key key;
    const char *key_path = NULL;
    bool insecure = false, use_quorum = false;
    struct rm_primary_cfg sc;
    struct rm_primary_result res;
    struct rm_protect_cfg *pc = &sc.protect;
    struct rm_error err = { 0 };
    bool unsafe = false, blackhole = false, nodisk = false;
    unsigned interval = 200, hb = 100, hb_timeout = 0, progress = 1000;
    unsigned qsettle = 10000;
    const char *stats_path = NULL;
    int c, stats_fd = -1, ret = RM_EXIT_FAIL;

    memset(&sc, 0, sizeof(sc));
    rm_protect_cfg_init(pc);
    memset(&key, 0, sizeof(key));
    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:uFbndh", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'i':
            if (cli_uint32("protect", "-i", optarg, 1, CLI_MS_MAX, &interval))
                return RM_EXIT_USAGE;
            break;
        case 'u': break;
        case 'F': unsafe = true; break;
        case 'b': blackhole = true; break;
        case 'n': xo.no_netbuf = true; break;
        case 'd': nodisk = true; break;
        case 'H':
            if (cli_uint32("protect", "--heartbeat", optarg, 1,
                           CLI_MS_MAX, &hb))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (cli_uint32("protect", "--heartbeat-timeout", optarg, 2,
                           CLI_MS_MAX, &hb_timeout))
                return RM_EXIT_USAGE;
            break;
        case 's':
            if (cli_uint32("protect", "--suspend-timeout", optarg, 1,
                           CLI_MS_MAX, &xo.suspend_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'P':
            if (cli_uint32("protect", "--progress", optarg, 0,
                           CLI_MS_MAX, &progress))
                return RM_EXIT_USAGE;
            break;
        case 'S': stats_path = optarg; break;
        case 'K': key_path = optarg; break;
        case 0x301: insecure = true; break;
        case 'Q':
            if (cli_quorum_service("protect", optarg))
                return RM_EXIT_USAGE;
            use_quorum = true;
            break;
        case 0x300:
            if (cli_uint32("protect", "--quorum-settle", optarg, 1,
                           CLI_MS_MAX, &qsettle))
                return RM_EXIT_USAGE;
            break;
        case 'h': protect_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("protect", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if ((blackhole || xo.no_netbuf || nodisk) && !unsafe)
        return cli_usage_error("protect", "-b, -n and -d need -F (unsafe "
                               "mode): without them the protection does "
                               "not hold its promise");
    if (use_quorum && blackhole)
        return cli_usage_error("protect", "--quorum with -b: a blackhole "
                               "has no secondary to arbitrate with");
    if (argc - optind != 2 && !(blackhole && argc - optind == 1))
        return cli_usage_error("protect", "expected DOMAIN and HOST:PORT");
    if (argc - optind == 2 &&
        rm_parse_hostport(argv[optind + 1], &pc->peer, &err))
        return cli_usage_error("protect", "%s", rm_error_str(&err));
    if (!hb_timeout)           /* not given: derived (proto/timing.h) */
        hb_timeout = rm_timing_default_timeout(interval, hb);
    if (hb_timeout <= hb)
        return cli_usage_error("protect", "--heartbeat-timeout %u must "
                               "exceed --heartbeat %u", hb_timeout, hb);
    if (!blackhole) {   /* a blackhole has no peer: nothing to key */
        ret = cli_key("protect", key_path, insecure, &key, &pc->key);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }
    if (rm_xen_backend_protect(argv[optind], &xo, &be, &err)) {
        ret = cli_fail("protect", "%s", rm_error_str(&err));
        goto out;
    }
    if (use_quorum) {   /* the domain's name names the group */
        ret = cli_quorum_open("protect", be->vm_name, true, qsettle,
                              &quorum);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }
    if (stats_path) {
        stats_fd = open(stats_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        0644);
        if (stats_fd < 0) {
            ret = cli_fail("protect", "cannot write '%s': %s", stats_path,
                           strerror(errno));
            goto out;
        }
    }
    pc->interval_ms = interval;
    pc->compress = false;
    pc->blackhole = blackhole;
    pc->hb_interval_ms = hb;
    pc->hb_timeout_ms = hb_timeout;
    pc->connect_timeout_ms = 5000;
    pc->progress_ms = progress;
    pc->stats_fd = stats_fd;
    sc.quorum = quorum;
    sc.stop_requested = &xen_stop;
    sc.serve_control = true;
    xen_be = be;
    xen_protecting = true;
    catch_signals();
    rm_primary_run(be, &sc, &res);
    ret = (int)res.outcome;
out:
    xen_be = NULL;
    rm_backend_close(be);
    rm_quorum_close(quorum);
    if (stats_fd >= 0)
        close(stats_fd);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}

/* ------------------------------------------------------------- receive */

static void receive_usage(FILE *out)
{
    fprintf(out,
            "usage: remus receive --xen --config CFG --listen ADDR:PORT "
            "[OPTIONS]\n"
            "\n"
            "Be the secondary of a Xen guest protected by `remus protect\n"
            "--xen`.  The replica domain NAME--replica is created paused\n"
            "from the guest's own xl config CFG (`xl create -p`), and holds\n"
            "the last checkpoint that arrived whole.  When the primary is\n"
            "lost (heartbeat timeout, broken channel) the replica resumes\n"
            "from that checkpoint and takes the guest's name once it is\n"
            "free; when the primary stops protection cleanly the replica is\n"
            "destroyed.  After a takeover this process holds the domain\n"
            "while it runs: its control socket serves `remus reprotect NAME\n"
            "HOST:PORT` (failback, full resync) and `remus handover NAME`;\n"
            "SIGINT/SIGTERM then lets it run on without this process (with\n"
            "--quorum: destroys it, as the token's holder must).\n"
            "\n"
            "  --name NAME              the guest's name (default: CFG's)\n"
            "  --heartbeat MS           heartbeat period (default 100)\n"
            "  --heartbeat-timeout MS   primary lost after (default 1000)\n"
            "  --progress MS            progress line period (0: off)\n"
            "  --commit-log FILE        'commit NS EPOCH' per checkpoint\n"
            "  --quorum corosync        take over only as `remus receive\n"
            "                           --help` says for KVM (the group is\n"
            "                           remus:NAME); then hold the VM's\n"
            "                           token while the domain runs (this\n"
            "                           process stays) and destroy it if\n"
            "                           this partition loses quorum\n"
            "  --quorum-settle MS       (default 10000)\n"
            "  --fence-cmd CMD          run CMD (sh -c; REMUS_NAME,\n"
            "                           REMUS_PEER, REMUS_EPOCH) before\n"
            "                           taking over; only if it exits 0\n"
            "  --fence-timeout MS       (default 60000)\n"
            CLI_KEY_HELP
            "Exit: 0 the primary stopped; 3 failed over (the domain that\n"
            "took over ended, or runs on: see above);\n"
            "1 error (no replica left); 2 usage; 4 quorum or fencing held\n"
            "the takeover back, or --quorum destroyed the domain that took\n"
            "over.\n");
}

static int xen_receive(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "config", required_argument, NULL, 'C' },
        { "name", required_argument, NULL, 'n' },
        { "listen", required_argument, NULL, 'l' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "progress", required_argument, NULL, 'P' },
        { "commit-log", required_argument, NULL, 'L' },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 0x300 },
        { "fence-cmd", required_argument, NULL, 'F' },
        { "fence-timeout", required_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_backend *be = NULL;
    struct rm_quorum *quorum = NULL;
    struct rm_auth_key key;
    const char *key_path = NULL;
    bool insecure = false, have_listen = false, use_quorum = false;
    struct rm_secondary_cfg sc;
    struct rm_secondary_result res;
    struct rm_receive_cfg *rc_cfg = &sc.receive;
    struct rm_error err = { 0 };
    const char *config = NULL, *name = NULL, *commit_log = NULL;
    char cfg_name[64];
    unsigned qsettle = 10000;
    int c, ret = RM_EXIT_FAIL;

    memset(&sc, 0, sizeof(sc));
    memset(&key, 0, sizeof(key));
    rm_receive_cfg_init(rc_cfg);
    rc_cfg->max_guest_bytes = 64ull << 30;
    rc_cfg->allow_compression = false;
    sc.fence_timeout_ms = 60000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'C': config = optarg; break;
        case 'n': name = optarg; break;
        case 'l':
            if (rm_parse_hostport(optarg, &rc_cfg->listen, &err))
                return cli_usage_error("receive", "--listen: %s",
                                       rm_error_str(&err));
            have_listen = true;
            break;
        case 'H':
            if (cli_uint32("receive", "--heartbeat", optarg, 1,
                           CLI_MS_MAX, &rc_cfg->hb_interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (cli_uint32("receive", "--heartbeat-timeout", optarg, 2,
                           CLI_MS_MAX, &rc_cfg->hb_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'P':
            if (cli_uint32("receive", "--progress", optarg, 0,
                           CLI_MS_MAX, &rc_cfg->progress_ms))
                return RM_EXIT_USAGE;
            break;
        case 'L': commit_log = optarg; break;
        case 'K': key_path = optarg; break;
        case 0x301: insecure = true; break;
        case 'Q':
            if (cli_quorum_service("receive", optarg))
                return RM_EXIT_USAGE;
            use_quorum = true;
            break;
        case 0x300:
            if (cli_uint32("receive", "--quorum-settle", optarg, 1,
                           CLI_MS_MAX, &qsettle))
                return RM_EXIT_USAGE;
            break;
        case 'F': sc.fence_cmd = optarg; break;
        case 'W':
            if (cli_uint32("receive", "--fence-timeout", optarg, 1,
                           CLI_MS_MAX, &sc.fence_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': receive_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("receive", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error("receive", "unexpected argument '%s'",
                               argv[optind]);
    if (!have_listen)
        return cli_usage_error("receive", "--listen ADDR:PORT is required");
    if (!config)
        return cli_usage_error("receive", "--config CFG (the guest's xl "
                               "config) is required with --xen");
    if (rc_cfg->hb_timeout_ms &&
        rc_cfg->hb_timeout_ms <= rc_cfg->hb_interval_ms)
        return cli_usage_error("receive", "--heartbeat-timeout %u must "
                               "exceed --heartbeat %u", rc_cfg->hb_timeout_ms,
                               rc_cfg->hb_interval_ms);
    if (!name) {
        if (rm_xl_config_name(config, cfg_name, sizeof(cfg_name),
                              &err))
            return cli_usage_error("receive", "%s", rm_error_str(&err));
        name = cfg_name;
    }
    if (use_quorum &&
        (ret = cli_quorum_open("receive", name, false, qsettle, &quorum)))
        return ret;
    if (commit_log) {
        rc_cfg->commit_log_fd = open(commit_log, O_WRONLY | O_CREAT |
                                     O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (rc_cfg->commit_log_fd < 0) {
            ret = cli_fail("receive", "cannot write '%s': %s", commit_log,
                           strerror(errno));
            goto out;
        }
    }
    ret = cli_key("receive", key_path, insecure, &key, &rc_cfg->key);
    if (ret)
        goto out;
    ret = RM_EXIT_FAIL;
    if (rm_xen_backend_replica(config, name, &be, &err)) {
        ret = cli_fail("receive", "%s", rm_error_str(&err));
        goto out;
    }
    sc.quorum = quorum;
    sc.name = name;
    sc.stop_requested = &xen_stop;
    xen_be = be;
    xen_protecting = false;
    xen_token = quorum != NULL;
    sc.serve_control = true;
    catch_signals();
    rm_secondary_run(be, &sc, &res);
    ret = (int)res.outcome;
out:
    xen_be = NULL;
    rm_backend_close(be);
    rm_quorum_close(quorum);
    if (rc_cfg->commit_log_fd >= 0)
        close(rc_cfg->commit_log_fd);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}

/* ---------------------------------------------------------------- entry */

int cmd_xen(int argc, char **argv)
{
    if (!strcmp(argv[0], "protect"))
        return xen_protect(argc, argv);
    return xen_receive(argc, argv);
}
