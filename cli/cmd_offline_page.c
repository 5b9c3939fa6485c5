/* SPDX-License-Identifier: MIT */
/*
 * remus offline-page [--gfn] [--dry-run] VM FRAME: move a KVM guest off a
 * failing host page (backends/kvm/offline.h), through the VM's control
 * socket.  `remus offline-page --xen DOMAIN MFN` is the Xen version
 * (cli/cmd_xen.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/kvm/vmctl.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus offline-page [--gfn] [--dry-run] VM FRAME\n"
            "       remus offline-page --xen --config CFG DOMAIN MFN\n"
            "\n"
            "Move the KVM VM named VM off the host page frame FRAME (a page\n"
            "the host reports as failing): every guest frame it backs is\n"
            "copied to a fresh host page and remapped while the guest is\n"
            "paused; the old page is kept out of use until the VM ends.  If\n"
            "a step fails, the guest frame is put back as it was.\n"
            "\n"
            "  --gfn       FRAME is a guest frame number instead\n"
            "  --dry-run   only say which guest/host frames are involved\n"
            "FRAME: decimal or 0x-hex.  Needs CAP_SYS_ADMIN (host frame\n"
            "numbers).  Exit: 0 moved; 1 failed (nothing changed); 2 usage.\n");
}

int cmd_offline_page(int argc, char **argv)
{
    static const struct option opts[] = {
        { "gfn", no_argument, NULL, 'g' },
        { "dry-run", no_argument, NULL, 'n' },
        { "test-fault", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_error err = { 0 };
    const char *fault = "";
    bool gfn = false, dry = false;
    char req[128], reply[600], *p;
    unsigned long long frame;
    int c, round;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'g': gfn = true; break;
        case 'n': dry = true; break;
        case 'f':
            if (strcmp(optarg, "map") && strcmp(optarg, "verify"))
                return cli_usage_error("offline-page", "--test-fault map|"
                                       "verify");
            fault = !strcmp(optarg, "map") ? " fault-map" : " fault-verify";
            break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("offline-page", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("offline-page", "expected VM and FRAME");
    if (cli_frame("offline-page", "FRAME", argv[optind + 1], &frame))
        return RM_EXIT_USAGE;
    snprintf(req, sizeof(req), "%s %s %#llx%s", dry ? "frame" :
             "offline-page", gfn ? "gfn" : "pfn", frame, dry ? "" : fault);
    /* A host frame may back several guest frames (KSM merges identical
     * pages): the VM moves up to 16 per request; ask until none is left. */
    for (round = 0; ; round++) {
        int moved = 0;

        if (rm_vmctl_request(argv[optind], req, -1, reply, sizeof(reply),
                             &err)) {
            if (round && !gfn && strstr(rm_error_str(&err), "backs no"))
                break;          /* all moved */
            return cli_fail("offline-page", "%s", rm_error_str(&err));
        }
        p = reply + 2;
        for (;;) {
            unsigned long long g, a, b;
            int used = 0;

            if (dry) {
                if (sscanf(p, " %lli %lli%n", &g, &a, &used) != 2)
                    break;
                printf("guest frame %#llx of '%s' is on host frame %#llx\n",
                       g, argv[optind], a);
            } else {
                if (sscanf(p, " %lli %lli %lli%n", &g, &a, &b, &used) != 3)
                    break;
                printf("guest frame %#llx of '%s' moved off host frame "
                       "%#llx to %#llx\n", g, argv[optind], a, b);
            }
            moved++;
            p += used;
        }
        if (dry || gfn || moved < 16)
            break;
    }
    return RM_EXIT_OK;
}
