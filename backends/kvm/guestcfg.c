/* SPDX-License-Identifier: MIT */
#include "backends/kvm/guestcfg.h"
#include "common/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rm_guestcfg_init(struct rm_guestcfg *g, const char *argv0)
{
    char self[PATH_MAX - 32];
    ssize_t n;

    memset(g, 0, sizeof(*g));
    rm_vm_config_default(&g->vm);
    /* Default image: next to the binary, build/guest/remus-guest.elf. */
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(g->image_buf, sizeof(g->image_buf),
                     "%s/guest/remus-guest.elf", self);
            if (access(g->image_buf, R_OK) == 0)
                g->vm.image = g->image_buf;
        }
    }
    (void)argv0;
}

static int parse_ip(const char *s, uint32_t *out, struct rm_error *err)
{
    struct in_addr a;

    if (inet_pton(AF_INET, s, &a) != 1)
        return rm_error_set(err, -EINVAL, "'%s' is not an IPv4 address", s);
    *out = a.s_addr;
    return 0;
}

int rm_guestcfg_opt(struct rm_guestcfg *g, int opt, const char *arg,
                    struct rm_error *err)
{
    char *end;
    unsigned long long v;

    switch (opt) {
    case 0x1001: g->vm.image = arg; return 1;
    case 0x1002:
        v = strtoull(arg, &end, 10);
        if (*end || v < 4 || v > 4096 || v % 2)
            return rm_error_set(err, -EINVAL, "--memory %s: an even number "
                                "of MiB from 4 to 4096", arg);
        g->vm.mem_bytes = v << 20;
        return 1;
    case 0x1003:
        v = strtoull(arg, &end, 10);
        if (*end || v < 1 || v > RM_KVM_MAX_VCPUS)
            return rm_error_set(err, -EINVAL, "--vcpus %s: 1..%u", arg,
                                RM_KVM_MAX_VCPUS);
        g->vm.nr_vcpus = (uint32_t)v;
        return 1;
    case 0x1004: g->vm.cmdline = arg; return 1;
    case 0x1005: {
        unsigned m[6];
        int i;

        if (sscanf(arg, "%x:%x:%x:%x:%x:%x%n", &m[0], &m[1], &m[2], &m[3],
                   &m[4], &m[5], &i) != 6 || arg[i])
            return rm_error_set(err, -EINVAL, "--mac %s: expected "
                                "xx:xx:xx:xx:xx:xx", arg);
        for (i = 0; i < 6; i++) {
            if (m[i] > 255)
                return rm_error_set(err, -EINVAL, "--mac %s", arg);
            g->vm.mac[i] = (uint8_t)m[i];
        }
        if (g->vm.mac[0] & 1)
            return rm_error_set(err, -EINVAL, "--mac %s is a multicast "
                                "address", arg);
        return 1;
    }
    case 0x1006: {
        int rc = parse_ip(arg, &g->vm.ipv4, err);

        return rc ? rc : 1;
    }
    case 0x1007: {
        int rc = parse_ip(arg, &g->vm.netmask, err);

        return rc ? rc : 1;
    }
    case 0x1008: g->vm.tap = arg; return 1;
    case 0x100c: g->vm.tap_netns = arg; return 1;
    case 0x1009: g->vm.console_path = arg; return 1;
    case 0x100a: g->vm.name = arg; return 1;
    case 0x100b: {
        int rc;

        free(g->storage);
        g->storage = NULL;
        rc = rm_vm_config_load(arg, &g->vm, &g->storage, err);
        return rc ? rc : 1;
    }
    default:
        return 0;
    }
}

void rm_guestcfg_free(struct rm_guestcfg *g)
{
    free(g->storage);
    g->storage = NULL;
}
