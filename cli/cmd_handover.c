/* SPDX-License-Identifier: MIT */
/*
 * remus handover NAME: a planned move of a protected KVM VM to its
 * secondary (what Pacemaker's move of a protection pair does through the
 * OCF agent's demote).  The VM is paused for good on this host, output it
 * produced since the last acknowledged checkpoint is dropped (as in a
 * failover), and the secondary takes over from that checkpoint.
 *
 * The VM is either run by `remus protect` (asked with SIGUSR2, found
 * through its status file) or protected from its own process after a
 * failover (`remus reprotect`; asked through its control socket).
 */
#define RM_LOG_PREFIX "handover"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/vmctl.h"
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

/* The `remus protect` process of NAME, via its status file. */
static int by_signal(const char *name, unsigned timeout_ms,
                     const char *socket_said)
{
    char path[512];
    struct rm_status st;
    struct rm_error err = { 0 };
    uint64_t deadline;
    int rc;

    snprintf(path, sizeof(path), "%s/%s.primary.status.json", rm_run_dir(),
             name);
    rc = rm_status_read(path, &st, &err);
    if (rc == -ENOENT && socket_said)
        return cli_fail("handover", "%s", socket_said);
    if (rc)
        return cli_fail("handover", "no protected VM '%s' on this host (%s)",
                        name, rc == -ENOENT ? "no control socket and no "
                        "status file" : rm_error_str(&err));
    if ((strcmp(st.state, "protecting") || st.pid <= 0 ||
         kill(st.pid, 0) != 0) && socket_said)
        return cli_fail("handover", "%s", socket_said);
    if (strcmp(st.state, "protecting") || st.pid <= 0 ||
        kill(st.pid, 0) != 0)
        return cli_fail("handover", "'%s' is not being protected here "
                        "(state %s, pid %d)%s", name, st.state, st.pid,
                        st.pid > 0 && kill(st.pid, 0) ? ": that process "
                        "is gone" : "");
    /* The pid is signalled only if it still is the `remus protect` that
     * wrote the file (a stale file may name any process now). */
    if (rm_status_check_writer(&st, &err))
        return cli_fail("handover", "'%s' is not being protected here: %s "
                        "(%s); nothing was signalled", name,
                        rm_error_str(&err), path);
    if (kill(st.pid, SIGUSR2))
        return cli_fail("handover", "cannot signal process %d: %s", st.pid,
                        strerror(errno));
    deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    while (rm_now_ns() < deadline) {
        struct rm_status now;

        /* Its status says so even before the process has ended (and while
         * an exited process waits to be reaped). */
        if (rm_status_read(path, &now, &err) == 0 &&
            !strcmp(now.state, "handed-over")) {
            printf("%s: %s\n", name, now.detail);
            return RM_EXIT_OK;
        }
        if (kill(st.pid, 0) != 0) {
            /* Gone: its last status says how it ended. */
            if (rm_status_read(path, &st, &err) == 0 &&
                !strcmp(st.state, "handed-over")) {
                printf("%s: %s\n", name, st.detail);
                return RM_EXIT_OK;
            }
            return cli_fail("handover", "the protect process ended in "
                            "state '%s': %s", st.state, st.detail);
        }
        usleep(50000);
    }
    return cli_fail("handover", "no handover within %u ms (the protect "
                    "process %d still runs)", timeout_ms, st.pid);
}

int cmd_handover(int argc, char **argv)
{
    struct rm_error err = { 0 };
    unsigned timeout_ms = 30000;
    char reply[512];
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

    /* A VM protected from its own process (reprotect) is asked through
     * its control socket; a `remus protect` process (whose socket says it
     * is not protected from there) by a signal. */
    rc = rm_vmctl_request(name, "handover", -1, reply, sizeof(reply), &err);
    if (rc == 0) {
        printf("%s: %s", name, reply + 3);
        return RM_EXIT_OK;
    }
    if (rc != -ENOENT && rc != -ECONNREFUSED &&
        !strstr(rm_error_str(&err), "not protected from its control socket"))
        return cli_fail("handover", "%s", rm_error_str(&err));
    return by_signal(name, timeout_ms, rc == -ENOENT || rc == -ECONNREFUSED ?
                     NULL : rm_error_str(&err));
}
