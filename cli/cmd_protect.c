/* SPDX-License-Identifier: MIT */
/*
 * remus protect [OPTIONS] VM HOST:PORT|HOST | --xen DOMAIN HOST:PORT|HOST:
 * check the options (parsed in cli/protect_opts.c), start the receiver on
 * HOST when it has no port (primary/peer_spawn.h), open the VM's backend
 * (backends/open.h) and run the primary session (primary/session.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/protect_opts.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "primary/peer_spawn.h"
#include "proto/timing.h"

#define CMD "protect"

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
    /* --metrics (bound before any VM), and the service manager's
     * notifications under systemd (Type=notify). */
    if ((ret = cli_ops_start(CMD, &a->ops, &pc->observers)))
        goto out;
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
    cli_ops_end(&a->ops);
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
    ret = cli_protect_parse(&a, argc, argv);
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
