/* SPDX-License-Identifier: MIT */
#include "tests/support/mem_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct mem_guest *mem_guest_new(uint64_t nr_pfns, uint32_t dtype,
                                uint64_t seed)
{
    struct mem_guest *g = calloc(1, sizeof(*g));
    uint64_t i;

    if (!g)
        return NULL;
    g->nr_pfns = nr_pfns;
    g->dtype = dtype;
    g->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    g->pages = calloc(nr_pfns, RM_PAGE_SIZE);
    g->dirty = calloc(RM_BITMAP_LONGS(nr_pfns), sizeof(unsigned long));
    g->hole = calloc(nr_pfns, sizeof(bool));
    if (!g->pages || !g->dirty || !g->hole) {
        mem_guest_free(g);
        return NULL;
    }
    /* Distinct content per page; some pages stay zero. */
    for (i = 0; i < nr_pfns; i++)
        if (i % 7)
            mem_guest_write(g, i, rnd(&g->rng));
    memset(g->dirty, 0, RM_BITMAP_LONGS(nr_pfns) * sizeof(unsigned long));
    g->vcpu_state = rnd(&g->rng);
    return g;
}

void mem_guest_free(struct mem_guest *g)
{
    if (!g)
        return;
    free(g->pages);
    free(g->dirty);
    free(g->hole);
    free(g);
}

void mem_guest_write(struct mem_guest *g, uint64_t pfn, uint64_t value)
{
    uint8_t *p = g->pages + pfn * RM_PAGE_SIZE;
    size_t off = (value % (RM_PAGE_SIZE / 8)) * 8;

    memcpy(p + off, &value, 8);
    memcpy(p, &value, 8);
    rm_bitmap_set(g->dirty, pfn);
}

void mem_guest_scribble(struct mem_guest *g, unsigned count)
{
    unsigned i;

    for (i = 0; i < count; i++)
        mem_guest_write(g, rnd(&g->rng) % g->nr_pfns, rnd(&g->rng));
    g->vcpu_state = rnd(&g->rng);
}

/* ---------------------------------------------------------------- save */

static int s_setup(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend_arg;

    ctx->backend = g;
    ctx->nr_pfns = g->nr_pfns;
    ctx->dtype = g->dtype;
    ctx->dhdr_major = g->dtype == RM_DHDR_TYPE_X86_HVM ? 4 : 1;
    ctx->dhdr_minor = g->dtype == RM_DHDR_TYPE_X86_HVM ? 17 : 0;
    return 0;
}

static int s_static(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    if (g->dtype == RM_DHDR_TYPE_X86_HVM) {
        struct rm_x86_cpuid_leaf leaves[2] = {
            { 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69 },
            { 1, 0, 0x306a9, 0x800, 0x1, 0x2 },
        };
        struct rm_x86_msr_entry msrs[1] = { { 0xce, 0, 0 } };
        int rc = rm_stream_write_record(&ctx->w, RM_REC_X86_CPUID_POLICY,
                                        leaves, sizeof(leaves));

        if (rc)
            return rc;
        return rm_stream_write_record(&ctx->w, RM_REC_X86_MSR_POLICY, msrs,
                                      sizeof(msrs));
    } else {
        struct rm_kvm_vm_info vi;

        memset(&vi, 0, sizeof(vi));
        vi.mem_bytes = g->nr_pfns * RM_PAGE_SIZE;
        vi.nr_vcpus = 1;
        vi.mac[0] = 0x52;
        return rm_stream_write_record(&ctx->w, RM_REC_KVM_VM_INFO, &vi,
                                      sizeof(vi));
    }
}

static int s_nop(struct rm_save_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static int s_end_of_checkpoint(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;
    int rc;

    if (g->dtype == RM_DHDR_TYPE_X86_HVM) {
        struct rm_x86_tsc_info tsc = { 0, 2000000, 123456789, 1, 0 };
        uint8_t ctxt[64];

        memset(ctxt, 0, sizeof(ctxt));
        memcpy(ctxt, &g->vcpu_state, 8);
        rc = rm_stream_write_record(&ctx->w, RM_REC_X86_TSC_INFO, &tsc,
                                    sizeof(tsc));
        if (!rc)
            rc = rm_stream_write_record(&ctx->w, RM_REC_HVM_CONTEXT, ctxt,
                                        sizeof(ctxt));
        return rc;
    } else {
        struct {
            struct rm_kvm_state_hdr h;
            uint64_t state;
        } vcpu = { { 0, 0 }, g->vcpu_state };
        struct {
            struct rm_kvm_state_hdr h;
            uint64_t x;
        } dev = { { 1, 1 }, 42 };

        rc = rm_stream_write_record(&ctx->w, RM_REC_KVM_VCPU, &vcpu,
                                    sizeof(vcpu));
        if (!rc)
            rc = rm_stream_write_record(&ctx->w, RM_REC_KVM_DEVICE, &dev,
                                        sizeof(dev));
        return rc;
    }
}

/* As Xen's HVM backend: the params record once the guest runs again. */
static int s_end_of_checkpoint_running(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;
    struct {
        struct rm_hvm_params_hdr h;
        struct rm_hvm_param p[2];
    } params = { { 2, 0 }, { { 1, 0xfeff0 }, { 2, 0 } } };

    g->late_states++;
    g->late_suspended += g->suspended;
    if (g->dtype != RM_DHDR_TYPE_X86_HVM)
        return 0;
    params.p[1].value = g->resumes;
    return rm_stream_write_record(&ctx->w, RM_REC_HVM_PARAMS, &params,
                                  sizeof(params));
}

static int s_check(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    g->checks++;
    if (g->layout_change_at && g->checks == g->layout_change_at)
        return rm_error_set(ctx->err, -ESTALE, "memory layout changed");
    return 0;
}

static int s_map(struct rm_save_ctx *ctx, uint32_t count, const uint64_t *pfns,
                 uint32_t *types, void **ptrs)
{
    struct mem_guest *g = ctx->backend;
    uint32_t i;

    for (i = 0; i < count; i++) {
        if (pfns[i] >= g->nr_pfns)
            return -EINVAL;
        if (g->hole[pfns[i]]) {
            types[i] = RM_PT_XTAB;
            ptrs[i] = NULL;
        } else {
            types[i] = RM_PT_NOTAB;
            ptrs[i] = g->pages + pfns[i] * RM_PAGE_SIZE;
        }
    }
    return 0;
}

static int s_logdirty_on(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    g->logdirty = true;
    memset(g->dirty, 0, RM_BITMAP_LONGS(g->nr_pfns) * sizeof(unsigned long));
    return 0;
}

static int s_logdirty_off(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    g->logdirty = false;
    return 0;
}

static int s_harvest(struct rm_save_ctx *ctx, unsigned long *bitmap)
{
    struct mem_guest *g = ctx->backend;
    size_t n = RM_BITMAP_LONGS(g->nr_pfns) * sizeof(unsigned long);

    g->harvests++;
    if (g->workload && !g->suspended)
        g->workload(g, g->workload_opaque);
    memcpy(bitmap, g->dirty, n);
    memset(g->dirty, 0, n);
    return 0;
}

static int s_suspend(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    g->suspends++;
    g->suspended = true;
    if (g->suspend_delay_us)
        usleep(g->suspend_delay_us);
    return 0;
}

static int s_resume(struct rm_save_ctx *ctx)
{
    struct mem_guest *g = ctx->backend;

    g->resumes++;
    g->suspended = false;
    if (g->resume_delay_us)
        usleep(g->resume_delay_us);
    g->released_ns = rm_now_ns();
    if (g->resume_linger_us)
        usleep(g->resume_linger_us);
    /* The guest runs from here until the next suspend. */
    if (g->workload)
        g->workload(g, g->workload_opaque);
    return 0;
}

static uint64_t s_resumed_at(struct rm_save_ctx *ctx)
{
    return ((struct mem_guest *)ctx->backend)->released_ns;
}

static void s_cleanup(struct rm_save_ctx *ctx)
{
    ctx->backend = NULL;
}

const struct rm_save_ops mem_save_ops = {
    .setup = s_setup,
    .static_data = s_static,
    .start_of_stream = s_nop,
    .start_of_checkpoint = s_nop,
    .end_of_checkpoint = s_end_of_checkpoint,
    .end_of_checkpoint_running = s_end_of_checkpoint_running,
    .check_vm_state = s_check,
    .map_pages = s_map,
    .enable_logdirty = s_logdirty_on,
    .disable_logdirty = s_logdirty_off,
    .harvest_dirty = s_harvest,
    .suspend = s_suspend,
    .resume = s_resume,
    .resumed_at = s_resumed_at,
    .cleanup = s_cleanup,
};

/* ------------------------------------------------------------- restore */

struct mem_replica *mem_replica_new(void)
{
    return calloc(1, sizeof(struct mem_replica));
}

void mem_replica_free(struct mem_replica *r)
{
    if (!r)
        return;
    free(r->pages);
    free(r);
}

static int alloc_pages(struct rm_restore_ctx *ctx, struct mem_replica *r,
                       uint64_t nr)
{
    uint64_t max = r->max_pfns ? r->max_pfns : (1u << 20);

    if (nr == 0 || nr > max)
        return rm_error_set(ctx->err, -EFBIG, "guest of %llu pages "
                            "refused", (unsigned long long)nr);
    if (r->pages && r->nr_pfns == nr)
        return 0;
    free(r->pages);
    r->pages = calloc(nr, RM_PAGE_SIZE);
    if (!r->pages)
        return -ENOMEM;
    r->nr_pfns = nr;
    ctx->nr_pfns = nr;
    return 0;
}

static int r_setup(struct rm_restore_ctx *ctx)
{
    struct mem_replica *r = ctx->backend_arg;

    ctx->backend = r;
    if (ctx->dhdr.type != RM_DHDR_TYPE_X86_HVM &&
        ctx->dhdr.type != RM_DHDR_TYPE_REMUS_KVM)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "mem backend: %s "
                            "streams are not supported",
                            rm_dhdr_type_name(ctx->dhdr.type));
    /* HVM: the domain exists beforehand with its size (as in Xen). */
    if (ctx->dhdr.type == RM_DHDR_TYPE_X86_HVM && r->nr_pfns) {
        uint64_t nr = r->nr_pfns;

        r->nr_pfns = 0;
        return alloc_pages(ctx, r, nr);
    }
    return 0;
}

static int r_check(struct rm_restore_ctx *ctx, const struct rm_record *rec)
{
    switch (rec->type) {
    case RM_REC_KVM_VM_INFO:
    case RM_REC_X86_CPUID_POLICY:
    case RM_REC_X86_MSR_POLICY:
    case RM_REC_X86_TSC_INFO:
    case RM_REC_HVM_PARAMS:
        return 0;
    case RM_REC_KVM_VCPU:
        if (rec->length != sizeof(struct rm_kvm_state_hdr) + 8)
            return rm_error_set(ctx->err, -EBADMSG, "vcpu blob of %u bytes",
                                rec->length);
        return 0;
    case RM_REC_KVM_DEVICE:
        return 0;
    case RM_REC_HVM_CONTEXT:
        if (rec->length < 8)
            return rm_error_set(ctx->err, -EBADMSG, "short HVM context");
        return 0;
    default:
        if (rec->type & RM_REC_OPTIONAL)
            return 0;
        return rm_error_set(ctx->err, -EOPNOTSUPP, "mem backend cannot "
                            "handle %s", rm_rec_type_name(rec->type));
    }
}

static int r_process(struct rm_restore_ctx *ctx, const struct rm_record *rec)
{
    struct mem_replica *r = ctx->backend;
    const uint8_t *d = rec->data;

    r->records_processed++;
    switch (rec->type) {
    case RM_REC_KVM_VM_INFO: {
        struct rm_kvm_vm_info vi;

        memcpy(&vi, d, sizeof(vi));
        return alloc_pages(ctx, r, vi.mem_bytes / RM_PAGE_SIZE);
    }
    case RM_REC_KVM_VCPU:
        memcpy(&r->vcpu_state, d + sizeof(struct rm_kvm_state_hdr), 8);
        r->have_state = true;
        return 0;
    case RM_REC_HVM_CONTEXT:
        memcpy(&r->vcpu_state, d, 8);
        r->have_state = true;
        return 0;
    case RM_REC_HVM_PARAMS: {
        struct rm_hvm_params_hdr h;
        struct rm_hvm_param p;

        memcpy(&h, d, sizeof(h));
        if (h.count >= 2 &&
            rec->length >= sizeof(h) + 2 * sizeof(p)) {
            memcpy(&p, d + sizeof(h) + sizeof(p), sizeof(p));
            r->params_late_value = p.value;
        }
        r->params_applied++;
        return 0;
    }
    default:
        return 0;
    }
}

static int r_static_done(struct rm_restore_ctx *ctx)
{
    struct mem_replica *r = ctx->backend;

    if (!r->pages)
        return rm_error_set(ctx->err, -EBADMSG, "the stream did not say "
                            "how large the guest is");
    return 0;
}

/*
 * Like the real backends: a KVM guest has plain pages only (NOTAB); a
 * Xen HVM domain maps any valid type.  0 or -EINVAL naming the page.
 */
static int check_page(struct rm_restore_ctx *ctx, uint64_t pfn,
                      uint32_t type)
{
    struct mem_replica *r = ctx->backend;

    if (pfn >= r->nr_pfns)
        return rm_error_set(ctx->err, -EINVAL, "pfn 0x%llx is beyond the "
                            "mem backend's %llu pages",
                            (unsigned long long)pfn,
                            (unsigned long long)r->nr_pfns);
    if (ctx->dhdr.type == RM_DHDR_TYPE_REMUS_KVM && type != RM_PT_NOTAB)
        return rm_error_set(ctx->err, -EINVAL, "pfn 0x%llx has page type "
                            "%s: a KVM guest has plain pages only (NOTAB)",
                            (unsigned long long)pfn,
                            rm_page_type_name(type));
    return 0;
}

static int r_check_pages(struct rm_restore_ctx *ctx, uint32_t count,
                         const uint64_t *pfns, const uint32_t *types)
{
    uint32_t i;
    int rc;

    for (i = 0; i < count; i++) {
        rc = check_page(ctx, pfns[i], types[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int r_map(struct rm_restore_ctx *ctx, uint32_t count,
                 const uint64_t *pfns, const uint32_t *types, void **ptrs)
{
    struct mem_replica *r = ctx->backend;
    uint32_t i;
    int rc;

    if (++r->map_calls == r->fail_map_at)
        return rm_error_set(ctx->err, -EIO, "simulated I/O failure");
    for (i = 0; i < count; i++) {
        rc = check_page(ctx, pfns[i], types[i]);
        if (rc) {
            r->map_refused++;  /* the engine must never ask */
            return rc;
        }
        ptrs[i] = r->pages + pfns[i] * RM_PAGE_SIZE;
    }
    return 0;
}

static int r_complete(struct rm_restore_ctx *ctx)
{
    struct mem_replica *r = ctx->backend;

    r->completed = true;
    return 0;
}

static void r_cleanup(struct rm_restore_ctx *ctx)
{
    ctx->backend = NULL;
}

const struct rm_restore_ops mem_restore_ops = {
    .setup = r_setup,
    .check_record = r_check,
    .check_pages = r_check_pages,
    .process_record = r_process,
    .static_data_complete = r_static_done,
    .map_pages = r_map,
    .stream_complete = r_complete,
    .cleanup = r_cleanup,
};
