/* SPDX-License-Identifier: MIT */
/*
 * Command-line options that describe a KVM guest, shared by the commands
 * that start one (run, protect, receive, restore): a guest description
 * file and/or --image/--memory/--vcpus/--cmdline/--mac/--ip/--netmask/
 * --tap/--console/--name, options overriding the file.
 */
#ifndef REMUS_BACKENDS_KVM_GUESTCFG_H
#define REMUS_BACKENDS_KVM_GUESTCFG_H

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>

#include "backends/kvm/vmm.h"

#define RM_GUESTCFG_OPTS                                         \
    { "image", required_argument, NULL, 0x1001 },                \
    { "memory", required_argument, NULL, 0x1002 },               \
    { "vcpus", required_argument, NULL, 0x1003 },                \
    { "cmdline", required_argument, NULL, 0x1004 },              \
    { "mac", required_argument, NULL, 0x1005 },                  \
    { "ip", required_argument, NULL, 0x1006 },                   \
    { "netmask", required_argument, NULL, 0x1007 },              \
    { "tap", required_argument, NULL, 0x1008 },                  \
    { "console", required_argument, NULL, 0x1009 },              \
    { "name", required_argument, NULL, 0x100a },                 \
    { "config", required_argument, NULL, 0x100b },               \
    { "tap-netns", required_argument, NULL, 0x100c }

#define RM_GUESTCFG_HELP                                                   \
    "  --config FILE   guest description (key = value lines: name, memory,\n" \
    "                  vcpus, image, cmdline, mac, ip, netmask, tap, console,\n" \
    "                  disk: a raw image for the guest's disk)\n" \
    "  --image ELF     guest image (default: the build's remus-guest.elf)\n" \
    "  --memory MIB    guest memory (default 64)\n"                         \
    "  --vcpus N       vCPUs (default 1)\n"                                 \
    "  --cmdline S     guest command line (e.g. \"dirty_rate=1000 dirty_wss=256\")\n" \
    "  --mac MAC --ip A.B.C.D --netmask A.B.C.D   guest NIC\n"              \
    "  --tap NAME      TAP interface for the guest NIC\n"                   \
    "  --tap-netns NS  open the TAP in network namespace NS\n"              \
    "  --console FILE  guest console log (default: stderr)\n"               \
    "  --name NAME     VM name (default: vm)\n"

struct rm_guestcfg {
    struct rm_vm_config vm;
    char *storage;            /* from a description file */
    char image_buf[PATH_MAX + 32];
};

void rm_guestcfg_init(struct rm_guestcfg *g, const char *argv0);
/* Handle one getopt result; 1 if it was a guest option, 0 if not, or a
 * negative errno with the reason in @err. */
int rm_guestcfg_opt(struct rm_guestcfg *g, int opt, const char *arg,
                    struct rm_error *err);
void rm_guestcfg_free(struct rm_guestcfg *g);

#endif
