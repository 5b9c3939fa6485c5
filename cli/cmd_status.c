/* SPDX-License-Identifier: MIT */
/*
 * remus status [--json] [NAME]: the state of the protections (primary)
 * and replicas (secondary) running on this host, from their status files.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/status.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus status [--json] [NAME]\n"
            "\n"
            "Show the protections (primary) and replicas (secondary) on this\n"
            "host: role, state, epoch, last acknowledged epoch, last pause,\n"
            "dirty pages and bytes of the last checkpoint.  Status files live\n"
            "in $REMUS_RUN_DIR (default /run/remus).\n"
            "\n"
            "  --json   machine-readable output (an array of objects)\n"
            "\n"
            "Exit status: 0; 1 when NAME is given and not found.\n");
}

/* COLO's line under its row: the mode, checkpoints by cause, queues. */
static void print_colo(const struct rm_status *st)
{
    if (!strcmp(st->role, "primary"))
        printf("%-16s   COLO %s: checkpoints by cause mismatch %" PRIu64
               ", timeout %" PRIu64 ", full queue %" PRIu64 ", periodic %"
               PRIu64 ", buffered %" PRIu64 "; fallbacks %" PRIu64 "; "
               "frames held %" PRIu64 " (VM) %" PRIu64 " (replica)\n", "",
               st->colo_mode, st->colo_checkpoints[0],
               st->colo_checkpoints[1], st->colo_checkpoints[2],
               st->colo_checkpoints[3], st->colo_buffered_checkpoints,
               st->colo_fallbacks, st->colo_held_primary,
               st->colo_held_replica);
    else
        printf("%-16s   COLO %s: checkpoints committed in buffered mode %"
               PRIu64 "; sectors the replica wrote since its checkpoint %"
               PRIu64 "\n", "", st->colo_mode,
               st->colo_buffered_checkpoints, st->colo_replica_sectors);
}

static bool alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *want = NULL;
    bool json = false;
    int c, found = 0;
    DIR *d;
    struct dirent *de;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("status", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("status", "at most one NAME");
    if (argc - optind == 1)
        want = argv[optind];

    if (json)
        printf("[");
    else
        printf("%-16s %-9s %-12s %8s %8s %9s %8s %10s  %s\n", "NAME", "ROLE",
               "STATE", "EPOCH", "ACKED", "PAUSE_US", "DIRTY", "BYTES",
               "PEER");
    d = opendir(rm_run_dir());
    while (d && (de = readdir(d))) {
        struct rm_status st;
        struct rm_error err = { 0 };
        char path[1024];
        size_t n = strlen(de->d_name);
        const char *suffix = ".status.json";

        if (n <= strlen(suffix) ||
            strcmp(de->d_name + n - strlen(suffix), suffix))
            continue;
        snprintf(path, sizeof(path), "%s/%s", rm_run_dir(), de->d_name);
        if (rm_status_read(path, &st, &err))
            continue;
        if (want && strcmp(want, st.name))
            continue;
        if (!alive(st.pid))
            snprintf(st.state, sizeof(st.state), "dead");
        if (json) {
            char buf[4096];

            rm_status_to_json(&st, buf, sizeof(buf));
            printf("%s%s", found ? "," : "", buf);
        } else {
            printf("%-16s %-9s %-12s %8" PRIu64 " %8" PRIu64 " %9" PRIu64
                   " %8" PRIu64 " %10" PRIu64 "  %s\n", st.name, st.role,
                   st.state, st.epoch, st.acked_epoch, st.last_pause_us,
                   st.last_dirty_pages, st.last_bytes, st.peer);
            if (st.detail[0])
                printf("%-16s   %s\n", "", st.detail);
            if (st.colo_mode[0])
                print_colo(&st);
        }
        found++;
    }
    if (d)
        closedir(d);
    if (json)
        printf("]\n");
    if (want && !found) {
        fprintf(stderr, "remus status: error: nothing named '%s' runs on "
                "this host (no status in %s)\n", want, rm_run_dir());
        return RM_EXIT_FAIL;
    }
    return RM_EXIT_OK;
}
