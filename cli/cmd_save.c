/* SPDX-License-Identifier: MIT */
/* remus save [--live] [-c] VM FILE|-: save a running KVM VM. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/vmctl.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus save [--live] [-c] VM FILE|-\n"
            "\n"
            "Save the running KVM VM named VM (started with `remus run --name\n"
            "VM`) into FILE (- for stdout) as a remus checkpoint stream.\n"
            "\n"
            "  --live    live save: pre-copy while the guest runs, then pause\n"
            "            and send the rest (bounded: 5 iterations, or 3x guest\n"
            "            memory, or fewer than 50 dirty pages)\n"
            "  -c        keep the VM running afterwards (default: it stops\n"
            "            after a successful save, as with `xl save`)\n"
            "\n"
            "Exit status: 0 saved; 1 failed (the VM keeps running); 2 usage.\n");
}

int cmd_save(int argc, char **argv)
{
    static const struct option opts[] = {
        { "live", no_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_error err = { 0 };
    char reply[600];
    bool live = false, keep = false;
    int c, fd, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+lch", opts, NULL)) != -1) {
        switch (c) {
        case 'l': live = true; break;
        case 'c': keep = true; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("save", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("save", "expected VM and FILE");
    fd = cli_open_out(argv[optind + 1]);
    if (fd < 0)
        return cli_fail("save", "cannot create '%s': %s", argv[optind + 1],
                        strerror(-fd));
    rc = rm_vmctl_save(argv[optind], live, keep, fd, reply, sizeof(reply),
                       &err);
    if (fd != STDOUT_FILENO)
        close(fd);
    if (rc) {
        if (strcmp(argv[optind + 1], "-"))
            unlink(argv[optind + 1]);
        return cli_fail("save", "%s", rm_error_str(&err));
    }
    {
        unsigned long long bytes = 0, pages = 0;
        unsigned iters = 0;

        sscanf(reply + 3, "%llu %llu %u", &bytes, &pages, &iters);
        fprintf(stderr, "remus save: '%s' saved: %llu bytes, %llu pages, "
                "%u pre-copy iterations\n", argv[optind], bytes, pages,
                iters);
    }
    return RM_EXIT_OK;
}
