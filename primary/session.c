/* SPDX-License-Identifier: MIT */
/* One primary session for every backend (see session.h). */
#define RM_LOG_PREFIX "primary"
#include "primary/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster/hold.h"
#include "cluster/quorum.h"
#include "common/log.h"
#include "primary/control.h"

static int pause_be(void *opaque)
{
    struct rm_backend *be = opaque;

    return be->ops->pause(be);
}

static uint64_t digest_be(void *opaque)
{
    struct rm_backend *be = opaque;

    return be->ops->mem_digest(be);
}

/*
 * After the protection: wait for the VM this side still runs (holding its
 * token with quorum).  A VM this process does not run (a Xen domain) is
 * held, with @release, until it ends or *@release is raised (a stop was
 * asked): its process stays to serve its control socket (`remus
 * reprotect`, `remus status`); without @release (NULL) not at all.
 * Returns the outcome of the VM's end.
 */
static enum rm_outcome hold_vm(struct rm_backend *be, struct rm_quorum *q,
                               volatile sig_atomic_t *release,
                               struct rm_primary_result *res)
{
    char why[400];
    int64_t code = 0;
    enum rm_backend_end end;
    int rc;

    rc = rm_hold_vm(be, q, release, why, sizeof(why));
    if (rc == -ENOLCK) {
        LOG_ERR("STOPPED the VM: %s", why);
        rm_error_set(&res->why, -ENOLCK, "%s", why);
        return RM_OUTCOME_HELD_BACK;
    }
    if (rc == 1)
        return RM_OUTCOME_OK;   /* a domain that runs on by itself */
    end = be->ops->end(be, &code, why, sizeof(why));
    LOG_INFO("%s", why);
    /* The guest's own halt code is only logged: the exit status says how
     * the protection ended (3 and 4 never come from the guest). */
    if (end == RM_BACKEND_FAILED) {
        rm_error_set(&res->why, -EIO, "%s", why);
        return RM_OUTCOME_FAILED;
    }
    return RM_OUTCOME_OK;
}

static int colo_mirror_be(void *opaque, rm_colo_mirror_fn fn, void *fn_opaque)
{
    struct rm_backend *be = opaque;

    return be->ops->colo_mirror(be, fn, fn_opaque);
}

void rm_primary_protect(struct rm_backend *be,
                        const struct rm_primary_cfg *cfg,
                        struct rm_primary_result *res)
{
    struct rm_protect_cfg pc = cfg->protect;
    struct rm_protect_result *pr = &res->protect;
    struct rm_error err = { 0 };
    char peer[RM_HOST_MAX + 8];
    int rc;

    memset(res, 0, sizeof(*res));
    pc.name = be->vm_name;
    pc.backend_name = be->kind;
    pc.guest_bytes = be->guest_bytes;
    pc.nr_vcpus = be->nr_vcpus;
    pc.ops = be->ops->save_ops(be, &pc.backend_arg);
    if (be->plain_stream)
        pc.compress = false;
    pc.netbuf = be->netbuf;
    pc.disks = be->disklog;
    pc.unreplicated = be->unreplicated;
    pc.nr_unreplicated = be->nr_unreplicated;
    pc.stop_requested = cfg->stop_requested;
    pc.handover_requested = NULL;
    snprintf(peer, sizeof(peer), "%s:%u", pc.peer.host, pc.peer.port);
    if (cfg->control)
        pc.handover_requested = rm_vm_control_session_begin(cfg->control,
                                                            peer);
    pc.pause_vm = be->ops->pause ? pause_be : NULL;
    pc.pause_opaque = be;
    pc.mem_digest = NULL;
    if (pc.digest_every && pc.digest_fd >= 0 && be->ops->mem_digest) {
        pc.mem_digest = digest_be;
        pc.mem_digest_opaque = be;
    }
    pc.quorum = cfg->quorum;
    /* --colo: the caller asked; the backend must offer it (and made its
     * netbuf COLO's comparator). */
    if (pc.colo && !be->ops->colo_mirror) {
        rm_error_set(&res->why, -EOPNOTSUPP, "COLO (--colo) is not offered "
                     "by the %s backend", be->kind);
        res->outcome = RM_OUTCOME_FAILED;
        return;
    }
    pc.colo_mirror = pc.colo ? colo_mirror_be : NULL;
    pc.colo_mirror_opaque = be;

    rc = rm_protect_run(&pc, pr, &err);
    if (rc) {
        /* Protection never started (a refused handshake, e.g. a wrong
         * key) or broke: the VM runs on, unprotected, but this failed. */
        LOG_ERR("%s", rm_error_str(&err));
        res->why = err;
        res->outcome = RM_OUTCOME_FAILED;
        goto out;
    }
    res->started = true;
    res->outcome = RM_OUTCOME_OK;
    switch (pr->end) {
    case RM_PROTECT_HANDED_OVER:
        LOG_INFO("HANDED OVER: %s; the VM stops here and runs on at the "
                 "secondary", rm_error_str(&pr->why));
        be->ops->request_stop(be);
        break;
    case RM_PROTECT_MUST_STOP:
        LOG_ERR("secondary lost after %" PRIu64 " checkpoints; STOPPING the "
                "VM (nothing held back was released): %s", pr->epochs,
                rm_error_str(&pr->why));
        be->ops->request_stop(be);
        res->why = pr->why;
        res->outcome = RM_OUTCOME_HELD_BACK;
        break;
    case RM_PROTECT_PEER_LOST:
        LOG_WARN("secondary lost after %" PRIu64 " checkpoints: %s; the VM "
                 "keeps running UNPROTECTED (`remus reprotect %s HOST:PORT` "
                 "protects it again)", pr->epochs, rm_error_str(&pr->why),
                 be->vm_name);
        break;
    default:
        LOG_INFO("protection stopped after %" PRIu64 " checkpoints (%" PRIu64
                 " bytes); the VM keeps running unprotected%s", pr->epochs,
                 pr->bytes, be->in_process ? " (signal again to stop it)" :
                 "");
        break;
    }
out:
    if (cfg->control)
        rm_vm_control_session_end(cfg->control, res);
}

void rm_primary_run(struct rm_backend *be, const struct rm_primary_cfg *cfg,
                    struct rm_primary_result *res)
{
    struct rm_primary_cfg c = *cfg;
    struct rm_error err = { 0 };

    c.control = NULL;
    if (cfg->serve_control && !cfg->protect.blackhole) {
        c.control = rm_vm_control_start(be, cfg->protect.key, cfg->quorum,
                                        cfg->stop_requested, &err);
        if (!c.control)
            LOG_WARN("no control socket for '%s' (`remus handover` cannot "
                     "reach it): %s", be->vm_name, rm_error_str(&err));
    }
    rm_primary_protect(be, &c, res);
    if (res->outcome == RM_OUTCOME_FAILED) {
        char why[200];
        int64_t code;

        if (be->in_process &&
            be->ops->end(be, &code, why, sizeof(why)) != RM_BACKEND_RUNNING)
            goto out;
        LOG_WARN("the VM keeps running UNPROTECTED");
        err = res->why;
        hold_vm(be, NULL, NULL, res);
        res->why = err;           /* hold_vm's reason is not this one */
        res->outcome = RM_OUTCOME_FAILED;
        goto out;
    }
    if (res->protect.end == RM_PROTECT_HANDED_OVER ||
        res->outcome == RM_OUTCOME_HELD_BACK) {
        be->ops->wait(be, -1);    /* asked to stop: until it did */
        goto out;
    }
    /* A VM whose protection ended (its secondary lost, or a stop asked:
     * then *stop_requested is raised already) is held as it runs, so
     * that `remus reprotect` finds its process; a Xen domain until it
     * ends or a stop is asked, as a replica that took over is held. */
    res->outcome = hold_vm(be, cfg->quorum, cfg->stop_requested, res);
out:
    rm_vm_control_stop(c.control);
}
