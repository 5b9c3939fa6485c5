/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen-sr"
#include "backends/xen/xen_sr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xen/hvm/params.h>

#include "backends/xen/xen_hvm_pause.h"
#include "common/log.h"

_Static_assert(sizeof(struct rm_x86_cpuid_leaf) == sizeof(xen_cpuid_leaf_t),
               "CPUID policy entry layout");
_Static_assert(sizeof(struct rm_x86_msr_entry) == sizeof(xen_msr_entry_t),
               "MSR policy entry layout");

int rm_xen_version(struct rm_xen_host *h, uint32_t *major, uint32_t *minor)
{
    int v = xc_version(rm_xen_xch(h), XENVER_version, NULL);

    if (v < 0)
        return -errno;
    *major = (uint32_t)v >> 16;
    *minor = (uint32_t)v & 0xffff;
    return 0;
}

/*
 * The HVM params a checkpoint carries (as Xen's own save does: the ones
 * that describe the guest's layout, not the host's wiring), in two kinds.
 * The guest may set some itself (Xen's hvm_allow_set_param): those are
 * read in the pause, with the rest of its state (rm_xen_guest_set_params,
 * backends/xen/xen_hvm_pause.h).
 */
/* Only a toolstack sets these (the guest gets -EPERM): their value at the
 * suspend is their value once it runs again, so they are read after the
 * resume, at no cost to the pause (in the lab ~0.03 ms each under TCG). */
static const uint32_t toolstack_params[] = {
    HVM_PARAM_STORE_PFN,
    HVM_PARAM_IOREQ_PFN,
    HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN,
    HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN,
    HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_VIRIDIAN,
    HVM_PARAM_IDENT_PT,
    HVM_PARAM_IOREQ_SERVER_PFN,
    HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_MCA_CAP,
};
#define NR_TOOLSTACK_PARAMS \
    (sizeof(toolstack_params) / sizeof(toolstack_params[0]))
#define NR_SAVED_PARAMS (RM_XEN_NR_GUEST_SET_PARAMS + NR_TOOLSTACK_PARAMS)

/* ================================================================ save */

struct xen_save {
    struct rm_xen_save_arg *arg;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    bool logdirty;
    bool resumed;          /* resumed after a suspend: xenstored is told
                            * once, at cleanup (rm_xen_told_running) */
    /* The pause's state reads, beside the page copy, and the resume */
    struct rm_xen_hvm_pause *pause;
    /* The params read in this checkpoint's pause (guest_set_params,
     * zero: not set), for end_of_checkpoint_running's record. */
    uint64_t guest_params[RM_XEN_NR_GUEST_SET_PARAMS];
    /* The current batch's mapping (map_pages .. unmap_pages). */
    void *map;
    uint32_t map_count;
    /* The pause's batches, already staged: unmapped once the guest runs
     * again (munmap of foreign pages, ~6 us a page under TCG, is not
     * the guest's to wait for). */
    struct held_map {
        void *map;
        uint32_t count;
    } *held;
    size_t nr_held, held_cap;
    uint64_t held_pages;
    uint64_t resumed_ns;   /* rm_now_ns() as the last resume let it run */
    xen_pfn_t gfns[RM_PAGE_DATA_BATCH];
    int errs[RM_PAGE_DATA_BATCH];
    /* The dirty log, in hypercall-safe memory. */
    xc_hypercall_buffer_t hb;
    unsigned long hbuf_pages;
};

static int s_setup(struct rm_save_ctx *ctx)
{
    struct rm_xen_save_arg *arg = ctx->backend_arg;
    struct rm_xen_dominfo di;
    struct xen_save *xs;
    xen_pfn_t nr = 0;
    int rc;

    if (!arg || !arg->host)
        return rm_error_set(ctx->err, -EINVAL, "no Xen domain to save");
    xs = calloc(1, sizeof(*xs));
    if (!xs)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->backend = xs;
    xs->arg = arg;
    xs->xch = rm_xen_xch(arg->host);
    xs->fmem = rm_xen_fmem(arg->host);
    xs->domid = arg->domid;
    rc = rm_xen_dominfo(arg->host, arg->domid, &di, ctx->err);
    if (rc)
        return rc;
    if (!di.hvm)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "domain %u ('%s') is a "
                            "PV guest: remus saves HVM and PVH guests (PV "
                            "log-dirty needs shadow paging, which Debian's "
                            "Xen lacks)", arg->domid, di.name);
    if (di.dying || di.crashed || di.shutdown)
        return rm_error_set(ctx->err, -ESRCH, "domain %u ('%s') is %s", arg->domid,
                            di.name, di.dying ? "dying" : di.crashed ?
                            "crashed" : "shut down");
    if (xc_domain_nr_gpfns(xs->xch, arg->domid, &nr) < 0 || nr == 0)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot read "
                            "the p2m size of domain %u: %s", arg->domid,
                            strerror(errno));
    ctx->nr_pfns = nr;
    ctx->dtype = RM_DHDR_TYPE_X86_HVM;
    if (rm_xen_version(arg->host, &ctx->dhdr_major, &ctx->dhdr_minor))
        return rm_error_set(ctx->err, -EIO, "cannot read Xen's version");
    rc = rm_xen_hvm_pause_open(&xs->pause, arg->host, arg->domid, ctx->err);
    if (rc)
        return rc;
    LOG_INFO("domain %u ('%s'): HVM%s, %" PRIu64 " pages populated, p2m of "
             "%" PRIu64 " pfns, %u vCPUs", arg->domid, di.name,
             di.hap ? " with HAP" : "", di.nr_pages, (uint64_t)nr,
             di.nr_vcpus);
    return 0;
}

static int s_static_data(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    return rm_xen_write_cpu_policy(ctx, xs->xch, xs->domid);
}

int rm_xen_write_cpu_policy(struct rm_save_ctx *ctx, xc_interface *xch,
                            uint32_t domid)
{
    xc_cpu_policy_t *pol = xc_cpu_policy_init();
    xen_cpuid_leaf_t *leaves = NULL;
    xen_msr_entry_t *msrs = NULL;
    uint32_t nr_leaves = 0, nr_msrs = 0;
    int rc = 0;

    if (!pol)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    if (xc_cpu_policy_get_size(xch, &nr_leaves, &nr_msrs)) {
        rc = rm_error_set(ctx->err, -errno, "cannot size the CPU policy: "
                          "%s", strerror(errno));
        goto out;
    }
    leaves = calloc(nr_leaves ? nr_leaves : 1, sizeof(*leaves));
    msrs = calloc(nr_msrs ? nr_msrs : 1, sizeof(*msrs));
    if (!leaves || !msrs) {
        rc = rm_error_set(ctx->err, -ENOMEM, "out of memory");
        goto out;
    }
    if (xc_cpu_policy_get_domain(xch, domid, pol) ||
        xc_cpu_policy_serialise(xch, pol, leaves, &nr_leaves, msrs,
                                &nr_msrs)) {
        rc = rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot read "
                          "domain %u's CPU policy: %s", domid,
                          strerror(errno));
        goto out;
    }
    rc = rm_stream_write_record(&ctx->w, RM_REC_X86_CPUID_POLICY, leaves,
                                nr_leaves * (uint32_t)sizeof(*leaves));
    if (!rc)
        rc = rm_stream_write_record(&ctx->w, RM_REC_X86_MSR_POLICY, msrs,
                                    nr_msrs * (uint32_t)sizeof(*msrs));
out:
    free(leaves);
    free(msrs);
    xc_cpu_policy_destroy(pol);
    return rc;
}

static int s_nop(struct rm_save_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static int s_check_vm_state(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;
    struct rm_xen_dominfo di;
    xen_pfn_t nr = 0;
    int rc = rm_xen_dominfo(xs->arg->host, xs->domid, &di, ctx->err);

    if (rc)
        return rc == -ENOENT ? -ESTALE : rc;
    if (di.dying || di.crashed)
        return rm_error_set(ctx->err, -ESTALE, "domain %u %s during the "
                            "save", xs->domid, di.crashed ? "crashed" :
                            "is being destroyed");
    /* The layout: the dirty log and the pages sent cover the p2m as it was
     * at setup; a frame populated above it (memory hot-added, a balloon
     * growing past the highest frame) would never be sent. */
    if (xc_domain_nr_gpfns(xs->xch, xs->domid, &nr) < 0)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot read "
                            "the p2m size of domain %u: %s", xs->domid,
                            strerror(errno));
    if (nr > ctx->nr_pfns)
        return rm_error_set(ctx->err, -EOVERFLOW, "domain %u's p2m grew "
                            "from %" PRIu64 " to %" PRIu64 " pfns during the "
                            "save (memory populated above its highest frame: "
                            "hotplug or ballooning): the frames above %#"
                            PRIx64 " would be missing from the checkpoint; "
                            "aborted", xs->domid, ctx->nr_pfns, (uint64_t)nr,
                            ctx->nr_pfns - 1);
    return 0;
}

/* One HVM param into *v.  0 or -errno, with a reason. */
static int get_param(struct rm_save_ctx *ctx, uint32_t index, uint64_t *v)
{
    struct xen_save *xs = ctx->backend;

    *v = 0;
    if (xc_hvm_param_get(xs->xch, xs->domid, index, v))
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot read "
                            "HVM param %u of domain %u: %s", index,
                            xs->domid, strerror(errno));
    return 0;
}

/* In the pause: TSC info, the HVM context (read from the suspend on,
 * beside the pages), the params the guest sets (kept for
 * end_of_checkpoint_running's record). */
static int s_end_of_checkpoint(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;
    const struct rm_xen_hvm_pause_state *st;
    int rc = rm_xen_hvm_pause_collect(xs->pause, &st, ctx->err);

    if (rc)
        return rc;
    memcpy(xs->guest_params, st->guest_params, sizeof(xs->guest_params));
    rc = rm_stream_write_record(&ctx->w, RM_REC_X86_TSC_INFO, &st->tsc,
                                sizeof(st->tsc));
    if (!rc)
        rc = rm_stream_write_record(&ctx->w, RM_REC_HVM_CONTEXT, st->hvm,
                                    st->hvm_len);
    return rc;
}

/* After the resume: the params only a toolstack sets, and the one
 * HVM_PARAMS record with both kinds (the non-zero ones, as Xen's save). */
static int s_end_of_checkpoint_running(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;
    struct {
        struct rm_hvm_params_hdr h;
        struct rm_hvm_param p[NR_SAVED_PARAMS];
    } params;
    size_t i;
    int rc;

    memset(&params, 0, sizeof(params));
    for (i = 0; i < NR_SAVED_PARAMS; i++) {
        uint32_t index;
        uint64_t v;

        if (i < RM_XEN_NR_GUEST_SET_PARAMS) {
            index = rm_xen_guest_set_params[i];
            v = xs->guest_params[i];
        } else {
            index = toolstack_params[i - RM_XEN_NR_GUEST_SET_PARAMS];
            rc = get_param(ctx, index, &v);
            if (rc)
                return rc;
        }
        if (v) {
            params.p[params.h.count].index = index;
            params.p[params.h.count].value = v;
            params.h.count++;
        }
    }
    if (!params.h.count)
        return 0;
    return rm_stream_write_record(&ctx->w, RM_REC_HVM_PARAMS, &params,
                                  (uint32_t)(sizeof(params.h) +
                                             params.h.count *
                                             sizeof(params.p[0])));
}

static int s_map_pages(struct rm_save_ctx *ctx, uint32_t count,
                       const uint64_t *pfns, uint32_t *types, void **ptrs)
{
    struct xen_save *xs = ctx->backend;
    uint32_t i, mapped = 0;

    if (count > RM_PAGE_DATA_BATCH)
        return rm_error_set(ctx->err, -EINVAL, "batch of %u pages", count);
    for (i = 0; i < count; i++)
        xs->gfns[i] = (xen_pfn_t)pfns[i];
    xs->map = xenforeignmemory_map(xs->fmem, xs->domid, PROT_READ, count,
                                   xs->gfns, xs->errs);
    if (!xs->map) {
        /* Nothing of the batch is mappable (a hole in the p2m). */
        if (errno != ENOENT && errno != EINVAL && errno != EFAULT)
            return rm_error_set(ctx->err, -errno, "mapping %u pages of "
                                "domain %u from pfn %#" PRIx64 ": %s",
                                count, xs->domid, pfns[0],
                                strerror(errno));
        for (i = 0; i < count; i++) {
            types[i] = RM_PT_XTAB;
            ptrs[i] = NULL;
        }
        return 0;
    }
    xs->map_count = count;
    for (i = 0; i < count; i++) {
        if (xs->errs[i]) {
            types[i] = RM_PT_XTAB;
            ptrs[i] = NULL;
        } else {
            types[i] = RM_PT_NOTAB;
            ptrs[i] = (uint8_t *)xs->map + (size_t)i * RM_PAGE_SIZE;
            mapped++;
        }
    }
    return 0;
}

/* Unmap the batches the pause kept. */
static void release_held(struct xen_save *xs)
{
    size_t i;

    for (i = 0; i < xs->nr_held; i++)
        xenforeignmemory_unmap(xs->fmem, xs->held[i].map,
                               xs->held[i].count);
    xs->nr_held = 0;
    xs->held_pages = 0;
}

/*
 * At most this many pages stay mapped until the resume; past it a pause's
 * batches are unmapped at once, as before.  A checkpoint's dirty set is
 * far below it (~500 pages in the lab); a save that sends a large guest
 * whole in one pause (not live) would otherwise hold every frame mapped
 * at once (dom0 page tables for each, 2 MiB per GiB of guest).
 */
#define HELD_PAGES_MAX 16384u

/* Keep the current batch's mapping until the resume.  false: no room. */
static bool hold_batch(struct xen_save *xs)
{
    if (xs->held_pages + xs->map_count > HELD_PAGES_MAX)
        return false;
    if (xs->nr_held == xs->held_cap) {
        size_t cap = xs->held_cap ? xs->held_cap * 2 : 16;
        struct held_map *n = realloc(xs->held, cap * sizeof(*n));

        if (!n)
            return false;
        xs->held = n;
        xs->held_cap = cap;
    }
    xs->held[xs->nr_held].map = xs->map;
    xs->held[xs->nr_held].count = xs->map_count;
    xs->nr_held++;
    xs->held_pages += xs->map_count;
    return true;
}

/* In a pause the mapping outlives the batch (released by s_resume, or
 * s_cleanup); else it goes now. */
static void s_unmap_pages(struct rm_save_ctx *ctx, uint32_t count,
                          void **ptrs)
{
    struct xen_save *xs = ctx->backend;

    (void)count;
    (void)ptrs;
    if (xs->map && !(ctx->suspended && hold_batch(xs)))
        xenforeignmemory_unmap(xs->fmem, xs->map, xs->map_count);
    xs->map = NULL;
    xs->map_count = 0;
}

static int s_enable_logdirty(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;
    unsigned long bytes = RM_BITMAP_LONGS(ctx->nr_pfns) *
                          sizeof(unsigned long);
    int rc;

    rc = xc_shadow_control(xs->xch, xs->domid,
                           XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0);
    if (rc) {
        /* Left on by an earlier run that died: switch off, retry once. */
        xc_shadow_control(xs->xch, xs->domid, XEN_DOMCTL_SHADOW_OP_OFF,
                          NULL, 0);
        rc = xc_shadow_control(xs->xch, xs->domid,
                               XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL,
                               0);
    }
    if (rc)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot "
                            "enable log-dirty mode on domain %u: %s%s",
                            xs->domid, strerror(errno),
                            errno == EOPNOTSUPP ? " (no HAP, or a PV "
                            "guest on a Xen without shadow paging)" : "");
    xs->logdirty = true;
    xs->hbuf_pages = (bytes + 4095) / 4096;
    xs->hb.ubuf = (void *)-1;      /* a plain buffer: no bouncing */
    if (!xc__hypercall_buffer_alloc_pages(xs->xch, &xs->hb,
                                          (int)xs->hbuf_pages))
        return rm_error_set(ctx->err, -ENOMEM, "cannot allocate the dirty "
                            "bitmap (%lu pages)", xs->hbuf_pages);
    return 0;
}

static int s_disable_logdirty(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    if (xs->logdirty &&
        xc_shadow_control(xs->xch, xs->domid, XEN_DOMCTL_SHADOW_OP_OFF,
                          NULL, 0) && errno != ESRCH)
        return rm_error_set(ctx->err, -errno, "cannot switch log-dirty "
                            "mode off on domain %u: %s", xs->domid,
                            strerror(errno));
    xs->logdirty = false;
    return 0;
}

static int s_harvest_dirty(struct rm_save_ctx *ctx, unsigned long *bitmap)
{
    struct xen_save *xs = ctx->backend;
    xc_shadow_op_stats_t stats;
    uint64_t longs = RM_BITMAP_LONGS(ctx->nr_pfns), i;
    const unsigned long *d = xs->hb.hbuf;
    long long got;

    got = xc_logdirty_control(xs->xch, xs->domid,
                              XEN_DOMCTL_SHADOW_OP_CLEAN, &xs->hb,
                              ctx->nr_pfns, 0, &stats);
    if (got < 0)
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot read "
                            "the dirty log of domain %u: %s", xs->domid,
                            strerror(errno));
    for (i = 0; i < longs; i++)
        bitmap[i] |= d[i];
    /* Bits past nr_pfns (the last long's tail) are not pages. */
    if (ctx->nr_pfns % RM_BITS_PER_LONG)
        bitmap[longs - 1] &= (1ul << (ctx->nr_pfns % RM_BITS_PER_LONG)) - 1;
    xs->arg->harvests++;
    return 0;
}

static int s_suspend(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    /* Suspended, its state is fixed: read beside the pages from then on */
    return rm_xen_hvm_pause_suspend(xs->pause, xs->arg->suspend_timeout_ms ?
                                    xs->arg->suspend_timeout_ms : 30000,
                                    ctx->err);
}

static int s_resume(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    int rc = rm_xen_hvm_pause_resume(xs->pause, &xs->resumed_ns, ctx->err);

    xs->resumed |= !rc;
    release_held(xs);
    return rc;
}

static uint64_t s_resumed_at(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    return xs->resumed_ns;
}

static void s_cleanup(struct rm_save_ctx *ctx)
{
    struct xen_save *xs = ctx->backend;

    if (!xs)
        return;
    if (xs->resumed)   /* once, not after every checkpoint */
        rm_xen_told_running_or_warn(xs->arg->host, xs->domid);
    if (xs->map)
        xenforeignmemory_unmap(xs->fmem, xs->map, xs->map_count);
    release_held(xs);
    free(xs->held);
    if (xs->logdirty)
        xc_shadow_control(xs->xch, xs->domid, XEN_DOMCTL_SHADOW_OP_OFF,
                          NULL, 0);
    if (xs->hb.hbuf)
        xc__hypercall_buffer_free_pages(xs->xch, &xs->hb,
                                        (int)xs->hbuf_pages);
    rm_xen_hvm_pause_close(xs->pause);
    free(xs);
    ctx->backend = NULL;
}

const struct rm_save_ops rm_xen_save_ops = {
    .setup = s_setup,
    .static_data = s_static_data,
    .start_of_stream = s_nop,
    .start_of_checkpoint = s_nop,
    .end_of_checkpoint = s_end_of_checkpoint,
    .end_of_checkpoint_running = s_end_of_checkpoint_running,
    .check_vm_state = s_check_vm_state,
    .map_pages = s_map_pages,
    .unmap_pages = s_unmap_pages,
    .enable_logdirty = s_enable_logdirty,
    .disable_logdirty = s_disable_logdirty,
    .harvest_dirty = s_harvest_dirty,
    .suspend = s_suspend,
    .resume = s_resume,
    .resumed_at = s_resumed_at,
    .cleanup = s_cleanup,
};

/* ============================================================= restore */

/* A record kept aside until it is applied. */
struct xen_restore {
    struct rm_xen_restore_arg *arg;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    struct rm_xen_blob cpuid, msr, tsc, hvm, params;
    void *map;
    uint32_t map_count;
    xen_pfn_t gfns[RM_PAGE_DATA_BATCH];
    int errs[RM_PAGE_DATA_BATCH];
};

/* The replica's pfn space bound: 64 GiB of guest-physical space, far
 * above the special pages Xen's toolstack puts below 4 GiB. */
#define RESTORE_MAX_PFNS (1ull << 24)

int rm_xen_blob_keep(struct rm_xen_blob *b, const void *data, uint32_t len)
{
    void *p = malloc(len ? len : 1);

    if (!p)
        return -ENOMEM;
    memcpy(p, data, len);
    free(b->data);
    b->data = p;
    b->len = len;
    return 0;
}

int rm_xen_check_cpu_record(struct rm_restore_ctx *ctx,
                            const struct rm_record *rec)
{
    switch (rec->type) {
    case RM_REC_X86_CPUID_POLICY:
        if (rec->length % sizeof(struct rm_x86_cpuid_leaf))
            return rm_error_set(ctx->err, -EBADMSG, "X86_CPUID_POLICY of "
                                "%u bytes: not whole leaves", rec->length);
        return 0;
    case RM_REC_X86_MSR_POLICY:
        if (rec->length % sizeof(struct rm_x86_msr_entry))
            return rm_error_set(ctx->err, -EBADMSG, "X86_MSR_POLICY of %u "
                                "bytes: not whole entries", rec->length);
        return 0;
    case RM_REC_X86_TSC_INFO:
        if (rec->length != sizeof(struct rm_x86_tsc_info))
            return rm_error_set(ctx->err, -EBADMSG, "X86_TSC_INFO of %u "
                                "bytes (%zu expected)", rec->length,
                                sizeof(struct rm_x86_tsc_info));
        return 0;
    default:
        return 1;
    }
}

static int r_setup(struct rm_restore_ctx *ctx)
{
    struct rm_xen_restore_arg *arg = ctx->backend_arg;
    struct rm_xen_dominfo di;
    struct xen_restore *xr;
    int rc;

    if (!arg || !arg->host)
        return rm_error_set(ctx->err, -EINVAL, "no Xen domain to restore "
                            "into");
    if (ctx->dhdr.type != RM_DHDR_TYPE_X86_HVM)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "a %s stream cannot be "
                            "restored into a Xen HVM/PVH domain",
                            rm_dhdr_type_name(ctx->dhdr.type));
    xr = calloc(1, sizeof(*xr));
    if (!xr)
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    ctx->backend = xr;
    xr->arg = arg;
    xr->xch = rm_xen_xch(arg->host);
    xr->fmem = rm_xen_fmem(arg->host);
    xr->domid = arg->domid;
    rc = rm_xen_dominfo(arg->host, arg->domid, &di, ctx->err);
    if (rc)
        return rc;
    if (!di.hvm)
        return rm_error_set(ctx->err, -EINVAL, "domain %u is not an "
                            "HVM/PVH domain: it cannot take an HVM stream",
                            arg->domid);
    if (!di.paused)
        return rm_error_set(ctx->err, -EBUSY, "domain %u is running: a "
                            "stream is restored into a paused domain",
                            arg->domid);
    ctx->nr_pfns = RESTORE_MAX_PFNS;
    return 0;
}

static int r_check_record(struct rm_restore_ctx *ctx,
                          const struct rm_record *rec)
{
    const struct rm_hvm_params_hdr *ph = rec->data;
    const struct rm_hvm_param *p;
    uint32_t i;
    int rc = rm_xen_check_cpu_record(ctx, rec);

    if (rc <= 0)
        return rc;
    switch (rec->type) {
    case RM_REC_HVM_CONTEXT:
        if (rec->length < 8)
            return rm_error_set(ctx->err, -EBADMSG, "HVM_CONTEXT of %u "
                                "bytes is too short", rec->length);
        return 0;
    case RM_REC_HVM_PARAMS:
        if (rec->length < sizeof(*ph) ||
            rec->length != sizeof(*ph) + (uint64_t)ph->count * sizeof(*p))
            return rm_error_set(ctx->err, -EBADMSG, "HVM_PARAMS of %u "
                                "bytes does not hold its count of "
                                "params", rec->length);
        p = (const struct rm_hvm_param *)(ph + 1);
        for (i = 0; i < ph->count; i++) {
            if (p[i].index >= HVM_NR_PARAMS)
                return rm_error_set(ctx->err, -EBADMSG, "HVM_PARAMS entry "
                                    "%u: param %" PRIu64 " does not exist",
                                    i, p[i].index);
            if ((p[i].index == HVM_PARAM_STORE_PFN ||
                 p[i].index == HVM_PARAM_CONSOLE_PFN ||
                 p[i].index == HVM_PARAM_IOREQ_PFN ||
                 p[i].index == HVM_PARAM_BUFIOREQ_PFN) &&
                p[i].value >= RESTORE_MAX_PFNS)
                return rm_error_set(ctx->err, -EBADMSG, "HVM_PARAMS entry "
                                    "%u: param %" PRIu64 " names pfn %#"
                                    PRIx64 ", out of range", i, p[i].index,
                                    p[i].value);
        }
        return 0;
    default:
        return rm_error_set(ctx->err, -EOPNOTSUPP, "record %s is not for "
                            "a Xen HVM/PVH domain",
                            rm_rec_type_name(rec->type));
    }
}

static int r_process_record(struct rm_restore_ctx *ctx,
                            const struct rm_record *rec)
{
    struct xen_restore *xr = ctx->backend;
    struct rm_xen_blob *b;

    switch (rec->type) {
    case RM_REC_X86_CPUID_POLICY: b = &xr->cpuid; break;
    case RM_REC_X86_MSR_POLICY: b = &xr->msr; break;
    case RM_REC_X86_TSC_INFO: b = &xr->tsc; break;
    case RM_REC_HVM_CONTEXT: b = &xr->hvm; break;
    case RM_REC_HVM_PARAMS: b = &xr->params; break;
    default: return -EOPNOTSUPP;
    }
    if (rm_xen_blob_keep(b, rec->data, rec->length))
        return rm_error_set(ctx->err, -ENOMEM, "out of memory");
    return 0;
}

static int r_static_data_complete(struct rm_restore_ctx *ctx)
{
    struct xen_restore *xr = ctx->backend;

    return rm_xen_set_cpu_policy(ctx, xr->xch, xr->domid, xr->cpuid.data,
                                 xr->cpuid.len, xr->msr.data, xr->msr.len);
}

int rm_xen_set_cpu_policy(struct rm_restore_ctx *ctx, xc_interface *xch,
                          uint32_t domid, void *cpuid,
                          uint32_t cpuid_len, void *msr,
                          uint32_t msr_len)
{
    uint32_t err_leaf = ~0u, err_subleaf = ~0u, err_msr = ~0u;

    if (!cpuid_len && !msr_len)
        return 0;   /* an old stream: keep the policy the domain has */
    if (xc_set_domain_cpu_policy(xch, domid,
                                 cpuid_len / sizeof(xen_cpuid_leaf_t),
                                 cpuid, msr_len / sizeof(xen_msr_entry_t),
                                 msr, &err_leaf, &err_subleaf, &err_msr))
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "Xen refused "
                            "the stream's CPU policy for domain %u: %s "
                            "(leaf %#x subleaf %#x msr %#x): this host "
                            "cannot run the guest as it ran", domid,
                            strerror(errno), err_leaf, err_subleaf,
                            err_msr);
    return 0;
}

static int r_map_pages(struct rm_restore_ctx *ctx, uint32_t count,
                       const uint64_t *pfns, const uint32_t *types,
                       void **ptrs)
{
    struct xen_restore *xr = ctx->backend;
    xen_pfn_t missing[RM_PAGE_DATA_BATCH];
    uint32_t i, n = 0, nmiss = 0, attempt;
    uint32_t idx[RM_PAGE_DATA_BATCH];

    for (i = 0; i < count; i++) {
        ptrs[i] = NULL;
        if (types[i] == RM_PT_XTAB || types[i] == RM_PT_BROKEN)
            continue;
        idx[n] = i;
        xr->gfns[n++] = (xen_pfn_t)pfns[i];
    }
    if (!n)
        return 0;
    for (attempt = 0; attempt < 2; attempt++) {
        xr->map = xenforeignmemory_map(xr->fmem, xr->domid,
                                       PROT_READ | PROT_WRITE, n, xr->gfns,
                                       xr->errs);
        if (!xr->map)
            return rm_error_set(ctx->err, -errno, "mapping %u pages of "
                                "domain %u: %s", n, xr->domid,
                                strerror(errno));
        xr->map_count = n;
        nmiss = 0;
        for (i = 0; i < n; i++)
            if (xr->errs[i])
                missing[nmiss++] = xr->gfns[i];
        if (!nmiss)
            break;
        xenforeignmemory_unmap(xr->fmem, xr->map, n);
        xr->map = NULL;
        if (attempt)
            return rm_error_set(ctx->err, -EIO, "pfn %#" PRIx64 " of "
                                "domain %u cannot be mapped even after "
                                "populating it", (uint64_t)missing[0],
                                xr->domid);
        if (xc_domain_populate_physmap_exact(xr->xch, xr->domid, nmiss, 0,
                                             0, missing))
            return rm_error_set(ctx->err, errno ? -errno : -ENOMEM,
                                "cannot populate %u pfns of domain %u "
                                "(from %#" PRIx64 "): %s", nmiss, xr->domid,
                                (uint64_t)missing[0], strerror(errno));
        xr->arg->pages_populated += nmiss;
    }
    for (i = 0; i < n; i++)
        if (rm_page_type_has_data(types[idx[i]]))
            ptrs[idx[i]] = (uint8_t *)xr->map + (size_t)i * RM_PAGE_SIZE;
    return 0;
}

static void r_unmap_pages(struct rm_restore_ctx *ctx, uint32_t count,
                          void **ptrs)
{
    struct xen_restore *xr = ctx->backend;

    (void)count;
    (void)ptrs;
    if (xr->map)
        xenforeignmemory_unmap(xr->fmem, xr->map, xr->map_count);
    xr->map = NULL;
}

static int r_stream_complete(struct rm_restore_ctx *ctx)
{
    struct xen_restore *xr = ctx->backend;
    const struct rm_hvm_params_hdr *ph = xr->params.data;
    const struct rm_hvm_param *p;
    const struct rm_x86_tsc_info *tsc = xr->tsc.data;
    uint32_t i;

    if (!xr->hvm.len)
        return rm_error_set(ctx->err, -EBADMSG, "the stream has no "
                            "HVM_CONTEXT: there is no CPU state to run");
    if (tsc && xc_domain_set_tsc_info(xr->xch, xr->domid, tsc->mode,
                                      tsc->nsec, tsc->khz,
                                      tsc->incarnation))
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot set "
                            "the TSC info of domain %u: %s", xr->domid,
                            strerror(errno));
    for (i = 0; ph && i < ph->count; i++) {
        uint64_t here = 0;

        p = (const struct rm_hvm_param *)(ph + 1) + i;
        switch (p->index) {
        case HVM_PARAM_STORE_PFN:
        case HVM_PARAM_CONSOLE_PFN:
            /* The rings at these pfns are wired to this host's xenstored
             * and xenconsoled by the replica's own build; the layout must
             * be the same (same config).  Their contents restart empty:
             * the guest reconnects as after a migration. */
            if (!xc_hvm_param_get(xr->xch, xr->domid, (uint32_t)p->index,
                                  &here) && here && here != p->value)
                return rm_error_set(ctx->err, -EINVAL, "the stream's %s "
                                    "page is pfn %#" PRIx64 " but domain "
                                    "%u has it at %#" PRIx64 ": the "
                                    "replica was not built from the "
                                    "guest's config",
                                    p->index == HVM_PARAM_STORE_PFN ?
                                    "xenstore" : "console", p->value,
                                    xr->domid, here);
            xc_clear_domain_page(xr->xch, xr->domid, p->value);
            break;
        case HVM_PARAM_IOREQ_PFN:
        case HVM_PARAM_BUFIOREQ_PFN:
            xc_clear_domain_page(xr->xch, xr->domid, p->value);
            break;
        case HVM_PARAM_PAE_ENABLED:
            continue;   /* obsolete */
        }
        if (xc_hvm_param_set(xr->xch, xr->domid, (uint32_t)p->index,
                             p->value))
            return rm_error_set(ctx->err, errno ? -errno : -EIO, "cannot "
                                "set HVM param %" PRIu64 " = %#" PRIx64
                                " on domain %u: %s", p->index, p->value,
                                xr->domid, strerror(errno));
    }
    if (xc_domain_hvm_setcontext(xr->xch, xr->domid, xr->hvm.data,
                                 xr->hvm.len))
        return rm_error_set(ctx->err, errno ? -errno : -EIO, "Xen refused "
                            "the HVM context (%u bytes) for domain %u: %s",
                            xr->hvm.len, xr->domid, strerror(errno));
    LOG_INFO("domain %u holds the restored guest (%" PRIu64 " pfns "
             "populated on the way), paused", xr->domid,
             xr->arg->pages_populated);
    return 0;
}

static void r_cleanup(struct rm_restore_ctx *ctx)
{
    struct xen_restore *xr = ctx->backend;

    if (!xr)
        return;
    if (xr->map)
        xenforeignmemory_unmap(xr->fmem, xr->map, xr->map_count);
    free(xr->cpuid.data);
    free(xr->msr.data);
    free(xr->tsc.data);
    free(xr->hvm.data);
    free(xr->params.data);
    free(xr);
    ctx->backend = NULL;
}

const struct rm_restore_ops rm_xen_restore_ops = {
    .setup = r_setup,
    .check_record = r_check_record,
    .process_record = r_process_record,
    .static_data_complete = r_static_data_complete,
    .map_pages = r_map_pages,
    .unmap_pages = r_unmap_pages,
    .stream_complete = r_stream_complete,
    .cleanup = r_cleanup,
};
