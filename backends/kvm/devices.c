/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's devices as state (RM_REC_KVM_DEVICE): the guest clock,
 * the console, the network counters and the guest's published stats.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static uint64_t host_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t rm_vm_guest_ns(struct rm_vm *vm)
{
    return (uint64_t)((int64_t)host_ns() + vm->clock_offset_ns);
}

void rm_vm_set_guest_ns(struct rm_vm *vm, uint64_t ns)
{
    vm->clock_offset_ns = (int64_t)ns - (int64_t)host_ns();
}

void rm_vm_guest_stats(struct rm_vm *vm, struct rm_hc_stats *st)
{
    pthread_mutex_lock(&vm->stats_lock);
    *st = vm->stats;
    pthread_mutex_unlock(&vm->stats_lock);
}

/* ------------------------------------------------------------ state */

struct dev_clock { uint64_t guest_ns; };
struct dev_console { uint64_t bytes; };
struct dev_net {
    uint8_t mac[6];
    uint16_t pad;
    uint32_t ipv4;
    uint64_t tx_frames, rx_frames, tx_dropped;
};

int rm_vm_get_device_state(struct rm_vm *vm, uint32_t dev, void *buf,
                           size_t *len)
{
    switch (dev) {
    case RM_KVM_DEV_CLOCK: {
        /* The guest's clock as of the pause: it resumes from there. */
        struct dev_clock c = { vm->pause_req ? vm->paused_at_ns
                                             : rm_vm_guest_ns(vm) };

        memcpy(buf, &c, sizeof(c));
        *len = sizeof(c);
        return 0;
    }
    case RM_KVM_DEV_CONSOLE: {
        struct dev_console c = { vm->console_bytes };

        memcpy(buf, &c, sizeof(c));
        *len = sizeof(c);
        return 0;
    }
    case RM_KVM_DEV_NET: {
        struct dev_net n;

        memset(&n, 0, sizeof(n));
        memcpy(n.mac, vm->cfg.mac, 6);
        n.ipv4 = vm->cfg.ipv4;
        n.tx_frames = vm->tx_frames;
        n.rx_frames = vm->rx_frames;
        n.tx_dropped = vm->tx_dropped;
        memcpy(buf, &n, sizeof(n));
        *len = sizeof(n);
        return 0;
    }
    case RM_KVM_DEV_STATS: {
        struct rm_hc_stats s;

        rm_vm_guest_stats(vm, &s);
        memcpy(buf, &s, sizeof(s));
        *len = sizeof(s);
        return 0;
    }
    default:
        return -ENOENT;
    }
}

int rm_vm_check_device_state(uint32_t dev, uint32_t version,
                             const void *buf, size_t len,
                             struct rm_error *err)
{
    size_t want;

    (void)buf;
    if (version != RM_KVM_DEV_LAYOUT)
        return rm_error_set(err, -EBADMSG, "device %u state layout %u (we "
                            "know %u)", dev, version, RM_KVM_DEV_LAYOUT);
    switch (dev) {
    case RM_KVM_DEV_CLOCK: want = sizeof(struct dev_clock); break;
    case RM_KVM_DEV_CONSOLE: want = sizeof(struct dev_console); break;
    case RM_KVM_DEV_NET: want = sizeof(struct dev_net); break;
    case RM_KVM_DEV_STATS: want = sizeof(struct rm_hc_stats); break;
    default:
        return rm_error_set(err, -EBADMSG, "unknown device %u", dev);
    }
    if (len != want)
        return rm_error_set(err, -EBADMSG, "device %u state of %zu bytes "
                            "(%zu expected)", dev, len, want);
    return 0;
}

int rm_vm_set_device_state(struct rm_vm *vm, uint32_t dev, const void *buf,
                           size_t len)
{
    (void)len;
    switch (dev) {
    case RM_KVM_DEV_CLOCK: {
        struct dev_clock c;

        memcpy(&c, buf, sizeof(c));
        rm_vm_set_guest_ns(vm, c.guest_ns);
        return 0;
    }
    case RM_KVM_DEV_CONSOLE: {
        struct dev_console c;

        memcpy(&c, buf, sizeof(c));
        vm->console_bytes = c.bytes;
        return 0;
    }
    case RM_KVM_DEV_NET: {
        struct dev_net n;

        memcpy(&n, buf, sizeof(n));
        vm->tx_frames = n.tx_frames;
        vm->rx_frames = n.rx_frames;
        vm->tx_dropped = n.tx_dropped;
        return 0;
    }
    case RM_KVM_DEV_STATS: {
        pthread_mutex_lock(&vm->stats_lock);
        memcpy(&vm->stats, buf, sizeof(vm->stats));
        pthread_mutex_unlock(&vm->stats_lock);
        return 0;
    }
    default:
        return -ENOENT;
    }
}
