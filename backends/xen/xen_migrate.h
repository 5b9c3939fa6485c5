/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a Xen HVM/PVH guest to the same host, with the save
 * and restore engines back to back over a socket pair: the way to move a
 * guest off a machine page Xen marked "offline pending" (Xen frees the
 * page, and so offlines it, when the old domain is destroyed).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_MIGRATE_H
#define REMUS_BACKENDS_XEN_XEN_MIGRATE_H

#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/err.h"

struct rm_xen_migrate_result {
    uint32_t new_domid;
    uint64_t pages;          /* pages sent in all */
    unsigned iterations;     /* pre-copy iterations */
    uint64_t bytes;
};

/*
 * Move domain @domid to a new domain built from @config (the guest's xl
 * config, as for a replica): live pre-copy, suspend, the rest, then the
 * old domain is destroyed, the new one unpaused and given the old name.
 * On failure the new domain is destroyed and the old one resumed: the
 * guest runs on where it was.  0 or -errno with the reason.
 */
int rm_xen_migrate_local(struct rm_xen_host *h, uint32_t domid,
                         const char *config,
                         struct rm_xen_migrate_result *res,
                         struct rm_error *err);

/*
 * Xen's page offlining, one machine frame: ask (mark it offline) and
 * read back what Xen says.  *owner is the owning domain when the page is
 * owned (otherwise -1).  Returns 0 with *status the raw PG_OFFLINE_*
 * result bits, or -errno.
 */
int rm_xen_page_mark_offline(struct rm_xen_host *h, uint64_t mfn,
                             uint32_t *status, int *owner,
                             struct rm_error *err);
/*
 * The PV domain (dom0 included) that owns @mfn, found without marking the
 * frame, or -1 in *owner: Xen 4.17 marking a frame a PV domain owns can
 * spin forever in offline_page on that domain's PoD lock (seen in the lab
 * for a PV guest and for dom0): such a frame is refused before it is
 * marked.  0 or -errno.
 */
int rm_xen_pv_owner(struct rm_xen_host *h, uint64_t mfn, int *owner,
                    struct rm_error *err);
/* Undo a mark (the page stays in use).  0 or -errno. */
int rm_xen_page_mark_online(struct rm_xen_host *h, uint64_t mfn,
                            struct rm_error *err);
/* PG_OFFLINE_STATUS_* bits of @mfn now.  0 or -errno. */
int rm_xen_page_status(struct rm_xen_host *h, uint64_t mfn,
                       uint32_t *status, struct rm_error *err);

#endif
