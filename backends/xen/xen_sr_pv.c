/* SPDX-License-Identifier: MIT */
/*
 * Save of 64-bit x86 PV guests, non-live (Debian's Xen has no shadow
 * paging, so no log-dirty for PV; see backends/xen/xen_sr.h).
 *
 * A PV guest's memory holds machine frame numbers: its page tables, its
 * p2m, the frames named by its vCPU state.  The stream carries guest pfns
 * instead ("canonical form"), so that a restore on any host can put new
 * machine frames back:
 *  - the p2m (pfn -> mfn) is read through the guest's frame-list-list in
 *    its shared info; its frames go out as X86_PV_P2M_FRAMES (as pfns);
 *  - every page's type (L1..L4 page table, pinned or not) comes from Xen
 *    (getpageframeinfo3) and goes into PAGE_DATA's type nibble;
 *  - in every page-table page each present entry's mfn becomes its pfn
 *    (through the m2p, checked against the p2m); Xen's own L4 slots are
 *    cleared; an entry naming a frame the guest does not own, or a
 *    superpage, is refused with its table and slot;
 *  - X86_PV_VCPU_BASIC carries each online vCPU's context with cr3, the
 *    user cr3 (with bit 0 set: present), the GDT frames and vCPU0's
 *    start-info frame as pfns;
 *    X86_PV_VCPU_EXTENDED/XSAVE/MSRS, SHARED_INFO and X86_TSC_INFO as
 *    Xen's own save writes them.
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

struct pv_save {
    struct rm_xen_save_arg *arg;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    unsigned nr_vcpus;
    bool resumed;          /* resumed after a suspend: xenstored is told
                            * once, at cleanup (rm_xen_told_running) */

    struct rm_xen_pv_mem mem;       /* m2p, shared info, p2m */

    /* The current batch. */
    void *map;
    uint32_t map_count;
    xen_pfn_t mfns[RM_PAGE_DATA_BATCH];
    int errs[RM_PAGE_DATA_BATCH];
    uint64_t pfn_of[RM_PAGE_DATA_BATCH];
    void *slot_of[RM_PAGE_DATA_BATCH];
    /* Normalised page tables of the current batch, one slot each (the
     * engine writes the batch after normalising all of it). */
    uint8_t (*pt)[RM_PAGE_SIZE];
    uint32_t pt_used;
};

static int pv_setup(struct rm_save_ctx *ctx)
{
    struct rm_xen_save_arg *arg = ctx->backend_arg;
    struct rm_xen_dominfo di;
    struct pv_save *ps;
    uint64_t size;
    int rc;

    if (!arg || !arg->host)
        return rm_error_set(ctx->err, -EINVAL, "no Xen domain to save");
    if (ctx->params.mode != RM_SAVE_NONLIVE)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "PV guests are saved "
                            "non-live only: live and checkpointed saves need"
                            " PV log-dirty, i.e. shadow paging, which this "
                            "Xen lacks (drop --live)");
    ps = calloc(1, sizeof(*ps));
    if (!ps)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->backend = ps;
    ps->arg = arg;
    ps->xch = rm_xen_xch(arg->host);
    ps->fmem = rm_xen_fmem(arg->host);
    ps->domid = arg->domid;
    rc = rm_xen_dominfo(arg->host, arg->domid, &di, ctx->err);
    if (rc)
        return rc;
    if (di.hvm)
        return rm_error_set(ctx->err, -EINVAL, "domain %u is not PV",
                            arg->domid);
    if (di.dying || di.crashed)
        return rm_error_set(ctx->err, -ESRCH, "domain %u ('%s') is %s",
                            arg->domid, di.name, di.dying ? "dying" :
                            "crashed");
    ps->nr_vcpus = di.nr_vcpus;
    rc = rm_xen_pv_mem_open(&ps->mem, arg->host, arg->domid, ctx->err);
    if (rc)
        return rc;
    ctx->dtype = RM_DHDR_TYPE_X86_PV;
    if (rm_xen_version(arg->host, &ctx->dhdr_major, &ctx->dhdr_minor))
        return rm_error_set(ctx->err, -EIO, "cannot read Xen's version");
    /* The p2m itself is read after the suspend; its size (from the shared
     * info) bounds the pfns of the stream. */
    rc = rm_xen_pv_mem_p2m_size(&ps->mem, &size, ctx->err);
    if (rc)
        return rc;
    ps->mem.p2m_size = size;
    ctx->nr_pfns = size;
    LOG_INFO("domain %u ('%s'): 64-bit PV, %" PRIu64 " pages, p2m of %"
             PRIu64 " pfns, %u vCPUs", ps->domid, di.name, di.nr_pages,
             size, ps->nr_vcpus);
    return 0;
}

static struct pv_save *ps_of(struct rm_save_ctx *ctx)
{
    return ctx->backend;
}

static int pv_static_data(struct rm_save_ctx *ctx)
{
    struct rm_x86_pv_info pi = { .guest_width = 8, .pt_levels = 4 };
    int rc;

    rc = rm_stream_write_record(&ctx->w, RM_REC_X86_PV_INFO, &pi,
                                sizeof(pi));
    if (rc)
        return rc;
    return rm_xen_write_cpu_policy(ctx, ps_of(ctx)->xch, ps_of(ctx)->domid);
}

/* After the suspend: the p2m as it is now, and its frames as pfns. */
static int pv_start_of_checkpoint_done(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;
    struct rm_x86_pv_p2m_frames *rec;
    uint64_t *pfns, old_size = ps->mem.p2m_size;
    size_t len;
    unsigned i;
    int rc;

    rc = rm_xen_pv_mem_read_p2m(&ps->mem, ctx->err);
    if (rc)
        return rc;
    if (ps->mem.p2m_size != old_size)
        return rm_error_set(ctx->err, -EAGAIN, "the p2m of domain %u changed"
                            " size while it was suspended (%" PRIu64 " -> %"
                            PRIu64 " pfns)", ps->domid, old_size,
                            ps->mem.p2m_size);
    len = sizeof(*rec) + (size_t)ps->mem.nr_p2m_frames * sizeof(uint64_t);
    rec = calloc(1, len);
    if (!rec)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    rec->start_pfn = 0;
    rec->end_pfn = (uint32_t)(ps->mem.p2m_size - 1);
    pfns = (uint64_t *)(rec + 1);
    for (i = 0; i < ps->mem.nr_p2m_frames; i++) {
        uint64_t pfn;

        if (!rm_xen_pv_mfn_to_pfn(&ps->mem, ps->mem.p2m_frames[i], &pfn)) {
            free(rec);
            return rm_error_set(ctx->err, -EINVAL, "p2m frame %u of domain "
                                "%u (mfn %#lx) is not the guest's own",
                                i, ps->domid,
                                (unsigned long)ps->mem.p2m_frames[i]);
        }
        pfns[i] = pfn;
    }
    rc = rm_stream_write_record(&ctx->w, RM_REC_X86_PV_P2M_FRAMES, rec,
                                (uint32_t)len);
    free(rec);
    return rc;
}

static int pv_map_pages(struct rm_save_ctx *ctx, uint32_t count,
                        const uint64_t *pfns, uint32_t *types, void **ptrs)
{
    struct pv_save *ps = ctx->backend;
    xen_pfn_t tarr[RM_PAGE_DATA_BATCH];
    uint32_t i, nmap = 0;
    int rc;

    if (count > RM_PAGE_DATA_BATCH)
        return rm_error_set(ctx->err, -EINVAL, "batch of %u pages", count);
    ps->pt_used = 0;
    for (i = 0; i < count; i++) {
        unsigned long mfn = pfns[i] < ps->mem.p2m_size ? ps->mem.p2m[pfns[i]] :
                            RM_XEN_PV_INVALID_MFN;

        ptrs[i] = NULL;
        if (mfn == RM_XEN_PV_INVALID_MFN || !rm_xen_pv_mfn_valid(&ps->mem, mfn)) {
            types[i] = RM_PT_XTAB;
            continue;
        }
        tarr[nmap] = mfn;
        ps->mfns[nmap] = mfn;
        ps->pfn_of[nmap] = i;
        nmap++;
    }
    if (!nmap)
        return 0;
    rc = rm_xen_pv_frame_types(&ps->mem, tarr, nmap, ctx->err);
    if (rc)
        return rc;
    ps->map = xenforeignmemory_map(ps->fmem, ps->domid, PROT_READ, nmap,
                                   ps->mfns, ps->errs);
    if (!ps->map)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "mapping %u "
                            "pages of domain %u: %s", nmap, ps->domid,
                            strerror(errno));
    ps->map_count = nmap;
    for (i = 0; i < nmap; i++) {
        uint32_t k = (uint32_t)ps->pfn_of[i];
        uint32_t t = (uint32_t)((tarr[i] >> 28) & 0xf);

        if (t == RM_PT_XTAB || t == RM_PT_BROKEN || ps->errs[i]) {
            types[k] = t == RM_PT_BROKEN ? RM_PT_BROKEN : RM_PT_XTAB;
            continue;
        }
        if (!rm_page_type_valid(t))
            return rm_error_set(ctx->err, -EINVAL, "Xen reports type %#x "
                                "for pfn %#" PRIx64 " of domain %u", t,
                                pfns[k], ps->domid);
        types[k] = t;
        ptrs[k] = (uint8_t *)ps->map + (size_t)i * RM_PAGE_SIZE;
    }
    return 0;
}

static void pv_unmap_pages(struct rm_save_ctx *ctx, uint32_t count,
                           void **ptrs)
{
    struct pv_save *ps = ctx->backend;

    (void)count;
    (void)ptrs;
    if (ps->map)
        xenforeignmemory_unmap(ps->fmem, ps->map, ps->map_count);
    ps->map = NULL;
    ps->map_count = 0;
}

/* Page tables: every present entry's mfn becomes its pfn. */
static int pv_normalise_page(struct rm_save_ctx *ctx, uint64_t pfn,
                             uint32_t type, void **page)
{
    struct pv_save *ps = ctx->backend;
    uint32_t level = type & 0x7u;
    uint64_t *pte;
    unsigned i;

    if (level < RM_PT_L1TAB || level > RM_PT_L4TAB)
        return 0;
    if (!ps->pt) {
        ps->pt = malloc((size_t)RM_PAGE_DATA_BATCH * RM_PAGE_SIZE);
        if (!ps->pt)
            return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    }
    if (ps->pt_used >= RM_PAGE_DATA_BATCH)
        return rm_error_set(ctx->err, -EOVERFLOW, "more page tables than "
                            "pages in a batch");
    memcpy(ps->pt[ps->pt_used], *page, RM_PAGE_SIZE);
    pte = (uint64_t *)ps->pt[ps->pt_used];
    for (i = 0; i < RM_PAGE_SIZE / 8; i++) {
        uint64_t mfn, gpfn;

        if (level == RM_PT_L4TAB && i >= RM_XEN_L4_XEN_FIRST && i <= RM_XEN_L4_XEN_LAST) {
            pte[i] = 0;
            continue;
        }
        if (!(pte[i] & RM_XEN_PTE_PRESENT))
            continue;
        if (level > RM_PT_L1TAB && (pte[i] & RM_XEN_PTE_PSE))
            return rm_error_set(ctx->err, -EOPNOTSUPP, "pfn %#" PRIx64 " of"
                                " domain %u: L%u[%u] maps a superpage "
                                "(%#" PRIx64 "), which a PV save cannot "
                                "carry", pfn, ps->domid, level, i, pte[i]);
        mfn = (pte[i] & RM_XEN_PTE_MFN_MASK) >> 12;
        if (!rm_xen_pv_mfn_to_pfn(&ps->mem, mfn, &gpfn))
            return rm_error_set(ctx->err, -EINVAL, "pfn %#" PRIx64 " of "
                                "domain %u: L%u[%u] = %#" PRIx64 " maps mfn %#"
                                PRIx64 ", which is not the guest's", pfn,
                                ps->domid, level, i, pte[i], mfn);
        pte[i] = (pte[i] & ~RM_XEN_PTE_MFN_MASK) | (gpfn << 12);
    }
    *page = ps->pt[ps->pt_used++];
    return 0;
}

static int pv_suspend(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;
    int rc;

    rc = rm_xen_suspend(ps->arg->host, ps->domid,
                        ps->arg->suspend_timeout_ms ?
                        ps->arg->suspend_timeout_ms : 30000, ctx->err);
    if (rc)
        return rc;
    rc = pv_start_of_checkpoint_done(ctx);
    if (rc) {
        /* The engine resumes only a VM whose suspend succeeded: this one
         * is suspended, and must not stay so because of our failure. */
        struct rm_error e = { 0 };

        if (rm_xen_resume_cancelled(ps->arg->host, ps->domid, &e))
            LOG_WARN("domain %u stays suspended: %s", ps->domid,
                     rm_error_str(&e));
        else
            ps->resumed = true;   /* cleanup tells xenstored */
    }
    return rc;
}

static int pv_resume(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;

    int rc = rm_xen_resume_cancelled(ps->arg->host, ps->domid, ctx->err);

    ps->resumed |= !rc;
    return rc;
}

static int cr3_to_pfn(struct pv_save *ps, uint64_t cr3, uint64_t *out)
{
    uint64_t pfn;

    if (!rm_xen_pv_mfn_to_pfn(&ps->mem, cr3 >> 12, &pfn))
        return -EINVAL;
    *out = pfn << 12;
    return 0;
}

/* One vCPU's context, canonicalised, as X86_PV_VCPU_BASIC. */
static int write_vcpu_basic(struct rm_save_ctx *ctx, unsigned id)
{
    struct pv_save *ps = ctx->backend;
    struct {
        struct rm_x86_pv_vcpu_hdr h;
        vcpu_guest_context_x86_64_t c;
    } rec;
    vcpu_guest_context_any_t any;
    unsigned i, gdt_frames;
    uint64_t v;

    memset(&rec, 0, sizeof(rec));
    if (xc_vcpu_getcontext(ps->xch, ps->domid, id, &any))
        return rm_error_set(ctx->err, -errno, "cannot read vCPU %u of "
                            "domain %u: %s", id, ps->domid, strerror(errno));
    rec.h.vcpu_id = id;
    rec.c = any.x64;
    gdt_frames = (rec.c.gdt_ents + 511) / 512;
    if (gdt_frames > 16)
        return rm_error_set(ctx->err, -EINVAL, "vCPU %u of domain %u has "
                            "%lu GDT entries", id, ps->domid,
                            (unsigned long)rec.c.gdt_ents);
    for (i = 0; i < gdt_frames; i++) {
        if (!rm_xen_pv_mfn_to_pfn(&ps->mem, rec.c.gdt_frames[i], &v))
            return rm_error_set(ctx->err, -EINVAL, "vCPU %u of domain %u: "
                                "GDT frame %u (mfn %#lx) is not the guest's",
                                id, ps->domid, i,
                                (unsigned long)rec.c.gdt_frames[i]);
        rec.c.gdt_frames[i] = v;
    }
    if (cr3_to_pfn(ps, rec.c.ctrlreg[3], &v))
        return rm_error_set(ctx->err, -EINVAL, "vCPU %u of domain %u: cr3 %#"
                            PRIx64 " is not the guest's", id, ps->domid,
                            (uint64_t)rec.c.ctrlreg[3]);
    rec.c.ctrlreg[3] = v;
    if (rec.c.ctrlreg[1]) {
        if (cr3_to_pfn(ps, rec.c.ctrlreg[1], &v))
            return rm_error_set(ctx->err, -EINVAL, "vCPU %u of domain %u: "
                                "user cr3 %#" PRIx64 " is not the guest's",
                                id, ps->domid, (uint64_t)rec.c.ctrlreg[1]);
        /* In the stream the user cr3 carries bit 0: "present". */
        rec.c.ctrlreg[1] = v | 1;
    }
    if (id == 0) {
        /* A suspended PV guest's vCPU0 holds its start info frame. */
        if (!rm_xen_pv_mfn_to_pfn(&ps->mem, rec.c.user_regs.rdx, &v))
            return rm_error_set(ctx->err, -EINVAL, "domain %u: vCPU0's "
                                "start info frame %#" PRIx64 " is not the "
                                "guest's (was it suspended?)", ps->domid,
                                (uint64_t)rec.c.user_regs.rdx);
        rec.c.user_regs.rdx = v;
    }
    return rm_stream_write_record(&ctx->w, RM_REC_X86_PV_VCPU_BASIC, &rec,
                                  sizeof(rec));
}

/* A vCPU domctl whose data goes to a buffer: XSAVE state or MSRs. */
static int write_vcpu_buffered(struct rm_save_ctx *ctx, unsigned id,
                               uint32_t cmd)
{
    struct pv_save *ps = ctx->backend;
    struct xen_domctl d;
    struct rm_x86_pv_vcpu_hdr *rec = NULL;
    size_t size;
    int rc = 0;
    DECLARE_HYPERCALL_BUFFER(void, buf);

    memset(&d, 0, sizeof(d));
    d.cmd = cmd;
    d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    d.domain = (domid_t)ps->domid;
    if (cmd == XEN_DOMCTL_getvcpuextstate) {
        d.u.vcpuextstate.vcpu = id;
        if (xc_domctl(ps->xch, &d))
            return rm_error_set(ctx->err, -errno, "cannot size vCPU %u's "
                                "xsave state: %s", id, strerror(errno));
        size = d.u.vcpuextstate.size;
    } else {
        d.u.vcpu_msrs.vcpu = id;
        if (xc_domctl(ps->xch, &d))
            return rm_error_set(ctx->err, -errno, "cannot count vCPU %u's "
                                "MSRs: %s", id, strerror(errno));
        size = (size_t)d.u.vcpu_msrs.msr_count * sizeof(xen_domctl_vcpu_msr_t);
    }
    if (!size)
        return 0;
    buf = xc_hypercall_buffer_alloc(ps->xch, buf, size);
    if (!buf)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    if (cmd == XEN_DOMCTL_getvcpuextstate) {
        d.u.vcpuextstate.size = size;
        set_xen_guest_handle(d.u.vcpuextstate.buffer, buf);
    } else {
        set_xen_guest_handle(d.u.vcpu_msrs.msrs, buf);
    }
    if (xc_domctl(ps->xch, &d)) {
        rc = rm_error_set(ctx->err, -errno, "cannot read vCPU %u's %s: %s",
                          id, cmd == XEN_DOMCTL_getvcpuextstate ? "xsave "
                          "state" : "MSRs", strerror(errno));
        goto out;
    }
    if (cmd == XEN_DOMCTL_getvcpuextstate)
        size = d.u.vcpuextstate.size;
    else
        size = (size_t)d.u.vcpu_msrs.msr_count * sizeof(xen_domctl_vcpu_msr_t);
    if (!size)
        goto out;
    rec = calloc(1, sizeof(*rec) + size);
    if (!rec) {
        rc = rm_error_set(ctx->err, -ENOMEM, "out of memory");
        goto out;
    }
    rec->vcpu_id = id;
    memcpy(rec + 1, buf, size);
    rc = rm_stream_write_record(&ctx->w, cmd == XEN_DOMCTL_getvcpuextstate ?
                                RM_REC_X86_PV_VCPU_XSAVE :
                                RM_REC_X86_PV_VCPU_MSRS, rec,
                                (uint32_t)(sizeof(*rec) + size));
out:
    free(rec);
    xc_hypercall_buffer_free(ps->xch, buf);
    return rc;
}

static int write_vcpu_extended(struct rm_save_ctx *ctx, unsigned id)
{
    struct pv_save *ps = ctx->backend;
    struct xen_domctl d;
    struct {
        struct rm_x86_pv_vcpu_hdr h;
        uint8_t body[128];
    } rec;

    memset(&d, 0, sizeof(d));
    d.cmd = XEN_DOMCTL_get_ext_vcpucontext;
    d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    d.domain = (domid_t)ps->domid;
    d.u.ext_vcpucontext.vcpu = id;
    if (xc_domctl(ps->xch, &d))
        return rm_error_set(ctx->err, -errno, "cannot read vCPU %u's "
                            "extended context: %s", id, strerror(errno));
    if (d.u.ext_vcpucontext.size > sizeof(rec.body) ||
        d.u.ext_vcpucontext.size > sizeof(d.u.ext_vcpucontext))
        return rm_error_set(ctx->err, -EINVAL, "vCPU %u's extended context "
                            "is %u bytes", id, d.u.ext_vcpucontext.size);
    memset(&rec, 0, sizeof(rec));
    rec.h.vcpu_id = id;
    memcpy(rec.body, &d.u.ext_vcpucontext, d.u.ext_vcpucontext.size);
    return rm_stream_write_record(&ctx->w, RM_REC_X86_PV_VCPU_EXTENDED, &rec,
                                  (uint32_t)(sizeof(rec.h) +
                                             d.u.ext_vcpucontext.size));
}

static int pv_end_of_checkpoint(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;
    struct rm_x86_tsc_info tsc;
    unsigned id;
    int rc;

    /* The page tables just sent were translated with our copy of the p2m:
     * it must still be the guest's. */
    rc = rm_xen_pv_mem_p2m_unchanged(&ps->mem, ctx->err);
    if (rc)
        return rc;
    memset(&tsc, 0, sizeof(tsc));
    if (xc_domain_get_tsc_info(ps->xch, ps->domid, &tsc.mode, &tsc.nsec,
                               &tsc.khz, &tsc.incarnation))
        return rm_error_set(ctx->err, -errno, "cannot read domain %u's TSC "
                            "info: %s", ps->domid, strerror(errno));
    rc = rm_stream_write_record(&ctx->w, RM_REC_X86_TSC_INFO, &tsc,
                                sizeof(tsc));
    if (!rc)
        rc = rm_stream_write_record(&ctx->w, RM_REC_SHARED_INFO, ps->mem.shinfo,
                                    RM_PAGE_SIZE);
    for (id = 0; !rc && id < ps->nr_vcpus; id++) {
        xc_vcpuinfo_t vi;

        if (xc_vcpu_getinfo(ps->xch, ps->domid, id, &vi))
            return rm_error_set(ctx->err, -errno, "cannot read vCPU %u of "
                                "domain %u: %s", id, ps->domid,
                                strerror(errno));
        if (!vi.online)
            continue;
        rc = write_vcpu_basic(ctx, id);
        if (!rc)
            rc = write_vcpu_extended(ctx, id);
        if (!rc)
            rc = write_vcpu_buffered(ctx, id, XEN_DOMCTL_getvcpuextstate);
        if (!rc)
            rc = write_vcpu_buffered(ctx, id, XEN_DOMCTL_get_vcpu_msrs);
    }
    return rc;
}

static int pv_check_vm_state(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;
    struct rm_xen_dominfo di;
    int rc = rm_xen_dominfo(ps->arg->host, ps->domid, &di, ctx->err);

    if (rc)
        return rc == -ENOENT ? -ESTALE : rc;
    if (di.dying || di.crashed)
        return rm_error_set(ctx->err, -ESTALE, "domain %u %s during the "
                            "save", ps->domid, di.crashed ? "crashed" :
                            "is being destroyed");
    return ps->mem.p2m ? rm_xen_pv_mem_p2m_unchanged(&ps->mem, ctx->err) : 0;
}

static int pv_no_logdirty(struct rm_save_ctx *ctx)
{
    return rm_error_set(ctx->err, -EOPNOTSUPP, "PV guests have no log-dirty "
                        "mode on this Xen");
}

static int pv_logdirty_off(struct rm_save_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static int pv_no_harvest(struct rm_save_ctx *ctx, unsigned long *bitmap)
{
    (void)bitmap;
    return pv_no_logdirty(ctx);
}

static int pv_nop(struct rm_save_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static void pv_cleanup(struct rm_save_ctx *ctx)
{
    struct pv_save *ps = ctx->backend;

    if (!ps)
        return;
    if (ps->resumed)   /* once, not after every checkpoint */
        rm_xen_told_running_or_warn(ps->arg->host, ps->domid);
    if (ps->map)
        xenforeignmemory_unmap(ps->fmem, ps->map, ps->map_count);
    rm_xen_pv_mem_close(&ps->mem);
    free(ps->pt);
    free(ps);
    ctx->backend = NULL;
}

const struct rm_save_ops rm_xen_pv_save_ops = {
    .setup = pv_setup,
    .static_data = pv_static_data,
    .start_of_stream = pv_nop,
    .start_of_checkpoint = pv_nop,
    .end_of_checkpoint = pv_end_of_checkpoint,
    .check_vm_state = pv_check_vm_state,
    .map_pages = pv_map_pages,
    .unmap_pages = pv_unmap_pages,
    .normalise_page = pv_normalise_page,
    .enable_logdirty = pv_no_logdirty,
    .disable_logdirty = pv_logdirty_off,
    .harvest_dirty = pv_no_harvest,
    .suspend = pv_suspend,
    .resume = pv_resume,
    .cleanup = pv_cleanup,
};

/* ============================================================= restore */
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
