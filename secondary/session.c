/* SPDX-License-Identifier: MIT */
/* One secondary session for every backend (see session.h). */
#define RM_LOG_PREFIX "secondary"
#include "secondary/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/hold.h"
#include "cluster/quorum.h"
#include "common/io.h"
#include "common/log.h"
#include "common/status.h"
#include "primary/control.h"
#include "secondary/takeover.h"

static uint64_t digest_be(void *opaque)
{
    struct rm_backend *be = opaque;

    return be->ops->replica_digest(be);
}

static int colo_run_be(void *opaque, const struct rm_colo_net *net,
                       struct rm_error *err)
{
    struct rm_backend *be = opaque;

    return be->ops->colo_run(be, net, err);
}

static int colo_pause_be(void *opaque, const unsigned long **dirty,
                         uint64_t *nr_pfns, struct rm_error *err)
{
    struct rm_backend *be = opaque;

    return be->ops->colo_pause(be, dirty, nr_pfns, err);
}

static void colo_park_be(void *opaque)
{
    struct rm_backend *be = opaque;

    be->ops->colo_park(be);
}

static uint64_t colo_written_be(void *opaque)
{
    struct rm_backend *be = opaque;

    return be->ops->colo_written(be);
}

static void write_status(struct rm_backend *be,
                         const struct rm_receive_result *r)
{
    struct rm_status st;
    struct rm_error err = { 0 };

    memset(&st, 0, sizeof(st));
    snprintf(st.name, sizeof(st.name), "%s", r->name);
    snprintf(st.role, sizeof(st.role), "secondary");
    snprintf(st.state, sizeof(st.state), "failed-over");
    snprintf(st.backend, sizeof(st.backend), "%s", be->kind);
    snprintf(st.detail, sizeof(st.detail), "running from checkpoint %"
             PRIu64 ": %s", r->committed_epoch, rm_error_str(&r->why));
    st.pid = (int)getpid();
    st.epoch = st.acked_epoch = r->committed_epoch;
    st.updated_unix_ms = st.failover_unix_ms = rm_unix_ms();
    if (rm_status_write(&st, &err))
        LOG_WARN("%s", rm_error_str(&err));
}

/* What the replica's images went through (the tests read it: P5). */
static void log_disk_stats(const struct rm_disk_replica *r)
{
    struct rm_disk_replica_stats st;

    if (!r)
        return;
    rm_disk_replica_get_stats(r, &st);
    LOG_INFO("disk replica: %" PRIu64 " checkpoints applied, %" PRIu64
             " records, %" PRIu64 " bytes, %" PRIu64 " fdatasyncs",
             st.epochs, st.records, st.bytes, st.syncs);
}

void rm_secondary_run(struct rm_backend *be,
                      const struct rm_secondary_cfg *cfg,
                      struct rm_secondary_result *res)
{
    struct rm_receive_cfg rc_cfg = cfg->receive;
    struct rm_receive_result *rr = &res->receive;
    struct rm_error err = { 0 };
    struct rm_vm_control *control = NULL;
    char why[400];
    int64_t code;
    int rc;

    memset(res, 0, sizeof(*res));
    rc_cfg.name = cfg->name;
    rc_cfg.backend_name = be->kind;
    rc_cfg.ops = be->ops->restore_ops(be, &rc_cfg.backend_arg);
    if (be->plain_stream)
        rc_cfg.allow_compression = false;
    rc_cfg.quorum = cfg->quorum != NULL;
    rc_cfg.cluster = cfg->quorum;
    rc_cfg.stop_requested = cfg->stop_requested;
    rc_cfg.disks = be->disk_replica;
    for (rc_cfg.nr_disks = 0; be->disk_replica &&
         rc_cfg.nr_disks < be->nr_replica_disks; rc_cfg.nr_disks++)
        rc_cfg.disk_ids[rc_cfg.nr_disks] = rc_cfg.nr_disks;
    rc_cfg.mem_digest = NULL;
    if (rc_cfg.digest_every && rc_cfg.digest_fd >= 0 &&
        be->ops->replica_digest) {
        rc_cfg.mem_digest = digest_be;
        rc_cfg.mem_digest_opaque = be;
    } else {
        rc_cfg.digest_every = 0;
    }

    if (rc_cfg.colo && (!be->ops->colo_run || !be->ops->colo_pause ||
                        !be->ops->colo_park)) {
        rm_error_set(&res->why, -EOPNOTSUPP, "COLO (--colo) is not offered "
                     "by the %s backend", be->kind);
        LOG_ERR("%s", rm_error_str(&res->why));
        res->outcome = RM_OUTCOME_FAILED;
        return;
    }
    rc_cfg.colo_ops.opaque = be;
    rc_cfg.colo_ops.run = colo_run_be;
    rc_cfg.colo_ops.pause = colo_pause_be;
    rc_cfg.colo_ops.park = colo_park_be;
    rc_cfg.colo_ops.written = be->ops->colo_written ? colo_written_be : NULL;

    rc = rm_receive_run(&rc_cfg, rr, &err);
    log_disk_stats(be->disk_replica);
    if (rc == -ECANCELED && *cfg->stop_requested) {
        LOG_INFO("%s", rm_error_str(&err));
        res->outcome = RM_OUTCOME_OK;
        return;
    }
    if (rc) {
        LOG_ERR("%s", rm_error_str(&err));
        res->why = err;
        res->outcome = RM_OUTCOME_FAILED;
        return;
    }
    if (rr->end == RM_RECEIVE_STOPPED) {
        LOG_INFO("%s after checkpoint %" PRIu64 "; the replica is "
                 "discarded", rr->stop_asked ? "stopped on request"
                 : "the primary stopped protection", rr->committed_epoch);
        res->outcome = RM_OUTCOME_OK;
        return;
    }

    /* The primary is lost (or handed the VM over): may the replica run? */
    if (cfg->quorum && cfg->name && strcmp(rr->name, cfg->name))
        LOG_WARN("the primary protects '%s' but --name is '%s': the "
                 "corosync group remus:%s cannot have seen it", rr->name,
                 cfg->name, cfg->name);
    {
        struct rm_takeover_policy pol = {
            .quorum = cfg->quorum, .fence_cmd = cfg->fence_cmd,
            .fence_timeout_ms = cfg->fence_timeout_ms, .name = cfg->name,
        };

        if (!rm_takeover_allowed(&pol, rr)) {
            rm_error_set(&res->why, -ENOLCK, "the takeover was held back");
            res->outcome = RM_OUTCOME_HELD_BACK;
            return;
        }
    }
    if (*cfg->stop_requested) {
        /* Asked to stop while the takeover was being decided (quorum,
         * fencing): stopping wins; the VM never runs here. */
        LOG_INFO("stopped on request before taking over: the replica of "
                 "checkpoint %" PRIu64 " is discarded", rr->committed_epoch);
        res->outcome = RM_OUTCOME_OK;
        return;
    }
    if (!be->vm_name[0])
        snprintf(be->vm_name, sizeof(be->vm_name), "%s", rr->name);
    rc = be->ops->activate(be, &err);
    if (rc) {
        LOG_ERR("failover failed: %s", rm_error_str(&err));
        rm_error_set(&res->why, rc, "failover failed: %s",
                     rm_error_str(&err));
        res->outcome = RM_OUTCOME_FAILED;
        return;
    }
    /* COLO, the replica ran on from the checkpoint: its own state */
    if (rc_cfg.colo && !rr->colo_at_checkpoint)
        LOG_WARN("FAILOVER: %s; the replica went on from its own state "
                 "(COLO: it ran from checkpoint %" PRIu64 " on the same "
                 "input) %" PRIu64 " ms after the primary was declared "
                 "lost", rm_error_str(&rr->why), rr->committed_epoch,
                 (rm_now_ns() - rr->lost_at_ns) / 1000000);
    else
        LOG_WARN("FAILOVER: %s; the replica resumed from checkpoint %"
                 PRIu64 " %" PRIu64 " ms after the primary was declared "
                 "lost", rm_error_str(&rr->why), rr->committed_epoch,
                 (rm_now_ns() - rr->lost_at_ns) / 1000000);
    write_status(be, rr);
    if (cfg->serve_control) {
        control = rm_vm_control_start(be, cfg->receive.key, cfg->quorum,
                                      NULL, &err);
        if (!control)
            LOG_WARN("no control socket for '%s' (`remus reprotect` cannot "
                     "reach it): %s", be->vm_name, rm_error_str(&err));
    }
    if (*cfg->stop_requested)
        be->ops->request_stop(be);

    res->outcome = RM_OUTCOME_FAILED_OVER;
    /* With quorum this process holds the VM's token now (it stays in the
     * group, answering the old primary's claims). */
    rc = rm_hold_vm(be, cfg->quorum, cfg->stop_requested, why, sizeof(why));
    /* Before the VM goes: a protection of it ends cleanly first. */
    rm_vm_control_stop(control);
    if (rc == -ENOLCK) {
        LOG_ERR("STOPPED the VM that took over: %s", why);
        rm_error_set(&res->why, -ENOLCK, "%s", why);
        res->outcome = RM_OUTCOME_HELD_BACK;
        return;
    }
    if (rc == 1) {
        LOG_INFO("stopped on request: '%s' runs on by itself, no longer "
                 "held by this process", be->vm_name);
        return;
    }
    be->ops->end(be, &code, why, sizeof(why));
    LOG_INFO("the VM that took over ended: %s", why);
}
