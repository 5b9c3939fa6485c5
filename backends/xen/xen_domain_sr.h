/* SPDX-License-Identifier: MIT */
/*
 * Save a whole Xen domain into a libxc stream and restore one from it
 * (`remus save --xen`, `remus restore --xen`): the generic engines with
 * the ops the domain's type needs (HVM/PVH: backends/xen/xen_sr.c; 64-bit
 * PV, non-live only: xen_sr_pv_save.c, xen_sr_pv_restore.c), and the
 * domain's fate around them, as `xl save` and `xl restore` do it.
 */
#ifndef REMUS_BACKENDS_XEN_XEN_DOMAIN_SR_H
#define REMUS_BACKENDS_XEN_XEN_DOMAIN_SR_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/err.h"

struct rm_xen_save_opts {
    bool live;                    /* pre-copy with log-dirty first */
    bool keep;                    /* the domain runs on after the save
                                   * (else it is destroyed, as xl save) */
    unsigned suspend_timeout_ms;  /* 0: 30 s */
};

struct rm_xen_save_result {
    bool refused;        /* nothing was written: a live save of a PV
                          * guest, which needs shadow paging (see @err) */
    bool suspended;      /* the engine left the guest suspended */
    uint64_t bytes;      /* stream bytes written */
    uint64_t pages;      /* pages sent */
    unsigned iterations; /* pre-copy iterations */
};

/*
 * Save domain @domid into @fd (not closed): the stream only, the domain
 * suspended at the end (running again with @o->keep).  0, or -errno with
 * the reason in @err (res->refused: a request that cannot be, nothing
 * done).  Then the caller closes @fd and calls rm_xen_save_finish().
 */
int rm_xen_save_domain(struct rm_xen_host *h, uint32_t domid, int fd,
                       const struct rm_xen_save_opts *o,
                       struct rm_xen_save_result *res, struct rm_error *err);

/*
 * After rm_xen_save_domain() and the stream's close: @saved (both
 * succeeded) destroys the domain unless @o->keep; otherwise a guest the
 * save left suspended resumes where it was (the save is cancelled).
 * 0 or -errno (the domain could not be destroyed).
 */
int rm_xen_save_finish(struct rm_xen_host *h, uint32_t domid,
                       const struct rm_xen_save_opts *o,
                       const struct rm_xen_save_result *res, bool saved,
                       struct rm_error *err);

struct rm_xen_restore_result {
    uint32_t domid;      /* the new domain */
    uint64_t pages;      /* pages applied */
};

/*
 * Restore a guest from the stream on @fd (not closed) into a new domain
 * @name built paused from the xl config @config (rm_xen_replica_create):
 * a PV config takes a PV stream, an HVM/PVH one an HVM stream; unpaused
 * at the end unless @paused.  0, or -errno with the reason (a bad stream
 * names its byte offset) and no domain left behind.
 */
int rm_xen_restore_domain(struct rm_xen_host *h, const char *config,
                          const char *name, int fd, bool paused,
                          struct rm_xen_restore_result *res,
                          struct rm_error *err);

#endif
