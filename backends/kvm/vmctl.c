/* SPDX-License-Identifier: MIT */
/* The micro-VMM's own control-socket requests (see vmctl.h). */
#define RM_LOG_PREFIX "vmctl"
#include "backends/kvm/vmctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/kvm_disks.h"
#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/offline.h"
#include "common/ctlsock.h"
#include "common/io.h"
#include "common/log.h"

/*
 * "frame gfn G" / "frame pfn P": where guest frame G lives on the host, or
 * which guest frames host frame P backs: "ok GFN PFN" per frame.
 * "offline-page gfn G [fault-map|fault-verify]" / "offline-page pfn P
 * [...]": move those guest frames off their host page: "ok GFN OLD NEW"
 * per frame moved.  (The fault words are test hooks for the undo path.)
 */
static void serve_frames(struct rm_vm *vm, const char *req, char *reply,
                         size_t len)
{
    enum rm_kvm_offline_fault fault = RM_OFFLINE_FAULT_NONE;
    struct rm_error err = { 0 };
    char verb[16], kind[8], extra[16] = "";
    unsigned long long v;
    uint64_t gfns[16];
    size_t off;
    int n, i, rc;

    if (sscanf(req, "%15s %7s %lli %15s", verb, kind, &v, extra) < 3 ||
        (strcmp(kind, "gfn") && strcmp(kind, "pfn"))) {
        snprintf(reply, len, "error bad request");
        return;
    }
    if (!strcmp(extra, "fault-map"))
        fault = RM_OFFLINE_FAULT_MAP;
    else if (!strcmp(extra, "fault-verify"))
        fault = RM_OFFLINE_FAULT_VERIFY;
    if (!strcmp(kind, "gfn")) {
        uint64_t pfn;

        gfns[0] = v;
        rc = rm_kvm_gfn_to_host_pfn(vm, v, &pfn, &err);
        n = rc ? rc : 1;
    } else {
        n = rm_kvm_host_pfn_to_gfns(vm, v, gfns, 16, &err);
        if (n == 0 && strstr(req, " again")) {
            snprintf(reply, len, "ok");     /* all moved by now */
            return;
        }
        if (n == 0)
            n = rm_error_set(&err, -ENOENT, "host frame %#llx backs no "
                             "frame of this guest", v);
    }
    if (n < 0) {
        snprintf(reply, len, "error %s\n", rm_error_str(&err));
        return;
    }
    off = (size_t)snprintf(reply, len, "ok");
    for (i = 0; i < n && off < len; i++) {
        uint64_t pfn = 0;

        if (!strcmp(verb, "frame")) {
            rm_kvm_gfn_to_host_pfn(vm, gfns[i], &pfn, &err);
            off += (size_t)snprintf(reply + off, len - off, " %#" PRIx64
                                    " %#" PRIx64, gfns[i], pfn);
        } else {
            struct rm_kvm_offline_result r;

            rc = rm_kvm_offline_gfn(vm, gfns[i], fault, &r, &err);
            if (rc) {
                snprintf(reply, len, "error %s (%d of %d frames moved "
                         "before it)\n", rm_error_str(&err), i, n);
                return;
            }
            off += (size_t)snprintf(reply + off, len - off, " %#" PRIx64
                                    " %#" PRIx64 " %#" PRIx64, r.gfn,
                                    r.old_pfn, r.new_pfn);
        }
    }
    if (off < len)
        snprintf(reply + off, len - off, "\n");
}

/* "save live|nonlive [continue]" into @fd. */
static void serve_save(struct rm_vm *vm, const char *req, int fd,
                       char *reply, size_t len)
{
    struct rm_save_ctx sctx;
    struct rm_error err = { 0 };
    struct rm_sink sink;
    bool live = strstr(req, "save live") != NULL;
    bool keep = strstr(req, "continue") != NULL;
    int rc;

    memset(&sctx, 0, sizeof(sctx));
    sctx.ops = &rm_kvm_save_ops;
    sctx.backend_arg = vm;
    sctx.err = &err;
    rm_save_params_default(&sctx.params,
                           live ? RM_SAVE_LIVE : RM_SAVE_NONLIVE);
    sctx.params.resume_after = keep;
    rm_sink_init_fd(&sink, fd);
    /* The disk goes into the file too: a full copy, and (live) the writes
     * made while it is read. */
    rc = rm_kvm_disks_save(vm, &sctx.disks, &err);
    if (!rc)
        rc = rm_save(&sctx, &sink);
    rm_kvm_disks_unprotect(vm, sctx.disks);
    /* On disk before the VM may stop (a pipe or tty has nothing to
     * sync). */
    if (!rc && fsync(fd) && errno != EINVAL && errno != EROFS)
        rc = rm_error_set(&err, -errno, "the save file could not be "
                          "synced to disk: %s", strerror(errno));
    if (rc) {
        snprintf(reply, len, "error %s", rm_error_str(&err));
    } else {
        snprintf(reply, len, "ok %" PRIu64 " %" PRIu64 " %u",
                 sink.offset, sctx.pages_sent, sctx.iterations);
        LOG_INFO("saved (%s): %" PRIu64 " bytes, %" PRIu64 " pages, %u "
                 "iterations", live ? "live" : "non-live", sink.offset,
                 sctx.pages_sent, sctx.iterations);
        if (!keep)
            rm_vm_request_stop(vm);
    }
}

bool rm_vmctl_serve(struct rm_vm *vm, const char *req, int fd,
                    bool protecting, char *reply, size_t len)
{
    if (!strncmp(req, "frame ", 6)) {
        serve_frames(vm, req, reply, len);
    } else if (!strncmp(req, "offline-page ", 13)) {
        if (protecting)
            snprintf(reply, len, "error the VM is being protected: `remus "
                     "reprotect --stop` first");
        else
            serve_frames(vm, req, reply, len);
    } else if (!strncmp(req, "save ", 5)) {
        if (fd < 0)
            snprintf(reply, len, "error 'save' needs a file descriptor");
        else if (protecting)
            snprintf(reply, len, "error the VM is being protected: `remus "
                     "reprotect --stop` first");
        else
            serve_save(vm, req, fd, reply, len);
    } else {
        return false;
    }
    return true;
}

/* A VM that no protection holds (remus run, remus restore). */
struct rm_vmctl {
    struct rm_vm *vm;
    struct rm_ctlsock *sock;
};

static void serve(void *opaque, const char *req, int fd, char *reply,
                  size_t len)
{
    struct rm_vmctl *c = opaque;

    if (!rm_vmctl_serve(c->vm, req, fd, false, reply, len))
        snprintf(reply, len, "error bad request (expected 'save "
                 "live|nonlive' and a file descriptor, 'frame ...' or "
                 "'offline-page ...'; this VM is not protected)");
}

static const struct rm_ctlsock_ops vmctl_ops = { .serve = serve };

struct rm_vmctl *rm_vmctl_start(struct rm_vm *vm, const char *name,
                                struct rm_error *err)
{
    struct rm_vmctl *c = calloc(1, sizeof(*c));

    if (!c) {
        rm_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    c->vm = vm;
    c->sock = rm_ctlsock_start(name, &vmctl_ops, c, err);
    if (!c->sock) {
        free(c);
        return NULL;
    }
    return c;
}

void rm_vmctl_stop(struct rm_vmctl *c)
{
    if (!c)
        return;
    rm_ctlsock_stop(c->sock);
    free(c);
}

int rm_vmctl_save(const char *name, bool live, bool keep_running, int fd,
                  char *reply, size_t reply_len, struct rm_error *err)
{
    char req[64];

    snprintf(req, sizeof(req), "save %s%s", live ? "live" : "nonlive",
             keep_running ? " continue" : "");
    return rm_ctlsock_request(name, req, fd, reply, reply_len, err);
}
