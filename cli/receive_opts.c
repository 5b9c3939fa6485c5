/* SPDX-License-Identifier: MIT */
/*
 * `remus receive`'s command line: its options into struct receive_args,
 * then what they say together with the VM this side knows (--config).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/xl_config.h"
#include "cli/receive_opts.h"

#define CMD "receive"

int cli_receive_parse(struct receive_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "listen", required_argument, NULL, 'l' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "no-compression", no_argument, NULL, 'u' },
        { "max-memory", required_argument, NULL, 'm' },
        { "buffer", required_argument, NULL, 'B' },
        { "name", required_argument, NULL, 'n' },
        { "tap", required_argument, NULL, 't' },
        { "tap-netns", required_argument, NULL, 'N' },
        { "console", required_argument, NULL, 'o' },
        { "progress", required_argument, NULL, 'P' },
        { "digest-file", required_argument, NULL, 'D' },
        { "commit-log", required_argument, NULL, 'L' },
        { "digest-every", required_argument, NULL, 'E' },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "config", required_argument, NULL, 0x302 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 'S' },
        { "fence-cmd", required_argument, NULL, 'F' },
        { "fence-timeout", required_argument, NULL, 'W' },
        { "replica-name", required_argument, NULL, 'R' },
        { "announce", no_argument, NULL, 0x303 },
        { "disk", required_argument, NULL, 0x304 },
        { "disk-sync", no_argument, NULL, 0x305 },
        { "metrics", required_argument, NULL, 0x306 },
        { "colo", no_argument, NULL, 0x307 },
        { "colo-overlay-bytes", required_argument, NULL, 0x308 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_receive_cfg *rc = &a->sc.receive;
    struct rm_kvm_replica_opts *ro = &a->spec.kvm;
    struct rm_error err = { 0 };
    unsigned long long v;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': a->xen = true; break;
        case 'l':
            if (rm_parse_hostport(optarg, &rc->listen, &err))
                return cli_usage_error(CMD, "--listen: %s",
                                       rm_error_str(&err));
            a->have_listen = true;
            break;
        case 'H':
            if (cli_uint32(CMD, "--heartbeat", optarg, 1, CLI_MS_MAX,
                           &rc->hb_interval_ms))
                return RM_EXIT_USAGE;
            break;
        case 'T':
            if (cli_uint32(CMD, "--heartbeat-timeout", optarg, 2,
                           CLI_MS_MAX, &rc->hb_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'u': rc->allow_compression = false; break;
        case 'm':
            if (cli_uint(CMD, "--max-memory", optarg, 4, 1u << 22,
                         &a->max_mib))
                return RM_EXIT_USAGE;
            break;
        case 'B':
            if (cli_uint(CMD, "--buffer", optarg, 1, 1u << 22, &v))
                return RM_EXIT_USAGE;
            rc->buffer_bytes = v << 20;
            break;
        case 'n': a->name = optarg; break;
        case 't': ro->cfg.tap = a->kvm_only = optarg; break;
        case 'N': ro->cfg.tap_netns = a->kvm_only = optarg; break;
        case 'o': ro->cfg.console_path = a->kvm_only = optarg; break;
        case 'P':
            if (cli_uint32(CMD, "--progress", optarg, 0, CLI_MS_MAX,
                           &rc->progress_ms))
                return RM_EXIT_USAGE;
            break;
        case 'E':
            a->kvm_only = optarg;
            if (cli_uint32(CMD, "--digest-every", optarg, 1, CLI_MS_MAX,
                           &rc->digest_every))
                return RM_EXIT_USAGE;
            break;
        case 'D': a->digest_path = a->kvm_only = optarg; break;
        case 'L': a->commit_log = optarg; break;
        case 'K': a->key_path = optarg; break;
        case 0x301: a->insecure = true; break;
        case 0x302: a->config = optarg; break;
        case 'Q':
            if (cli_quorum_service(CMD, optarg))
                return RM_EXIT_USAGE;
            a->use_quorum = true;
            break;
        case 'S':
            if (cli_uint32(CMD, "--quorum-settle", optarg, 1, CLI_MS_MAX,
                           &a->qsettle))
                return RM_EXIT_USAGE;
            break;
        case 'F': a->sc.fence_cmd = optarg; break;
        case 'W':
            if (cli_uint32(CMD, "--fence-timeout", optarg, 1, CLI_MS_MAX,
                           &a->sc.fence_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 0x303: a->announce = true; break;
        case 0x304:
            if (a->spec.nr_disks == RM_DISK_MAX)
                return cli_usage_error(CMD, "--disk: at most %u disks",
                                       RM_DISK_MAX);
            a->spec.disk_paths[a->spec.nr_disks++] = optarg;
            break;
        case 0x305: a->spec.disk_sync = true; break;
        case 0x307: rc->colo = true; a->kvm_only = "--colo"; break;
        case 0x308:
            if (cli_uint(CMD, "--colo-overlay-bytes", optarg, 65536,
                         1ull << 40, &v))
                return RM_EXIT_USAGE;
            ro->colo_overlay_bytes = v;
            a->kvm_only = "--colo-overlay-bytes";
            break;
        case 0x306:
            if (cli_ops_metrics_opt(CMD, &a->ops, optarg))
                return RM_EXIT_USAGE;
            break;
        case 'R':
            a->spec.replica_name = optarg;
            a->xen_only = true;
            break;
        case 'h': cli_receive_usage(stdout); return -1;
        default:
            return cli_usage_error(CMD, "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error(CMD, "unexpected argument '%s'",
                               argv[optind]);
    if (!a->have_listen)
        return cli_usage_error(CMD, "--listen ADDR:PORT is required");
    return 0;
}

int cli_receive_resolve(struct receive_args *a)
{
    struct rm_kvm_replica_opts *ro = &a->spec.kvm;
    struct rm_error err = { 0 };

    if (a->xen) {
        a->spec.kind = RM_BACKEND_KIND_XEN;
        a->spec.xl_config = a->config;
    } else if (a->config) {
        if (rm_guestcfg_opt(&a->known, 0x100b, a->config, &err) < 0)
            return cli_usage_error(CMD, "--config: %s", rm_error_str(&err));
        if (rm_backend_kind_parse(a->known.vm.backend, &a->spec.kind, &err))
            return cli_usage_error(CMD, "--config: %s", rm_error_str(&err));
        ro->expect = &a->known.vm;
        a->spec.xl_config = a->known.vm.xl_config;
        if (!a->name)
            a->name = a->known.vm.name;   /* the VM's name: its file's */
    }
    if (a->spec.kind != RM_BACKEND_KIND_XEN && a->xen_only)
        return cli_usage_error(CMD, "--replica-name is for a Xen replica "
                               "(--xen, or backend = xen)");
    /* The negative control of disk replication's tests: the replica's
     * disk runs ahead of its memory.  Never for a real replica. */
    if (a->spec.nr_disks && getenv("REMUS_TEST_DISK_ON_ARRIVAL")) {
        fprintf(stderr, "remus receive: TEST MODE (REMUS_TEST_DISK_ON_"
                "ARRIVAL): disk writes are applied as they arrive, before "
                "their checkpoint commits: a failover can resume on a disk "
                "ahead of its memory\n");
        a->sc.receive.test_disk_on_arrival = true;
    }
    if (a->sc.receive.colo && getenv("REMUS_TEST_COLO_DROP_DIRTY")) {
        fprintf(stderr, "remus receive: TEST MODE (REMUS_TEST_COLO_DROP_"
                "DIRTY): the replica's dirty pages are NOT sent back: its "
                "own changes survive checkpoints\n");
        a->sc.receive.test_colo_drop_dirty = true;
    }
    if (ro->colo_overlay_bytes && !a->sc.receive.colo)
        return cli_usage_error(CMD, "--colo-overlay-bytes without --colo: "
                               "only a COLO replica writes to an overlay");
    if (a->sc.receive.colo && a->spec.nr_disks &&
        getenv("REMUS_TEST_COLO_NO_ASK")) {
        fprintf(stderr, "remus receive: TEST MODE (REMUS_TEST_COLO_NO_ASK): "
                "the replica does NOT ask for a checkpoint when its disk "
                "overlay is half full: its writes wait at the cap for a periodic "
                "checkpoint\n");
        a->sc.receive.test_colo_no_ask = true;
    }
    if (a->sc.receive.colo && a->spec.nr_disks &&
        getenv("REMUS_TEST_COLO_NO_FOLD")) {
        fprintf(stderr, "remus receive: TEST MODE (REMUS_TEST_COLO_NO_FOLD): "
                "a takeover DROPS what the replica wrote to its disk since "
                "its checkpoint: its disk will not match its memory\n");
        a->spec.test_colo_no_fold = true;
    }
    /* COLO: the replica runs, so its memory is no reference for the
     * checkpoint compressor's deltas: checkpoints go uncompressed. */
    if (a->sc.receive.colo)
        a->sc.receive.allow_compression = false;
    if (a->spec.disk_sync && !a->spec.nr_disks)
        return cli_usage_error(CMD, "--disk-sync without --disk: there is "
                               "no replica image to sync");
    if (a->spec.kind == RM_BACKEND_KIND_XEN) {
        if (a->kvm_only)
            return cli_usage_error(CMD, "'%s' is for a KVM replica; this is "
                                   "a Xen guest", a->kvm_only);
        if (!a->spec.xl_config)
            return cli_usage_error(CMD, "a Xen replica needs the guest's xl "
                                   "config (--xen --config XLCFG, or "
                                   "xl_config = in the description)");
        if (!a->name) {
            if (rm_xl_config_name(a->spec.xl_config, a->xl_name,
                                  sizeof(a->xl_name), &err))
                return cli_usage_error(CMD, "%s", rm_error_str(&err));
            a->name = a->xl_name;
        }
        a->spec.name = a->name;
    }
    ro->cfg.name = a->name;
    if (a->max_mib)
        a->sc.receive.max_guest_bytes = a->max_mib << 20;
    else    /* the micro-VMM's largest guest; Xen's: a large one */
        a->sc.receive.max_guest_bytes = a->spec.kind == RM_BACKEND_KIND_XEN ?
                                        64ull << 30 : 4ull << 30;
    ro->max_mem_bytes = a->sc.receive.max_guest_bytes;
    if (a->sc.receive.hb_timeout_ms &&
        a->sc.receive.hb_timeout_ms <= a->sc.receive.hb_interval_ms)
        return cli_usage_error(CMD, "--heartbeat-timeout %u must exceed "
                               "--heartbeat %u", a->sc.receive.hb_timeout_ms,
                               a->sc.receive.hb_interval_ms);
    if (a->use_quorum && !a->name)
        return cli_usage_error(CMD, "--quorum needs --name NAME (the "
                               "protected VM's name: it names the corosync "
                               "group both sides join)");
    if (a->sc.fence_cmd && !a->name)
        return cli_usage_error(CMD, "--fence-cmd needs --name NAME (the "
                               "protected VM's name, for REMUS_NAME: never "
                               "taken from the primary)");
    return 0;
}

