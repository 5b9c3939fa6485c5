/* SPDX-License-Identifier: MIT */
/*
 * remus offline-page [--gfn] [--dry-run] VM FRAME: move a KVM guest off a
 * failing host page (backends/kvm/offline.h), through the VM's control
 * socket.  `remus offline-page --xen DOMAIN MFN`: a Xen guest
 * (backends/xen/xen_offline.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/xen_offline.h"
#include "common/ctlsock.h"
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

        if (round == 1)         /* a bare "ok" now means none left */
            strncat(req, " again", sizeof(req) - strlen(req) - 1);
        if (rm_ctlsock_request(argv[optind], req, -1, reply, sizeof(reply),
                               &err))
            return cli_fail("offline-page", "%s", rm_error_str(&err));
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

/* ---------------------------------------------------------------- Xen */

static void xen_usage(FILE *out)
{
    fprintf(out,
            "usage: remus offline-page --xen [--config CFG] DOMAIN MFN\n"
            "       remus offline-page --xen --status MFN\n"
            "\n"
            "Move the Xen HVM/PVH guest DOMAIN off machine frame MFN (a page\n"
            "the host reports as failing).  The frame is marked offline with\n"
            "Xen (it stays \"offline pending\" while the guest owns it); the\n"
            "guest is live-migrated to a new domain on this host built from\n"
            "its xl config CFG (save and restore engines back to back); the\n"
            "old domain is destroyed, which frees the frame and lets Xen\n"
            "offline it; the new domain takes the guest's name.  A frame of\n"
            "another domain is refused (and our mark withdrawn).  If the\n"
            "migration fails, the guest runs on in its old domain.\n"
            "A 64-bit PV guest (no --config) moves in place instead: while\n"
            "it is suspended, the frame is copied, every page-table entry\n"
            "mapping it cleared, the frame exchanged with Xen for a new one,\n"
            "the copy written there, the p2m and the entries pointed at it;\n"
            "a frame granted to another domain or held by a vCPU (cr3, GDT)\n"
            "is refused; if Xen will not take the frame (something else maps\n"
            "it) every entry is put back and the guest resumes as it was.\n"
            "--status prints what Xen says of the frame (online, offline\n"
            "pending, offline, broken) and changes nothing.\n"
            "Exit: 0 moved (or the frame was free); 1 failed; 2 usage.\n");
}

static const char *const frame_state_name[] = {
    [RM_XEN_FRAME_ONLINE] = "online",
    [RM_XEN_FRAME_PENDING] = "offline pending",
    [RM_XEN_FRAME_OFFLINE] = "offline",
};

/* --status MFN */
static int xen_status(struct rm_xen_host **host, unsigned long long mfn)
{
    struct rm_error err = { 0 };
    enum rm_xen_frame_state st = RM_XEN_FRAME_ONLINE;
    bool broken = false;
    int rc = rm_xen_host_open(host, &err);

    if (!rc)
        rc = rm_xen_frame_status(*host, mfn, &st, &broken, &err);
    if (rc)
        return cli_fail("offline-page", "%s", rm_error_str(&err));
    printf("machine frame %#llx: %s%s\n", mfn, frame_state_name[st],
           broken ? ", broken" : "");
    return RM_EXIT_OK;
}

/* The move's progress lines, as it goes (stdout, flushed). */
static void xen_step(void *opaque, enum rm_xen_offline_step step,
                     const struct rm_xen_offline_result *res)
{
    const struct rm_xen_offline_req *rq = opaque;
    const struct rm_xen_pv_offline_result *pv = &res->pv_res;
    unsigned long long mfn = rq->mfn;
    char what[40];

    switch (step) {
    case RM_XEN_OFFLINE_PV_MOVING:
        printf("machine frame %#llx of domain %u%s: moving the PV guest off "
               "it in place (suspended)\n", mfn, rq->domid,
               res->was_pending ? " is offline pending" : "");
        break;
    case RM_XEN_OFFLINE_PV_MOVED:
        if (pv->level)
            snprintf(what, sizeof(what), "an L%u page table%s", pv->level,
                     pv->pinned ? ", pinned" : "");
        else
            snprintf(what, sizeof(what), "data");
        printf("pfn %#" PRIx64 " of domain %u (%s) moved from machine frame "
               "%#llx to %#" PRIx64 "; %u page-table entries re-pointed (%u "
               "tables searched); the guest runs on\n", pv->pfn, rq->domid,
               what, mfn, pv->new_mfn, pv->ptes, pv->tables_scanned);
        break;
    case RM_XEN_OFFLINE_HVM_MOVING:
        printf("machine frame %#llx of domain %u is offline pending; moving "
               "the guest\n", mfn, rq->domid);
        break;
    }
    fflush(stdout);
}

/* What became of the frame, once moved (or not in use). */
static int xen_done(const struct rm_xen_offline_req *rq,
                    const struct rm_xen_offline_result *res)
{
    unsigned long long mfn = rq->mfn;

    switch (res->outcome) {
    case RM_XEN_OFFLINE_WAS_OFFLINE:
        printf("machine frame %#llx is offline already\n", mfn);
        return RM_EXIT_OK;
    case RM_XEN_OFFLINE_WAS_FREE:
        printf("machine frame %#llx is offline (it was not in use)\n", mfn);
        return RM_EXIT_OK;
    default:
        break;
    }
    if (res->pv) {
        printf("machine frame %#llx is offline\n", mfn);
        return RM_EXIT_OK;
    }
    printf("domain %u moved to domain %u (%" PRIu64 " pages, %u pre-copy "
           "iterations); machine frame %#llx is %s\n", rq->domid,
           res->migrate.new_domid, res->migrate.pages,
           res->migrate.iterations, mfn,
           res->frame == RM_XEN_FRAME_OFFLINE ? "offline" :
           res->frame == RM_XEN_FRAME_PENDING ? "still offline pending" :
           "in an unexpected state");
    return res->frame == RM_XEN_FRAME_OFFLINE ? RM_EXIT_OK : RM_EXIT_FAIL;
}

int cmd_offline_page_xen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "config", required_argument, NULL, 'C' },
        { "status", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_offline_req rq = { .step = xen_step };
    struct rm_xen_offline_result res = { 0 };
    struct rm_xen_host *host = NULL;
    struct rm_error err = { 0 };
    unsigned long long mfn;
    bool query = false;
    int c, rc, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'C': rq.config = optarg; break;
        case 's': query = true; break;
        case 'h': xen_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("offline-page", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (query && argc - optind == 1) {
        if (cli_frame("offline-page", "MFN", argv[optind], &mfn))
            return RM_EXIT_USAGE;
        ret = xen_status(&host, mfn);
        rm_xen_host_close(host);
        return ret;
    }
    if (argc - optind != 2)
        return cli_usage_error("offline-page", "expected DOMAIN and MFN");
    if (cli_frame("offline-page", "MFN", argv[optind + 1], &mfn))
        return RM_EXIT_USAGE;
    rq.domain = argv[optind];
    rq.mfn = mfn;
    rq.opaque = &rq;
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_domid(host, rq.domain, &rq.domid, &err);
    if (!rc)
        rc = rm_xen_offline_page(host, &rq, &res, &err);
    if (!rc) {
        ret = xen_done(&rq, &res);
    } else if (res.outcome == RM_XEN_OFFLINE_NEEDS_CONFIG) {
        ret = cli_usage_error("offline-page", "--config CFG (the guest's xl "
                              "config, for the new domain) is required for "
                              "an HVM/PVH guest");
    } else {
        ret = cli_fail("offline-page", "%s", rm_error_str(&err));
        if (res.outcome == RM_XEN_OFFLINE_NOT_ITS && res.owner > 0)
            fprintf(stderr, "remus offline-page: its owner is domain %d\n",
                    res.owner);
    }
    rm_xen_host_close(host);
    return ret;
}
