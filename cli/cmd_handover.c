/* SPDX-License-Identifier: MIT */
/*
 * remus handover NAME: a planned move of a protected VM to its
 * secondary (what Pacemaker's move of a protection pair does through the
 * OCF agent's demote).  The VM is paused for good on this host, output it
 * produced since the last acknowledged checkpoint is dropped (as in a
 * failover), and the secondary takes over from that checkpoint.
 *
 * The process that protects the VM is asked through the VM's control
 * socket (primary/control.h), for every backend.
 */
#define RM_LOG_PREFIX "handover"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ctlsock.h"
#include "cli/cli.h"
#include "common/io.h"
#include "common/log.h"
#include "common/status.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus handover [--timeout MS] NAME\n"
            "\n"
            "Move the protected VM NAME to its secondary, on purpose: it is\n"
            "paused here for good and the secondary takes over from its last\n"
            "acknowledged checkpoint (nothing the outside world saw is lost).\n"
            "Returns once the VM has stopped here (default: wait 30000 ms).\n"
            "\n"
            "Exit status: 0 when handed over; 1 when it could not be (the\n"
            "reason is given; the VM then runs on here); 2 for a usage error.\n");
}

int cmd_handover(int argc, char **argv)
{
    struct rm_error err = { 0 };
    unsigned timeout_ms = 30000;
    char reply[600], req[32];
    const char *name;
    int rc, a = 1;

    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return RM_EXIT_OK;
    }
    if (a + 1 < argc && !strcmp(argv[a], "--timeout")) {
        if (cli_uint32("handover", "--timeout", argv[a + 1], 1,
                       CLI_MS_MAX, &timeout_ms))
            return RM_EXIT_USAGE;
        a += 2;
    }
    if (argc - a != 1)
        return cli_usage_error("handover", "expected one argument: the VM's "
                               "name");
    name = argv[a];
    if (name[0] == '-')
        return cli_usage_error("handover", "unknown option '%s'", name);

    /* The process that protects the VM (`remus protect`, KVM or Xen, or
     * the one a `remus reprotect` asked) answers on the VM's control
     * socket once the protection ended. */
    snprintf(req, sizeof(req), "handover %u", timeout_ms);
    rc = rm_ctlsock_request(name, req, -1, reply, sizeof(reply), &err);
    if (rc)
        return cli_fail("handover", "%s", rm_error_str(&err));
    printf("%s: %s\n", name, reply + 3);
    return RM_EXIT_OK;
}
