/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "kvm-sr"
#include "backends/kvm/kvm_sr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define NR_DEVICES 4
static const uint32_t devices[NR_DEVICES] = {
    RM_KVM_DEV_CLOCK, RM_KVM_DEV_CONSOLE, RM_KVM_DEV_NET, RM_KVM_DEV_STATS,
};

uint64_t rm_kvm_mem_digest(struct rm_vm *vm)
{
    return rm_hash_words(RM_FNV64_INIT, rm_vm_mem(vm), rm_vm_mem_bytes(vm));
}

/* ---------------------------------------------------------------- save */

static int s_setup(struct rm_save_ctx *ctx)
{
    struct rm_vm *vm = ctx->backend_arg;

    if (!vm)
        return rm_error_set(ctx->err, -EINVAL, "no VM to save");
    ctx->backend = vm;
    ctx->nr_pfns = rm_vm_mem_bytes(vm) >> RM_PAGE_SHIFT;
    ctx->dtype = RM_DHDR_TYPE_REMUS_KVM;
    ctx->dhdr_major = 1;
    ctx->dhdr_minor = 0;
    return 0;
}

static int s_static(struct rm_save_ctx *ctx)
{
    struct rm_vm *vm = ctx->backend;
    const struct rm_vm_config *cfg = rm_vm_config(vm);
    struct rm_kvm_vm_info vi;

    memset(&vi, 0, sizeof(vi));
    vi.mem_bytes = rm_vm_mem_bytes(vm);
    vi.nr_vcpus = rm_vm_nr_vcpus(vm);
    memcpy(vi.mac, cfg->mac, 6);
    vi.ipv4 = cfg->ipv4;
    vi.netmask = cfg->netmask;
    return rm_stream_write_record(&ctx->w, RM_REC_KVM_VM_INFO, &vi,
                                  sizeof(vi));
}

static int s_nop(struct rm_save_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static int s_end_of_checkpoint(struct rm_save_ctx *ctx)
{
    struct rm_vm *vm = ctx->backend;
    uint32_t i;
    int rc = 0;

    for (i = 0; i < rm_vm_nr_vcpus(vm) && !rc; i++) {
        struct rm_kvm_state_hdr h = { .id = i, .version = 0 };
        struct iovec v[2];
        void *blob = NULL;
        size_t len = 0;

        rc = rm_vm_get_vcpu_state(vm, i, &blob, &len, ctx->err);
        if (rc)
            break;
        v[0].iov_base = &h;
        v[0].iov_len = sizeof(h);
        v[1].iov_base = blob;
        v[1].iov_len = len;
        rc = rm_stream_write_recordv(&ctx->w, RM_REC_KVM_VCPU, v, 2);
        free(blob);
    }
    for (i = 0; i < NR_DEVICES && !rc; i++) {
        struct rm_kvm_state_hdr h = { .id = devices[i],
                                      .version = RM_KVM_DEV_LAYOUT };
        uint8_t buf[256];
        size_t len = sizeof(buf);
        struct iovec v[2];

        rc = rm_vm_get_device_state(vm, devices[i], buf, &len);
        if (rc)
            break;
        v[0].iov_base = &h;
        v[0].iov_len = sizeof(h);
        v[1].iov_base = buf;
        v[1].iov_len = len;
        rc = rm_stream_write_recordv(&ctx->w, RM_REC_KVM_DEVICE, v, 2);
    }
    return rc;
}

static int s_check(struct rm_save_ctx *ctx)
{
    struct rm_vm *vm = ctx->backend;

    if (rm_vm_end_kind(vm) != RM_VM_RUNNING)
        return rm_error_set(ctx->err, -ESRCH, "the VM is no longer "
                            "running: %s", rm_vm_end_reason(vm));
    return 0;
}

static int s_map(struct rm_save_ctx *ctx, uint32_t count, const uint64_t *pfns,
                 uint32_t *types, void **ptrs)
{
    struct rm_vm *vm = ctx->backend;
    uint8_t *mem = rm_vm_mem(vm);
    uint32_t i;

    for (i = 0; i < count; i++) {
        if (pfns[i] >= ctx->nr_pfns)
            return rm_error_set(ctx->err, -EINVAL, "pfn 0x%" PRIx64
                                " outside the guest", pfns[i]);
        types[i] = RM_PT_NOTAB;
        ptrs[i] = mem + (pfns[i] << RM_PAGE_SHIFT);
    }
    return 0;
}

static int s_logdirty_on(struct rm_save_ctx *ctx)
{
    return rm_vm_logdirty(ctx->backend, true);
}

static int s_logdirty_off(struct rm_save_ctx *ctx)
{
    return rm_vm_logdirty(ctx->backend, false);
}

static int s_harvest(struct rm_save_ctx *ctx, unsigned long *bitmap)
{
    return rm_vm_harvest_dirty(ctx->backend, bitmap);
}

static int s_suspend(struct rm_save_ctx *ctx)
{
    return rm_vm_pause(ctx->backend);
}

static int s_resume(struct rm_save_ctx *ctx)
{
    return rm_vm_resume(ctx->backend);
}

static uint64_t s_resumed_at(struct rm_save_ctx *ctx)
{
    return rm_vm_resumed_ns(ctx->backend);
}

static void s_cleanup(struct rm_save_ctx *ctx)
{
    ctx->backend = NULL;
}

const struct rm_save_ops rm_kvm_save_ops = {
    .setup = s_setup,
    .static_data = s_static,
    .start_of_stream = s_nop,
    .start_of_checkpoint = s_nop,
    .end_of_checkpoint = s_end_of_checkpoint,
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

struct kvm_restore {
    struct rm_kvm_restore_arg *arg;
    struct rm_vm *vm;
    bool completed;
    void *vcpu_blob[RM_KVM_MAX_VCPUS];
    size_t vcpu_len[RM_KVM_MAX_VCPUS];
    void *dev_blob[NR_DEVICES + 1];
    size_t dev_len[NR_DEVICES + 1];
};

static void replica_lock(struct rm_kvm_restore_arg *arg)
{
    if (arg->replica_lock)
        pthread_mutex_lock(arg->replica_lock);
}

static void replica_unlock(struct rm_kvm_restore_arg *arg)
{
    if (arg->replica_lock)
        pthread_mutex_unlock(arg->replica_lock);
}

static int r_setup(struct rm_restore_ctx *ctx)
{
    struct kvm_restore *k;

    if (ctx->dhdr.type != RM_DHDR_TYPE_REMUS_KVM)
        return rm_error_set(ctx->err, -EOPNOTSUPP, "a %s stream cannot be "
                            "restored on the KVM backend",
                            rm_dhdr_type_name(ctx->dhdr.type));
    k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->arg = ctx->backend_arg;
    k->arg->vm = NULL;
    k->arg->state = k;
    k->arg->colo_ran = false;
    ctx->backend = k;
    return 0;
}

/* The stream's VM against the one this side knows (NULL: none). */
static int check_known_vm(struct rm_restore_ctx *ctx,
                          const struct rm_vm_config *known,
                          const struct rm_kvm_vm_info *vi)
{
    const uint8_t *a, *b;

    if (!known)
        return 0;
    a = vi->mac;
    b = known->mac;
    if (memcmp(a, b, 6))
        return rm_error_set(ctx->err, -EPERM, "the primary's VM has MAC "
                            "%02x:%02x:%02x:%02x:%02x:%02x, this secondary's "
                            "configuration %02x:%02x:%02x:%02x:%02x:%02x",
                            a[0], a[1], a[2], a[3], a[4], a[5], b[0], b[1],
                            b[2], b[3], b[4], b[5]);
    if (vi->ipv4 != known->ipv4 || vi->netmask != known->netmask) {
        char x[INET_ADDRSTRLEN], y[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &vi->ipv4, x, sizeof(x));
        inet_ntop(AF_INET, &known->ipv4, y, sizeof(y));
        return rm_error_set(ctx->err, -EPERM, "the primary's VM has IP %s "
                            "(netmask %08x), this secondary's configuration "
                            "%s (netmask %08x)", x, ntohl(vi->netmask), y,
                            ntohl(known->netmask));
    }
    if (vi->mem_bytes != known->mem_bytes || vi->nr_vcpus != known->nr_vcpus)
        return rm_error_set(ctx->err, -EPERM, "the primary's VM has %" PRIu64
                            " MiB and %u vCPUs, this secondary's "
                            "configuration %" PRIu64 " MiB and %u",
                            (uint64_t)vi->mem_bytes >> 20,
                            (unsigned)vi->nr_vcpus,
                            known->mem_bytes >> 20, known->nr_vcpus);
    return 0;
}

static int r_check(struct rm_restore_ctx *ctx, const struct rm_record *rec)
{
    struct kvm_restore *k = ctx->backend;
    const uint8_t *d = rec->data;
    struct rm_kvm_state_hdr h;

    switch (rec->type) {
    case RM_REC_KVM_VM_INFO: {
        struct rm_kvm_vm_info vi;
        uint64_t max = k->arg->max_mem_bytes ? k->arg->max_mem_bytes
                                             : (4ull << 30);

        memcpy(&vi, d, sizeof(vi));
        if (k->vm)
            return rm_error_set(ctx->err, -EBADMSG, "a second VM_INFO");
        if (vi.mem_bytes > max || vi.mem_bytes % (2u << 20) ||
            vi.mem_bytes < RM_GUEST_MIN_MEM)
            return rm_error_set(ctx->err, -EFBIG, "guest memory of %" PRIu64
                                " MiB is not a multiple of 2 MiB within "
                                "4 MiB .. %" PRIu64 " MiB",
                                (uint64_t)vi.mem_bytes >> 20, max >> 20);
        if (vi.mac[0] & 1)
            return rm_error_set(ctx->err, -EBADMSG, "multicast guest MAC");
        return check_known_vm(ctx, k->arg->expect, &vi);
    }
    case RM_REC_KVM_VCPU:
        memcpy(&h, d, sizeof(h));
        if (!k->vm)
            return rm_error_set(ctx->err, -EBADMSG, "vcpu state before "
                                "VM_INFO");
        if (h.id >= rm_vm_nr_vcpus(k->vm) || h.version)
            return rm_error_set(ctx->err, -EBADMSG, "vcpu %u (layout %u) "
                                "does not exist in this %u-vcpu VM", h.id,
                                h.version, rm_vm_nr_vcpus(k->vm));
        return rm_vm_check_vcpu_state(d + sizeof(h), rec->length - sizeof(h),
                                      ctx->err);
    case RM_REC_KVM_DEVICE:
        memcpy(&h, d, sizeof(h));
        return rm_vm_check_device_state(h.id, h.version, d + sizeof(h),
                                        rec->length - sizeof(h), ctx->err);
    default:
        return rm_error_set(ctx->err, -EOPNOTSUPP, "record %s has no "
                            "meaning on the KVM backend",
                            rm_rec_type_name(rec->type));
    }
}

static int keep(void **slot, size_t *len, const void *data, size_t n)
{
    void *copy = malloc(n ? n : 1);

    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, n);
    free(*slot);
    *slot = copy;
    *len = n;
    return 0;
}

static int r_process(struct rm_restore_ctx *ctx, const struct rm_record *rec)
{
    struct kvm_restore *k = ctx->backend;
    const uint8_t *d = rec->data;
    struct rm_kvm_state_hdr h;

    switch (rec->type) {
    case RM_REC_KVM_VM_INFO: {
        struct rm_kvm_vm_info vi;
        struct rm_vm_config cfg = k->arg->cfg;
        int rc;

        memcpy(&vi, d, sizeof(vi));
        cfg.mem_bytes = vi.mem_bytes;
        cfg.nr_vcpus = vi.nr_vcpus;
        memcpy(cfg.mac, vi.mac, 6);
        cfg.ipv4 = vi.ipv4;
        cfg.netmask = vi.netmask;
        cfg.image = NULL;
        rc = rm_vm_create(&cfg, &k->vm, ctx->err);
        if (rc)
            return rc;
        replica_lock(k->arg);
        k->arg->replica = k->vm;
        replica_unlock(k->arg);
        ctx->nr_pfns = vi.mem_bytes >> RM_PAGE_SHIFT;
        return 0;
    }
    case RM_REC_KVM_VCPU:
        memcpy(&h, d, sizeof(h));
        return keep(&k->vcpu_blob[h.id], &k->vcpu_len[h.id], d + sizeof(h),
                    rec->length - sizeof(h));
    case RM_REC_KVM_DEVICE:
        memcpy(&h, d, sizeof(h));
        if (h.id > NR_DEVICES)
            return -EINVAL;
        return keep(&k->dev_blob[h.id], &k->dev_len[h.id], d + sizeof(h),
                    rec->length - sizeof(h));
    default:
        return -EOPNOTSUPP;
    }
}

static int r_static_done(struct rm_restore_ctx *ctx)
{
    struct kvm_restore *k = ctx->backend;

    if (!k->vm)
        return rm_error_set(ctx->err, -EBADMSG, "the stream has no "
                            "KVM_VM_INFO before STATIC_DATA_END");
    return 0;
}

/* A KVM guest has plain RAM pages only: every page must be NOTAB. */
static int r_check_pages(struct rm_restore_ctx *ctx, uint32_t count,
                         const uint64_t *pfns, const uint32_t *types)
{
    uint32_t i;

    for (i = 0; i < count; i++) {
        if (pfns[i] >= ctx->nr_pfns)
            return rm_error_set(ctx->err, -EINVAL, "pfn 0x%" PRIx64
                                " is beyond the guest's %" PRIu64 " pages",
                                pfns[i], ctx->nr_pfns);
        if (types[i] != RM_PT_NOTAB)
            return rm_error_set(ctx->err, -EINVAL, "pfn 0x%" PRIx64 " has "
                                "page type %s (0x%x): the KVM backend has "
                                "plain pages only (NOTAB)", pfns[i],
                                rm_page_type_name(types[i]), types[i]);
    }
    return 0;
}

static int r_map(struct rm_restore_ctx *ctx, uint32_t count,
                 const uint64_t *pfns, const uint32_t *types, void **ptrs)
{
    struct kvm_restore *k = ctx->backend;
    uint8_t *mem = rm_vm_mem(k->vm);
    uint32_t i;
    int rc;

    rc = r_check_pages(ctx, count, pfns, types);
    if (rc)
        return rc;
    for (i = 0; i < count; i++)
        ptrs[i] = mem + (pfns[i] << RM_PAGE_SHIFT);
    return 0;
}

/* The vCPU and device state kept aside, into the (paused) VM. */
static int apply_state(struct kvm_restore *k, struct rm_error *err)
{
    uint32_t i;
    int rc;

    if (!k->vm)
        return rm_error_set(err, -EBADMSG, "the stream created no VM");
    for (i = 0; i < rm_vm_nr_vcpus(k->vm); i++) {
        if (!k->vcpu_blob[i])
            return rm_error_set(err, -EBADMSG, "the stream has no "
                                "state for vcpu %u", i);
        rc = rm_vm_set_vcpu_state(k->vm, i, k->vcpu_blob[i],
                                  k->vcpu_len[i], err);
        if (rc)
            return rc;
    }
    for (i = 1; i <= NR_DEVICES; i++) {
        if (!k->dev_blob[i])
            return rm_error_set(err, -EBADMSG, "the stream has no "
                                "state for device %u", i);
        rc = rm_vm_set_device_state(k->vm, i, k->dev_blob[i], k->dev_len[i]);
        if (rc)
            return rm_error_set(err, rc, "device %u state", i);
    }
    return 0;
}

int rm_kvm_restore_apply_state(struct rm_kvm_restore_arg *arg,
                               struct rm_error *err)
{
    if (!arg->state)
        return rm_error_set(err, -ENOENT, "no restore is running");
    return apply_state(arg->state, err);
}

static int r_complete(struct rm_restore_ctx *ctx)
{
    struct kvm_restore *k = ctx->backend;
    int rc;

    if (!k->vm)
        return rm_error_set(ctx->err, -EBADMSG, "the stream created no VM");
    /* COLO: the replica ran on from its last checkpoint; its own state is
     * the one to go on from (everything released was produced by it). */
    if (!k->arg->colo_ran) {
        rc = apply_state(k, ctx->err);
        if (rc)
            return rc;
    } else {
        LOG_INFO("COLO: the replica keeps its own vCPU state (it ran on "
                 "from its last checkpoint)");
    }
    k->completed = true;
    return 0;
}

static void r_cleanup(struct rm_restore_ctx *ctx)
{
    struct kvm_restore *k = ctx->backend;
    uint32_t i;

    if (!k)
        return;
    replica_lock(k->arg);
    k->arg->replica = NULL;
    k->arg->state = NULL;
    if (k->completed && ctx->result != RM_RESTORE_NONE)
        k->arg->vm = k->vm;
    else
        rm_vm_destroy(k->vm);
    replica_unlock(k->arg);
    for (i = 0; i < RM_KVM_MAX_VCPUS; i++)
        free(k->vcpu_blob[i]);
    for (i = 0; i <= NR_DEVICES; i++)
        free(k->dev_blob[i]);
    free(k);
    ctx->backend = NULL;
}

const struct rm_restore_ops rm_kvm_restore_ops = {
    .setup = r_setup,
    .check_record = r_check,
    .check_pages = r_check_pages,
    .process_record = r_process,
    .static_data_complete = r_static_done,
    .map_pages = r_map,
    .stream_complete = r_complete,
    .cleanup = r_cleanup,
};
