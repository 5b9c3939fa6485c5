/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's vCPUs: the thread loop, kick and park (the pause
 * protocol's vCPU side), and the x86 setup of a fresh guest: page tables
 * and GDT, 64-bit CPL3 segments and registers, CPUID.
 *
 * Guest-physical layout (guest_abi.h): boot info at 0x1000, GDT at 0x2000,
 * TSS at 0x3000, page tables at 0x10000 (PML4, PDPT, up to four PDs of
 * 2 MiB pages, all user-accessible), the image at 1 MiB.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GDT_GPA 0x2000ull
#define TSS_GPA 0x3000ull
#define PML4_GPA RM_GUEST_PAGETABLE_GPA
#define PDPT_GPA (PML4_GPA + 0x1000)
#define PD_GPA (PML4_GPA + 0x2000)   /* 5 PDs: 4 GiB of RAM + MMIO */

/* ------------------------------------------------------------ vCPU loop */

void end_vm(struct rm_vm *vm, enum rm_vm_end kind, int64_t code,
            const char *fmt, ...)
{
    va_list ap;
    uint64_t one = 1;

    pthread_mutex_lock(&vm->lock);
    if (!vm->ended) {
        vm->ended = true;
        vm->end_kind = kind;
        vm->exit_code = code;
        va_start(ap, fmt);
        vsnprintf(vm->end_reason, sizeof(vm->end_reason), fmt, ap);
        va_end(ap);
    }
    vm->stopping = true;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (write(vm->stop_fd, &one, sizeof(one)) < 0)
        (void)0;
    if (write(vm->kick_fd, &one, sizeof(one)) < 0)
        (void)0;
}

void kick_handler(int sig)
{
    (void)sig;
}

static void park(struct rm_vm *vm, struct vcpu *vc)
{
    if (vc->snap && !vc->snap_valid && read_vcpu_blob(vc->fd, vc->snap) == 0)
        vc->snap_valid = true;
    vc->t_state = rm_now_ns();
    pthread_mutex_lock(&vm->lock);
    vm->pause_last_vcpu = vc->idx;
    vm->parked++;
    pthread_cond_broadcast(&vm->cond);
    while (vm->pause_req && !vm->stopping)
        pthread_cond_wait(&vm->cond, &vm->lock);
    vm->parked--;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

void *vcpu_main(void *arg)
{
    struct vcpu *vc = arg;
    struct rm_vm *vm = vc->vm;
    bool io_pending = false;

    for (;;) {
        int rc;

        if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
            break;
        if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE)) {
            vc->t_seen = rm_now_ns();
            if (io_pending) {
                /* Complete the port I/O so registers are consistent. */
                vc->run->immediate_exit = 1;
                ioctl(vc->fd, KVM_RUN, 0);
                io_pending = false;
            }
            vc->t_io = rm_now_ns();
            park(vm, vc);
            continue;
        }
        rc = ioctl(vc->fd, KVM_RUN, 0);
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            end_vm(vm, RM_VM_FAILED, -1, "KVM_RUN failed on vcpu %u: %s", vc->idx,
                   strerror(errno));
            break;
        }
        switch (vc->run->exit_reason) {
        case KVM_EXIT_IO:
        case KVM_EXIT_MMIO:
            io_pending = true;
            if ((vc->run->exit_reason == KVM_EXIT_IO ? handle_io(vm, vc)
                                                     : handle_mmio(vm, vc))
                == -EFAULT)
                end_vm(vm, RM_VM_FAILED, -1, "guest crashed: vcpu %u passed a hypercall "
                       "address outside guest memory", vc->idx);
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_DIRTY_RING_FULL:
            collect_ring(vm, vc);
            break;
        case KVM_EXIT_SHUTDOWN: {
            struct kvm_regs r;

            struct kvm_sregs sr;

            ioctl(vc->fd, KVM_GET_REGS, &r);
            ioctl(vc->fd, KVM_GET_SREGS, &sr);
            end_vm(vm, RM_VM_FAILED, -1, "guest crashed: triple fault on vcpu %u at rip "
                   "0x%llx (rflags 0x%llx, cs 0x%x dpl %u, cr4 0x%llx)",
                   vc->idx, (unsigned long long)r.rip,
                   (unsigned long long)r.rflags, sr.cs.selector, sr.cs.dpl,
                   (unsigned long long)sr.cr4);
            break;
        }
        case KVM_EXIT_FAIL_ENTRY:
            end_vm(vm, RM_VM_FAILED, -1, "vcpu %u entry failed (reason 0x%llx)", vc->idx,
                   (unsigned long long)
                   vc->run->fail_entry.hardware_entry_failure_reason);
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            end_vm(vm, RM_VM_FAILED, -1, "vcpu %u: KVM internal error %u", vc->idx,
                   vc->run->internal.suberror);
            break;
        case KVM_EXIT_HLT:
            end_vm(vm, RM_VM_FAILED, -1, "guest crashed: hlt on vcpu %u", vc->idx);
            break;
        default:
            end_vm(vm, RM_VM_FAILED, -1, "vcpu %u: unexpected exit %u", vc->idx,
                   vc->run->exit_reason);
            break;
        }
        if (vc->run->exit_reason != KVM_EXIT_IO &&
            vc->run->exit_reason != KVM_EXIT_MMIO)
            io_pending = false;
    }
    /* Count as parked so a pause in progress does not wait for us. */
    pthread_mutex_lock(&vm->lock);
    vm->parked++;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

void kick_all(struct rm_vm *vm)
{
    uint64_t one = 1;
    uint32_t i;

    if (write(vm->kick_fd, &one, sizeof(one)) < 0)
        (void)0;
    for (i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *vc = &vm->vcpus[i];

        if (!vc->started)
            continue;
        vc->run->immediate_exit = 1;
        pthread_kill(vc->thread, KICK_SIGNAL);
    }
}

/* ------------------------------------------------------------ setup */

void build_tables(struct rm_vm *vm)
{
    uint64_t *pml4 = (uint64_t *)(vm->mem + PML4_GPA);
    uint64_t *pdpt = (uint64_t *)(vm->mem + PDPT_GPA);
    uint64_t gib = (vm->mem_bytes + (1ull << 30) - 1) >> 30, i;
    uint64_t *gdt = (uint64_t *)(vm->mem + GDT_GPA);

    /* Identity map [0, mem) with 2 MiB user pages: P | RW | US | PS. */
    pml4[0] = PDPT_GPA | 0x7;
    for (i = 0; i < gib; i++) {
        uint64_t *pd = (uint64_t *)(vm->mem + PD_GPA + i * 0x1000);
        uint64_t j;

        pdpt[i] = (PD_GPA + i * 0x1000) | 0x7;
        for (j = 0; j < 512; j++) {
            uint64_t addr = (i << 30) | (j << 21);

            if (addr >= vm->mem_bytes)
                break;
            pd[j] = addr | 0x87;
        }
    }
    /* The hypercall window: one 2 MiB user page at 4 GiB, no memory slot
     * behind it, so every store there is an MMIO exit. */
    {
        uint64_t *pd = (uint64_t *)(vm->mem + PD_GPA + 4 * 0x1000);

        pdpt[4] = (PD_GPA + 4 * 0x1000) | 0x7;
        pd[0] = RM_HC_MMIO_BASE | 0x87;
    }
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; /* kernel code 64 */
    gdt[2] = 0x00cf92000000ffffull; /* kernel data */
    gdt[3] = 0x00affa000000ffffull; /* user code 64, DPL 3 */
    gdt[4] = 0x00cff2000000ffffull; /* user data, DPL 3 */
    /* 64-bit TSS descriptor (16 bytes) */
    gdt[5] = 0x0000890000000067ull | ((TSS_GPA & 0xffffff) << 16) |
             ((TSS_GPA >> 24 & 0xff) << 56);
    gdt[6] = TSS_GPA >> 32;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
    memset(s, 0, sizeof(*s));
    s->selector = sel;
    s->base = 0;
    s->limit = 0xffffffff;
    s->type = type;
    s->present = 1;
    s->dpl = 3;
    s->s = 1;
    s->l = code ? 1 : 0;
    s->db = code ? 0 : 1;
    s->g = 1;
}

int setup_vcpu_regs(struct rm_vm *vm, struct vcpu *vc, uint64_t entry,
                           struct rm_error *err)
{
    struct kvm_sregs sr;
    struct kvm_regs r;
    struct kvm_fpu fpu;

    if (ioctl(vc->fd, KVM_GET_SREGS, &sr) < 0)
        return rm_error_set(err, -errno, "KVM_GET_SREGS: %s",
                            strerror(errno));
    seg(&sr.cs, 0x1b, 11, 1);
    seg(&sr.ds, 0x23, 3, 0);
    sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
    memset(&sr.tr, 0, sizeof(sr.tr));
    sr.tr.base = TSS_GPA;
    sr.tr.limit = 0x67;
    sr.tr.selector = 0x28;
    sr.tr.type = 11;
    sr.tr.present = 1;
    memset(&sr.ldt, 0, sizeof(sr.ldt));
    sr.ldt.type = 2;
    sr.ldt.unusable = 1;
    sr.gdt.base = GDT_GPA;
    sr.gdt.limit = 7 * 8 - 1;
    sr.idt.base = 0;
    sr.idt.limit = 0;
    sr.cr0 = 0x80050033ull;   /* PG AM WP NE ET MP PE */
    sr.cr3 = PML4_GPA;
    sr.cr4 = 0x620;           /* PAE OSFXSR OSXMMEXCPT */
    sr.efer = 0x500;          /* LME LMA */
    if (ioctl(vc->fd, KVM_SET_SREGS, &sr) < 0)
        return rm_error_set(err, -errno, "KVM_SET_SREGS (64-bit CPL3): %s",
                            strerror(errno));
    memset(&r, 0, sizeof(r));
    r.rip = entry;
    r.rdi = RM_GUEST_BOOTINFO_GPA;
    r.rsi = vc->idx;
    r.rflags = 0x3002;        /* IOPL 3, reserved bit 1; IF clear */
    if (ioctl(vc->fd, KVM_SET_REGS, &r) < 0)
        return rm_error_set(err, -errno, "KVM_SET_REGS: %s", strerror(errno));
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    ioctl(vc->fd, KVM_SET_FPU, &fpu);
    (void)vm;
    return 0;
}

int set_cpuid(struct rm_vm *vm, struct vcpu *vc, struct rm_error *err)
{
    struct kvm_cpuid2 *cpuid;
    int n = 128, rc = 0;

    cpuid = calloc(1, sizeof(*cpuid) + (size_t)n * sizeof(cpuid->entries[0]));
    if (!cpuid)
        return -ENOMEM;
    cpuid->nent = (uint32_t)n;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
        rc = rm_error_set(err, -errno, "KVM_GET_SUPPORTED_CPUID: %s",
                          strerror(errno));
    } else if (ioctl(vc->fd, KVM_SET_CPUID2, cpuid) < 0) {
        rc = rm_error_set(err, -errno, "KVM_SET_CPUID2: %s", strerror(errno));
    }
    free(cpuid);
    return rc;
}
