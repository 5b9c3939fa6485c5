/* SPDX-License-Identifier: MIT */
/*
 * remus protect [OPTIONS] VM HOST:PORT: run the VM described by VM (a guest
 * description file) on the embedded KVM micro-VMM and protect it with
 * checkpoints to a `remus receive` at HOST:PORT.  Flags follow `xl remus`.
 */
#define RM_LOG_PREFIX "protect"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/kvm/guestcfg.h"
#include "backends/kvm/kvm_backend.h"
#include "cli/cli.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "common/log.h"
#include "primary/peer_spawn.h"
#include "primary/session.h"
#include "proto/timing.h"

static volatile sig_atomic_t protect_stop;
static volatile sig_atomic_t protect_handover;
static struct rm_backend *protect_be;

static void on_handover(int sig)
{
    (void)sig;
    protect_handover = 1;
}

static void on_signal(int sig)
{
    (void)sig;
    if (!protect_stop) {
        protect_stop = 1;     /* first: end protection, keep the VM */
    } else if (protect_be) {
        protect_be->ops->request_stop(protect_be);   /* second: stop it */
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus protect [OPTIONS] VM HOST:PORT|HOST\n"
            "\n"
            "Run the VM described by the guest description file VM on the\n"
            "embedded KVM micro-VMM and protect it: a checkpoint every\n"
            "interval to the `remus receive` at HOST:PORT, with the VM's\n"
            "network output held until the secondary acknowledged the\n"
            "checkpoint that produced it.\n"
            "\n"
            "  -i MS       checkpoint interval in ms (default 200, minimum 1)\n"
            "  -u          no checkpoint compression\n"
            "  -F          unsafe mode: required by -b, -n and -d\n"
            "  -b          blackhole: checkpoints go nowhere (HOST:PORT may be\n"
            "              omitted)\n"
            "  -n          no network output buffering\n"
            "  -d          no disk replication (our guests have no disks)\n"
            "  --heartbeat MS        heartbeat period (default 100)\n"
            "  --heartbeat-timeout MS  the secondary is lost after this much\n"
            "              silence (default 1000, or the interval + 4\n"
            "              heartbeats when longer; the pair refuses timing\n"
            "              that cannot work, naming both sides' values)\n"
            "  --netbuf-max-bytes N  bound on held output (default 16 MiB;\n"
            "              when full, new frames are dropped and logged)\n"
            "  --progress MS         a progress line every MS (default 1000;\n"
            "              0: off)\n"
            "  --stats-file FILE     one line per acknowledged checkpoint:\n"
            "              epoch pause_us dirty_pages bytes send_us ack_us\n"
            "  --release-log FILE    (audit) 'release MONOTONIC_NS EPOCH\n"
            "              ACKED_EPOCH BYTES' per held frame let out\n"
            "  --quorum corosync     split-brain protection: refuse to\n"
            "              start unless this host's corosync partition is\n"
            "              quorate; when the secondary is lost, keep output\n"
            "              held until the membership settles, then run on\n"
            "              only with quorum and the VM's token (the\n"
            "              secondary did not take over), else stop the VM\n"
            "              (exit 4); running on, stop the VM (exit 4) if\n"
            "              this partition loses quorum.  The secondary\n"
            "              needs --quorum too: a pair where only one side\n"
            "              has it is refused (cluster/quorum.h)\n"
            "  --quorum-settle MS    how long a lost peer may stay visible\n"
            "              in the cluster before it counts as alive\n"
            "              (default 10000)\n"
            CLI_KEY_HELP
            CLI_SPAWN_HELP
            "  --digest-every N --digest-file FILE   (tests) every Nth\n"
            "              checkpoint, write 'epoch hash' of the whole guest\n"
            "              memory as the checkpoint captured it\n"
            "Guest options override the description file:\n" RM_GUESTCFG_HELP
            "\n"
            "SIGINT/SIGTERM ends protection cleanly (END + stop message); the\n"
            "VM keeps running unprotected in this process; a second signal\n"
            "stops the VM.  If the secondary is lost, protection ends and the\n"
            "VM runs on unprotected.  SIGUSR2 (`remus handover NAME`) hands\n"
            "the VM over to the secondary: it is paused here for good and\n"
            "the secondary takes over from its last checkpoint (exit 0).\n"
            "Exit status: 0 when the VM ended (the guest halted, whatever its\n"
            "halt code: that is only logged), was stopped, or was handed over;\n"
            "1 on an error or a guest crash (also when protection could not\n"
            "start, e.g. a refused handshake: the VM then runs unprotected\n"
            "until it ends or is stopped); 2 for a usage error; 4 when\n"
            "--quorum stopped the VM (no quorum, or the secondary holds the\n"
            "VM's token).  Never another value.\n");
}

static int parse_ms(const char *opt, const char *arg, unsigned *out,
                    unsigned min)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);

    if (*end || !*arg || v < min || v > 3600000)
        return cli_usage_error("protect", "%s %s: a number of milliseconds "
                               "from %u to 3600000", opt, arg, min);
    *out = (unsigned)v;
    return 0;
}

int cmd_protect(int argc, char **argv)
{
    static const struct option opts[] = {
        RM_GUESTCFG_OPTS,
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "netbuf-max-bytes", required_argument, NULL, 'N' },
        { "progress", required_argument, NULL, 'P' },
        { "stats-file", required_argument, NULL, 'S' },
        { "digest-file", required_argument, NULL, 'D' },
        { "digest-every", required_argument, NULL, 'E' },
        { "release-log", required_argument, NULL, 'R' },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 0x300 },
        CLI_SPAWN_OPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_protect_cfg pc;
    struct rm_primary_cfg sc;
    struct rm_primary_result res;
    struct rm_backend *be = NULL;
    struct rm_guestcfg g;
    struct rm_error err = { 0 };
    struct sigaction sa;
    bool unsafe = false, blackhole = false, nonet = false, nodisk = false;
    bool compress = true;
    unsigned interval = 200, hb = 100, hb_timeout = 0, progress = 1000;
    unsigned long long nb_max = 0;
    const char *stats_path = NULL, *digest_path = NULL, *release_path = NULL;
    const char *key_path = NULL;
    bool insecure = false;
    struct rm_auth_key key;
    bool use_quorum = false;
    unsigned qsettle = 10000;
    struct rm_quorum *quorum = NULL;
    struct cli_spawn sp = { 0 };    /* HOST without :PORT */
    const char *spawn_host = NULL;
    int stats_fd = -1, digest_fd = -1, release_fd = -1;
    unsigned digest_every = 0;
    /* Guest options given on the command line override the VM file,
     * which is read after them: kept to be applied again. */
    struct { int opt; const char *arg; } gopts[32];
    unsigned nr_gopts = 0, gi;
    int c, rc, ret = RM_EXIT_FAIL;

    rm_guestcfg_init(&g, argv[0]);
    memset(&pc, 0, sizeof(pc));
    memset(&sc, 0, sizeof(sc));
    memset(&key, 0, sizeof(key));
    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:uFbndhs:", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (parse_ms("-i", optarg, &interval, 1))
                goto usage_out;
            continue;
        case 'u': compress = false; continue;
        case 'F': unsafe = true; continue;
        case 'b': blackhole = true; continue;
        case 'n': nonet = true; continue;
        case 'd': nodisk = true; continue;
        case 'H':
            if (parse_ms("--heartbeat", optarg, &hb, 1))
                goto usage_out;
            continue;
        case 'T':
            if (parse_ms("--heartbeat-timeout", optarg, &hb_timeout, 2))
                goto usage_out;
            continue;
        case 'P':
            if (parse_ms("--progress", optarg, &progress, 0))
                goto usage_out;
            continue;
        case 'S':
            stats_path = optarg;
            continue;
        case 'R': release_path = optarg; continue;
        case 'K': key_path = optarg; continue;
        case 0x301: insecure = true; continue;
        case 'Q':
            if (cli_quorum_service("protect", optarg))
                goto usage_out;
            use_quorum = true;
            continue;
        case 0x300:
            if (parse_ms("--quorum-settle", optarg, &qsettle, 1))
                goto usage_out;
            continue;
        case 'D':
            digest_path = optarg;
            continue;
        case 'E':
            if (parse_ms("--digest-every", optarg, &digest_every, 1))
                goto usage_out;
            continue;
        case 'N': {
            char *end;

            nb_max = strtoull(optarg, &end, 10);
            if (*end || nb_max < 4096) {
                cli_usage_error("protect", "--netbuf-max-bytes %s: at "
                                "least 4096", optarg);
                goto usage_out;
            }
            continue;
        }
        case 'h':
            usage(stdout);
            rm_guestcfg_free(&g);
            return RM_EXIT_OK;
        default:
            break;
        }
        rc = cli_spawn_opt("protect", &sp, c, optarg);
        if (rc < 0)
            goto usage_out;
        if (rc)
            continue;
        rc = rm_guestcfg_opt(&g, c, optarg, &err);
        if (rc < 0) {
            cli_usage_error("protect", "%s", rm_error_str(&err));
            goto usage_out;
        }
        if (rc == 0) {
            cli_usage_error("protect", "unknown option '%s'",
                            argv[optind - 1]);
            goto usage_out;
        }
        if (nr_gopts == sizeof(gopts) / sizeof(gopts[0])) {
            cli_usage_error("protect", "too many guest options");
            goto usage_out;
        }
        if (c != 0x100b) {      /* --config: read in place */
            gopts[nr_gopts].opt = c;
            gopts[nr_gopts++].arg = optarg;
        }
    }
    if ((blackhole || nonet || nodisk) && !unsafe) {
        cli_usage_error("protect", "%s%s%s need%s -F (unsafe mode): without "
                        "%s the protection does not hold its promise",
                        blackhole ? "-b " : "", nonet ? "-n " : "",
                        nodisk ? "-d " : "",
                        (blackhole + nonet + nodisk) > 1 ? "" : "s",
                        blackhole ? "a secondary" : nonet ?
                        "output buffering" : "disk replication");
        goto usage_out;
    }
    if (argc - optind < 1 || argc - optind > 2) {
        cli_usage_error("protect", "expected VM (a guest description file) "
                        "and HOST:PORT");
        goto usage_out;
    }
    if (strcmp(argv[optind], "-")) {
        rc = rm_guestcfg_opt(&g, 0x100b, argv[optind], &err);
        if (rc < 0) {
            cli_usage_error("protect", "%s", rm_error_str(&err));
            goto usage_out;
        }
        for (gi = 0; gi < nr_gopts; gi++)
            rm_guestcfg_opt(&g, gopts[gi].opt, gopts[gi].arg, &err);
    }
    if (argc - optind == 2 && !strchr(argv[optind + 1], ':')) {
        spawn_host = argv[optind + 1];     /* start its receiver */
    } else if (argc - optind == 2) {
        rc = rm_parse_hostport(argv[optind + 1], &pc.peer, &err);
        if (rc) {
            cli_usage_error("protect", "%s", rm_error_str(&err));
            goto usage_out;
        }
    } else if (!blackhole) {
        cli_usage_error("protect", "HOST:PORT of the secondary is missing");
        goto usage_out;
    }
    if (sp.given && !spawn_host) {
        cli_usage_error("protect", "-s, --remote-remus and --peer-* start "
                        "the receiver: give HOST without :PORT");
        goto usage_out;
    }
    if (spawn_host && blackhole) {
        cli_usage_error("protect", "-b with HOST: a blackhole has no "
                        "receiver to start");
        goto usage_out;
    }
    if (!hb_timeout)           /* not given: derived (proto/timing.h) */
        hb_timeout = rm_timing_default_timeout(interval, hb);
    if (hb_timeout <= hb) {
        cli_usage_error("protect", "--heartbeat-timeout %u must exceed "
                        "--heartbeat %u", hb_timeout, hb);
        goto usage_out;
    }
    if (!g.vm.image) {
        cli_usage_error("protect", "the guest description names no image");
        goto usage_out;
    }

    if (key_path && blackhole) {
        cli_usage_error("protect", "--key-file with -b: a blackhole has no "
                        "peer to authenticate");
        goto usage_out;
    }
    if (!blackhole) {   /* a blackhole has no peer: nothing to key */
        ret = cli_key("protect", key_path, insecure, &key, &pc.key);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }

    if (use_quorum && blackhole) {
        cli_usage_error("protect", "--quorum with -b: a blackhole has no "
                        "secondary to arbitrate with");
        goto usage_out;
    }
    /* Before the VM exists: never start one the other side may run. */
    if (use_quorum) {
        ret = cli_quorum_open("protect", g.vm.name, true, qsettle, &quorum);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }
    if (release_path) {
        release_fd = open(release_path, O_WRONLY | O_CREAT | O_TRUNC |
                          O_APPEND | O_CLOEXEC, 0644);
        if (release_fd < 0) {
            ret = cli_fail("protect", "cannot write '%s': %s",
                           release_path, strerror(errno));
            goto out;
        }
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
    if (digest_path && digest_every) {
        digest_fd = open(digest_path, O_WRONLY | O_CREAT | O_TRUNC |
                         O_CLOEXEC, 0644);
        if (digest_fd < 0) {
            ret = cli_fail("protect", "cannot write '%s': %s", digest_path,
                           strerror(errno));
            goto out;
        }
    }
    if (spawn_host) {     /* its receiver first: no VM if it fails */
        struct rm_peer_spawn_cfg scfg = {
            .host = spawn_host, .name = g.vm.name, .hb_interval_ms = hb,
            .hb_timeout_ms = hb_timeout, .quorum = use_quorum,
            .quorum_settle_ms = qsettle, .key = pc.key,
        };

        ret = cli_spawn_start("protect", &sp, &scfg, &pc.peer);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }
    {
        struct rm_kvm_protect_opts ko = {
            .no_netbuf = nonet, .netbuf_max_bytes = nb_max,
            .release_log_fd = release_fd,
        };

        if (rm_kvm_backend_protect(&g.vm, &ko, &be, &err)) {
            ret = cli_fail("protect", "%s", rm_error_str(&err));
            goto out;
        }
    }
    protect_be = be;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_handover;
    sigaction(SIGUSR2, &sa, NULL);

    pc.interval_ms = interval;
    pc.compress = compress;
    pc.blackhole = blackhole;
    pc.hb_interval_ms = hb;
    pc.hb_timeout_ms = hb_timeout;
    pc.connect_timeout_ms = 5000;
    pc.progress_ms = progress;
    pc.stats_fd = stats_fd;
    pc.digest_fd = digest_fd;
    pc.digest_every = digest_fd >= 0 ? digest_every : 0;
    sc.protect = pc;
    sc.quorum = quorum;
    sc.stop_requested = &protect_stop;
    sc.handover_requested = &protect_handover;
    rm_primary_run(be, &sc, &res);
    ret = (int)res.outcome;
    cli_spawn_end("protect", &sp, res.started,
                  res.protect.end == RM_PROTECT_STOPPED);
out:
    cli_spawn_end("protect", &sp, false, false);   /* never paired */
    if (stats_fd >= 0)
        close(stats_fd);
    if (digest_fd >= 0)
        close(digest_fd);
    protect_be = NULL;
    rm_backend_close(be);
    if (release_fd >= 0)
        close(release_fd);
    rm_guestcfg_free(&g);
    rm_auth_wipe(&key, sizeof(key));
    rm_quorum_close(quorum);
    return ret;
usage_out:
    rm_guestcfg_free(&g);
    return RM_EXIT_USAGE;
}
