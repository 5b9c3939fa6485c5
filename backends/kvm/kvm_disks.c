/* SPDX-License-Identifier: MIT */
/* The micro-VMM's disk in a protection (see kvm_disks.h). */
#define RM_LOG_PREFIX "kvm-disk"
#include "backends/kvm/kvm_disks.h"

#include <errno.h>
#include <inttypes.h>

#include "common/log.h"

static int obs_write(void *opaque, uint32_t disk, uint64_t off,
                     const void *data, uint32_t len, bool fua)
{
    struct rm_error e = { 0 };
    int rc = rm_disklog_write(opaque, disk, off, data, len, fua, &e);

    if (rc)
        LOG_ERR("disk %u: the write at %" PRIu64 " (%u bytes) cannot be "
                "logged: %s", disk, off, len, rm_error_str(&e));
    return rc;
}

static int obs_discard(void *opaque, uint32_t disk, uint64_t off,
                       uint64_t len)
{
    struct rm_error e = { 0 };
    int rc = rm_disklog_discard(opaque, disk, off, len, &e);

    if (rc)
        LOG_ERR("disk %u: the discard at %" PRIu64 " cannot be logged: %s",
                disk, off, rm_error_str(&e));
    return rc;
}

static int obs_flush(void *opaque, uint32_t disk)
{
    struct rm_error e = { 0 };
    int rc = rm_disklog_flush(opaque, disk, &e);

    if (rc)
        LOG_ERR("disk %u: the flush cannot be logged: %s", disk,
                rm_error_str(&e));
    return rc;
}

/* A log of @vm's disk (it has one), its writes observed from now on. */
static int log_disk(struct rm_vm *vm, uint64_t max_unacked_bytes,
                    struct rm_disklog **out, struct rm_error *err)
{
    struct rm_disklog_params params = { .max_unacked_bytes =
                                            max_unacked_bytes };
    struct rm_vm_disk_observer obs = {
        .write = obs_write, .discard = obs_discard, .flush = obs_flush,
    };
    struct rm_disklog *log = NULL;
    int rc;

    rc = rm_disklog_open(&log, &params, err);
    if (!rc)
        rc = rm_disklog_add_disk(log, 0, rm_vm_disk_fd(vm),
                                 rm_vm_disk_size(vm), err);
    if (rc) {
        rm_disklog_close(log);
        return rc;
    }
    obs.opaque = log;
    rm_vm_set_disk_observer(vm, &obs);
    *out = log;
    return 0;
}

int rm_kvm_disks_protect(struct rm_vm *vm, bool unreplicated,
                         uint64_t max_unacked_bytes, struct rm_backend *b,
                         struct rm_error *err)
{
    int rc;

    b->disklog = NULL;
    if (rm_vm_disk_fd(vm) < 0)
        return 0;
    if (unreplicated) {
        LOG_WARN("UNSAFE (-F -d): the disk %s is NOT replicated: after a "
                 "failover the secondary runs on whatever its own image "
                 "holds", rm_vm_disk_path(vm));
        b->unreplicated[0].id = 0;
        b->unreplicated[0].size = rm_vm_disk_size(vm);
        b->nr_unreplicated = 1;
        return 0;
    }
    rc = log_disk(vm, max_unacked_bytes, &b->disklog, err);
    if (!rc)
        LOG_INFO("disk %s (%" PRIu64 " MiB) replicated at each checkpoint",
                 rm_vm_disk_path(vm), rm_vm_disk_size(vm) >> 20);
    return rc;
}

int rm_kvm_disks_save(struct rm_vm *vm, struct rm_disklog **out,
                      struct rm_error *err)
{
    struct rm_disklog *log = NULL;
    int rc;

    *out = NULL;
    if (rm_vm_disk_fd(vm) < 0)
        return 0;
    /* The save engine starts the logging and queues the full copy (a
     * plain save's send_disk_resync). */
    rc = log_disk(vm, 0, &log, err);
    if (!rc)
        *out = log;
    return rc;
}

void rm_kvm_disks_unprotect(struct rm_vm *vm, struct rm_disklog *log)
{
    if (!log)
        return;
    rm_disklog_stop(log);           /* a writer waiting for room goes on */
    rm_vm_set_disk_observer(vm, NULL);
    rm_disklog_close(log);
}
