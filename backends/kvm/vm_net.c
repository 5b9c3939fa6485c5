/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's network device: the TAP (opened in a network namespace
 * when asked), the guest's output path (net_out, the TAP by default) and
 * the gratuitous ARP after a failover.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_tap_here(struct rm_vm *vm, struct rm_error *err);

/*
 * Open the TAP, inside cfg.tap_netns when given: switch this thread into
 * that namespace, open it, switch back (the fd stays bound to the device).
 */
int open_tap(struct rm_vm *vm, struct rm_error *err)
{
    char path[300];
    int self, target, rc;

    if (!vm->cfg.tap_netns)
        return open_tap_here(vm, err);
    snprintf(path, sizeof(path), "/run/netns/%s", vm->cfg.tap_netns);
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    target = open(path, O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0) {
        rc = rm_error_set(err, -errno, "network namespace '%s': %s",
                          vm->cfg.tap_netns, strerror(errno));
        goto out;
    }
    if (setns(target, CLONE_NEWNET)) {
        rc = rm_error_set(err, -errno, "entering network namespace '%s': "
                          "%s", vm->cfg.tap_netns, strerror(errno));
        goto out;
    }
    rc = open_tap_here(vm, err);
    if (setns(self, CLONE_NEWNET)) {
        rc = rm_error_set(err, -errno, "returning from network namespace "
                          "'%s': %s", vm->cfg.tap_netns, strerror(errno));
        if (vm->tap_fd >= 0) {
            close(vm->tap_fd);
            vm->tap_fd = -1;
        }
    }
out:
    if (self >= 0)
        close(self);
    if (target >= 0)
        close(target);
    return rc;
}

static int open_tap_here(struct rm_vm *vm, struct rm_error *err)
{
    struct ifreq ifr;
    int fd, s;

    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return rm_error_set(err, -errno, "cannot open /dev/net/tun: %s",
                            strerror(errno));
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", vm->cfg.tap);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;

        close(fd);
        return rm_error_set(err, -e, "cannot attach to TAP '%s': %s",
                            vm->cfg.tap, strerror(e));
    }
    snprintf(vm->tap, sizeof(vm->tap), "%s", ifr.ifr_name);
    /* Bring the link up. */
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
            ifr.ifr_flags |= IFF_UP;
            ioctl(s, SIOCSIFFLAGS, &ifr);
        }
        close(s);
    }
    vm->tap_fd = fd;
    return 0;
}

int rm_vm_tap_write(void *opaque, const void *frame, size_t len)
{
    struct rm_vm *vm = opaque;
    ssize_t n = write(vm->tap_fd, frame, len);

    return n == (ssize_t)len ? 0 : -EIO;
}

void rm_vm_set_net_out(struct rm_vm *vm, rm_vm_net_out_fn fn, void *opaque)
{
    if (!fn) {
        fn = rm_vm_tap_write;
        opaque = vm;
    }
    __atomic_store_n(&vm->net_out_opaque, opaque, __ATOMIC_RELEASE);
    __atomic_store_n(&vm->net_out, fn, __ATOMIC_RELEASE);
}

void rm_vm_set_net_in(struct rm_vm *vm, const struct rm_vm_net_in *in)
{
    if (in)
        vm->net_in = *in;
    else
        memset(&vm->net_in, 0, sizeof(vm->net_in));
}

void rm_vm_set_net_in_tap(struct rm_vm *vm, rm_vm_net_in_tap_fn fn,
                          void *opaque)
{
    vm->net_in_tap = fn;
    vm->net_in_tap_opaque = opaque;
}

int rm_vm_announce(struct rm_vm *vm)
{
    uint8_t f[60];
    int i, rc = 0;

    if (vm->tap_fd < 0 || !vm->cfg.ipv4)
        return 0;
    for (i = 0; i < 2; i++) {
        memset(f, 0, sizeof(f));
        memset(f, 0xff, 6);
        memcpy(f + 6, vm->cfg.mac, 6);
        f[12] = 0x08;
        f[13] = 0x06;
        f[15] = 1;
        f[16] = 0x08;
        f[18] = 6;
        f[19] = 4;
        f[21] = (uint8_t)(i + 1);        /* request, then reply */
        memcpy(f + 22, vm->cfg.mac, 6);
        memcpy(f + 28, &vm->cfg.ipv4, 4);
        memcpy(f + 38, &vm->cfg.ipv4, 4);
        rc |= rm_vm_tap_write(vm, f, sizeof(f));
    }
    return rc ? -EIO : 0;
}
