/* SPDX-License-Identifier: MIT */
/*
 * Page offlining: move a guest off one machine frame (a page the host
 * reports as failing) and have Xen offline it.  rm_xen_offline_page()
 * decides how, by the guest's type: an HVM/PVH guest moves by a live
 * migration to a new domain on this host (backends/xen/xen_migrate.h);
 * a 64-bit PV guest moves in place while it is suspended
 * (rm_xen_pv_offline_page(), backends/xen/xen_offline_pv.c).
 *
 * The PV steps, all while the guest is suspended (cooperatively, as for a
 * checkpoint) and undone in reverse when one fails:
 *  1. refuse a frame that is not in the guest's p2m, a frame a vCPU holds
 *     (its page-table root, user root or GDT), a frame granted to another
 *     domain (any valid v1/v2 grant entry naming it), a frame Xen reports
 *     broken or unused;
 *  2. copy the frame; unpin it when it is a pinned page table;
 *  3. make every page-table entry of the guest that maps it non-present
 *     (all L1-L4 tables, Xen's own L4 slots aside), keeping the old
 *     entries; a page the guest prepares as a table but Xen has not yet
 *     validated is data to Xen and is not searched (as in Xen's own
 *     xc_exchange_page): should it name the frame, Xen refuses it as a
 *     table later and the guest sees the error;
 *  4. exchange the frame with Xen (XENMEM_exchange): Xen frees it, which
 *     offlines it when it was marked, and hands a new one at the same pfn
 *     (Xen sets the m2p);
 *  5. on success: write the copy into the new frame, point the guest's
 *     p2m (and its frame lists, when the frame was one of them) at it,
 *     pin it again when it was pinned, re-point the saved entries at it;
 *     on failure (something else still holds the frame): put the saved
 *     entries back and pin it again;
 *  6. resume the guest (a cancelled suspend: it keeps its devices).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_OFFLINE_H
#define REMUS_BACKENDS_XEN_XEN_OFFLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "backends/xen/xen_migrate.h"
#include "common/err.h"

struct rm_xen_pv_offline_result {
    uint64_t pfn;            /* the guest pfn the frame backed */
    uint64_t new_mfn;        /* its new frame (0 when not moved) */
    unsigned level;          /* 0 data; 1..4 an L1..L4 page table */
    bool pinned;             /* it was (and is again) a pinned table */
    unsigned ptes;           /* page-table entries re-pointed */
    unsigned tables_scanned; /* page-table frames searched */
    bool undone;             /* the exchange failed; all was put back */
    bool left_suspended;     /* a step after the exchange failed: the
                              * guest is kept suspended (see the error) */
};

/*
 * Move 64-bit PV domain @domid off machine frame @mfn (see above).
 * @suspend_timeout_ms: how long the guest may take to suspend (0: 30 s).
 * 0 when moved; otherwise -errno with the reason in @err, the guest
 * resumed as it was (res->undone tells whether the exchange had been
 * tried) — except res->left_suspended, when the guest could not be put
 * back together after Xen took the frame; @err then says what to do.
 */
int rm_xen_pv_offline_page(struct rm_xen_host *h, uint32_t domid,
                           uint64_t mfn, unsigned suspend_timeout_ms,
                           struct rm_xen_pv_offline_result *res,
                           struct rm_error *err);

/* What Xen says of a machine frame. */
enum rm_xen_frame_state {
    RM_XEN_FRAME_ONLINE = 0,   /* in use or free, not marked */
    RM_XEN_FRAME_PENDING,      /* marked: offlined once its owner frees it */
    RM_XEN_FRAME_OFFLINE,
};

/* The state in Xen's PG_OFFLINE_STATUS_* bits @status. */
enum rm_xen_frame_state rm_xen_frame_state_of(uint32_t status);

/* The state of @mfn now, and whether Xen reports it broken.  0 or
 * -errno. */
int rm_xen_frame_status(struct rm_xen_host *h, uint64_t mfn,
                        enum rm_xen_frame_state *state, bool *broken,
                        struct rm_error *err);

enum rm_xen_offline_outcome {
    RM_XEN_OFFLINE_FAILED = 0,   /* see the error */
    RM_XEN_OFFLINE_MOVED,        /* the guest moved off it: res->frame */
    RM_XEN_OFFLINE_WAS_OFFLINE,  /* (PV) offline already: nothing done */
    RM_XEN_OFFLINE_WAS_FREE,     /* (HVM) not in use: marking offlined it */
    RM_XEN_OFFLINE_NEEDS_CONFIG, /* an HVM/PVH guest without an xl
                                  * config to build its new domain from:
                                  * nothing done (-EINVAL) */
    RM_XEN_OFFLINE_NOT_ITS,      /* the frame is another's (res->owner:
                                  * -1 none, 0 dom0): nothing done, a mark
                                  * of ours withdrawn (-EPERM) */
};

/* Where a move is, for a caller that reports progress. */
enum rm_xen_offline_step {
    RM_XEN_OFFLINE_PV_MOVING,    /* about to suspend a PV guest */
    RM_XEN_OFFLINE_PV_MOVED,     /* res->pv moved it; marking follows */
    RM_XEN_OFFLINE_HVM_MOVING,   /* marked offline pending; migrating */
};

struct rm_xen_offline_result {
    enum rm_xen_offline_outcome outcome;
    bool pv;                     /* moved in place (PV), not migrated */
    bool was_pending;            /* the frame was offline pending before */
    int owner;                   /* NOT_ITS: the frame's owner */
    enum rm_xen_frame_state frame;       /* after: MOVED, WAS_* */
    struct rm_xen_pv_offline_result pv_res;    /* PV */
    struct rm_xen_migrate_result migrate;      /* HVM/PVH */
};

struct rm_xen_offline_req {
    uint32_t domid;
    const char *domain;          /* as the user named it (messages) */
    uint64_t mfn;
    const char *config;          /* the guest's xl config (HVM/PVH) */
    /* Optional: called at each step (with res as it is then). */
    void (*step)(void *opaque, enum rm_xen_offline_step step,
                 const struct rm_xen_offline_result *res);
    void *opaque;
};

/*
 * Move domain @rq->domid off machine frame @rq->mfn, as said above.  A
 * PV frame is marked offline only once the guest let go of it (Xen
 * offlines it at once): marking a frame a PV domain owns makes Xen 4.17
 * take its PoD lock, which hung a CPU in the lab; for the same reason an
 * HVM guest's frame that a PV domain (or dom0) owns is refused before it
 * is marked.  An HVM/PVH move that fails leaves the guest running in its
 * old domain and the frame offline pending; a PV one, see
 * rm_xen_pv_offline_page().
 * Returns 0 with res->outcome MOVED (res->frame: OFFLINE, or for a
 * migrated guest maybe still PENDING), WAS_OFFLINE or WAS_FREE; otherwise
 * -errno with the reason in @err and res->outcome (NEEDS_CONFIG, NOT_ITS
 * or FAILED).
 */
int rm_xen_offline_page(struct rm_xen_host *h,
                        const struct rm_xen_offline_req *rq,
                        struct rm_xen_offline_result *res,
                        struct rm_error *err);

#endif
