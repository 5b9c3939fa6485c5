/* SPDX-License-Identifier: MIT */
/*
 * Restore of a 64-bit PV stream into a domain the toolstack built paused
 * from the guest's config (`xl create -p`, rm_xen_replica_create): its
 * memory, event channels, xenstore and console are those of this host.
 * The builder's own boot state is taken apart first: its p2m is read by
 * walking its page tables from vCPU0's cr3 to the start info's mfn_list,
 * its store and console frames and event channels are kept, its pinned
 * L4 is unpinned and vCPU0 reset, so that every frame is plain memory.
 * Then the stream's pages go into the frames the builder's p2m names;
 * page tables are localised (pfn -> mfn; a pfn beyond the domain, or a
 * type the stream may not carry, is refused); at the end the guest's p2m
 * frames are rewritten, the shared info and start info fixed up (this
 * host's store and console frames and event channels), the stream's
 * pinned tables pinned, and the vCPU state, TSC and CPU policy set.
 */
#define RM_LOG_PREFIX "xen-pv"
#include "backends/xen/xen_sr.h"
#include "backends/xen/xen_pv_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>

#include "common/log.h"

#define PV_MAX_VCPUS 128

struct pv_restore {
    struct rm_xen_restore_arg *arg;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    unsigned nr_vcpus;

    uint64_t nr;                    /* the domain's pfns (builder p2m) */
    unsigned long *p2m;             /* pfn -> mfn of this domain */
    uint8_t *types;                 /* the stream's type of each pfn */
    unsigned long shinfo_mfn;
    unsigned long store_mfn, console_mfn;
    uint32_t store_evtchn, console_evtchn;

    uint64_t *p2m_frame_pfns;       /* X86_PV_P2M_FRAMES */
    uint32_t p2m_start, p2m_end, nr_p2m_frame_pfns;
    struct rm_xen_blob cpuid, msr, tsc, shinfo;
    struct rm_xen_blob basic[PV_MAX_VCPUS], ext[PV_MAX_VCPUS],
                   xsave[PV_MAX_VCPUS], msrs[PV_MAX_VCPUS];

    void *map;
    uint32_t map_count;
    xen_pfn_t mfns[RM_PAGE_DATA_BATCH];
    int errs[RM_PAGE_DATA_BATCH];
};

/* Map one frame of the domain (read or read/write); NULL on failure. */
static void *map1(struct pv_restore *pr, unsigned long mfn, int prot)
{
    xen_pfn_t f = mfn;
    int err = 0;
    void *p = xenforeignmemory_map(pr->fmem, pr->domid, prot, 1, &f, &err);

    if (p && err) {
        xenforeignmemory_unmap(pr->fmem, p, 1);
        return NULL;
    }
    return p;
}

/* The frame a virtual address of the builder's page tables maps. */
static int walk(struct pv_restore *pr, unsigned long l4_mfn, uint64_t va,
                unsigned long *mfn, struct rm_error *err)
{
    unsigned long cur = l4_mfn;
    int level;

    for (level = 4; level >= 1; level--) {
        const uint64_t *t = map1(pr, cur, PROT_READ);
        uint64_t e;

        if (!t)
            return rm_error_set(err, -EIO, "cannot map a page table (mfn %#lx"
                                ") of domain %u", cur, pr->domid);
        e = t[(va >> (12 + 9 * (level - 1))) & 511];
        xenforeignmemory_unmap(pr->fmem, (void *)t, 1);
        if (!(e & RM_XEN_PTE_PRESENT))
            return rm_error_set(err, -EINVAL, "the prepared domain %u does not"
                                " map %#" PRIx64 " (L%d)", pr->domid, va,
                                level);
        cur = (unsigned long)((e & RM_XEN_PTE_MFN_MASK) >> 12);
        if (level > 1 && (e & RM_XEN_PTE_PSE)) {
            cur += (unsigned long)((va >> 12) &
                                   ((1ull << (9 * (level - 1))) - 1));
            break;
        }
    }
    *mfn = cur;
    return 0;
}

/* Read what the builder set up, then free its frames of their types. */
static int take_builder_apart(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;
    vcpu_guest_context_any_t any;
    start_info_t *si;
    unsigned long si_mfn, l4, mfn, list_va;
    uint64_t i, pages;
    struct mmuext_op op;
    xen_pfn_t *frames = NULL;
    int rc = 0;

    if (xc_vcpu_getcontext(pr->xch, pr->domid, 0, &any))
        return rm_error_set(ctx->err, -errno, "cannot read vCPU0 of the "
                            "prepared domain %u: %s", pr->domid,
                            strerror(errno));
    l4 = (unsigned long)(any.x64.ctrlreg[3] >> 12);
    if (!l4)
        return rm_error_set(ctx->err, -EINVAL, "the prepared domain %u has "
                            "no page tables (was it built by `xl create "
                            "-p`?)", pr->domid);
    rc = walk(pr, l4, any.x64.user_regs.rsi, &si_mfn, ctx->err);
    if (rc)
        return rc;
    si = map1(pr, si_mfn, PROT_READ);
    if (!si)
        return rm_error_set(ctx->err, -EIO, "cannot map the start info of "
                            "domain %u", pr->domid);
    if (memcmp(si->magic, "xen-", 4)) {
        xenforeignmemory_unmap(pr->fmem, si, 1);
        return rm_error_set(ctx->err, -EINVAL, "domain %u's vCPU0 does not "
                            "point at a start info page", pr->domid);
    }
    pr->nr = si->nr_pages;
    pr->store_mfn = si->store_mfn;
    pr->store_evtchn = si->store_evtchn;
    pr->console_mfn = si->console.domU.mfn;
    pr->console_evtchn = si->console.domU.evtchn;
    list_va = si->mfn_list;
    xenforeignmemory_unmap(pr->fmem, si, 1);
    if (!pr->nr || pr->nr > (1ull << 28))
        return rm_error_set(ctx->err, -EINVAL, "domain %u has %" PRIu64
                            " pages", pr->domid, pr->nr);
    pages = (pr->nr * sizeof(unsigned long) + RM_PAGE_SIZE - 1) /
            RM_PAGE_SIZE;
    frames = calloc(pages, sizeof(*frames));
    pr->p2m = malloc(pages * RM_PAGE_SIZE);
    pr->types = calloc(pr->nr, 1);
    if (!frames || !pr->p2m || !pr->types) {
        rc = rm_error_set(ctx->err, -ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < pages; i++) {
        rc = walk(pr, l4, list_va + i * RM_PAGE_SIZE, &mfn, ctx->err);
        if (rc)
            goto out;
        frames[i] = mfn;
    }
    {
        int *errs = calloc(pages, sizeof(int));
        void *m = errs ? xenforeignmemory_map(pr->fmem, pr->domid, PROT_READ,
                                              pages, frames, errs) : NULL;

        for (i = 0; m && i < pages; i++)
            if (errs[i]) {
                xenforeignmemory_unmap(pr->fmem, m, pages);
                m = NULL;
            }
        free(errs);
        if (!m) {
            rc = rm_error_set(ctx->err, -EIO, "cannot map the p2m of the "
                              "prepared domain %u", pr->domid);
            goto out;
        }
        memcpy(pr->p2m, m, pages * RM_PAGE_SIZE);
        xenforeignmemory_unmap(pr->fmem, m, pages);
    }
    /* The builder pinned its L4 and loaded it in vCPU0: release both. */
    memset(&op, 0, sizeof(op));
    op.cmd = MMUEXT_UNPIN_TABLE;
    op.arg1.mfn = l4;
    if (xc_mmuext_op(pr->xch, &op, 1, pr->domid)) {
        rc = rm_error_set(ctx->err, -errno, "cannot unpin the boot page "
                          "tables of domain %u: %s", pr->domid,
                          strerror(errno));
        goto out;
    }
    if (xc_vcpu_setcontext(pr->xch, pr->domid, 0, NULL)) {
        rc = rm_error_set(ctx->err, -errno, "cannot reset vCPU0 of domain %u:"
                          " %s", pr->domid, strerror(errno));
        goto out;
    }
    LOG_INFO("prepared domain %u: %" PRIu64 " pages, store mfn %#lx evtchn "
             "%u, console mfn %#lx evtchn %u", pr->domid, pr->nr,
             pr->store_mfn, pr->store_evtchn, pr->console_mfn,
             pr->console_evtchn);
out:
    free(frames);
    return rc;
}

static int pvr_setup(struct rm_restore_ctx *ctx)
{
    struct rm_xen_restore_arg *arg = ctx->backend_arg;
    struct rm_xen_dominfo di;
    struct pv_restore *pr;
    xc_dominfo_t info;
    unsigned int width = 0;
    int rc;

    if (!arg || !arg->host)
        return rm_error_set(ctx->err, -EINVAL, "no Xen domain to restore "
                            "into");
    if (ctx->dhdr.type != RM_DHDR_TYPE_X86_PV)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "a %s stream cannot be "
                            "restored into a Xen PV domain",
                            rm_dhdr_type_name(ctx->dhdr.type));
    pr = calloc(1, sizeof(*pr));
    if (!pr)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->backend = pr;
    pr->arg = arg;
    pr->xch = rm_xen_xch(arg->host);
    pr->fmem = rm_xen_fmem(arg->host);
    pr->domid = arg->domid;
    rc = rm_xen_dominfo(arg->host, arg->domid, &di, ctx->err);
    if (rc)
        return rc;
    if (di.hvm)
        return rm_error_set(ctx->err, -EINVAL, "domain %u is not a PV "
                            "domain: it cannot take a PV stream (type = "
                            "\"pv\" in the config)", arg->domid);
    if (!di.paused)
        return rm_error_set(ctx->err, -EBUSY, "domain %u is running: a "
                            "stream is restored into a paused domain",
                            arg->domid);
    pr->nr_vcpus = di.nr_vcpus > PV_MAX_VCPUS ? PV_MAX_VCPUS : di.nr_vcpus;
    if (xc_domain_get_guest_width(pr->xch, pr->domid, &width) || width != 8)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "domain %u is not a "
                            "64-bit PV domain", pr->domid);
    if (xc_domain_getinfo(pr->xch, pr->domid, 1, &info) != 1 ||
        info.domid != pr->domid)
        return rm_error_set(ctx->err, -ENOENT, "cannot read domain %u",
                            pr->domid);
    pr->shinfo_mfn = info.shared_info_frame;
    rc = take_builder_apart(ctx);
    if (rc)
        return rc;
    ctx->nr_pfns = pr->nr;
    return 0;
}

static int vcpu_hdr_ok(struct rm_restore_ctx *ctx, const struct rm_record *rec)
{
    struct pv_restore *pr = ctx->backend;
    const struct rm_x86_pv_vcpu_hdr *h = rec->data;

    if (rec->length < sizeof(*h))
        return rm_error_set(ctx->err, -EBADMSG, "%s of %u bytes has no "
                            "header", rm_rec_type_name(rec->type),
                            rec->length);
    if (h->vcpu_id >= pr->nr_vcpus)
        return rm_error_set(ctx->err, -EBADMSG, "%s for vCPU %u: the "
                            "domain has %u", rm_rec_type_name(rec->type),
                            h->vcpu_id, pr->nr_vcpus);
    return 0;
}

static int pvr_check_record(struct rm_restore_ctx *ctx,
                            const struct rm_record *rec)
{
    struct pv_restore *pr = ctx->backend;
    const struct rm_x86_pv_info *pi = rec->data;
    const struct rm_x86_pv_p2m_frames *pf = rec->data;
    int rc;

    switch (rec->type) {
    case RM_REC_X86_PV_INFO:
        if (rec->length < sizeof(*pi))
            return rm_error_set(ctx->err, -EBADMSG, "X86_PV_INFO of %u "
                                "bytes", rec->length);
        if (pi->guest_width != 8 || pi->pt_levels != 4)
            return rm_error_set(ctx->err, -EOPNOTSUPP, "a %u-bit PV guest "
                                "with %u page-table levels: remus restores "
                                "64-bit, 4-level PV guests",
                                pi->guest_width * 8, pi->pt_levels);
        return 0;
    case RM_REC_X86_PV_P2M_FRAMES: {
        uint64_t frames;

        if (rec->length < sizeof(*pf) || pf->start_pfn > pf->end_pfn)
            return rm_error_set(ctx->err, -EBADMSG, "X86_PV_P2M_FRAMES is "
                                "malformed");
        frames = pf->end_pfn / 512 - pf->start_pfn / 512 + 1;
        if (rec->length != sizeof(*pf) + frames * 8)
            return rm_error_set(ctx->err, -EBADMSG, "X86_PV_P2M_FRAMES of "
                                "%u bytes for pfns %#x-%#x", rec->length,
                                pf->start_pfn, pf->end_pfn);
        if (pf->end_pfn >= pr->nr)
            return rm_error_set(ctx->err, -EBADMSG, "the stream's p2m covers"
                                " pfn %#x; this domain has %" PRIu64
                                " pages (a larger guest? check memory = in "
                                "the config)", pf->end_pfn, pr->nr);
        for (uint64_t i = 0; i < frames; i++)
            if (((const uint64_t *)(pf + 1))[i] >= pr->nr)
                return rm_error_set(ctx->err, -EBADMSG, "p2m frame %" PRIu64
                                    " is pfn %#" PRIx64 ", out of range", i,
                                    ((const uint64_t *)(pf + 1))[i]);
        return 0;
    }
    case RM_REC_SHARED_INFO:
        if (rec->length != RM_PAGE_SIZE)
            return rm_error_set(ctx->err, -EBADMSG, "SHARED_INFO of %u bytes"
                                , rec->length);
        return 0;
    case RM_REC_X86_PV_VCPU_BASIC:
        rc = vcpu_hdr_ok(ctx, rec);
        if (!rc && rec->length != sizeof(struct rm_x86_pv_vcpu_hdr) +
                                  sizeof(vcpu_guest_context_x86_64_t))
            rc = rm_error_set(ctx->err, -EBADMSG, "X86_PV_VCPU_BASIC of %u "
                              "bytes", rec->length);
        return rc;
    case RM_REC_X86_PV_VCPU_EXTENDED:
        rc = vcpu_hdr_ok(ctx, rec);
        if (!rc && rec->length > sizeof(struct rm_x86_pv_vcpu_hdr) + 128)
            rc = rm_error_set(ctx->err, -EBADMSG, "X86_PV_VCPU_EXTENDED of "
                              "%u bytes", rec->length);
        return rc;
    case RM_REC_X86_PV_VCPU_XSAVE:
        return vcpu_hdr_ok(ctx, rec);
    case RM_REC_X86_PV_VCPU_MSRS:
        rc = vcpu_hdr_ok(ctx, rec);
        if (!rc && (rec->length - sizeof(struct rm_x86_pv_vcpu_hdr)) %
                   sizeof(xen_domctl_vcpu_msr_t))
            rc = rm_error_set(ctx->err, -EBADMSG, "X86_PV_VCPU_MSRS of %u "
                              "bytes: not whole MSRs", rec->length);
        return rc;
    case RM_REC_X86_TSC_INFO:
    case RM_REC_X86_CPUID_POLICY:
    case RM_REC_X86_MSR_POLICY:
        return rm_xen_check_cpu_record(ctx, rec);
    default:
        return rm_error_set(ctx->err, -EOPNOTSUPP, "record %s is not for a "
                            "Xen PV domain", rm_rec_type_name(rec->type));
    }
}

static int pvr_process_record(struct rm_restore_ctx *ctx,
                              const struct rm_record *rec)
{
    struct pv_restore *pr = ctx->backend;
    const struct rm_x86_pv_vcpu_hdr *h = rec->data;
    struct rm_xen_blob *b = NULL;

    switch (rec->type) {
    case RM_REC_X86_PV_INFO:
        return 0;
    case RM_REC_X86_PV_P2M_FRAMES: {
        const struct rm_x86_pv_p2m_frames *pf = rec->data;
        uint32_t n = (rec->length - (uint32_t)sizeof(*pf)) / 8;

        free(pr->p2m_frame_pfns);
        pr->p2m_frame_pfns = malloc((size_t)n * 8 + 8);
        if (!pr->p2m_frame_pfns)
            return rm_error_set(ctx->err, -ENOMEM, "out of memory");
        memcpy(pr->p2m_frame_pfns, pf + 1, (size_t)n * 8);
        pr->nr_p2m_frame_pfns = n;
        pr->p2m_start = pf->start_pfn;
        pr->p2m_end = pf->end_pfn;
        return 0;
    }
    case RM_REC_SHARED_INFO: b = &pr->shinfo; break;
    case RM_REC_X86_TSC_INFO: b = &pr->tsc; break;
    case RM_REC_X86_CPUID_POLICY: b = &pr->cpuid; break;
    case RM_REC_X86_MSR_POLICY: b = &pr->msr; break;
    case RM_REC_X86_PV_VCPU_BASIC: b = &pr->basic[h->vcpu_id]; break;
    case RM_REC_X86_PV_VCPU_EXTENDED: b = &pr->ext[h->vcpu_id]; break;
    case RM_REC_X86_PV_VCPU_XSAVE: b = &pr->xsave[h->vcpu_id]; break;
    case RM_REC_X86_PV_VCPU_MSRS: b = &pr->msrs[h->vcpu_id]; break;
    default: return -EOPNOTSUPP;
    }
    if (rm_xen_blob_keep(b, rec->data, rec->length))
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    return 0;
}

static int pvr_static_data_complete(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;

    return rm_xen_set_cpu_policy(ctx, pr->xch, pr->domid, pr->cpuid.data,
                                 pr->cpuid.len, pr->msr.data, pr->msr.len);
}

static int pvr_map_pages(struct rm_restore_ctx *ctx, uint32_t count,
                         const uint64_t *pfns, const uint32_t *types,
                         void **ptrs)
{
    struct pv_restore *pr = ctx->backend;
    uint32_t i, n = 0, idx[RM_PAGE_DATA_BATCH];

    if (count > RM_PAGE_DATA_BATCH)
        return rm_error_set(ctx->err, -EINVAL, "batch of %u pages", count);
    for (i = 0; i < count; i++) {
        ptrs[i] = NULL;
        if (pfns[i] >= pr->nr)
            return rm_error_set(ctx->err, -EINVAL, "pfn %#" PRIx64 " is "
                                "beyond domain %u's %" PRIu64 " pages",
                                pfns[i], pr->domid, pr->nr);
        pr->types[pfns[i]] = (uint8_t)types[i];
        if (!rm_page_type_has_data(types[i]))
            continue;
        if (pr->p2m[pfns[i]] == RM_XEN_PV_INVALID_MFN)
            return rm_error_set(ctx->err, -EINVAL, "pfn %#" PRIx64 " has no "
                                "frame in domain %u", pfns[i], pr->domid);
        pr->mfns[n] = pr->p2m[pfns[i]];
        idx[n++] = i;
    }
    if (!n)
        return 0;
    pr->map = xenforeignmemory_map(pr->fmem, pr->domid,
                                   PROT_READ | PROT_WRITE, n, pr->mfns,
                                   pr->errs);
    if (!pr->map)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot map %u"
                            " pages of domain %u: %s", n, pr->domid,
                            strerror(errno));
    pr->map_count = n;
    for (i = 0; i < n; i++) {
        if (pr->errs[i])
            return rm_error_set(ctx->err, -EIO, "cannot map pfn %#" PRIx64
                                " (mfn %#lx) of domain %u writable: %s",
                                pfns[idx[i]], (unsigned long)pr->mfns[i],
                                pr->domid, strerror(-pr->errs[i]));
        ptrs[idx[i]] = (uint8_t *)pr->map + (size_t)i * RM_PAGE_SIZE;
    }
    return 0;
}

static void pvr_unmap_pages(struct rm_restore_ctx *ctx, uint32_t count,
                            void **ptrs)
{
    struct pv_restore *pr = ctx->backend;

    (void)count;
    (void)ptrs;
    if (pr->map)
        xenforeignmemory_unmap(pr->fmem, pr->map, pr->map_count);
    pr->map = NULL;
    pr->map_count = 0;
}

static int pvr_localise_page(struct rm_restore_ctx *ctx, uint64_t pfn,
                             uint32_t type, void *page)
{
    struct pv_restore *pr = ctx->backend;
    uint32_t level = type & 0x7u;
    uint64_t *pte = page;
    unsigned i;

    if (level == 0)
        return 0;
    if (level > RM_PT_L4TAB)
        return rm_error_set(ctx->err, -EBADMSG, "pfn %#" PRIx64 " has page "
                            "type %#x, which no page table has", pfn, type);
    for (i = 0; i < RM_PAGE_SIZE / 8; i++) {
        uint64_t spfn;

        if (!(pte[i] & RM_XEN_PTE_PRESENT))
            continue;
        spfn = (pte[i] & RM_XEN_PTE_MFN_MASK) >> 12;
        if (spfn >= pr->nr || pr->p2m[spfn] == RM_XEN_PV_INVALID_MFN)
            return rm_error_set(ctx->err, -EBADMSG, "pfn %#" PRIx64 ": L%u[%u]"
                                " = %#" PRIx64 " names pfn %#" PRIx64 ", "
                                "beyond the guest's %" PRIu64 " pages", pfn,
                                level, i, pte[i], spfn, pr->nr);
        pte[i] = (pte[i] & ~RM_XEN_PTE_MFN_MASK) |
                 ((uint64_t)pr->p2m[spfn] << 12);
    }
    return 0;
}

static int pfn_mfn(struct pv_restore *pr, uint64_t pfn, unsigned long *mfn)
{
    if (pfn >= pr->nr || pr->p2m[pfn] == RM_XEN_PV_INVALID_MFN)
        return -EINVAL;
    *mfn = pr->p2m[pfn];
    return 0;
}

static int write_guest_p2m(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;
    uint32_t k;

    for (k = 0; k < pr->nr_p2m_frame_pfns; k++) {
        unsigned long mfn, *dst;
        uint64_t first = ((uint64_t)pr->p2m_start / 512 + k) * 512, j;

        if (pfn_mfn(pr, pr->p2m_frame_pfns[k], &mfn))
            return rm_error_set(ctx->err, -EINVAL, "p2m frame pfn %#" PRIx64
                                " is out of range", pr->p2m_frame_pfns[k]);
        dst = map1(pr, mfn, PROT_READ | PROT_WRITE);
        if (!dst)
            return rm_error_set(ctx->err, -EIO, "cannot map the guest's p2m "
                                "frame %u", k);
        for (j = 0; j < 512; j++)
            dst[j] = first + j < pr->nr ? pr->p2m[first + j] : RM_XEN_PV_INVALID_MFN;
        xenforeignmemory_unmap(pr->fmem, dst, 1);
    }
    return 0;
}

static int fix_shared_and_start_info(struct rm_restore_ctx *ctx,
                                     uint64_t si_pfn)
{
    struct pv_restore *pr = ctx->backend;
    shared_info_t *sh;
    start_info_t *si;
    unsigned long mfn;
    unsigned i;
    void *ring;

    if (!pr->shinfo.len)
        return rm_error_set(ctx->err, -EBADMSG, "the stream has no "
                            "SHARED_INFO");
    sh = map1(pr, pr->shinfo_mfn, PROT_READ | PROT_WRITE);
    if (!sh)
        return rm_error_set(ctx->err, -EIO, "cannot map domain %u's shared "
                            "info", pr->domid);
    memcpy(sh->vcpu_info, ((const shared_info_t *)pr->shinfo.data)->vcpu_info,
           sizeof(sh->vcpu_info));
    memcpy(&sh->arch, &((const shared_info_t *)pr->shinfo.data)->arch,
           sizeof(sh->arch));
    sh->arch.pfn_to_mfn_frame_list_list = 0;
    memset(sh->evtchn_pending, 0, sizeof(sh->evtchn_pending));
    for (i = 0; i < XEN_LEGACY_MAX_VCPUS; i++)
        sh->vcpu_info[i].evtchn_pending_sel = 0;
    memset(sh->evtchn_mask, 0xff, sizeof(sh->evtchn_mask));
    xenforeignmemory_unmap(pr->fmem, sh, 1);

    if (pfn_mfn(pr, si_pfn, &mfn))
        return rm_error_set(ctx->err, -EBADMSG, "vCPU0's start info pfn %#"
                            PRIx64 " is out of range", si_pfn);
    si = map1(pr, mfn, PROT_READ | PROT_WRITE);
    if (!si)
        return rm_error_set(ctx->err, -EIO, "cannot map the guest's start "
                            "info");
    si->store_mfn = pr->store_mfn;
    si->store_evtchn = pr->store_evtchn;
    si->console.domU.mfn = pr->console_mfn;
    si->console.domU.evtchn = pr->console_evtchn;
    si->shared_info = (unsigned long)pr->shinfo_mfn << 12;
    xenforeignmemory_unmap(pr->fmem, si, 1);
    /* This host's xenstore and console rings start empty. */
    for (i = 0; i < 2; i++) {
        ring = map1(pr, i ? pr->console_mfn : pr->store_mfn,
                    PROT_READ | PROT_WRITE);
        if (ring) {
            memset(ring, 0, RM_PAGE_SIZE);
            xenforeignmemory_unmap(pr->fmem, ring, 1);
        }
    }
    return 0;
}

static int pin_tables(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;
    struct mmuext_op ops[256];
    unsigned n = 0, pinned = 0;
    uint64_t pfn;

    for (pfn = 0; pfn <= pr->nr; pfn++) {
        if (pfn < pr->nr) {
            uint8_t t = pr->types[pfn];

            if (!(t & RM_PT_LPINTAB) || !rm_page_type_has_data(t))
                continue;
            memset(&ops[n], 0, sizeof(ops[n]));
            switch (t & 7) {
            case RM_PT_L1TAB: ops[n].cmd = MMUEXT_PIN_L1_TABLE; break;
            case RM_PT_L2TAB: ops[n].cmd = MMUEXT_PIN_L2_TABLE; break;
            case RM_PT_L3TAB: ops[n].cmd = MMUEXT_PIN_L3_TABLE; break;
            case RM_PT_L4TAB: ops[n].cmd = MMUEXT_PIN_L4_TABLE; break;
            default: continue;
            }
            ops[n++].arg1.mfn = pr->p2m[pfn];
        }
        if (n && (n == 256 || pfn == pr->nr)) {
            if (xc_mmuext_op(pr->xch, ops, n, pr->domid))
                return rm_error_set(ctx->err, -errno, "Xen refused to pin a "
                                    "batch of %u page tables of domain %u "
                                    "(up to pfn %#" PRIx64 "): %s", n,
                                    pr->domid, pfn, strerror(errno));
            pinned += n;
            n = 0;
        }
    }
    LOG_INFO("pinned %u page tables", pinned);
    return 0;
}

static int set_vcpus(struct rm_restore_ctx *ctx, uint64_t *si_pfn)
{
    struct pv_restore *pr = ctx->backend;
    unsigned id, i;

    for (id = 0; id < pr->nr_vcpus; id++) {
        vcpu_guest_context_any_t c;
        struct xen_domctl d;
        unsigned long mfn;
        uint64_t pfn;

        if (!pr->basic[id].data)
            continue;
        memset(&c, 0, sizeof(c));
        memcpy(&c.x64, (const uint8_t *)pr->basic[id].data +
               sizeof(struct rm_x86_pv_vcpu_hdr), sizeof(c.x64));
        for (i = 0; i < (c.x64.gdt_ents + 511) / 512 && i < 16; i++) {
            if (pfn_mfn(pr, c.x64.gdt_frames[i], &mfn))
                return rm_error_set(ctx->err, -EBADMSG, "vCPU %u: GDT frame "
                                    "%u (pfn %#lx) is out of range", id, i,
                                    (unsigned long)c.x64.gdt_frames[i]);
            c.x64.gdt_frames[i] = mfn;
        }
        pfn = c.x64.ctrlreg[3] >> 12;
        if (pfn_mfn(pr, pfn, &mfn) || (pr->types[pfn] & 7) != RM_PT_L4TAB)
            return rm_error_set(ctx->err, -EBADMSG, "vCPU %u: cr3 (pfn %#"
                                PRIx64 ") is not an L4 table of the stream",
                                id, pfn);
        c.x64.ctrlreg[3] = (uint64_t)mfn << 12;
        if (c.x64.ctrlreg[1] & 1) {
            pfn = c.x64.ctrlreg[1] >> 12;
            if (pfn_mfn(pr, pfn, &mfn) || (pr->types[pfn] & 7) != RM_PT_L4TAB)
                return rm_error_set(ctx->err, -EBADMSG, "vCPU %u: the user "
                                    "cr3 (pfn %#" PRIx64 ") is not an L4 "
                                    "table of the stream", id, pfn);
            c.x64.ctrlreg[1] = (uint64_t)mfn << 12;
        }
        if (id == 0) {
            *si_pfn = c.x64.user_regs.rdx;
            if (pfn_mfn(pr, *si_pfn, &mfn))
                return rm_error_set(ctx->err, -EBADMSG, "vCPU0's start info "
                                    "pfn %#" PRIx64 " is out of range",
                                    *si_pfn);
            c.x64.user_regs.rdx = mfn;
        }
        if (xc_vcpu_setcontext(pr->xch, pr->domid, id, &c))
            return rm_error_set(ctx->err, -errno, "Xen refused vCPU %u's "
                                "context: %s", id, strerror(errno));
        if (pr->ext[id].len > sizeof(struct rm_x86_pv_vcpu_hdr)) {
            uint32_t len = pr->ext[id].len -
                           (uint32_t)sizeof(struct rm_x86_pv_vcpu_hdr);

            memset(&d, 0, sizeof(d));
            d.cmd = XEN_DOMCTL_set_ext_vcpucontext;
            d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
            d.domain = (domid_t)pr->domid;
            memcpy(&d.u.ext_vcpucontext, (const uint8_t *)pr->ext[id].data +
                   sizeof(struct rm_x86_pv_vcpu_hdr),
                   len < sizeof(d.u.ext_vcpucontext) ? len :
                   sizeof(d.u.ext_vcpucontext));
            d.u.ext_vcpucontext.vcpu = id;
            d.u.ext_vcpucontext.size = len;
            if (xc_domctl(pr->xch, &d))
                return rm_error_set(ctx->err, -errno, "Xen refused vCPU %u's"
                                    " extended context: %s", id,
                                    strerror(errno));
        }
        for (i = 0; i < 2; i++) {
            struct rm_xen_blob *b = i ? &pr->msrs[id] : &pr->xsave[id];
            uint32_t len;
            DECLARE_HYPERCALL_BUFFER(void, buf);

            if (b->len <= sizeof(struct rm_x86_pv_vcpu_hdr))
                continue;
            len = b->len - (uint32_t)sizeof(struct rm_x86_pv_vcpu_hdr);
            buf = xc_hypercall_buffer_alloc(pr->xch, buf, len);
            if (!buf)
                return rm_error_set(ctx->err, -ENOMEM, "out of memory");
            memcpy(buf, (const uint8_t *)b->data +
                   sizeof(struct rm_x86_pv_vcpu_hdr), len);
            memset(&d, 0, sizeof(d));
            d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
            d.domain = (domid_t)pr->domid;
            if (!i) {
                d.cmd = XEN_DOMCTL_setvcpuextstate;
                d.u.vcpuextstate.vcpu = id;
                d.u.vcpuextstate.size = len;
                set_xen_guest_handle(d.u.vcpuextstate.buffer, buf);
            } else {
                d.cmd = XEN_DOMCTL_set_vcpu_msrs;
                d.u.vcpu_msrs.vcpu = id;
                d.u.vcpu_msrs.msr_count = len / sizeof(xen_domctl_vcpu_msr_t);
                set_xen_guest_handle(d.u.vcpu_msrs.msrs, buf);
            }
            if (xc_domctl(pr->xch, &d)) {
                int e = errno;

                xc_hypercall_buffer_free(pr->xch, buf);
                return rm_error_set(ctx->err, -e, "Xen refused vCPU %u's %s:"
                                    " %s", id, i ? "MSRs" : "xsave state",
                                    strerror(e));
            }
            xc_hypercall_buffer_free(pr->xch, buf);
        }
    }
    if (!pr->basic[0].data)
        return rm_error_set(ctx->err, -EBADMSG, "the stream has no context "
                            "for vCPU0");
    return 0;
}

static int pvr_stream_complete(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;
    uint64_t si_pfn = 0;
    int rc;

    if (!pr->p2m_frame_pfns)
        return rm_error_set(ctx->err, -EBADMSG, "the stream has no "
                            "X86_PV_P2M_FRAMES");
    rc = write_guest_p2m(ctx);
    if (!rc)
        rc = pin_tables(ctx);
    if (!rc)
        rc = set_vcpus(ctx, &si_pfn);
    if (!rc)
        rc = fix_shared_and_start_info(ctx, si_pfn);
    if (!rc && pr->tsc.len == sizeof(struct rm_x86_tsc_info)) {
        const struct rm_x86_tsc_info *t = pr->tsc.data;

        if (xc_domain_set_tsc_info(pr->xch, pr->domid, t->mode, t->nsec,
                                   t->khz, t->incarnation))
            rc = rm_error_set(ctx->err, -errno, "Xen refused the TSC info: "
                              "%s", strerror(errno));
    }
    return rc;
}

static void pvr_cleanup(struct rm_restore_ctx *ctx)
{
    struct pv_restore *pr = ctx->backend;
    unsigned i;

    if (!pr)
        return;
    if (pr->map)
        xenforeignmemory_unmap(pr->fmem, pr->map, pr->map_count);
    for (i = 0; i < PV_MAX_VCPUS; i++) {
        free(pr->basic[i].data);
        free(pr->ext[i].data);
        free(pr->xsave[i].data);
        free(pr->msrs[i].data);
    }
    free(pr->cpuid.data);
    free(pr->msr.data);
    free(pr->tsc.data);
    free(pr->shinfo.data);
    free(pr->p2m_frame_pfns);
    free(pr->p2m);
    free(pr->types);
    free(pr);
    ctx->backend = NULL;
}

const struct rm_restore_ops rm_xen_pv_restore_ops = {
    .setup = pvr_setup,
    .check_record = pvr_check_record,
    .process_record = pvr_process_record,
    .static_data_complete = pvr_static_data_complete,
    .map_pages = pvr_map_pages,
    .unmap_pages = pvr_unmap_pages,
    .localise_page = pvr_localise_page,
    .stream_complete = pvr_stream_complete,
    .cleanup = pvr_cleanup,
};
