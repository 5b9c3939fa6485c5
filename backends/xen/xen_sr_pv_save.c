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
