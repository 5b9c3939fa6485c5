/* SPDX-License-Identifier: MIT */
/*
 * Page offlining for 64-bit PV guests: move the guest off one machine
 * frame in place, while it is suspended (HVM/PVH guests move by a live
 * migration instead: backends/xen/xen_migrate.h).
 *
 * The steps, all while the guest is suspended (cooperatively, as for a
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

#endif
