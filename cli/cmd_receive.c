/* SPDX-License-Identifier: MIT */
/*
 * remus receive --listen ADDR:PORT [OPTIONS] (--xen --config XLCFG for a
 * Xen guest): parse the options, open the replica's backend
 * (backends/open.h) and run the secondary session (secondary/session.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/guestcfg.h"
#include "backends/open.h"
#include "backends/xen/xl_config.h"
#include "cli/cli.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "secondary/session.h"

#define CMD "receive"

struct receive_args {
    struct rm_secondary_cfg sc;        /* sc.receive: the protocol */
    struct rm_backend_replica_spec spec;
    struct rm_guestcfg known;          /* --config: the VM's description */
    bool xen, have_listen, have_config, use_quorum, insecure, announce;
    unsigned qsettle;
    unsigned long long max_mib;
    const char *config, *name, *digest_path, *commit_log, *key_path;
    const char *kvm_only;              /* an option given that is */
    bool xen_only;                     /* --replica-name given */
    char xl_name[64];                  /* the name in the xl config */
};

static int parse(struct receive_args *a, int argc, char **argv)
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

/* The VM this side knows: --config (with --xen: the xl config), its name
 * and backend.  0 or the status of a usage error. */
static int resolve(struct receive_args *a)
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

static int run(struct receive_args *a)
{
    struct rm_receive_cfg *rc = &a->sc.receive;
    struct rm_secondary_result res;
    struct rm_backend *be = NULL;
    struct rm_quorum *quorum = NULL;
    struct rm_auth_key key;
    struct rm_error err = { 0 };
    int ret;

    memset(&key, 0, sizeof(key));
    if (a->use_quorum &&
        (ret = cli_quorum_open(CMD, a->name, false, a->qsettle, &quorum)))
        goto out;
    if ((ret = cli_key(CMD, a->key_path, a->insecure, &key, &rc->key)))
        goto out;
    ret = RM_EXIT_FAIL;
    if ((a->commit_log &&
         (ret = cli_open_log(CMD, a->commit_log, true,
                             &rc->commit_log_fd))) ||
        (a->digest_path && rc->digest_every &&
         (ret = cli_open_log(CMD, a->digest_path, false, &rc->digest_fd))))
        goto out;
    if (rm_backend_open_replica(&a->spec, &be, &err)) {
        ret = cli_fail(CMD, "%s", rm_error_str(&err));
        goto out;
    }
    /* A receiver started by `remus protect VM HOST`: says where it
     * listens once its replica is ready. */
    if (a->announce && (ret = cli_receive_announce(CMD, rc)))
        goto out;
    a->sc.quorum = quorum;
    a->sc.name = a->name;
    a->sc.serve_control = true;
    /* A VM that took over stops with the first signal when it cannot run
     * on without this process (it runs in it, or this side holds its
     * quorum token). */
    a->sc.stop_requested = cli_catch_stop(be, be->in_process || quorum);
    rm_secondary_run(be, &a->sc, &res);
    cli_release_stop();
    ret = (int)res.outcome;
out:
    rm_backend_close(be);
    rm_quorum_close(quorum);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}

int cmd_receive(int argc, char **argv)
{
    struct receive_args a;
    struct rm_receive_cfg *rc = &a.sc.receive;
    int ret;

    memset(&a, 0, sizeof(a));
    rm_receive_cfg_init(rc);
    rm_vm_config_default(&a.spec.kvm.cfg);
    a.spec.kvm.cfg.name = NULL;
    a.qsettle = 10000;
    a.sc.fence_timeout_ms = 60000;
    rm_guestcfg_init(&a.known, argv[0]);
    ret = parse(&a, argc, argv);
    if (ret < 0)
        ret = RM_EXIT_OK;          /* --help */
    else if (!ret && !(ret = resolve(&a)))
        ret = run(&a);
    if (rc->digest_fd >= 0)
        close(rc->digest_fd);
    if (rc->commit_log_fd >= 0)
        close(rc->commit_log_fd);
    if (rc->listen_fd >= 0)       /* --announce's */
        close(rc->listen_fd);
    rm_guestcfg_free(&a.known);
    return ret;
}
