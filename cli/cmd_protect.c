/* SPDX-License-Identifier: MIT */
/*
 * remus protect [OPTIONS] VM HOST:PORT|HOST | --xen DOMAIN HOST:PORT|HOST:
 * parse the options (flags follow `xl remus`), start the receiver on HOST
 * when it has no port (primary/peer_spawn.h), open the VM's backend
 * (backends/open.h) and run the primary session (primary/session.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/guestcfg.h"
#include "backends/open.h"
#include "cli/cli.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "primary/peer_spawn.h"
#include "primary/session.h"
#include "proto/timing.h"

#define CMD "protect"

struct protect_args {
    struct rm_primary_cfg sc;          /* sc.protect: the protocol */
    struct rm_backend_protect_spec spec;
    struct rm_guestcfg g;              /* KVM: the VM */
    bool xen, unsafe, blackhole, use_quorum, insecure;
    unsigned qsettle;
    unsigned long long digest_every;
    const char *stats_path, *digest_path, *release_path, *key_path;
    const char *kvm_only, *xen_only;   /* an option given that is */
    struct cli_spawn sp;               /* HOST without :PORT */
    const char *spawn_host;
    const char *desc_path;             /* VM: the description file */
};

/* The options; 0, or the exit status of a usage error (printed). */
static int parse(struct protect_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        RM_GUESTCFG_OPTS,
        { "xen", no_argument, NULL, 'x' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "netbuf-max-bytes", required_argument, NULL, 'N' },
        { "progress", required_argument, NULL, 'P' },
        { "stats-file", required_argument, NULL, 'S' },
        { "digest-file", required_argument, NULL, 'D' },
        { "digest-every", required_argument, NULL, 'E' },
        { "release-log", required_argument, NULL, 'R' },
        { "suspend-timeout", required_argument, NULL, 0x302 },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 0x300 },
        CLI_SPAWN_OPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_protect_cfg *pc = &a->sc.protect;
    struct rm_error err = { 0 };
    /* Guest options override the VM file, which is read after them. */
    struct { int opt; const char *arg; } gopts[32];
    unsigned nr_gopts = 0, gi;
    unsigned long long nb_max = 0;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:uFbndhs:", opts, NULL)) != -1) {
        switch (c) {
        case 'x': a->xen = true; continue;
        case 'i':
            if (cli_uint32(CMD, "-i", optarg, 1, CLI_MS_MAX,
                           &pc->interval_ms))
                return RM_EXIT_USAGE;
            continue;
        case 'u': pc->compress = false; continue;
        case 'F': a->unsafe = true; continue;
        case 'b': a->blackhole = true; continue;
        case 'n': a->spec.no_netbuf = true; continue;
        case 'd': a->spec.no_disk = true; continue;
        case 'H':
            if (cli_uint32(CMD, "--heartbeat", optarg, 1, CLI_MS_MAX,
                           &pc->hb_interval_ms))
                return RM_EXIT_USAGE;
            continue;
        case 'T':
            if (cli_uint32(CMD, "--heartbeat-timeout", optarg, 2,
                           CLI_MS_MAX, &pc->hb_timeout_ms))
                return RM_EXIT_USAGE;
            continue;
        case 'P':
            if (cli_uint32(CMD, "--progress", optarg, 0, CLI_MS_MAX,
                           &pc->progress_ms))
                return RM_EXIT_USAGE;
            continue;
        case 'S': a->stats_path = optarg; continue;
        case 'R': a->release_path = a->kvm_only = optarg; continue;
        case 'D': a->digest_path = a->kvm_only = optarg; continue;
        case 'E':
            a->kvm_only = optarg;
            if (cli_uint(CMD, "--digest-every", optarg, 1, CLI_MS_MAX,
                         &a->digest_every))
                return RM_EXIT_USAGE;
            continue;
        case 'N':
            a->kvm_only = optarg;
            if (cli_uint(CMD, "--netbuf-max-bytes", optarg, 4096,
                         ULLONG_MAX, &nb_max))
                return RM_EXIT_USAGE;
            a->spec.netbuf_max_bytes = nb_max;
            continue;
        case 0x302:
            a->xen_only = "--suspend-timeout";
            if (cli_uint32(CMD, "--suspend-timeout", optarg, 1, CLI_MS_MAX,
                           &a->spec.suspend_timeout_ms))
                return RM_EXIT_USAGE;
            continue;
        case 'K': a->key_path = optarg; continue;
        case 0x301: a->insecure = true; continue;
        case 'Q':
            if (cli_quorum_service(CMD, optarg))
                return RM_EXIT_USAGE;
            a->use_quorum = true;
            continue;
        case 0x300:
            if (cli_uint32(CMD, "--quorum-settle", optarg, 1, CLI_MS_MAX,
                           &a->qsettle))
                return RM_EXIT_USAGE;
            continue;
        case 'h':
            cli_protect_usage(stdout);
            return -1;
        default:
            break;
        }
        rc = cli_spawn_opt(CMD, &a->sp, c, optarg);
        if (rc < 0)
            return RM_EXIT_USAGE;
        if (rc)
            continue;
        rc = rm_guestcfg_opt(&a->g, c, optarg, &err);
        if (rc < 0)
            return cli_usage_error(CMD, "%s", rm_error_str(&err));
        if (rc == 0)
            return cli_usage_error(CMD, "unknown option '%s'",
                                   argv[optind - 1]);
        if (nr_gopts == sizeof(gopts) / sizeof(gopts[0]))
            return cli_usage_error(CMD, "too many guest options");
        a->kvm_only = argv[optind - 1];
        if (c != 0x100b) {      /* --config: read in place */
            gopts[nr_gopts].opt = c;
            gopts[nr_gopts++].arg = optarg;
        }
    }
    if (argc - optind < 1 || argc - optind > 2)
        return cli_usage_error(CMD, "expected VM (a description file) or "
                               "--xen DOMAIN, and HOST:PORT");
    if (argc - optind == 2 && !strchr(argv[optind + 1], ':')) {
        a->spawn_host = argv[optind + 1];     /* start its receiver */
    } else if (argc - optind == 2) {
        if (rm_parse_hostport(argv[optind + 1], &pc->peer, &err))
            return cli_usage_error(CMD, "%s", rm_error_str(&err));
    } else if (!a->blackhole) {
        return cli_usage_error(CMD, "HOST:PORT of the secondary is missing");
    }
    if (a->xen) {
        a->spec.kind = RM_BACKEND_KIND_XEN;
        a->spec.domain = argv[optind];
    } else if (strcmp(argv[optind], "-")) {
        a->desc_path = argv[optind];
        rc = rm_guestcfg_opt(&a->g, 0x100b, argv[optind], &err);
        if (rc < 0)
            return cli_usage_error(CMD, "%s", rm_error_str(&err));
        for (gi = 0; gi < nr_gopts; gi++)
            rm_guestcfg_opt(&a->g, gopts[gi].opt, gopts[gi].arg, &err);
        if (rm_backend_kind_parse(a->g.vm.backend, &a->spec.kind, &err))
            return cli_usage_error(CMD, "%s", rm_error_str(&err));
        a->spec.domain = a->g.vm.name;     /* Xen: the domain's name */
    }
    return 0;
}

/* What the options say together; 0 or the status of a usage error. */
static int check(struct protect_args *a)
{
    struct rm_protect_cfg *pc = &a->sc.protect;
    bool xen = a->spec.kind == RM_BACKEND_KIND_XEN;

    if ((a->blackhole || a->spec.no_netbuf || a->spec.no_disk) && !a->unsafe)
        return cli_usage_error(CMD, "%s%s%sneed -F (unsafe mode): without "
                               "%s the protection does not hold its "
                               "promise", a->blackhole ? "-b " : "",
                               a->spec.no_netbuf ? "-n " : "",
                               a->spec.no_disk ? "-d " : "",
                               a->blackhole ? "a secondary" :
                               a->spec.no_netbuf ? "output buffering" :
                               "disk replication");
    if (xen && a->kvm_only)
        return cli_usage_error(CMD, "'%s' is for a KVM VM; this VM is a Xen "
                               "domain", a->kvm_only);
    if (!xen && a->xen_only)
        return cli_usage_error(CMD, "%s is for a Xen domain (--xen, or "
                               "backend = xen)", a->xen_only);
    if (!xen && !a->g.vm.image)
        return cli_usage_error(CMD, "the guest description names no image");
    if (!pc->hb_timeout_ms)    /* not given: derived (proto/timing.h) */
        pc->hb_timeout_ms = rm_timing_default_timeout(pc->interval_ms,
                                                      pc->hb_interval_ms);
    if (pc->hb_timeout_ms <= pc->hb_interval_ms)
        return cli_usage_error(CMD, "--heartbeat-timeout %u must exceed "
                               "--heartbeat %u", pc->hb_timeout_ms,
                               pc->hb_interval_ms);
    if (a->key_path && a->blackhole)
        return cli_usage_error(CMD, "--key-file with -b: a blackhole has no "
                               "peer to authenticate");
    if (a->use_quorum && a->blackhole)
        return cli_usage_error(CMD, "--quorum with -b: a blackhole has no "
                               "secondary to arbitrate with");
    if (a->sp.given && !a->spawn_host)
        return cli_usage_error(CMD, "-s, --remote-remus and --peer-* start "
                               "the receiver: give HOST without :PORT");
    if (a->spawn_host && a->blackhole)
        return cli_usage_error(CMD, "-b with HOST: a blackhole has no "
                               "receiver to start");
    pc->blackhole = a->blackhole;
    return 0;
}

/* HOST without :PORT: start its `remus receive` (primary/peer_spawn.h)
 * with this side's settings; its --config: --peer-config, else for --xen
 * /etc/xen/NAME.cfg, else the description's own path (the same on both
 * hosts).  0 with the peer set, or the status of the printed failure. */
static int spawn(struct protect_args *a, const char *name)
{
    struct rm_protect_cfg *pc = &a->sc.protect;
    char xl_cfg[160];
    struct rm_peer_spawn_cfg scfg = {
        .host = a->spawn_host, .xen = a->xen, .name = name,
        .config = a->desc_path, .hb_interval_ms = pc->hb_interval_ms,
        .hb_timeout_ms = pc->hb_timeout_ms, .quorum = a->use_quorum,
        .quorum_settle_ms = a->qsettle, .key = pc->key,
    };

    if (a->xen) {
        snprintf(xl_cfg, sizeof(xl_cfg), "/etc/xen/%s.cfg", name);
        scfg.config = xl_cfg;
    }
    return cli_spawn_start(CMD, &a->sp, &scfg, &pc->peer);
}

/* Key, quorum, files, the backend, the session. */
static int run(struct protect_args *a)
{
    struct rm_protect_cfg *pc = &a->sc.protect;
    struct rm_primary_result res;
    struct rm_backend *be = NULL;
    struct rm_quorum *quorum = NULL;
    struct rm_auth_key key;
    struct rm_error err = { 0 };
    /* A KVM VM is created here: never one the other side may run, so the
     * quorum first.  A Xen domain runs already: its name (DOMAIN may be
     * an id) names the group. */
    bool quorum_first = a->spec.kind == RM_BACKEND_KIND_KVM;
    int ret;

    memset(&key, 0, sizeof(key));
    if (!a->blackhole &&   /* a blackhole has no peer: nothing to key */
        (ret = cli_key(CMD, a->key_path, a->insecure, &key, &pc->key)))
        goto out;
    if (a->use_quorum && quorum_first &&
        (ret = cli_quorum_open(CMD, a->g.vm.name, true, a->qsettle,
                               &quorum)))
        goto out;
    if ((a->release_path &&
         (ret = cli_open_log(CMD, a->release_path, true,
                             &a->spec.release_log_fd))) ||
        (a->stats_path && (ret = cli_open_log(CMD, a->stats_path, false,
                                              &pc->stats_fd))) ||
        (a->digest_path && a->digest_every &&
         (ret = cli_open_log(CMD, a->digest_path, false, &pc->digest_fd))))
        goto out;
    pc->digest_every = pc->digest_fd >= 0 ? (unsigned)a->digest_every : 0;
    a->spec.vm = &a->g.vm;
    /* A KVM VM's receiver first: no VM if it fails. */
    if (quorum_first && a->spawn_host &&
        (ret = spawn(a, a->g.vm.name)))
        goto out;
    if (rm_backend_open_protected(&a->spec, &be, &err)) {
        ret = cli_fail(CMD, "%s", rm_error_str(&err));
        goto out;
    }
    if (!quorum_first && a->spawn_host && (ret = spawn(a, be->vm_name)))
        goto out;
    if (a->use_quorum && !quorum_first &&
        (ret = cli_quorum_open(CMD, be->vm_name, true, a->qsettle,
                               &quorum)))
        goto out;
    a->sc.quorum = quorum;
    a->sc.serve_control = true;
    a->sc.stop_requested = cli_catch_stop(be, false);
    rm_primary_run(be, &a->sc, &res);
    cli_release_stop();
    ret = (int)res.outcome;
    cli_spawn_end(CMD, &a->sp, res.started,
                  res.protect.end == RM_PROTECT_STOPPED);
out:
    cli_spawn_end(CMD, &a->sp, false, false);   /* never paired */
    rm_backend_close(be);
    rm_quorum_close(quorum);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}

int cmd_protect(int argc, char **argv)
{
    struct protect_args a;
    struct rm_protect_cfg *pc = &a.sc.protect;
    int ret;

    memset(&a, 0, sizeof(a));
    rm_protect_cfg_init(pc);
    pc->hb_timeout_ms = 0;         /* not given: derived in check() */
    pc->progress_ms = 1000;
    a.spec.release_log_fd = -1;
    a.qsettle = 10000;
    rm_guestcfg_init(&a.g, argv[0]);
    ret = parse(&a, argc, argv);
    if (ret < 0)
        ret = RM_EXIT_OK;          /* --help */
    else if (!ret && !(ret = check(&a)))
        ret = run(&a);
    if (pc->stats_fd >= 0)
        close(pc->stats_fd);
    if (pc->digest_fd >= 0)
        close(pc->digest_fd);
    if (a.spec.release_log_fd >= 0)
        close(a.spec.release_log_fd);
    rm_guestcfg_free(&a.g);
    return ret;
}
