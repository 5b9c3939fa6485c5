/* SPDX-License-Identifier: MIT */
/*
 * The domctls of a checkpoint's pause, issued through libxencall with
 * hypercall buffers allocated once: the domain's state, polled until it
 * has suspended (XEN_DOMCTL_getdomaininfo), get and set a vCPU's register
 * context (XEN_DOMCTL_get/setvcpucontext) and XEN_DOMCTL_resumedomain.
 *
 * Why not libxenctrl's xc_vcpu_getcontext/setcontext: each call bounces
 * the ~5 KiB context through two pages of hypercall memory mapped for
 * the call and unmapped after it (libxencall caches single pages only),
 * and an unmap in dom0 flushes the TLBs of the CPUs the process runs on.
 * Timed in the lab (Xen 4.17 under TCG, a PVH guest): get 0.37-0.40 ms
 * against 0.06 here, set 0.50-0.62 against 0.17-0.20, the resume 0.08
 * (xc_domain_resume(fast=0): a domain info read, then the same domctl)
 * against 0.05.  The set and the resume are on the checkpoint's pause.
 *
 * The domctl layout and XEN_DOMCTL_INTERFACE_VERSION are those of the
 * Xen headers built against, as libxenctrl's own are (its soname pins the
 * same Xen release).  A hypervisor of another interface version refuses
 * every call (EACCES): open() tries one get and gives up then, and the
 * caller goes on with libxenctrl.
 *
 * One thread at a time: the caller orders the calls (the engine's thread
 * polls for the suspend, then the pause's reader thread gets, the
 * engine's thread sets and resumes once it has waited for the reader).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_PAUSE_DOMCTL_H
#define REMUS_BACKENDS_XEN_XEN_PAUSE_DOMCTL_H

#include <stdint.h>

#include <xenctrl.h>

struct rm_xen_pause_domctl;   /* opaque */

/*
 * For @domid: opens a libxencall handle and its two buffers, then reads
 * vCPU 0's context once to check that the hypervisor takes these
 * domctls.  NULL with errno when any of it fails (the caller uses
 * libxenctrl instead; errno EACCES: another domctl interface version).
 */
struct rm_xen_pause_domctl *rm_xen_pause_domctl_open(uint32_t domid);
/* Frees the buffers and closes the handle.  NULL is fine. */
void rm_xen_pause_domctl_close(struct rm_xen_pause_domctl *d);

/*
 * Read vCPU @vcpu's context into the handle's buffer and return it: the
 * caller may change it in place for rm_xen_pause_domctl_set().  Valid
 * until the next get.  NULL with errno on failure.
 */
vcpu_guest_context_any_t *rm_xen_pause_domctl_get(struct rm_xen_pause_domctl *d,
                                                 uint32_t vcpu);
/* Set vCPU @vcpu's context from the buffer get() returned.  0 or -errno. */
int rm_xen_pause_domctl_set(struct rm_xen_pause_domctl *d, uint32_t vcpu);
/* The domain's XEN_DOMINF_* flags (XEN_DOMCTL_getdomaininfo; libxenctrl's
 * xc_domain_getinfo bounces the domctl through hypercall memory of its
 * own on each call: 0.13-0.22 ms a poll in the lab).  0, -ESRCH (the
 * domain is gone) or -errno. */
int rm_xen_pause_domctl_flags(struct rm_xen_pause_domctl *d, uint32_t *flags);
/* XEN_DOMCTL_resumedomain: the domain's shutdown (a suspend) is undone and
 * its vCPUs paused for it run again.  0 or -errno. */
int rm_xen_pause_domctl_resume(struct rm_xen_pause_domctl *d);

#endif
