/* SPDX-License-Identifier: MIT */
/*
 * Page offlining on Xen: which way a guest moves off a frame, and the
 * marks around the move (backends/xen/xen_offline.h).
 */
#define RM_LOG_PREFIX "xen-offline"
#include "backends/xen/xen_offline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xenctrl.h>

enum rm_xen_frame_state rm_xen_frame_state_of(uint32_t status)
{
    if (status & PG_OFFLINE_STATUS_OFFLINED)
        return RM_XEN_FRAME_OFFLINE;
    if (status & PG_OFFLINE_STATUS_OFFLINE_PENDING)
        return RM_XEN_FRAME_PENDING;
    return RM_XEN_FRAME_ONLINE;
}

int rm_xen_frame_status(struct rm_xen_host *h, uint64_t mfn,
                        enum rm_xen_frame_state *state, bool *broken,
                        struct rm_error *err)
{
    uint32_t status = 0;
    int rc = rm_xen_page_status(h, mfn, &status, err);

    if (rc)
        return rc;
    *state = rm_xen_frame_state_of(status);
    *broken = status & PG_OFFLINE_STATUS_BROKEN;
    return 0;
}

static void step(const struct rm_xen_offline_req *rq,
                 enum rm_xen_offline_step s,
                 const struct rm_xen_offline_result *res)
{
    if (rq->step)
        rq->step(rq->opaque, s, res);
}

/* @err's message followed by "; " and more (the consequences). */
static int add_consequence(struct rm_error *err, int rc, const char *more1,
                           const char *more2)
{
    char why[RM_ERROR_MSG_MAX];

    snprintf(why, sizeof(why), "%s", rm_error_str(err));
    return rm_error_force(err, rc, "%s; %s%s", why, more1, more2);
}

/* A PV guest: in place, then the frame is marked (see the header). */
static int offline_pv(struct rm_xen_host *h,
                      const struct rm_xen_offline_req *rq,
                      struct rm_xen_offline_result *res,
                      struct rm_error *err)
{
    uint32_t after = 0, status = 0;
    int owner = -1, rc;

    res->pv = true;
    step(rq, RM_XEN_OFFLINE_PV_MOVING, res);
    rc = rm_xen_pv_offline_page(h, rq->domid, rq->mfn, 0, &res->pv_res,
                                err);
    if (rc) {
        if (res->pv_res.left_suspended)
            return rc;
        return add_consequence(err, rc, res->pv_res.undone ?
                               "its page tables were put back; " : "",
                               res->was_pending ?
                               "the guest runs on as it was (the frame "
                               "stays offline pending)" :
                               "the guest runs on as it was (the frame "
                               "stays online, not marked)");
    }
    step(rq, RM_XEN_OFFLINE_PV_MOVED, res);
    rc = rm_xen_page_status(h, rq->mfn, &after, err);
    if (rc)
        return rc;
    if (!(after & PG_OFFLINE_STATUS_OFFLINED)) {
        rc = rm_xen_page_mark_offline(h, rq->mfn, &status, &owner, err);
        if (rc)
            return rc;
        rm_xen_page_status(h, rq->mfn, &after, NULL);
    }
    res->frame = rm_xen_frame_state_of(after);
    if (res->frame == RM_XEN_FRAME_OFFLINE) {
        res->outcome = RM_XEN_OFFLINE_MOVED;
        return 0;
    }
    if (res->frame == RM_XEN_FRAME_PENDING && owner >= 0)
        return rm_error_set(err, -EBUSY, "machine frame %#llx is offline "
                            "pending: Xen gave it to domain %d before it "
                            "could be marked", (unsigned long long)rq->mfn,
                            owner);
    return rm_error_set(err, -EIO, "machine frame %#llx is in an "
                        "unexpected state (%#x)",
                        (unsigned long long)rq->mfn, after);
}

/* The frame is not the guest's: nothing done. */
static int not_its(struct rm_xen_offline_result *res, int owner)
{
    res->outcome = RM_XEN_OFFLINE_NOT_ITS;
    res->owner = owner;
    return -EPERM;
}

/* An HVM/PVH guest: marked, then migrated to a new domain. */
static int offline_hvm(struct rm_xen_host *h,
                       const struct rm_xen_offline_req *rq,
                       struct rm_xen_offline_result *res,
                       struct rm_error *err)
{
    unsigned long long mfn = rq->mfn;
    uint32_t status = 0, after = 0;
    int owner = -1, rc;

    rc = rm_xen_pv_owner(h, rq->mfn, &owner, err);
    if (rc)
        return rc;
    if (owner >= 0) {
        /* Never marked: marking a PV domain's frame can hang Xen 4.17. */
        rm_error_set(err, -EPERM, "machine frame %#llx belongs to %s, not "
                     "to domain %u (%s); nothing done (not marked)", mfn,
                     owner == 0 ? "dom0" : "a PV domain", rq->domid,
                     rq->domain);
        return not_its(res, owner);
    }
    rc = rm_xen_page_mark_offline(h, rq->mfn, &status, &owner, err);
    if (rc)
        return rc;
    if (status & PG_OFFLINE_OFFLINED) {
        res->outcome = RM_XEN_OFFLINE_WAS_FREE;
        res->frame = RM_XEN_FRAME_OFFLINE;
        return 0;
    }
    if (owner != (int)rq->domid) {
        /* Not the guest's: withdraw our mark unless one was there. */
        if (!res->was_pending)
            rm_xen_page_mark_online(h, rq->mfn, NULL);
        rm_error_set(err, -EPERM, "machine frame %#llx belongs to %s, not "
                     "to domain %u (%s); nothing done", mfn,
                     owner == 0 ? "dom0" : owner > 0 ? "another domain"
                     : "no domain", rq->domid, rq->domain);
        return not_its(res, owner);
    }
    step(rq, RM_XEN_OFFLINE_HVM_MOVING, res);
    rc = rm_xen_migrate_local(h, rq->domid, rq->config, &res->migrate, err);
    if (rc) {
        char more[80];

        snprintf(more, sizeof(more), "the guest runs on in domain %u (the "
                 "frame stays offline pending)", rq->domid);
        return add_consequence(err, rc, "", more);
    }
    rm_xen_page_status(h, rq->mfn, &after, NULL);
    res->outcome = RM_XEN_OFFLINE_MOVED;
    res->frame = rm_xen_frame_state_of(after);
    return 0;
}

int rm_xen_offline_page(struct rm_xen_host *h,
                        const struct rm_xen_offline_req *rq,
                        struct rm_xen_offline_result *res,
                        struct rm_error *err)
{
    struct rm_xen_dominfo di;
    uint32_t before = 0;
    int rc;

    memset(res, 0, sizeof(*res));
    res->owner = -1;
    rc = rm_xen_dominfo(h, rq->domid, &di, err);
    if (rc)
        return rc;
    if (di.hvm && !rq->config) {
        res->outcome = RM_XEN_OFFLINE_NEEDS_CONFIG;
        return rm_error_set(err, -EINVAL, "domain %u is an HVM/PVH guest: "
                            "it moves to a new domain built from its xl "
                            "config, and none was given", rq->domid);
    }
    rc = rm_xen_page_status(h, rq->mfn, &before, err);
    if (rc)
        return rc;
    res->was_pending = before & PG_OFFLINE_STATUS_OFFLINE_PENDING;
    if (di.hvm)
        return offline_hvm(h, rq, res, err);
    if (before & PG_OFFLINE_STATUS_OFFLINED) {
        res->outcome = RM_XEN_OFFLINE_WAS_OFFLINE;
        res->frame = RM_XEN_FRAME_OFFLINE;
        return 0;
    }
    return offline_pv(h, rq, res, err);
}
