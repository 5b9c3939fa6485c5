/* SPDX-License-Identifier: MIT */
/*
 * `remus protect`'s command line (flags follow `xl remus`): options into
 * struct protect_args, then VM (a description, read after the options,
 * which override it) or --xen DOMAIN, and HOST:PORT or HOST.
 */
#include <getopt.h>
#include <limits.h>
#include <string.h>

#include "cli/protect_opts.h"
#include "proto/timing.h"

#define CMD "protect"

int cli_protect_parse(struct protect_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        RM_GUESTCFG_OPTS,
        { "xen", no_argument, NULL, 'x' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "netbuf-max-bytes", required_argument, NULL, 'N' },
        { "disk-buffer-bytes", required_argument, NULL, 0x303 },
        { "progress", required_argument, NULL, 'P' },
        { "stats-file", required_argument, NULL, 'S' },
        { "metrics", required_argument, NULL, 0x304 },
        { "digest-file", required_argument, NULL, 'D' },
        { "digest-every", required_argument, NULL, 'E' },
        { "release-log", required_argument, NULL, 'R' },
        { "suspend-timeout", required_argument, NULL, 0x302 },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 0x300 },
        { "colo", no_argument, NULL, 0x305 },
        { "compare-timeout", required_argument, NULL, 0x306 },
        { "colo-max-interval", required_argument, NULL, 0x307 },
        { "colo-fallback", required_argument, NULL, 0x308 },
        { "colo-fallback-hold", required_argument, NULL, 0x309 },
        CLI_SPAWN_OPTS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_protect_cfg *pc = &a->sc.protect;
    struct rm_error err = { 0 };
    /* Guest options override the VM file, which is read after them. */
    struct { int opt; const char *arg; } gopts[32];
    unsigned nr_gopts = 0, gi;
    unsigned long long nb_max = 0, disk_max = 0;
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
        case 0x304:
            if (cli_ops_metrics_opt(CMD, &a->ops, optarg))
                return RM_EXIT_USAGE;
            continue;
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
        case 0x303:
            if (cli_uint(CMD, "--disk-buffer-bytes", optarg, 4096,
                         ULLONG_MAX, &disk_max))
                return RM_EXIT_USAGE;
            a->spec.disk_buffer_bytes = disk_max;
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
        case 0x305:
            /* The replica runs between checkpoints: its memory is no
             * reference for the compressor's deltas (see receive). */
            pc->colo = a->spec.colo = true;
            continue;
        case 0x306:
            a->colo_only = "--compare-timeout";
            if (cli_uint32(CMD, "--compare-timeout", optarg, 1, CLI_MS_MAX,
                           &a->spec.compare_timeout_ms))
                return RM_EXIT_USAGE;
            continue;
        case 0x307:
            a->colo_only = "--colo-max-interval";
            if (cli_uint32(CMD, "--colo-max-interval", optarg, 1, CLI_MS_MAX,
                           &pc->colo_max_interval_ms))
                return RM_EXIT_USAGE;
            continue;
        case 0x308:
            a->colo_only = "--colo-fallback";
            if (cli_uint32(CMD, "--colo-fallback", optarg, 0, 100000,
                           &pc->colo_fallback_rate))
                return RM_EXIT_USAGE;
            a->fallback_set = true;
            continue;
        case 0x309:
            a->colo_only = "--colo-fallback-hold";
            if (cli_uint32(CMD, "--colo-fallback-hold", optarg, 1, CLI_MS_MAX,
                           &pc->colo_fallback_hold_ms))
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
    if (pc->colo)
        pc->compress = false;
    /* By default COLO falls back once divergences ask for as many
     * checkpoints as buffered mode takes (one every -i). */
    if (pc->colo && !a->fallback_set)
        pc->colo_fallback_rate = pc->interval_ms >= 1000
                                     ? 1 : 1000 / pc->interval_ms;
    if (a->colo_only && !pc->colo)
        return cli_usage_error(CMD, "%s is for COLO: add --colo",
                               a->colo_only);
    if (pc->colo && a->spec.no_disk)
        return cli_usage_error(CMD, "--colo with -d: the replica's disk "
                               "would not be the primary's");
    if (pc->colo && (a->spec.no_netbuf || a->blackhole))
        return cli_usage_error(CMD, "--colo compares the VM's output with "
                               "the replica's: not with %s",
                               a->blackhole ? "-b" : "-n");
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

