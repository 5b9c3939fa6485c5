/* SPDX-License-Identifier: MIT */
/*
 * A 64-bit PV guest's memory as dom0 sees it: Xen's m2p (machine frame ->
 * guest pfn, read only), the guest's shared info, its p2m (guest pfn ->
 * machine frame) read through the frame-list-list the guest publishes
 * there, and Xen's page types.  Shared by the PV save
 * (xen_sr_pv_save.c) and the PV page offlining (xen_offline_pv.c).
 *
 * The p2m lives in guest memory and changes when the guest balloons:
 * read it while the guest is suspended for anything but its size.
 */
#ifndef REMUS_BACKENDS_XEN_XEN_PV_MEM_H
#define REMUS_BACKENDS_XEN_XEN_PV_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>

#include "backends/xen/xen_host.h"
#include "common/err.h"

#define RM_XEN_PV_INVALID_MFN (~0ul)
#define RM_XEN_PTE_PRESENT 0x1ull
#define RM_XEN_PTE_PSE 0x80ull
#define RM_XEN_PTE_MFN_MASK 0x000ffffffffff000ull
/* Xen's part of a 64-bit PV L4 (slots 256..272: Xen's own mappings). */
#define RM_XEN_L4_XEN_FIRST 256
#define RM_XEN_L4_XEN_LAST 272

struct rm_xen_pv_mem {
    xc_interface *xch;                 /* not owned */
    xenforeignmemory_handle *fmem;     /* not owned */
    uint32_t domid;

    unsigned long max_mfn;             /* the host's highest machine frame */
    xen_pfn_t *m2p;                    /* machine -> guest pfn, read only */
    xen_pfn_t shinfo_mfn;
    void *shinfo;                      /* the shared info, mapped writable */

    /* Filled by rm_xen_pv_mem_read_p2m(): */
    unsigned long *p2m;                /* guest pfn -> mfn (our copy) */
    uint64_t p2m_size;                 /* pfns the p2m covers */
    xen_pfn_t *p2m_frames;             /* the p2m's own frames (mfns) */
    unsigned nr_p2m_frames;
    xen_pfn_t *fl_frames;              /* the frame lists' frames (mfns) */
    unsigned nr_fl_frames;
    uint64_t fll_mfn;                  /* the frame-list-list's frame */
    uint64_t p2m_generation;           /* shared info's count when read */
};

/*
 * Open @domid's view: refuses anything but a 64-bit PV guest; maps the
 * m2p and the shared info.  The p2m is not read yet.  On failure what was
 * opened stays in @m for rm_xen_pv_mem_close().  0 or -errno.
 */
int rm_xen_pv_mem_open(struct rm_xen_pv_mem *m, struct rm_xen_host *h,
                       uint32_t domid, struct rm_error *err);

/* The p2m's size as the guest publishes it (shared info max_pfn), checked
 * to be usable.  0 or -EINVAL naming what is wrong. */
int rm_xen_pv_mem_p2m_size(struct rm_xen_pv_mem *m, uint64_t *size,
                           struct rm_error *err);

/* (Re)read the p2m and its frame lists into @m, and remember the p2m
 * generation count the guest keeps in its shared info (odd while the
 * guest changes its p2m: then, or if it moved during the read, -EAGAIN).
 * 0 or -errno. */
int rm_xen_pv_mem_read_p2m(struct rm_xen_pv_mem *m, struct rm_error *err);

/* Has the guest changed its p2m since rm_xen_pv_mem_read_p2m() (its
 * generation count or its size moved)?  0, or -ESTALE naming both counts:
 * the copy a save translates page tables with is out of date. */
int rm_xen_pv_mem_p2m_unchanged(const struct rm_xen_pv_mem *m,
                                struct rm_error *err);

/* Unmap and free everything; @m may be partly opened.  Idempotent. */
void rm_xen_pv_mem_close(struct rm_xen_pv_mem *m);

/* A frame below the host's highest RAM frame (the m2p covers it). */
bool rm_xen_pv_mfn_valid(const struct rm_xen_pv_mem *m, uint64_t mfn);

/* mfn -> pfn, checked both ways (m2p and p2m); false when the guest does
 * not own @mfn.  Needs the p2m read. */
bool rm_xen_pv_mfn_to_pfn(const struct rm_xen_pv_mem *m, uint64_t mfn,
                          uint64_t *pfn);

/*
 * Xen's page types (getpageframeinfo3) of @n frames of the domain, in
 * place: each entry's bits 28-31 become XEN_DOMCTL_PFINFO_* (L1..L4TAB,
 * LPINTAB, XTAB, BROKEN).  0 or -errno.
 */
int rm_xen_pv_frame_types(const struct rm_xen_pv_mem *m, xen_pfn_t *arr,
                          unsigned n, struct rm_error *err);

/* Map @n frames of the domain read only and copy their first @dst_longs
 * longs to @dst; @what names them in errors.  0 or -errno. */
int rm_xen_pv_copy_frames(const struct rm_xen_pv_mem *m,
                          const xen_pfn_t *mfns, unsigned n,
                          unsigned long *dst, size_t dst_longs,
                          const char *what, struct rm_error *err);

#endif
