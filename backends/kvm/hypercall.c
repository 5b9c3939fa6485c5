/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's hypercalls (guest_abi.h): a port I/O or MMIO exit is
 * checked, dispatched to its hc_* handler, and every guest address it
 * passes is checked against guest memory before use.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/console.h"
#include "common/io.h"

/* Copy into guest memory and remember the pages for the dirty log. */
static void guest_write(struct rm_vm *vm, uint64_t gpa, const void *src,
                        size_t len)
{
    memcpy(vm->mem + gpa, src, len);
    mark_vmm_dirty(vm, gpa, len);
}

/* ------------------------------------------------------------ hypercalls */

static int hc_puts(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_puts a;

    if (!gpa_ok(vm, gpa, sizeof(a)))
        return -EFAULT;
    memcpy(&a, vm->mem + gpa, sizeof(a));
    if (a.len > 4096 || !gpa_ok(vm, a.data, a.len))
        return -EFAULT;
    vm->console_bytes += a.len;
    rm_console_write(&vm->console, vm->mem + a.data, a.len, rm_now_ns());
    return 0;
}

static int hc_clock(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_clock c;

    if (!gpa_ok(vm, gpa, sizeof(c)))
        return -EFAULT;
    c.monotonic_ns = rm_vm_guest_ns(vm);
    guest_write(vm, gpa, &c, sizeof(c));
    return 0;
}

static int hc_net_info(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_net_info ni;

    if (!gpa_ok(vm, gpa, sizeof(ni)))
        return -EFAULT;
    memset(&ni, 0, sizeof(ni));
    memcpy(ni.mac, vm->cfg.mac, 6);
    ni.mtu = 1500;
    ni.ipv4 = vm->cfg.ipv4;
    ni.netmask = vm->cfg.netmask;
    ni.gateway = vm->cfg.gateway;
    guest_write(vm, gpa, &ni, sizeof(ni));
    return 0;
}

static int hc_net_write(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_net_io io;
    int rc = 0;

    if (!gpa_ok(vm, gpa, sizeof(io)))
        return -EFAULT;
    memcpy(&io, vm->mem + gpa, sizeof(io));
    if (io.len < 14 || io.len > 1518 || !gpa_ok(vm, io.data, io.len)) {
        io.ret = -EINVAL;
    } else if (vm->tap_fd < 0) {
        io.ret = -ENETDOWN;
    } else {
        rm_vm_net_out_fn out = __atomic_load_n(&vm->net_out,
                                               __ATOMIC_ACQUIRE);
        void *opaque = __atomic_load_n(&vm->net_out_opaque,
                                       __ATOMIC_ACQUIRE);

        rc = out(opaque, vm->mem + io.data, io.len);
        if (rc)
            vm->tx_dropped++;
        else
            vm->tx_frames++;
        io.ret = 0;  /* a dropped frame is not the guest's error */
    }
    guest_write(vm, gpa + offsetof(struct rm_hc_net_io, ret), &io.ret,
                sizeof(io.ret));
    return 0;
}

static int hc_net_read(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_net_io io;
    ssize_t n;

    if (!gpa_ok(vm, gpa, sizeof(io)))
        return -EFAULT;
    memcpy(&io, vm->mem + gpa, sizeof(io));
    if (io.len > 65536 || !gpa_ok(vm, io.data, io.len)) {
        io.ret = -EINVAL;
    } else if (vm->tap_fd < 0 && !vm->net_in.read) {
        io.ret = 1;
    } else {
        if (vm->net_in.read)        /* COLO's replica: mirrored input */
            n = vm->net_in.read(vm->net_in.opaque, vm->mem + io.data,
                                io.len);
        else
            n = read(vm->tap_fd, vm->mem + io.data, io.len);
        if (n > 0) {
            mark_vmm_dirty(vm, io.data, (uint64_t)n);
            io.len = (uint64_t)n;
            io.ret = 0;
            vm->rx_frames++;
            if (vm->net_in_tap)     /* COLO's primary: mirror it */
                vm->net_in_tap(vm->net_in_tap_opaque, vm->mem + io.data,
                               (size_t)n);
        } else {
            io.ret = 1;
            io.len = 0;
        }
    }
    guest_write(vm, gpa, &io, sizeof(io));
    return 0;
}

static int hc_poll(struct rm_vm *vm, struct vcpu *vc, uint64_t gpa)
{
    struct rm_hc_poll p;
    struct pollfd pfd[2];
    uint64_t now;
    int nfds = 0, timeout, rc;

    if (!gpa_ok(vm, gpa, sizeof(p)))
        return -EFAULT;
    memcpy(&p, vm->mem + gpa, sizeof(p));
    pfd[nfds].fd = vm->kick_fd;
    pfd[nfds++].events = POLLIN;
    /* Only vCPU 0 serves the network; the others just sleep. */
    if (vc->idx == 0 && (vm->net_in.read || vm->tap_fd >= 0)) {
        pfd[nfds].fd = vm->net_in.read ? vm->net_in.poll_fd : vm->tap_fd;
        pfd[nfds++].events = POLLIN;
    }
    now = rm_vm_guest_ns(vm);
    if (p.deadline_ns <= now)
        timeout = 0;
    else if (p.deadline_ns - now > 1000000000ull)
        timeout = 1000;
    else
        timeout = (int)((p.deadline_ns - now + 999999) / 1000000);
    if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE))
        timeout = 0;
    rc = poll(pfd, (nfds_t)nfds, timeout);
    p.ready = (rc > 0 && nfds == 2 && (pfd[1].revents & POLLIN)) ? 1 : 0;
    guest_write(vm, gpa + offsetof(struct rm_hc_poll, ready), &p.ready,
                sizeof(p.ready));
    return 0;
}

static int hc_stats(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_stats s;

    if (!gpa_ok(vm, gpa, sizeof(s)))
        return -EFAULT;
    memcpy(&s, vm->mem + gpa, sizeof(s));
    pthread_mutex_lock(&vm->stats_lock);
    vm->stats = s;
    pthread_mutex_unlock(&vm->stats_lock);
    return 0;
}

static int dispatch(struct rm_vm *vm, struct vcpu *vc, unsigned call,
                    uint32_t gpa32);

int handle_io(struct rm_vm *vm, struct vcpu *vc)
{
    struct kvm_run *run = vc->run;
    uint32_t gpa32;

    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 ||
        run->io.count != 1 || run->io.port < RM_HC_PORT_BASE ||
        run->io.port >= RM_HC_PORT_BASE + RM_HC_COUNT) {
        end_vm(vm, RM_VM_FAILED, -1, "guest crashed: unexpected port I/O (port 0x%x, "
               "size %u, %s)", run->io.port, run->io.size,
               run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in");
        return -EIO;
    }
    memcpy(&gpa32, (uint8_t *)run + run->io.data_offset, 4);
    return dispatch(vm, vc, run->io.port - RM_HC_PORT_BASE, gpa32);
}

int handle_mmio(struct rm_vm *vm, struct vcpu *vc)
{
    struct kvm_run *run = vc->run;
    uint64_t off = run->mmio.phys_addr - RM_HC_MMIO_BASE;
    uint32_t gpa32;

    if (run->mmio.phys_addr < RM_HC_MMIO_BASE ||
        off >= 8ull * RM_HC_COUNT || off % 8 || !run->mmio.is_write ||
        run->mmio.len != 4) {
        end_vm(vm, RM_VM_FAILED, -1, "guest crashed: unexpected MMIO %s of %u bytes at "
               "0x%llx", run->mmio.is_write ? "write" : "read",
               run->mmio.len, (unsigned long long)run->mmio.phys_addr);
        return -EIO;
    }
    memcpy(&gpa32, run->mmio.data, 4);
    return dispatch(vm, vc, (unsigned)(off / 8), gpa32);
}

static int dispatch(struct rm_vm *vm, struct vcpu *vc, unsigned call,
                    uint32_t gpa32)
{
    switch (call) {
    case RM_HC_PUTS: return hc_puts(vm, gpa32);
    case RM_HC_CLOCK: return hc_clock(vm, gpa32);
    case RM_HC_NET_INFO: return hc_net_info(vm, gpa32);
    case RM_HC_NET_WRITE: return hc_net_write(vm, gpa32);
    case RM_HC_NET_READ: return hc_net_read(vm, gpa32);
    case RM_HC_POLL: return hc_poll(vm, vc, gpa32);
    case RM_HC_STATS: return hc_stats(vm, gpa32);
    case RM_HC_DISK_INFO:
    case RM_HC_DISK_READ:
    case RM_HC_DISK_WRITE:
    case RM_HC_DISK_FLUSH:
    case RM_HC_DISK_DISCARD: return hc_disk(vm, call, gpa32);
    case RM_HC_HALT: {
        struct rm_hc_halt h;

        if (!gpa_ok(vm, gpa32, sizeof(h)))
            return -EFAULT;
        memcpy(&h, vm->mem + gpa32, sizeof(h));
        end_vm(vm, RM_VM_HALTED, h.exit_code, "guest halted with code %" PRId64,
               (int64_t)h.exit_code);
        return 0;
    }
    default:
        return -ENOSYS;
    }
}
