/* SPDX-License-Identifier: MIT */
/*
 * remus receive --listen ADDR:PORT [OPTIONS] (--xen --config XLCFG for a
 * Xen guest): parses the options (cli/receive_opts.c), opens the
 * replica's backend (backends/open.h) and runs the secondary session
 * (secondary/session.h).
 */
#include <string.h>
#include <unistd.h>

#include "cli/receive_opts.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "secondary/session.h"

#define CMD "receive"

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
    /* --metrics (bound before any VM), and the service manager's
     * notifications under systemd (Type=notify). */
    if ((ret = cli_ops_start(CMD, &a->ops, &rc->observers)))
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
    cli_ops_end(&a->ops);
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
    ret = cli_receive_parse(&a, argc, argv);
    if (ret < 0)
        ret = RM_EXIT_OK;          /* --help */
    else if (!ret && !(ret = cli_receive_resolve(&a)))
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
