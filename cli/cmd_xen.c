/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend's commands, run in dom0:
 *   remus save --xen [--live] [-c] DOMAIN FILE|-
 *   remus restore --xen --config CFG [--name NAME] [--paused] FILE|-
 *   remus protect --xen [xl remus flags] DOMAIN HOST:PORT
 *   remus receive --xen --config CFG --listen ADDR:PORT [OPTIONS]
 * (main.c sends a command here when --xen is its first option.)
 */
#define RM_LOG_PREFIX "xen"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenctrl.h>

#include "backends/xen/xen_host.h"
#include "backends/xen/xen_migrate.h"
#include "backends/xen/xen_offline.h"
#include "backends/xen/xen_sr.h"
#include "cli/cli.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/status.h"
#include "netbuf/netbuf.h"
#include "netbuf/netbuf_plug.h"
#include "backends/xen/xen_backend.h"
#include "cluster/quorum.h"
#include "primary/session.h"
#include "proto/timing.h"
#include "secondary/session.h"

static volatile sig_atomic_t xen_stop;
static struct rm_backend *xen_be;   /* protect/receive: the session's */
static bool xen_protecting;         /* protect: a second signal stops */

static void on_signal(int sig)
{
    (void)sig;
    if (xen_be && (!xen_protecting || xen_stop))
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

static int parse_num(const char *cmd, const char *opt, const char *arg,
                     unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);

    if (!*arg || *end || v < min || v > max)
        return cli_usage_error(cmd, "%s %s: a number from %u to %u", opt,
                               arg, min, max);
    *out = (unsigned)v;
    return 0;
}

/* The name = "..." line of an xl config file (for the replica's name). */
static int config_name(const char *path, char *name, size_t len,
                       struct rm_error *err)
{
    char line[512];
    FILE *f = fopen(path, "re");
    int rc = -ENOENT;

    if (!f)
        return rm_error_set(err, -errno, "cannot read '%s': %s", path,
                            strerror(errno));
    while (rc && fgets(line, sizeof(line), f)) {
        char *p = line, *q;

        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, "name", 4))
            continue;
        p += 4;
        while (isspace((unsigned char)*p))
            p++;
        if (*p++ != '=')
            continue;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '"' && *p != '\'')
            continue;
        q = strchr(p + 1, *p);
        if (!q || q == p + 1 || (size_t)(q - p - 1) >= len)
            continue;
        memcpy(name, p + 1, (size_t)(q - p - 1));
        name[q - p - 1] = '\0';
        rc = 0;
    }
    fclose(f);
    if (rc)
        rm_error_set(err, rc, "'%s' has no name = \"...\" line: give "
                     "--name", path);
    return rc;
}

/* ---------------------------------------------------------------- save */

static void save_usage(FILE *out)
{
    fprintf(out,
            "usage: remus save --xen [--live] [-c] DOMAIN FILE|-\n"
            "\n"
            "Save the Xen HVM/PVH guest DOMAIN (name or id) into FILE as a\n"
            "libxc migration stream (v3, x86 HVM): what `xl restore`'s libxc\n"
            "part and `remus restore --xen` read.  The guest is suspended\n"
            "cooperatively (control/shutdown or its suspend event channel).\n"
            "\n"
            "  --live          pre-copy with log-dirty first (short pause)\n"
            "  -c              keep the domain running afterwards (default:\n"
            "                  it is destroyed after a good save, as xl save)\n"
            "  --suspend-timeout MS  wait this long for the guest to\n"
            "                  suspend (default 30000)\n"
            "Exit status: 0 saved; 1 failed (the domain keeps running);\n"
            "2 usage.\n");
}

static int xen_save(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "live", no_argument, NULL, 'l' },
        { "suspend-timeout", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_host *host = NULL;
    struct rm_xen_save_arg arg;
    struct rm_save_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_sink sink;
    bool live = false, keep = false;
    int c, fd = -1, rc, ret = RM_EXIT_FAIL;

    memset(&arg, 0, sizeof(arg));
    optind = 1;
    while ((c = getopt_long(argc, argv, "+ch", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'l': live = true; break;
        case 'c': keep = true; break;
        case 's':
            if (parse_num("save", "--suspend-timeout", optarg, 1, 3600000,
                          &arg.suspend_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': save_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("save", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("save", "expected DOMAIN and FILE");
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_domid(host, argv[optind], &arg.domid, &err);
    if (rc) {
        ret = cli_fail("save", "%s", rm_error_str(&err));
        goto out;
    }
    fd = cli_open_out(argv[optind + 1]);
    if (fd < 0) {
        ret = cli_fail("save", "cannot create '%s': %s", argv[optind + 1],
                       strerror(-fd));
        goto out;
    }
    arg.host = host;
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &rm_xen_save_ops;
    {
        /* A PV guest: non-live, with its page tables in canonical form. */
        struct rm_xen_dominfo di;

        if (rm_xen_dominfo(host, arg.domid, &di, &err) == 0 && !di.hvm) {
            if (live) {
                ret = cli_usage_error("save", "domain %u is a PV guest: it "
                                      "can be saved non-live only (PV "
                                      "log-dirty needs shadow paging, which "
                                      "this Xen lacks): drop --live",
                                      arg.domid);
                if (strcmp(argv[optind + 1], "-"))
                    unlink(argv[optind + 1]);
                goto out;
            }
            ctx.ops = &rm_xen_pv_save_ops;
        }
    }
    ctx.backend_arg = &arg;
    ctx.err = &err;
    rm_save_params_default(&ctx.params, live ? RM_SAVE_LIVE
                                             : RM_SAVE_NONLIVE);
    ctx.params.resume_after = keep;
    rm_sink_init_fd(&sink, fd);
    rc = rm_save(&ctx, &sink);
    if (fd != STDOUT_FILENO && close(fd) && !rc)
        rc = rm_error_set(&err, -errno, "closing '%s': %s",
                          argv[optind + 1], strerror(errno));
    fd = -1;
    if (rc) {
        if (strcmp(argv[optind + 1], "-"))
            unlink(argv[optind + 1]);
        if (ctx.suspended && !keep)
            rm_xen_resume_cancelled(host, arg.domid, NULL);
        ret = cli_fail("save", "%s", rm_error_str(&err));
        goto out;
    }
    fprintf(stderr, "remus save: domain %u saved: %" PRIu64 " bytes, %"
            PRIu64 " pages, %u pre-copy iterations\n", arg.domid,
            sink.offset, ctx.pages_sent, ctx.iterations);
    ret = RM_EXIT_OK;
    if (!keep) {
        rc = rm_xen_destroy(host, arg.domid, &err);
        if (rc)
            ret = cli_fail("save", "saved, but %s", rm_error_str(&err));
    }
out:
    if (fd >= 0 && fd != STDOUT_FILENO)
        close(fd);
    rm_xen_host_close(host);
    return ret;
}

/* ------------------------------------------------------------- restore */

static void restore_usage(FILE *out)
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

static int xen_restore(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "config", required_argument, NULL, 'C' },
        { "name", required_argument, NULL, 'n' },
        { "paused", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_host *host = NULL;
    struct rm_xen_restore_arg arg;
    struct rm_restore_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_src src;
    const char *config = NULL, *name = NULL;
    char cfg_name[64];
    bool paused = false, created = false;
    int c, fd = -1, rc, ret = RM_EXIT_FAIL;

    memset(&arg, 0, sizeof(arg));
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'C': config = optarg; break;
        case 'n': name = optarg; break;
        case 'p': paused = true; break;
        case 'h': restore_usage(stdout); return RM_EXIT_OK;
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
        if (config_name(config, cfg_name, sizeof(cfg_name), &err))
            return cli_usage_error("restore", "%s", rm_error_str(&err));
        name = cfg_name;
    }
    fd = cli_open_in(argv[optind]);
    if (fd < 0)
        return cli_fail("restore", "cannot open '%s': %s", argv[optind],
                        strerror(-fd));
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_replica_create(host, config, name, &arg.domid, &err);
    if (rc) {
        ret = cli_fail("restore", "%s", rm_error_str(&err));
        goto out;
    }
    created = true;
    arg.host = host;
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &rm_xen_restore_ops;
    {
        /* The config's type decides: a PV domain takes a PV stream. */
        struct rm_xen_dominfo di;

        if (rm_xen_dominfo(host, arg.domid, &di, &err) == 0 && !di.hvm)
            ctx.ops = &rm_xen_pv_restore_ops;
    }
    ctx.backend_arg = &arg;
    ctx.err = &err;
    rm_src_init_fd(&src, fd);
    rc = rm_restore(&ctx, &src);
    if (!rc && ctx.result != RM_RESTORE_COMPLETE)
        rc = rm_error_set(&err, -EPIPE, "the stream is an incomplete "
                          "checkpointed stream");
    if (!rc && !paused)
        rc = rm_xen_unpause(host, arg.domid, &err);
    if (rc) {
        ret = cli_fail("restore", "%s", rm_error_str(&err));
        goto out;
    }
    fprintf(stderr, "remus restore: domain %u ('%s') restored: %" PRIu64
            " pages%s\n", arg.domid, name, ctx.pages_applied,
            paused ? "; paused" : "; running");
    created = false;
    ret = RM_EXIT_OK;
out:
    if (created) {
        struct rm_error e2 = { 0 };

        if (rm_xen_destroy(host, arg.domid, &e2))
            LOG_WARN("%s", rm_error_str(&e2));
    }
    if (fd >= 0 && fd != STDIN_FILENO)
        close(fd);
    rm_xen_host_close(host);
    return ret;
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
    memset(&key, 0, sizeof(key));
    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:uFbndh", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'i':
            if (parse_num("protect", "-i", optarg, 1, 3600000, &interval))
                return RM_EXIT_USAGE;
            break;
        case 'u': break;
        case 'F': unsafe = true; break;
        case 'b': blackhole = true; break;
        case 'n': xo.no_netbuf = true; break;
        case 'd': nodisk = true; break;
        case 'H':
            if (parse_num("protect", "--heartbeat", optarg, 1, 3600000, &hb))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (parse_num("protect", "--heartbeat-timeout", optarg, 2,
                          3600000, &hb_timeout))
                return RM_EXIT_USAGE;
            break;
        case 's':
            if (parse_num("protect", "--suspend-timeout", optarg, 1, 3600000,
                          &xo.suspend_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'P':
            if (parse_num("protect", "--progress", optarg, 0, 3600000,
                          &progress))
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
            if (parse_num("protect", "--quorum-settle", optarg, 1, 3600000,
                          &qsettle))
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
    xo.no_disk = nodisk;
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
    pc->digest_fd = -1;
    sc.quorum = quorum;
    sc.stop_requested = &xen_stop;
    sc.handover_requested = NULL;
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
            "destroyed.\n"
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
            "Exit: 0 the primary stopped; 3 failed over (the replica runs);\n"
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
    rc_cfg->hb_interval_ms = 100;
    rc_cfg->hb_timeout_ms = 0;      /* derived in the handshake */
    rc_cfg->listen_fd = -1;
    rc_cfg->commit_log_fd = -1;
    rc_cfg->digest_fd = -1;
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
            if (parse_num("receive", "--heartbeat", optarg, 1, 3600000,
                          &rc_cfg->hb_interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (parse_num("receive", "--heartbeat-timeout", optarg, 2,
                          3600000, &rc_cfg->hb_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'P':
            if (parse_num("receive", "--progress", optarg, 0, 3600000,
                          &rc_cfg->progress_ms))
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
            if (parse_num("receive", "--quorum-settle", optarg, 1, 3600000,
                          &qsettle))
                return RM_EXIT_USAGE;
            break;
        case 'F': sc.fence_cmd = optarg; break;
        case 'W':
            if (parse_num("receive", "--fence-timeout", optarg, 1, 3600000,
                          &sc.fence_timeout_ms))
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
        if (config_name(config, cfg_name, sizeof(cfg_name), &err))
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

/* -------------------------------------------------------- offline-page */

static void offline_usage(FILE *out)
{
    fprintf(out,
            "usage: remus offline-page --xen [--config CFG] DOMAIN MFN\n"
            "       remus offline-page --xen --status MFN\n"
            "\n"
            "Move the Xen HVM/PVH guest DOMAIN off machine frame MFN (a page\n"
            "the host reports as failing).  The frame is marked offline with\n"
            "Xen (it stays \"offline pending\" while the guest owns it); the\n"
            "guest is live-migrated to a new domain on this host built from\n"
            "its xl config CFG (save and restore engines back to back); the\n"
            "old domain is destroyed, which frees the frame and lets Xen\n"
            "offline it; the new domain takes the guest's name.  A frame of\n"
            "another domain is refused (and our mark withdrawn).  If the\n"
            "migration fails, the guest runs on in its old domain.\n"
            "A 64-bit PV guest (no --config) moves in place instead: while\n"
            "it is suspended, the frame is copied, every page-table entry\n"
            "mapping it cleared, the frame exchanged with Xen for a new one,\n"
            "the copy written there, the p2m and the entries pointed at it;\n"
            "a frame granted to another domain or held by a vCPU (cr3, GDT)\n"
            "is refused; if Xen will not take the frame (something else maps\n"
            "it) every entry is put back and the guest resumes as it was.\n"
            "--status prints what Xen says of the frame (online, offline\n"
            "pending, offline, broken) and changes nothing.\n"
            "Exit: 0 moved (or the frame was free); 1 failed; 2 usage.\n");
}

/*
 * A PV guest moves off the frame in place (backends/xen/xen_offline.h).
 * The frame is marked offline only once the guest has let go of it (Xen
 * then offlines it at once): marking a frame a PV guest owns makes Xen
 * 4.17 take the guest's PoD lock, and in the lab that hung a CPU in the
 * hypervisor after an earlier exchange.  A frame someone already marked
 * is offlined by Xen when the exchange frees it.
 */
static int pv_offline(struct rm_xen_host *host, uint32_t domid,
                      unsigned long long mfn, uint32_t before)
{
    struct rm_xen_pv_offline_result res;
    struct rm_error err = { 0 };
    uint32_t after = 0, status = 0;
    int owner = -1;
    char what[40];

    printf("machine frame %#llx of domain %u%s: moving the PV guest off it "
           "in place (suspended)\n", mfn, domid,
           (before & PG_OFFLINE_STATUS_OFFLINE_PENDING) ?
           " is offline pending" : "");
    fflush(stdout);
    if (rm_xen_pv_offline_page(host, domid, mfn, 0, &res, &err)) {
        if (res.left_suspended)
            return cli_fail("offline-page", "%s", rm_error_str(&err));
        return cli_fail("offline-page", "%s; %sthe guest runs on as it was "
                        "(the frame stays %s)", rm_error_str(&err),
                        res.undone ? "its page tables were put back; " : "",
                        (before & PG_OFFLINE_STATUS_OFFLINE_PENDING) ?
                        "offline pending" : "online, not marked");
    }
    if (res.level)
        snprintf(what, sizeof(what), "an L%u page table%s", res.level,
                 res.pinned ? ", pinned" : "");
    else
        snprintf(what, sizeof(what), "data");
    printf("pfn %#" PRIx64 " of domain %u (%s) moved from machine frame "
           "%#llx to %#" PRIx64 "; %u page-table entries re-pointed (%u "
           "tables searched); the guest runs on\n", res.pfn, domid, what,
           mfn, res.new_mfn, res.ptes, res.tables_scanned);
    if (rm_xen_page_status(host, mfn, &after, &err))
        return cli_fail("offline-page", "%s", rm_error_str(&err));
    if (!(after & PG_OFFLINE_STATUS_OFFLINED)) {
        if (rm_xen_page_mark_offline(host, mfn, &status, &owner, &err))
            return cli_fail("offline-page", "%s", rm_error_str(&err));
        rm_xen_page_status(host, mfn, &after, &err);
    }
    if (after & PG_OFFLINE_STATUS_OFFLINED) {
        printf("machine frame %#llx is offline\n", mfn);
        return RM_EXIT_OK;
    }
    if ((after & PG_OFFLINE_STATUS_OFFLINE_PENDING) && owner >= 0)
        return cli_fail("offline-page", "machine frame %#llx is offline "
                        "pending: Xen gave it to domain %d before it could be"
                        " marked", mfn, owner);
    return cli_fail("offline-page", "machine frame %#llx is in an unexpected"
                    " state (%#x)", mfn, after);
}

static int xen_offline_page(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "config", required_argument, NULL, 'C' },
        { "status", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_host *host = NULL;
    struct rm_xen_migrate_result mr;
    struct rm_xen_dominfo di;
    bool query = false;
    struct rm_error err = { 0 };
    const char *config = NULL;
    unsigned long long mfn;
    uint32_t domid = 0, before = 0, status = 0, after = 0;
    char *end;
    int c, rc, owner = -1, ret = RM_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'C': config = optarg; break;
        case 's': query = true; break;
        case 'h': offline_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("offline-page", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (query && argc - optind == 1) {
        mfn = strtoull(argv[optind], &end, 0);
        if (*end || !*argv[optind])
            return cli_usage_error("offline-page", "MFN '%s' is not a "
                                   "number", argv[optind]);
        rc = rm_xen_host_open(&host, &err);
        if (!rc)
            rc = rm_xen_page_status(host, mfn, &status, &err);
        if (rc) {
            ret = cli_fail("offline-page", "%s", rm_error_str(&err));
        } else {
            printf("machine frame %#llx: %s%s\n", mfn,
                   (status & PG_OFFLINE_STATUS_OFFLINED) ? "offline" :
                   (status & PG_OFFLINE_STATUS_OFFLINE_PENDING) ?
                   "offline pending" : "online",
                   (status & PG_OFFLINE_STATUS_BROKEN) ? ", broken" : "");
            ret = RM_EXIT_OK;
        }
        goto out;
    }
    if (argc - optind != 2)
        return cli_usage_error("offline-page", "expected DOMAIN and MFN");
    errno = 0;
    mfn = strtoull(argv[optind + 1], &end, 0);
    if (errno || *end || !*argv[optind + 1])
        return cli_usage_error("offline-page", "MFN '%s' is not a number",
                               argv[optind + 1]);
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_domid(host, argv[optind], &domid, &err);
    if (!rc)
        rc = rm_xen_dominfo(host, domid, &di, &err);
    if (!rc && di.hvm && !config) {
        ret = cli_usage_error("offline-page", "--config CFG (the guest's xl "
                              "config, for the new domain) is required for "
                              "an HVM/PVH guest");
        goto out;
    }
    if (!rc)
        rc = rm_xen_page_status(host, mfn, &before, &err);
    if (!rc && !di.hvm) {
        ret = (before & PG_OFFLINE_STATUS_OFFLINED) ?
              (printf("machine frame %#llx is offline already\n", mfn),
               RM_EXIT_OK) : pv_offline(host, domid, mfn, before);
        goto out;
    }
    if (!rc)
        rc = rm_xen_pv_owner(host, mfn, &owner, &err);
    if (!rc && owner >= 0) {
        /* Never marked: marking a PV domain's frame can hang Xen 4.17. */
        ret = cli_fail("offline-page", "machine frame %#llx belongs to %s, "
                       "not to domain %u (%s); nothing done (not marked)",
                       mfn, owner == 0 ? "dom0" : "a PV domain", domid,
                       argv[optind]);
        if (owner > 0)
            fprintf(stderr, "remus offline-page: its owner is domain %d\n",
                    owner);
        goto out;
    }
    if (!rc)
        rc = rm_xen_page_mark_offline(host, mfn, &status, &owner, &err);
    if (rc) {
        ret = cli_fail("offline-page", "%s", rm_error_str(&err));
        goto out;
    }
    if (status & PG_OFFLINE_OFFLINED) {
        printf("machine frame %#llx is offline (it was not in use)\n", mfn);
        ret = RM_EXIT_OK;
        goto out;
    }
    if (owner != (int)domid) {
        /* Not the guest's: withdraw our mark unless one was there. */
        if (!(before & PG_OFFLINE_STATUS_OFFLINE_PENDING))
            rm_xen_page_mark_online(host, mfn, NULL);
        ret = cli_fail("offline-page", "machine frame %#llx belongs to %s, "
                       "not to domain %u (%s); nothing done", mfn,
                       owner == 0 ? "dom0" : owner > 0 ? "another domain"
                       : "no domain", domid, argv[optind]);
        if (owner > 0)
            fprintf(stderr, "remus offline-page: its owner is domain %d\n",
                    owner);
        goto out;
    }
    printf("machine frame %#llx of domain %u is offline pending; moving "
           "the guest\n", mfn, domid);
    fflush(stdout);
    rc = rm_xen_migrate_local(host, domid, config, &mr, &err);
    if (rc) {
        ret = cli_fail("offline-page", "%s; the guest runs on in domain %u "
                       "(the frame stays offline pending)",
                       rm_error_str(&err), domid);
        goto out;
    }
    rm_xen_page_status(host, mfn, &after, &err);
    printf("domain %u moved to domain %u (%" PRIu64 " pages, %u pre-copy "
           "iterations); machine frame %#llx is %s\n", domid, mr.new_domid,
           mr.pages, mr.iterations, mfn,
           (after & PG_OFFLINE_STATUS_OFFLINED) ? "offline" :
           (after & PG_OFFLINE_STATUS_OFFLINE_PENDING) ?
           "still offline pending" : "in an unexpected state");
    ret = (after & PG_OFFLINE_STATUS_OFFLINED) ? RM_EXIT_OK : RM_EXIT_FAIL;
out:
    rm_xen_host_close(host);
    return ret;
}

/* ---------------------------------------------------------------- entry */

int cmd_xen(int argc, char **argv)
{
    if (!strcmp(argv[0], "save"))
        return xen_save(argc, argv);
    if (!strcmp(argv[0], "restore"))
        return xen_restore(argc, argv);
    if (!strcmp(argv[0], "protect"))
        return xen_protect(argc, argv);
    if (!strcmp(argv[0], "receive"))
        return xen_receive(argc, argv);
    if (!strcmp(argv[0], "offline-page"))
        return xen_offline_page(argc, argv);
    return cli_usage_error(argv[0], "--xen: not a Xen command (save, "
                           "restore, protect, receive, offline-page)");
}
