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
#include "netbuf/netbuf_colo.h"

struct kvm_backend {
    struct rm_backend b;
    struct rm_vm *vm;             /* the VM (a replica: once taken over) */
    struct rm_kvm_restore_arg rarg;
    int release_fd;
    bool borrowed;                /* protect_again: the VM is another
                                     backend's: close leaves it running */
    uint64_t disk_buffer_bytes;   /* protected: as asked (protect_again) */
    /* COLO, replica role */
    bool colo_started;            /* the replica has run */
    bool test_colo_no_fold;       /* TESTS ONLY */
    uint64_t colo_overlay_bytes;  /* the replica's disk overlay's cap */
    unsigned long *colo_dirty;    /* colo_pause's bitmap */
    pthread_mutex_t replica_lock; /* rarg.replica_lock: the session's
                                     control thread's colo_pause and
                                     colo_written against the restore's
                                     end (which may destroy the replica) */
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
    if (k->colo_started) {
        /* COLO: it runs (or was paused for a checkpoint that never came)
         * from its own state; its network is its TAP from now on, its
         * disk its image with what it wrote since the checkpoint. */
        uint64_t sectors;

        rm_vm_pause(k->rarg.vm);
        if (k->test_colo_no_fold)
            LOG_WARN("COLO: TEST MODE: %" PRIu64 " sectors the replica "
                     "wrote since its checkpoint DROPPED",
                     rm_vm_disk_overlay_clear(k->rarg.vm));
        rc = rm_vm_disk_overlay_fold(k->rarg.vm, &sectors, err);
        if (rc)
            return rc;
        /* Said even when 0: the drill reads it (a takeover with nothing
         * of the replica's to fold has not tested the fold). */
        LOG_INFO("COLO: %" PRIu64 " sectors the replica wrote since its "
                 "checkpoint written into its image", sectors);
        rm_vm_set_net_in(k->rarg.vm, NULL);
        rm_vm_set_net_out(k->rarg.vm, NULL, NULL);
        rm_vm_logdirty(k->rarg.vm, false);
        rc = rm_vm_resume(k->rarg.vm);
        if (rc)
            return rm_error_set(err, rc, "resuming the replica");
    } else {
        rc = rm_vm_start(k->rarg.vm, err);
    }
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

/* A backend borrowing @b's VM, its output as @ao->output says. */
static int kvm_protect_again(struct rm_backend *b,
                             const struct rm_again_opts *ao,
                             struct rm_backend **out, struct rm_error *err)
{
    struct kvm_backend *k = kb(b), *p;
    enum rm_again_output output = ao->output;
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
    if (output == RM_AGAIN_BUFFERED) {
        struct rm_netbuf_queue_cfg nq;

        memset(&nq, 0, sizeof(nq));
        nq.max_bytes = ao->netbuf_max_bytes;
        nq.sink = rm_vm_tap_write;
        nq.sink_opaque = k->vm;
        p->b.netbuf = rm_netbuf_queue_new(&nq, err);
    } else if (output == RM_AGAIN_COLO) {
        struct rm_compare_cfg cc;

        memset(&cc, 0, sizeof(cc));   /* 0: the comparator's defaults */
        cc.timeout_ns = (uint64_t)ao->compare_timeout_ms * 1000000;
        cc.max_bytes = ao->netbuf_max_bytes;
        cc.sink = rm_vm_tap_write;
        cc.sink_opaque = k->vm;
        cc.start_held = true;         /* no replica runs before checkpoint 1 */
        p->b.netbuf = rm_netbuf_colo_new(&cc, err);
    }
    if (output != RM_AGAIN_DIRECT) {
        if (!p->b.netbuf) {
            free(p);
            return err->code ? err->code : -ENOMEM;
        }
        rm_vm_set_net_out(k->vm, netbuf_out, p->b.netbuf);
    }
    rc = rm_kvm_disks_protect(k->vm, ao->no_disk, k->disk_buffer_bytes,
                              &p->b, err);
    if (rc) {
        kvm_close(&p->b);
        return rc;
    }
    *out = &p->b;
    return 0;
}

static int kvm_colo_mirror(struct rm_backend *b, rm_colo_mirror_fn fn,
                           void *opaque)
{
    struct kvm_backend *k = kb(b);
    bool was_paused;

    if (!k->vm)
        return -ENOENT;
    if (fn) {                   /* the save's suspension: it is paused */
        rm_vm_set_net_in_tap(k->vm, fn, opaque);
        return 0;
    }
    /* Stopping: the VM may run (protection ended); vCPU 0 reads the tap
     * unlocked, so it is changed with the VM paused. */
    was_paused = rm_vm_is_paused(k->vm);
    if (!was_paused)
        rm_vm_pause(k->vm);
    rm_vm_set_net_in_tap(k->vm, NULL, NULL);
    if (!was_paused)
        rm_vm_resume(k->vm);
    return 0;
}

static int kvm_colo_run(struct rm_backend *b, const struct rm_colo_net *net,
                        struct rm_error *err)
{
    struct kvm_backend *k = kb(b);
    struct rm_vm *vm = k->rarg.replica;
    struct rm_vm_net_in in;
    int rc;

    if (!vm)
        return rm_error_set(err, -ENOENT, "no replica to run");
    rc = rm_kvm_restore_apply_state(&k->rarg, err);
    if (rc)
        return rc;
    /* Its disk writes from now on: an overlay over the checkpoint's image
     * (what it wrote before this checkpoint is gone with its state); half
     * of it full asks for a checkpoint. */
    rc = rm_vm_disk_overlay_start(vm, k->colo_overlay_bytes, net->ask,
                                  net->opaque, err);
    if (rc)
        return rc;
    k->rarg.colo_ran = true;
    if (k->colo_started)
        return rm_vm_resume(vm) ? rm_error_set(err, -EIO, "resuming the "
                                               "replica failed") : 0;
    in = (struct rm_vm_net_in){ .opaque = net->opaque, .poll_fd = net->in_fd,
                                .read = net->in_read };
    rm_vm_set_net_in(vm, &in);
    rm_vm_set_net_out(vm, net->out, net->opaque);
    k->colo_dirty = calloc(RM_BITMAP_LONGS(rm_vm_mem_bytes(vm) >> RM_PAGE_SHIFT),
                           sizeof(long));
    if (!k->colo_dirty)
        return rm_error_set(err, -ENOMEM, "out of memory");
    rc = rm_vm_logdirty(vm, true);
    if (rc)
        return rm_error_set(err, rc, "the replica's dirty log");
    rc = rm_vm_start(vm, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&k->replica_lock);   /* colo_pause reads it */
    k->colo_started = true;
    pthread_mutex_unlock(&k->replica_lock);
    return 0;
}

static int kvm_colo_pause(struct rm_backend *b, const unsigned long **dirty,
                          uint64_t *nr_pfns, struct rm_error *err)
{
    struct kvm_backend *k = kb(b);
    struct rm_vm *vm;
    uint64_t nr;
    int rc = 0;

    pthread_mutex_lock(&k->replica_lock);
    /* During the restore, the replica; after it, the VM it handed over
     * (a restore that failed destroyed it: then nothing runs). */
    vm = k->rarg.replica ? k->rarg.replica : k->rarg.vm;
    if (!vm || !k->colo_started) {
        rc = rm_error_set(err, -ENOENT, "the replica does not run");
        goto out;
    }
    rc = rm_vm_pause(vm);
    if (rc) {
        rm_error_set(err, rc, "pausing the replica");
        goto out;
    }
    nr = rm_vm_mem_bytes(vm) >> RM_PAGE_SHIFT;
    memset(k->colo_dirty, 0, RM_BITMAP_LONGS(nr) * sizeof(long));
    rc = rm_vm_harvest_dirty(vm, k->colo_dirty);
    if (rc) {
        rm_error_set(err, rc, "the replica's dirty log");
        goto out;
    }
    *dirty = k->colo_dirty;
    *nr_pfns = nr;
out:
    pthread_mutex_unlock(&k->replica_lock);
    return rc;
}

static uint64_t kvm_colo_written(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);
    uint64_t sectors = 0;

    pthread_mutex_lock(&k->replica_lock);
    if (k->rarg.replica)
        sectors = rm_vm_disk_overlay_sectors(k->rarg.replica);
    pthread_mutex_unlock(&k->replica_lock);
    return sectors;
}

static void kvm_colo_park(struct rm_backend *b)
{
    struct kvm_backend *k = kb(b);

    /* Its state, disk writes included, is the checkpoint's now. */
    if (k->rarg.replica)
        rm_vm_disk_overlay_clear(k->rarg.replica);
    k->rarg.colo_ran = false;
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
    free(k->colo_dirty);
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
    .colo_mirror = kvm_colo_mirror,
    .colo_run = kvm_colo_run,
    .colo_pause = kvm_colo_pause,
    .colo_park = kvm_colo_park,
    .colo_written = kvm_colo_written,
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
    pthread_mutex_init(&k->replica_lock, NULL);
    k->rarg.replica_lock = &k->replica_lock;
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
    k->disk_buffer_bytes = o->disk_buffer_bytes;
    rc = rm_vm_create(cfg, &k->vm, err);
    if (!rc)
        rc = rm_kvm_disks_protect(k->vm, o->no_disk,
                                  o->disk_buffer_bytes, &k->b, err);
    if (rc)
        goto fail;
    if (o->colo) {
        struct rm_compare_cfg cc;

        memset(&cc, 0, sizeof(cc));
        cc.timeout_ns = (uint64_t)o->compare_timeout_ms * 1000000;
        cc.max_bytes = o->netbuf_max_bytes;
        cc.sink = rm_vm_tap_write;
        cc.sink_opaque = k->vm;
        cc.start_held = true;         /* no replica runs before checkpoint 1 */
        k->b.netbuf = rm_netbuf_colo_new(&cc, err);
        if (!k->b.netbuf) {
            rc = err->code ? err->code : -ENOMEM;
            goto fail;
        }
        rm_vm_set_net_out(k->vm, netbuf_out, k->b.netbuf);
    } else if (!o->no_netbuf) {
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
    k->test_colo_no_fold = o->test_colo_no_fold;
    k->colo_overlay_bytes = o->colo_overlay_bytes;
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
