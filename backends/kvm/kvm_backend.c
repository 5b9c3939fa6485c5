/* SPDX-License-Identifier: MIT */
/* The KVM micro-VMM as a backend (see kvm_backend.h). */
#define RM_LOG_PREFIX "kvm"
#include "backends/kvm/kvm_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/kvm_disks.h"
#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmctl.h"
#include "common/io.h"
#include "common/log.h"
#include "netbuf/netbuf.h"

struct kvm_backend {
    struct rm_backend b;
    struct rm_vm *vm;             /* the VM (a replica: once taken over) */
    struct rm_kvm_restore_arg rarg;
    int release_fd;
    bool borrowed;                /* protect_again: the VM is another
                                     backend's: close leaves it running */
};

static struct kvm_backend *kb(struct rm_backend *b)
{
    return (struct kvm_backend *)b;
}

static const struct rm_save_ops *kvm_save_ops(struct rm_backend *b,
                                              void **arg)
{
    *arg = kb(b)->vm;
    return &rm_kvm_save_ops;
}

static int kvm_pause(struct rm_backend *b)
{
    return rm_vm_pause(kb(b)->vm);
}

static uint64_t kvm_digest(struct rm_backend *b)
{
    return rm_kvm_mem_digest(kb(b)->vm);
}

static const struct rm_restore_ops *kvm_restore_ops(struct rm_backend *b,
                                                    void **arg)
{
    *arg = &kb(b)->rarg;
    return &rm_kvm_restore_ops;
}

static uint64_t kvm_replica_digest(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);

    return k->rarg.replica ? rm_kvm_mem_digest(k->rarg.replica) : 0;
}

static int kvm_activate(struct rm_backend *b, struct rm_error *err)
{
    struct kvm_backend *k = kb(b);
    int rc;

    if (!k->rarg.vm)
        return rm_error_set(err, -ENOENT, "there is no replica to resume");
    rc = rm_disk_replica_usable(b->disk_replica, b->nr_replica_disks, err);
    if (rc)
        return rc;
    rc = rm_vm_start(k->rarg.vm, err);
    if (rc)
        return rc;
    k->vm = k->rarg.vm;
    k->rarg.vm = NULL;
    rm_vm_announce(k->vm);
    return 0;
}

static int kvm_wait(struct rm_backend *b, int ms)
{
    struct kvm_backend *k = kb(b);

    if (!k->vm)
        return 0;
    return rm_vm_wait(k->vm, ms, NULL) == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void kvm_request_stop(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);

    if (k->vm)
        rm_vm_request_stop(k->vm);
}

static enum rm_backend_end kvm_end(struct rm_backend *b, int64_t *code,
                                   char *why, size_t len)
{
    struct kvm_backend *k = kb(b);

    *code = 0;
    if (!k->vm || rm_vm_wait(k->vm, 0, code) == -ETIMEDOUT) {
        snprintf(why, len, "running");
        return RM_BACKEND_RUNNING;
    }
    snprintf(why, len, "%s", rm_vm_end_reason(k->vm));
    switch (rm_vm_end_kind(k->vm)) {
    case RM_VM_HALTED: return RM_BACKEND_HALTED;
    case RM_VM_STOPPED: return RM_BACKEND_STOPPED;
    case RM_VM_FAILED: return RM_BACKEND_FAILED;
    default: return RM_BACKEND_RUNNING;
    }
}

static int netbuf_out(void *nb, const void *frame, size_t len);
static struct kvm_backend *kvm_new(void);
static void kvm_close(struct rm_backend *b);

/* A backend borrowing @b's VM, its output through a queue when @netbuf. */
static int kvm_protect_again(struct rm_backend *b, bool netbuf,
                             struct rm_backend **out, struct rm_error *err)
{
    struct kvm_backend *k = kb(b), *p;
    int rc;

    *out = NULL;
    if (!k->vm)
        return rm_error_set(err, -ENOENT, "'%s' does not run here",
                            b->vm_name);
    p = kvm_new();
    if (!p)
        return rm_error_set(err, -ENOMEM, "out of memory");
    p->borrowed = true;
    p->vm = k->vm;
    snprintf(p->b.vm_name, sizeof(p->b.vm_name), "%s", b->vm_name);
    p->b.guest_bytes = rm_vm_mem_bytes(k->vm);
    p->b.nr_vcpus = rm_vm_nr_vcpus(k->vm);
    if (netbuf) {
        struct rm_netbuf_queue_cfg nq;

        memset(&nq, 0, sizeof(nq));
        nq.sink = rm_vm_tap_write;
        nq.sink_opaque = k->vm;
        p->b.netbuf = rm_netbuf_queue_new(&nq, err);
        if (!p->b.netbuf) {
            free(p);
            return err->code ? err->code : -ENOMEM;
        }
        rm_vm_set_net_out(k->vm, netbuf_out, p->b.netbuf);
    }
    rc = rm_kvm_disks_protect(k->vm, false, 0, &p->b, err);
    if (rc) {
        kvm_close(&p->b);
        return rc;
    }
    *out = &p->b;
    return 0;
}

static bool kvm_control(struct rm_backend *b, const char *req, int fd,
                        bool protecting, char *reply, size_t len)
{
    struct kvm_backend *k = kb(b);

    if (!k->vm)
        return false;
    return rm_vmctl_serve(k->vm, req, fd, protecting, reply, len);
}

static void kvm_close(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);

    rm_kvm_disks_unprotect(k->vm, k->b.disklog);
    rm_disk_replica_close(k->b.disk_replica);
    if (k->borrowed) {
        /* Its output goes straight out again, then the queue goes. */
        if (k->b.netbuf)
            rm_vm_set_net_out(k->vm, rm_vm_tap_write, k->vm);
        rm_netbuf_free(k->b.netbuf);
        free(k);
        return;
    }
    /* The VM first: its vCPUs write into the netbuf. */
    rm_vm_destroy(k->vm);
    rm_vm_destroy(k->rarg.vm);
    rm_netbuf_free(k->b.netbuf);
    free(k);
}

static const struct rm_backend_ops kvm_ops = {
    .save_ops = kvm_save_ops,
    .pause = kvm_pause,
    .mem_digest = kvm_digest,
    .restore_ops = kvm_restore_ops,
    .replica_digest = kvm_replica_digest,
    .activate = kvm_activate,
    .wait = kvm_wait,
    .request_stop = kvm_request_stop,
    .end = kvm_end,
    .protect_again = kvm_protect_again,
    .control = kvm_control,
    .close = kvm_close,
};

static struct kvm_backend *kvm_new(void)
{
    struct kvm_backend *k = calloc(1, sizeof(*k));

    if (!k)
        return NULL;
    k->b.ops = &kvm_ops;
    k->b.kind = "kvm";
    k->b.in_process = true;
    k->release_fd = -1;
    return k;
}

static int netbuf_out(void *nb, const void *frame, size_t len)
{
    return rm_netbuf_output(nb, frame, len);
}

/* --release-log: one line per frame let out by an acknowledgement. */
static void log_release(void *opaque, const void *frame, size_t len,
                        uint64_t produced, uint64_t released_by)
{
    int fd = *(int *)opaque;
    char line[96];
    int n;

    (void)frame;
    if (!produced)
        return;                 /* passthrough: not held */
    n = snprintf(line, sizeof(line), "release %" PRIu64 " %" PRIu64 " %"
                 PRIu64 " %zu\n", rm_now_ns(), produced, released_by, len);
    if (write(fd, line, (size_t)n) < 0)
        (void)0;
}

int rm_kvm_backend_protect(const struct rm_vm_config *cfg,
                           const struct rm_kvm_protect_opts *o,
                           struct rm_backend **out, struct rm_error *err)
{
    struct kvm_backend *k;
    int rc;

    *out = NULL;
    k = kvm_new();
    if (!k)
        return rm_error_set(err, -ENOMEM, "out of memory");
    snprintf(k->b.vm_name, sizeof(k->b.vm_name), "%s", cfg->name);
    k->b.guest_bytes = cfg->mem_bytes;
    k->b.nr_vcpus = cfg->nr_vcpus;
    k->release_fd = o->release_log_fd;
    rc = rm_vm_create(cfg, &k->vm, err);
    if (!rc)
        rc = rm_kvm_disks_protect(k->vm, o->no_disk,
                                  o->disk_buffer_bytes, &k->b, err);
    if (rc)
        goto fail;
    if (!o->no_netbuf) {
        struct rm_netbuf_queue_cfg nq;

        memset(&nq, 0, sizeof(nq));
        nq.max_bytes = o->netbuf_max_bytes;
        nq.sink = rm_vm_tap_write;
        nq.sink_opaque = k->vm;
        if (k->release_fd >= 0) {
            nq.on_release = log_release;
            nq.on_release_opaque = &k->release_fd;
        }
        k->b.netbuf = rm_netbuf_queue_new(&nq, err);
        if (!k->b.netbuf) {
            rc = err->code ? err->code : -ENOMEM;
            goto fail;
        }
        rm_vm_set_net_out(k->vm, netbuf_out, k->b.netbuf);
    }
    rc = rm_vm_start(k->vm, err);
    if (rc)
        goto fail;
    *out = &k->b;
    return 0;
fail:
    kvm_close(&k->b);
    return rc;
}

int rm_kvm_backend_replica(const struct rm_kvm_replica_opts *o,
                           struct rm_backend **out, struct rm_error *err)
{
    struct kvm_backend *k;

    *out = NULL;
    k = kvm_new();
    if (!k)
        return rm_error_set(err, -ENOMEM, "out of memory");
    k->rarg.cfg = o->cfg;
    k->rarg.max_mem_bytes = o->max_mem_bytes;
    k->rarg.expect = o->expect;
    if (o->nr_disks > 1) {
        free(k);
        return rm_error_set(err, -EINVAL, "--disk given %u times: the "
                            "micro-VMM's guest has one disk", o->nr_disks);
    }
    if (o->nr_disks) {
        int rc = rm_disk_replica_open_images(o->disk_paths, o->nr_disks,
                                      o->disk_sync, &k->b.disk_replica, err);

        if (rc) {
            free(k);
            return rc;
        }
        k->b.nr_replica_disks = o->nr_disks;
        /* The replica VM runs on its own image once it takes over. */
        k->rarg.cfg.disk = NULL;
        k->rarg.cfg.disk_override = o->disk_paths[0];
    }
    if (o->cfg.name)
        snprintf(k->b.vm_name, sizeof(k->b.vm_name), "%s", o->cfg.name);
    *out = &k->b;
    return 0;
}

struct rm_vm *rm_kvm_backend_vm(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);

    return k->vm ? k->vm : k->rarg.vm;
}
