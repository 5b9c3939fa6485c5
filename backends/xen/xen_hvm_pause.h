/* SPDX-License-Identifier: MIT */
/*
 * What an HVM (or PVH) domain's checkpoint pause reads of its vCPUs and
 * devices, read on a thread of its own while the save engine copies the
 * pages, and the resume that reuses what it read.
 *
 * From the moment the domain has suspended, its TSC info, HVM context,
 * the HVM params the guest may set and vCPU 0's register context are
 * fixed until the resume; reading them beside the page copy takes them
 * off the pause's critical path (in the lab under TCG, ~1-2 ms of Xen's
 * gethvmcontext).  The thread has its own libxenctrl handle: a handle is
 * used by one thread at a time, and the caller's is busy with the pages.
 * vCPU 0's context is read, and set again with the suspend's return
 * value, by the thread (at the resume when through libxenctrl), by
 * domctls with hypercall buffers of their own allocated once (xen_pause_domctl.h:
 * libxenctrl's calls map and unmap a two-page bounce buffer each time,
 * ~0.4-0.6 ms a call in the lab against 0.06-0.2), or by libxenctrl's
 * when those cannot be had.
 *
 * The resume (rm_xen_hvm_pause_resume) does what libxenctrl's
 * xc_domain_resume(fast=1) does for an HVM guest, with the vCPU context
 * the thread already read (and set): vCPU 0's rax set to 1 (the guest's suspend
 * hypercall returns "cancelled": it keeps its devices and event
 * channels; the HVM context the replica gets keeps rax 0, as the suspend
 * left it: a replica starts anew), then the bare XEN_DOMCTL_resumedomain,
 * which libxenctrl issues for an HVM guest as its xc_domain_resume(fast=0)
 * after a domain info read (that call modifies nothing else for an HVM
 * guest: Xen 4.17's xg_resume.c, xc_domain_resume_hvm).  Skipped on the
 * way: the domain info, callback IRQ param and Xen capabilities reads
 * that libxenctrl repeats on every resume (a guest that suspended
 * cooperatively has PV drivers, and HVM guests have the host's address
 * width).
 *
 * Not thread-safe itself: one save engine drives it.
 */
#ifndef REMUS_BACKENDS_XEN_XEN_HVM_PAUSE_H
#define REMUS_BACKENDS_XEN_XEN_HVM_PAUSE_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/err.h"
#include "common/stream.h"

/* The HVM params a guest may set itself (read in the pause), in the order
 * of rm_xen_hvm_pause_state.guest_params. */
#define RM_XEN_NR_GUEST_SET_PARAMS 4
extern const uint32_t rm_xen_guest_set_params[RM_XEN_NR_GUEST_SET_PARAMS];

struct rm_xen_hvm_pause;   /* opaque */

/* What the last pause read; valid from rm_xen_hvm_pause_collect() until
 * the next rm_xen_hvm_pause_begin(). */
struct rm_xen_hvm_pause_state {
    struct rm_x86_tsc_info tsc;
    const uint8_t *hvm;          /* the HVM context, Xen's save format */
    uint32_t hvm_len;
    uint64_t guest_params[RM_XEN_NR_GUEST_SET_PARAMS];  /* 0: not set */
};

/*
 * For @domid on @h (not owned; outlives the reader).  Opens the reader's
 * own libxenctrl handle and starts its thread; when either fails the
 * reads are made in line, at collect, on the host's handle (slower, not
 * wrong: logged once).  0 or -ENOMEM.
 */
int rm_xen_hvm_pause_open(struct rm_xen_hvm_pause **out,
                          struct rm_xen_host *h, uint32_t domid,
                          struct rm_error *err);
/* Stops and joins the thread (after the reads in flight), frees all.
 * NULL is fine. */
void rm_xen_hvm_pause_close(struct rm_xen_hvm_pause *p);

/* The domain has just suspended: start reading.  Never fails (a read's
 * failure is collect's to report). */
void rm_xen_hvm_pause_begin(struct rm_xen_hvm_pause *p);

/*
 * A checkpoint's suspend: ask the guest (rm_xen_suspend_ask), wait until
 * it has suspended, at most @timeout_ms (rm_xen_suspend_wait, polling the
 * domain's state by the domctl of xen_pause_domctl.h when it could be
 * had, at the times xen_suspend_wait.h gives from this domain's recent
 * freezes), then rm_xen_hvm_pause_begin().  0 or -errno as
 * rm_xen_suspend().
 */
int rm_xen_hvm_pause_suspend(struct rm_xen_hvm_pause *p, unsigned timeout_ms,
                             struct rm_error *err);

/*
 * Wait for this pause's reads (made now, in line, when no thread runs or
 * none was begun) and point *st at them.  0, or -errno with @err naming
 * what could not be read.
 */
int rm_xen_hvm_pause_collect(struct rm_xen_hvm_pause *p,
                             const struct rm_xen_hvm_pause_state **st,
                             struct rm_error *err);

/*
 * Resume the domain, its suspend cancelled: after a pause whose reads were
 * collected without error (vCPU 0's context among them), that context
 * with the return value set, then the bare resumedomain; otherwise (no
 * collect, a failed read: a checkpoint given up) libxenctrl's
 * xc_domain_resume(fast=1), after waiting for reads in flight.
 * *released_ns: rm_now_ns() as the domain was let run (the resumedomain
 * call returned).  0 or -errno with @err.
 */
int rm_xen_hvm_pause_resume(struct rm_xen_hvm_pause *p,
                            uint64_t *released_ns, struct rm_error *err);

#endif
