/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's vCPU state as a versioned blob (RM_REC_KVM_VCPU):
 * registers, special registers, FPU, XSAVE, XCRs, MSRs, pending events,
 * debug registers.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"

#define VCPU_BLOB_VERSION 1u
static const uint32_t saved_msrs[] = {
    0x10,        /* IA32_TSC */
    0x174, 0x175, 0x176,     /* SYSENTER */
    0x277,       /* PAT */
    0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,  /* STAR..SFMASK */
    0xc0000102,  /* KERNEL_GS_BASE */
    0xc0000103,  /* TSC_AUX */
};
#define NR_SAVED_MSRS (sizeof(saved_msrs) / sizeof(saved_msrs[0]))

struct vcpu_blob {
    uint32_t version;
    uint32_t nr_msrs;
    uint32_t have_xsave;
    uint32_t have_xcrs;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_xsave xsave;
    struct kvm_xcrs xcrs;
    struct kvm_vcpu_events events;
    struct kvm_debugregs dregs;
    struct kvm_msr_entry msrs[NR_SAVED_MSRS];
};

struct vcpu_blob *alloc_vcpu_blob(void)
{
    return malloc(sizeof(struct vcpu_blob));
}

int read_vcpu_blob(int fd, struct vcpu_blob *b)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[NR_SAVED_MSRS];
    } msrs;
    uint32_t i;
    int n;

    memset(b, 0, sizeof(*b));
    b->version = VCPU_BLOB_VERSION;
    if (ioctl(fd, KVM_GET_REGS, &b->regs) < 0 ||
        ioctl(fd, KVM_GET_SREGS, &b->sregs) < 0 ||
        ioctl(fd, KVM_GET_FPU, &b->fpu) < 0 ||
        ioctl(fd, KVM_GET_VCPU_EVENTS, &b->events) < 0 ||
        ioctl(fd, KVM_GET_DEBUGREGS, &b->dregs) < 0)
        return -errno;
    b->have_xsave = ioctl(fd, KVM_GET_XSAVE, &b->xsave) == 0;
    b->have_xcrs = ioctl(fd, KVM_GET_XCRS, &b->xcrs) == 0;
    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = NR_SAVED_MSRS;
    for (i = 0; i < NR_SAVED_MSRS; i++)
        msrs.e[i].index = saved_msrs[i];
    n = ioctl(fd, KVM_GET_MSRS, &msrs);
    if (n < 0)
        n = 0;
    b->nr_msrs = (uint32_t)n;   /* the first n were read */
    memcpy(b->msrs, msrs.e, (size_t)n * sizeof(msrs.e[0]));
    return 0;
}

int rm_vm_get_vcpu_state(struct rm_vm *vm, uint32_t idx, void **blob,
                         size_t *len, struct rm_error *err)
{
    struct vcpu_blob *b;
    struct vcpu *vc;
    int rc;

    if (idx >= vm->nr_vcpus)
        return rm_error_set(err, -EINVAL, "no vcpu %u", idx);
    vc = &vm->vcpus[idx];
    b = malloc(sizeof(*b));
    if (!b)
        return rm_error_set(err, -ENOMEM, "out of memory");
    if (rm_vm_is_paused(vm) && vc->snap && vc->snap_valid) {
        memcpy(b, vc->snap, sizeof(*b));    /* taken as it parked */
    } else {
        rc = read_vcpu_blob(vc->fd, b);
        if (rc) {
            free(b);
            return rm_error_set(err, rc, "reading vcpu %u state: %s", idx,
                                strerror(-rc));
        }
    }
    *blob = b;
    *len = sizeof(*b);
    return 0;
}

int rm_vm_check_vcpu_state(const void *blob, size_t len, struct rm_error *err)
{
    struct vcpu_blob b;

    if (len != sizeof(b))
        return rm_error_set(err, -EBADMSG, "vcpu state of %zu bytes (layout "
                            "%u has %zu)", len, VCPU_BLOB_VERSION, sizeof(b));
    memcpy(&b, blob, sizeof(b));
    if (b.version != VCPU_BLOB_VERSION)
        return rm_error_set(err, -EBADMSG, "vcpu state layout %u (we know "
                            "%u)", b.version, VCPU_BLOB_VERSION);
    if (b.nr_msrs > NR_SAVED_MSRS || b.have_xsave > 1 || b.have_xcrs > 1)
        return rm_error_set(err, -EBADMSG, "vcpu state: bad MSR count %u",
                            b.nr_msrs);
    for (uint32_t i = 0; i < b.nr_msrs; i++)
        if (b.msrs[i].index != saved_msrs[i])
            return rm_error_set(err, -EBADMSG, "vcpu state: MSR %u is "
                                "0x%x", i, b.msrs[i].index);
    /* Our guests run in 64-bit mode at CPL3 with paging on. */
    if (!(b.sregs.cr0 & 0x80000001ull) || !(b.sregs.efer & 0x400))
        return rm_error_set(err, -EBADMSG, "vcpu state is not in 64-bit "
                            "paged mode (cr0 0x%llx, efer 0x%llx)",
                            (unsigned long long)b.sregs.cr0,
                            (unsigned long long)b.sregs.efer);
    if (b.sregs.cr3 >= MAX_MEM)
        return rm_error_set(err, -EBADMSG, "vcpu state: cr3 0x%llx outside "
                            "guest memory",
                            (unsigned long long)b.sregs.cr3);
    return 0;
}

int rm_vm_set_vcpu_state(struct rm_vm *vm, uint32_t idx, const void *blob,
                         size_t len, struct rm_error *err)
{
    struct vcpu_blob *b;
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e[NR_SAVED_MSRS];
    } msrs;
    int fd, rc = 0;

    if (idx >= vm->nr_vcpus)
        return rm_error_set(err, -EINVAL, "no vcpu %u in this VM", idx);
    vm->vcpus[idx].snap_valid = false;
    rc = rm_vm_check_vcpu_state(blob, len, err);
    if (rc)
        return rc;
    b = malloc(sizeof(*b));
    if (!b)
        return -ENOMEM;
    memcpy(b, blob, sizeof(*b));
    fd = vm->vcpus[idx].fd;
    if (ioctl(fd, KVM_SET_SREGS, &b->sregs) < 0 ||
        ioctl(fd, KVM_SET_REGS, &b->regs) < 0 ||
        ioctl(fd, KVM_SET_FPU, &b->fpu) < 0) {
        rc = rm_error_set(err, -errno, "restoring vcpu %u registers: %s",
                          idx, strerror(errno));
        goto out;
    }
    if (b->have_xcrs)
        ioctl(fd, KVM_SET_XCRS, &b->xcrs);
    if (b->have_xsave && ioctl(fd, KVM_SET_XSAVE, &b->xsave) < 0)
        LOG_WARN("vcpu %u: KVM_SET_XSAVE: %s", idx, strerror(errno));
    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = b->nr_msrs;
    memcpy(msrs.e, b->msrs, b->nr_msrs * sizeof(msrs.e[0]));
    if (b->nr_msrs && ioctl(fd, KVM_SET_MSRS, &msrs) < 0)
        LOG_WARN("vcpu %u: KVM_SET_MSRS: %s", idx, strerror(errno));
    b->events.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING |
                       KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                       KVM_VCPUEVENT_VALID_SHADOW;
    if (ioctl(fd, KVM_SET_VCPU_EVENTS, &b->events) < 0)
        LOG_WARN("vcpu %u: KVM_SET_VCPU_EVENTS: %s", idx, strerror(errno));
    if (ioctl(fd, KVM_SET_DEBUGREGS, &b->dregs) < 0)
        LOG_WARN("vcpu %u: KVM_SET_DEBUGREGS: %s", idx, strerror(errno));
out:
    free(b);
    return rc;
}
