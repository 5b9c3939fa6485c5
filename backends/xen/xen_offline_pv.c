/* SPDX-License-Identifier: MIT */
/*
 * Page offlining for 64-bit PV guests (see backends/xen/xen_offline.h).
 */
#define RM_LOG_PREFIX "xen-offline"
#include "backends/xen/xen_offline.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xencall.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xen/grant_table.h>

#include "backends/xen/xen_pv_mem.h"
#include "common/log.h"
#include "common/stream.h"

#define TYPE_OF(t) ((uint32_t)(((t) >> 28) & 0xf))
#define LEVEL_OF(t) (TYPE_OF(t) & 0x7u)       /* 1..4 for L1..L4 tables */
#define TYPES_BATCH 1024u
#define SCAN_BATCH 256u
#define MMU_BATCH 256u

/* One page-table entry that mapped the frame: where, and what it held. */
struct saved_pte {
    uint64_t table_mfn;
    unsigned slot;
    uint64_t old;
};

struct pv_offline {
    struct rm_xen_host *host;
    struct rm_xen_pv_mem mem;
    xencall_handle *xcall;
    uint32_t domid;
    uint64_t mfn, pfn;
    uint32_t type;                /* the frame's XEN_DOMCTL_PFINFO bits */
    uint8_t *copy;                /* its contents */
    struct saved_pte *ptes;
    unsigned nr_ptes, cap_ptes;
    mmu_update_t *mmu;            /* hypercall buffer, MMU_BATCH entries */
    unsigned *done;               /* hypercall buffer, one unsigned */
    struct rm_error *err;
};

/* Apply @n (ptr, val) updates to the guest's page tables: the tables are
 * the guest's, the frames they name the guest's (foreigndom encodes
 * both; an m2p update takes the frame owner only: pt_foreign false).
 * Returns 0, or -errno with *applied how many took effect. */
static int mmu_update_as(struct pv_offline *o, const mmu_update_t *req,
                         unsigned n, unsigned *applied, bool pt_foreign)
{
    unsigned off = 0;

    *applied = 0;
    while (off < n) {
        unsigned k = n - off < MMU_BATCH ? n - off : MMU_BATCH;
        int rc;

        memcpy(o->mmu, req + off, k * sizeof(*req));
        *o->done = 0;
        rc = xencall4(o->xcall, __HYPERVISOR_mmu_update,
                      (uint64_t)(uintptr_t)o->mmu, k,
                      (uint64_t)(uintptr_t)o->done,
                      (pt_foreign ? (uint64_t)(o->domid + 1) << 16 : 0) |
                      o->domid);
        if (rc < 0) {
            int e = errno ? errno : EIO;

            *applied = off + (*o->done <= k ? *o->done : 0);
            return -e;
        }
        off += k;
        *applied = off;
    }
    return 0;
}

static int mmu_update(struct pv_offline *o, const mmu_update_t *req,
                      unsigned n, unsigned *applied)
{
    return mmu_update_as(o, req, n, applied, true);
}

/*
 * XENMEM_exchange of the frame for a new one.  (libxenctrl's wrapper does
 * not pass the out array in, but for a PV guest Xen reads the pfn to give
 * the new frame in the m2p from it.)  0 with *new_mfn, or -errno.
 */
static int exchange(struct pv_offline *o, uint64_t *new_mfn)
{
    struct xen_memory_exchange *x;
    xen_pfn_t *in, *out;
    int rc;

    x = xencall_alloc_buffer(o->xcall, sizeof(*x));
    in = xencall_alloc_buffer(o->xcall, sizeof(*in));
    out = xencall_alloc_buffer(o->xcall, sizeof(*out));
    if (!x || !in || !out) {
        rc = -ENOMEM;
        goto out;
    }
    memset(x, 0, sizeof(*x));
    *in = (xen_pfn_t)o->mfn;
    *out = (xen_pfn_t)o->pfn;
    x->in.nr_extents = 1;
    x->in.domid = (domid_t)o->domid;
    set_xen_guest_handle_raw(x->in.extent_start, in);
    x->out.nr_extents = 1;
    x->out.domid = (domid_t)o->domid;
    set_xen_guest_handle_raw(x->out.extent_start, out);
    rc = xencall2(o->xcall, __HYPERVISOR_memory_op, XENMEM_exchange,
                  (uint64_t)(uintptr_t)x);
    if (rc < 0)
        rc = -(errno ? errno : EIO);
    else if (x->nr_exchanged != 1)
        rc = -EIO;
    else
        *new_mfn = *out;
out:
    if (x)
        xencall_free_buffer(o->xcall, x);
    if (in)
        xencall_free_buffer(o->xcall, in);
    if (out)
        xencall_free_buffer(o->xcall, out);
    return rc;
}

/* The saved entries, each rewritten by @how: 'c' clear (non-present, no
 * frame), 'r' restore the old entry, 'n' the old entry on @new_mfn. */
static int rewrite_ptes(struct pv_offline *o, char how, uint64_t new_mfn,
                        unsigned *applied)
{
    mmu_update_t *req;
    unsigned i;
    int rc;

    *applied = 0;
    if (!o->nr_ptes)
        return 0;
    req = calloc(o->nr_ptes, sizeof(*req));
    if (!req)
        return -ENOMEM;
    for (i = 0; i < o->nr_ptes; i++) {
        const struct saved_pte *p = &o->ptes[i];

        req[i].ptr = (p->table_mfn << 12) | ((uint64_t)p->slot * 8) |
                     MMU_NORMAL_PT_UPDATE;
        if (how == 'c')
            req[i].val = p->old & ~(RM_XEN_PTE_PRESENT | RM_XEN_PTE_MFN_MASK);
        else if (how == 'r')
            req[i].val = p->old;
        else
            req[i].val = (p->old & ~RM_XEN_PTE_MFN_MASK) | (new_mfn << 12);
    }
    rc = mmu_update(o, req, o->nr_ptes, applied);
    free(req);
    return rc;
}

static int pin_op(struct pv_offline *o, unsigned cmd, uint64_t mfn)
{
    struct mmuext_op op;

    memset(&op, 0, sizeof(op));
    op.cmd = cmd;
    op.arg1.mfn = (xen_pfn_t)mfn;
    return xc_mmuext_op(o->mem.xch, &op, 1, o->domid) ? -(errno ? errno :
                                                           EIO) : 0;
}

static unsigned pin_cmd(uint32_t type)
{
    static const unsigned cmds[5] = { 0, MMUEXT_PIN_L1_TABLE,
                                      MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
                                      MMUEXT_PIN_L4_TABLE };

    return cmds[LEVEL_OF(type) <= 4 ? LEVEL_OF(type) : 0];
}

/* Frames each vCPU holds through its state: refused, Xen would keep them. */
static int check_vcpus(struct pv_offline *o, unsigned nr_vcpus)
{
    unsigned id, i;

    for (id = 0; id < nr_vcpus; id++) {
        vcpu_guest_context_any_t any;
        xc_vcpuinfo_t vi;
        unsigned gdt_frames;

        if (xc_vcpu_getinfo(o->mem.xch, o->domid, id, &vi))
            return rm_error_set(o->err, -errno, "cannot read vCPU %u of "
                                "domain %u: %s", id, o->domid,
                                strerror(errno));
        if (!vi.online)
            continue;
        if (xc_vcpu_getcontext(o->mem.xch, o->domid, id, &any))
            return rm_error_set(o->err, -errno, "cannot read vCPU %u of "
                                "domain %u: %s", id, o->domid,
                                strerror(errno));
        if ((any.x64.ctrlreg[3] >> 12) == o->mfn)
            return rm_error_set(o->err, -EBUSY, "machine frame %#" PRIx64
                                " is vCPU %u's page-table root (cr3): Xen "
                                "holds it while the vCPU exists; not moved",
                                o->mfn, id);
        if (any.x64.ctrlreg[1] && (any.x64.ctrlreg[1] >> 12) == o->mfn)
            return rm_error_set(o->err, -EBUSY, "machine frame %#" PRIx64
                                " is vCPU %u's user page-table root: Xen "
                                "holds it while the vCPU exists; not moved",
                                o->mfn, id);
        gdt_frames = (unsigned)((any.x64.gdt_ents + 511) / 512);
        for (i = 0; i < gdt_frames && i < 16; i++)
            if (any.x64.gdt_frames[i] == o->mfn)
                return rm_error_set(o->err, -EBUSY, "machine frame %#"
                                    PRIx64 " holds vCPU %u's GDT: Xen holds "
                                    "it while it is loaded; not moved",
                                    o->mfn, id);
    }
    return 0;
}

/* Refuse a frame named by a valid grant entry (a backend may map it). */
/* One grant entry (v1 or v2 fields): refused when valid and naming the
 * frame. */
static int check_grant(struct pv_offline *o, int ref, unsigned flags,
                       unsigned domid, uint64_t frame)
{
    if ((flags & GTF_type_mask) == GTF_invalid || frame != o->mfn)
        return 0;
    return rm_error_set(o->err, -EBUSY, "machine frame %#" PRIx64 " (pfn %#"
                        PRIx64 ") is granted to domain %u (grant ref %d, "
                        "flags %#x): another domain may map it; not moved",
                        o->mfn, o->pfn, domid, ref, flags);
}

static int check_grants(struct pv_offline *o)
{
    int version = xc_gnttab_get_version(o->mem.xch, o->domid), n = 0, i;
    size_t per;
    void *tab;
    int rc = 0;

    if (version == 2) {
        grant_entry_v2_t *g = xc_gnttab_map_table_v2(o->mem.xch, o->domid,
                                                     &n);

        tab = g;
        per = RM_PAGE_SIZE / sizeof(*g);
        for (i = 0; g && i < n && !rc; i++)
            rc = check_grant(o, i, g[i].hdr.flags, g[i].hdr.domid,
                             g[i].full_page.frame);
    } else if (version == 1) {
        grant_entry_v1_t *g = xc_gnttab_map_table_v1(o->mem.xch, o->domid,
                                                     &n);

        tab = g;
        per = RM_PAGE_SIZE / sizeof(*g);
        for (i = 0; g && i < n && !rc; i++)
            rc = check_grant(o, i, g[i].flags, g[i].domid, g[i].frame);
    } else {
        return rm_error_set(o->err, -EIO, "cannot read the grant table "
                            "version of domain %u: %s", o->domid,
                            strerror(errno));
    }
    if (!tab)
        return rm_error_set(o->err, errno ? -errno : -EIO, "cannot map the "
                            "grant table (v%d) of domain %u: %s", version,
                            o->domid, strerror(errno));
    munmap(tab, ((size_t)n + per - 1) / per * RM_PAGE_SIZE);
    return rc;
}

static int save_pte(struct pv_offline *o, uint64_t table_mfn, unsigned slot,
                    uint64_t old)
{
    if (o->nr_ptes == o->cap_ptes) {
        unsigned cap = o->cap_ptes ? o->cap_ptes * 2 : 64;
        struct saved_pte *p = realloc(o->ptes, cap * sizeof(*p));

        if (!p)
            return rm_error_set(o->err, -ENOMEM, "out of memory");
        o->ptes = p;
        o->cap_ptes = cap;
    }
    o->ptes[o->nr_ptes].table_mfn = table_mfn;
    o->ptes[o->nr_ptes].slot = slot;
    o->ptes[o->nr_ptes].old = old;
    o->nr_ptes++;
    return 0;
}

/* Every present entry, in every page table of the guest, that names the
 * frame; also the frame's own type.  @res counts the tables searched. */
static int find_ptes(struct pv_offline *o, struct rm_xen_pv_offline_result *res)
{
    xen_pfn_t *types = NULL, *tables = NULL;
    uint64_t pfn, n = o->mem.p2m_size, nt = 0, i;
    int *errs = NULL, rc = 0;

    types = calloc(TYPES_BATCH, sizeof(*types));
    tables = calloc(n ? n : 1, sizeof(*tables));
    errs = calloc(SCAN_BATCH, sizeof(*errs));
    if (!types || !tables || !errs) {
        rc = rm_error_set(o->err, -ENOMEM, "out of memory");
        goto out;
    }
    for (pfn = 0; pfn < n && !rc; pfn += TYPES_BATCH) {
        unsigned k = (unsigned)(n - pfn < TYPES_BATCH ? n - pfn : TYPES_BATCH);
        unsigned j, m = 0;
        uint64_t pfn_of[TYPES_BATCH];

        for (j = 0; j < k; j++) {
            unsigned long mfn = o->mem.p2m[pfn + j];

            if (mfn == RM_XEN_PV_INVALID_MFN ||
                !rm_xen_pv_mfn_valid(&o->mem, mfn))
                continue;
            types[m] = mfn;
            pfn_of[m++] = pfn + j;
        }
        if (!m)
            continue;
        rc = rm_xen_pv_frame_types(&o->mem, types, m, o->err);
        for (j = 0; !rc && j < m; j++) {
            uint32_t t = TYPE_OF(types[j]);

            if (pfn_of[j] == o->pfn)
                o->type = (uint32_t)(types[j] & ~((1ul << 28) - 1));
            if (t == XEN_DOMCTL_PFINFO_XTAB >> 28 ||
                t == XEN_DOMCTL_PFINFO_BROKEN >> 28)
                continue;
            if ((t & 0x7u) >= 1 && (t & 0x7u) <= 4)
                tables[nt++] = (xen_pfn_t)(o->mem.p2m[pfn_of[j]] |
                               ((uint64_t)(t & 0x7u) << 60));
        }
    }
    for (i = 0; i < nt && !rc; i += SCAN_BATCH) {
        unsigned k = (unsigned)(nt - i < SCAN_BATCH ? nt - i : SCAN_BATCH);
        xen_pfn_t mfns[SCAN_BATCH];
        unsigned j, s;
        uint64_t *map;

        for (j = 0; j < k; j++)
            mfns[j] = tables[i + j] & ((1ull << 60) - 1);
        map = xenforeignmemory_map(o->mem.fmem, o->domid, PROT_READ, k, mfns,
                                   errs);
        if (!map) {
            rc = rm_error_set(o->err, errno ? -errno : -EIO, "cannot map %u "
                              "page tables of domain %u: %s", k, o->domid,
                              strerror(errno));
            break;
        }
        for (j = 0; j < k && !rc; j++) {
            unsigned level = (unsigned)(tables[i + j] >> 60);
            const uint64_t *pt = map + (size_t)j * (RM_PAGE_SIZE / 8);

            if (errs[j])
                continue;      /* freed since its type was read: no table */
            res->tables_scanned++;
            for (s = 0; s < RM_PAGE_SIZE / 8 && !rc; s++) {
                if (level == 4 && s >= RM_XEN_L4_XEN_FIRST &&
                    s <= RM_XEN_L4_XEN_LAST)
                    continue;
                if ((pt[s] & RM_XEN_PTE_PRESENT) &&
                    ((pt[s] & RM_XEN_PTE_MFN_MASK) >> 12) == o->mfn)
                    rc = save_pte(o, mfns[j], s, pt[s]);
            }
        }
        xenforeignmemory_unmap(o->mem.fmem, map, k);
    }
out:
    free(types);
    free(tables);
    free(errs);
    return rc;
}

/* Write one unsigned long of a guest frame (the p2m or its lists). */
static int poke(struct pv_offline *o, uint64_t frame, unsigned idx,
                unsigned long val, const char *what)
{
    xen_pfn_t f = (xen_pfn_t)frame;
    int e = 0;
    unsigned long *p = xenforeignmemory_map(o->mem.fmem, o->domid,
                                            PROT_READ | PROT_WRITE, 1, &f,
                                            &e);

    if (!p || e) {
        if (p)
            xenforeignmemory_unmap(o->mem.fmem, p, 1);
        return rm_error_set(o->err, -EIO, "cannot map the %s (mfn %#" PRIx64
                            ") of domain %u writable", what, frame, o->domid);
    }
    p[idx] = val;
    xenforeignmemory_unmap(o->mem.fmem, p, 1);
    return 0;
}

/* After the exchange: the contents, the p2m and its lists, the pin. */
static int put_back_together(struct pv_offline *o, uint64_t new_mfn)
{
    size_t per = RM_PAGE_SIZE / sizeof(unsigned long);
    xen_pfn_t f = (xen_pfn_t)new_mfn;
    unsigned i;
    int e = 0, rc;
    void *p;

    p = xenforeignmemory_map(o->mem.fmem, o->domid, PROT_READ | PROT_WRITE,
                             1, &f, &e);
    if (!p || e) {
        if (p)
            xenforeignmemory_unmap(o->mem.fmem, p, 1);
        return rm_error_set(o->err, -EIO, "cannot map the new frame %#"
                            PRIx64 " to copy pfn %#" PRIx64 " into it",
                            new_mfn, o->pfn);
    }
    memcpy(p, o->copy, RM_PAGE_SIZE);
    xenforeignmemory_unmap(o->mem.fmem, p, 1);
    if (!rm_xen_pv_mfn_valid(&o->mem, new_mfn))
        return rm_error_set(o->err, -EINVAL, "Xen gave frame %#" PRIx64
                            ", beyond the host's memory as read before",
                            new_mfn);
    if (o->mem.m2p[new_mfn] != o->pfn) {
        mmu_update_t req = { .ptr = (new_mfn << 12) | MMU_MACHPHYS_UPDATE,
                             .val = o->pfn };
        unsigned applied;

        LOG_WARN("domain %u: Xen left the new frame %#" PRIx64 " at pfn %#"
                 PRIx64 " in the m2p; setting it to %#" PRIx64, o->domid,
                 new_mfn, (uint64_t)o->mem.m2p[new_mfn], o->pfn);
        rc = mmu_update_as(o, &req, 1, &applied, false);
        if (rc)
            return rm_error_set(o->err, rc, "cannot set the m2p of the new "
                                "frame %#" PRIx64 " to pfn %#" PRIx64 ": %s",
                                new_mfn, o->pfn, strerror(-rc));
    }
    /* The frame may have been one of the p2m's own frames, of its frame
     * lists, or the frame-list-list: our copies name the new frame first,
     * so that every write below goes where the guest's lists now lead
     * (the copy already sits in the new frame). */
    for (i = 0; i < o->mem.nr_p2m_frames; i++)
        if (o->mem.p2m_frames[i] == o->mfn)
            o->mem.p2m_frames[i] = new_mfn;
    for (i = 0; i < o->mem.nr_fl_frames; i++)
        if (o->mem.fl_frames[i] == o->mfn)
            o->mem.fl_frames[i] = new_mfn;
    if (o->mem.fll_mfn == o->mfn) {
        ((shared_info_t *)o->mem.shinfo)->arch.pfn_to_mfn_frame_list_list =
            new_mfn;
        o->mem.fll_mfn = new_mfn;
    }
    for (i = 0; i < o->mem.nr_fl_frames; i++)
        if (o->mem.fl_frames[i] == new_mfn) {
            rc = poke(o, o->mem.fll_mfn, i, (unsigned long)new_mfn,
                      "p2m frame list list");
            if (rc)
                return rc;
        }
    for (i = 0; i < o->mem.nr_p2m_frames; i++)
        if (o->mem.p2m_frames[i] == new_mfn) {
            rc = poke(o, o->mem.fl_frames[i / per], (unsigned)(i % per),
                      (unsigned long)new_mfn, "p2m frame list");
            if (rc)
                return rc;
        }
    rc = poke(o, o->mem.p2m_frames[o->pfn / per], (unsigned)(o->pfn % per),
              (unsigned long)new_mfn, "p2m frame");
    if (rc)
        return rc;
    o->mem.p2m[o->pfn] = new_mfn;
    return 0;
}

static int offline(struct pv_offline *o, struct rm_xen_pv_offline_result *res)
{
    uint64_t out = 0;
    xen_pfn_t one;
    unsigned applied = 0;
    bool unpinned = false;
    int rc, rc2;

    rc = rm_xen_pv_mem_read_p2m(&o->mem, o->err);
    if (rc)
        return rc;
    if (!rm_xen_pv_mfn_valid(&o->mem, o->mfn))
        return rm_error_set(o->err, -EINVAL, "machine frame %#" PRIx64 " is "
                            "beyond the host's memory (highest %#lx)", o->mfn,
                            o->mem.max_mfn);
    if (!rm_xen_pv_mfn_to_pfn(&o->mem, o->mfn, &o->pfn))
        return rm_error_set(o->err, -EINVAL, "machine frame %#" PRIx64 " is "
                            "not in the p2m of domain %u (Xen's m2p says pfn "
                            "%#" PRIx64 "); not moved", o->mfn, o->domid,
                            (uint64_t)o->mem.m2p[o->mfn]);
    res->pfn = o->pfn;
    if ((rc = check_grants(o)))
        return rc;
    if ((rc = find_ptes(o, res)))
        return rc;
    if (TYPE_OF(o->type) == XEN_DOMCTL_PFINFO_XTAB >> 28 ||
        TYPE_OF(o->type) == XEN_DOMCTL_PFINFO_BROKEN >> 28)
        return rm_error_set(o->err, -EINVAL, "Xen reports machine frame %#"
                            PRIx64 " (pfn %#" PRIx64 ") of domain %u %s; not "
                            "moved", o->mfn, o->pfn, o->domid,
                            TYPE_OF(o->type) == XEN_DOMCTL_PFINFO_XTAB >> 28 ?
                            "invalid" : "broken");
    res->level = LEVEL_OF(o->type);
    res->pinned = (o->type & XEN_DOMCTL_PFINFO_LPINTAB) != 0;
    LOG_INFO("domain %u: machine frame %#" PRIx64 " is pfn %#" PRIx64 " (%s"
             "%.0u%s), mapped by %u entries of %u page tables", o->domid,
             o->mfn, o->pfn, res->level ? "an L" : "data", res->level,
             res->level ? " table" : "", o->nr_ptes, res->tables_scanned);
    one = (xen_pfn_t)o->mfn;
    rc = rm_xen_pv_copy_frames(&o->mem, &one, 1, (unsigned long *)o->copy,
                               RM_PAGE_SIZE / sizeof(unsigned long),
                               "frame to move", o->err);
    if (rc)
        return rc;

    /* From here on every change is undone on failure. */
    if (res->pinned) {
        rc = pin_op(o, MMUEXT_UNPIN_TABLE, o->mfn);
        if (rc)
            return rm_error_set(o->err, rc, "cannot unpin machine frame %#"
                                PRIx64 " (a pinned L%u table): %s", o->mfn,
                                res->level, strerror(-rc));
        unpinned = true;
    }
    rc = rewrite_ptes(o, 'c', 0, &applied);
    if (rc) {
        unsigned n = o->nr_ptes, undone = 0;

        rm_error_set(o->err, rc, "cannot clear the %u page-table entries "
                     "that map machine frame %#" PRIx64 " (%u cleared): %s",
                     n, o->mfn, applied, strerror(-rc));
        o->nr_ptes = applied;
        rc2 = rewrite_ptes(o, 'r', 0, &undone);
        o->nr_ptes = n;
        if (rc2)
            LOG_ERR("domain %u: putting back %u entries failed after %u: %s",
                    o->domid, applied, undone, strerror(-rc2));
        goto repin_old;
    }
    rc = exchange(o, &out);
    if (rc) {
        int e = -rc;

        res->undone = true;
        rc = rm_error_set(o->err, -e, "Xen would not exchange machine frame "
                          "%#" PRIx64 " (pfn %#" PRIx64 ") of domain %u: %s; "
                          "something besides the guest's page tables still "
                          "holds it (a dom0 process or another domain maps "
                          "it, or Xen uses it for the guest)", o->mfn,
                          o->pfn, o->domid, strerror(e));
        rc2 = rewrite_ptes(o, 'r', 0, &applied);
        if (rc2) {
            res->left_suspended = true;
            rm_error_set(o->err, rc2, "Xen would not exchange machine frame "
                         "%#" PRIx64 " (%s), and putting back the %u "
                         "page-table entries that mapped it failed after %u "
                         "(%s): domain %u is left suspended; destroy it or "
                         "restore it from a checkpoint", o->mfn, strerror(e),
                         o->nr_ptes, applied, strerror(-rc2), o->domid);
            return rc;
        }
        LOG_INFO("domain %u: exchange refused; %u entries put back",
                 o->domid, o->nr_ptes);
        goto repin_old;
    }
    res->new_mfn = out;
    rc = put_back_together(o, out);
    if (!rc && res->pinned) {
        rc = pin_op(o, pin_cmd(o->type), out);
        if (rc)
            rm_error_set(o->err, rc, "cannot pin the new frame %#" PRIx64
                         " as an L%u table: %s", out, res->level,
                         strerror(-rc));
    }
    if (!rc) {
        rc = rewrite_ptes(o, 'n', out, &applied);
        if (rc)
            rm_error_set(o->err, rc, "re-pointing the page-table entries at "
                         "the new frame %#" PRIx64 " failed after %u of %u: "
                         "%s", out, applied, o->nr_ptes, strerror(-rc));
    }
    if (rc) {
        char why[sizeof(o->err->msg)];

        res->left_suspended = true;
        snprintf(why, sizeof(why), "%s", rm_error_str(o->err));
        return rm_error_set(o->err, rc, "machine frame %#" PRIx64 " was "
                            "exchanged for %#" PRIx64 ", but %s: domain %u "
                            "is left suspended; destroy it or restore it "
                            "from a checkpoint", o->mfn, out, why, o->domid);
    }
    res->ptes = o->nr_ptes;
    return 0;

repin_old:
    if (unpinned) {
        rc2 = pin_op(o, pin_cmd(o->type), o->mfn);
        if (rc2) {
            res->left_suspended = true;
            LOG_ERR("domain %u: cannot pin machine frame %#" PRIx64 " again "
                    "as an L%u table: %s", o->domid, o->mfn, res->level,
                    strerror(-rc2));
        }
    }
    return rc;
}

int rm_xen_pv_offline_page(struct rm_xen_host *h, uint32_t domid,
                           uint64_t mfn, unsigned suspend_timeout_ms,
                           struct rm_xen_pv_offline_result *res,
                           struct rm_error *err)
{
    struct pv_offline o;
    struct rm_xen_dominfo di;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&o, 0, sizeof(o));
    o.host = h;
    o.domid = domid;
    o.mfn = mfn;
    o.err = err;
    rc = rm_xen_dominfo(h, domid, &di, err);
    if (rc)
        return rc;
    if (di.hvm)
        return rm_error_set(err, -EINVAL, "domain %u is not PV (HVM and PVH "
                            "guests move off a frame by a live migration)",
                            domid);
    if (di.dying || di.crashed || di.shutdown)
        return rm_error_set(err, -ESRCH, "domain %u ('%s') is %s", domid,
                            di.name, di.dying ? "dying" : di.crashed ?
                            "crashed" : "shut down");
    rc = rm_xen_pv_mem_open(&o.mem, h, domid, err);
    if (rc)
        goto out;
    o.copy = malloc(RM_PAGE_SIZE);
    o.xcall = xencall_open(NULL, 0);
    if (!o.copy || !o.xcall) {
        rc = rm_error_set(err, o.copy ? -errno : -ENOMEM, "cannot prepare "
                          "the move: %s", o.copy ? "cannot open privcmd for "
                          "hypercalls" : "out of memory");
        goto out;
    }
    o.mmu = xencall_alloc_buffer(o.xcall, MMU_BATCH * sizeof(*o.mmu));
    o.done = xencall_alloc_buffer(o.xcall, sizeof(*o.done));
    if (!o.mmu || !o.done) {
        rc = rm_error_set(err, -ENOMEM, "out of hypercall memory");
        goto out;
    }
    rc = rm_xen_suspend(h, domid, suspend_timeout_ms ? suspend_timeout_ms :
                        30000, err);
    if (rc)
        goto out;
    rc = check_vcpus(&o, di.nr_vcpus);
    if (!rc)
        rc = offline(&o, res);
    if (!res->left_suspended) {
        struct rm_error e2 = { 0 };
        int rc2 = rm_xen_resume_for_good(h, domid, &e2);

        if (rc2 && !rc) {
            rc = rc2;
            rm_error_set(err, rc2, "%s", rm_error_str(&e2));
        } else if (rc2) {
            LOG_ERR("%s", rm_error_str(&e2));
        }
    }
out:
    if (o.xcall) {
        if (o.mmu)
            xencall_free_buffer(o.xcall, o.mmu);
        if (o.done)
            xencall_free_buffer(o.xcall, o.done);
        xencall_close(o.xcall);
    }
    free(o.copy);
    free(o.ptes);
    rm_xen_pv_mem_close(&o.mem);
    return rc;
}
