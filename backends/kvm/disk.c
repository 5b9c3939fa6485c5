/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's block device (disk.h): opening the raw image, and the
 * RM_HC_DISK_* hypercalls.  Every call is synchronous and checked (disk
 * number, flags, alignment, length, range, the guest buffer) before it
 * touches the image; after the image did the work, the observer (the
 * disk log) sees it before the guest does.  Pages the VMM fills on a read
 * are marked dirty like received frames.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/disk.h"
#include "backends/kvm/disk_overlay.h"
#include "common/disklog.h"   /* RM_DISK_SECTOR, RM_DISK_IO_MAX only */
#include "common/io.h"
#include "common/log.h"

int disk_init(struct vm_disk *d)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    return rm_cond_init_monotonic(&d->ov_room);
}

int disk_open(struct vm_disk *d, const char *path, struct rm_error *err)
{
    struct stat st;
    uint64_t size;
    int fd, ro = 0;

    if (strlen(path) >= sizeof(d->path))
        return rm_error_set(err, -ENAMETOOLONG, "disk '%.64s...': path too "
                            "long", path);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        if (e == EROFS || e == EACCES || e == EPERM)
            return rm_error_set(err, -e, "disk '%s' cannot be opened "
                                "read-write (read-only?): %s", path,
                                strerror(e));
        return rm_error_set(err, -e, "cannot open disk '%s': %s", path,
                            strerror(e));
    }
    if (fstat(fd, &st) < 0) {
        int e = errno;

        close(fd);
        return rm_error_set(err, -e, "disk '%s': %s", path, strerror(e));
    }
    if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0 ||
            ioctl(fd, BLKROGET, &ro) < 0) {
            int e = errno;

            close(fd);
            return rm_error_set(err, -e, "disk '%s': cannot read the block "
                                "device's size: %s", path, strerror(e));
        }
        if (ro) {
            close(fd);
            return rm_error_set(err, -EROFS, "disk '%s' is a read-only "
                                "block device", path);
        }
    } else {
        close(fd);
        return rm_error_set(err, -EINVAL, "disk '%s' is neither a regular "
                            "file nor a block device", path);
    }
    if (size == 0 || size % RM_DISK_SECTOR) {
        close(fd);
        return rm_error_set(err, -EINVAL, "disk '%s': its size of %" PRIu64
                            " bytes is not a non-zero multiple of %u", path,
                            size, RM_DISK_SECTOR);
    }
    d->fd = fd;
    d->size = size;
    snprintf(d->path, sizeof(d->path), "%s", path);
    return 0;
}

void disk_close(struct vm_disk *d)
{
    rm_disk_overlay_free(d->ov);
    d->ov = NULL;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    pthread_cond_destroy(&d->ov_room);
    pthread_mutex_destroy(&d->lock);
}

/* ------------------------------------------------------------ the image */

static int image_sync(int fd)
{
    while (fdatasync(fd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Make [off, off + len) read as zeros: punch a hole, or write zeros where
 * the file system / device cannot. */
static int image_discard(int fd, uint64_t off, uint64_t len)
{
    uint8_t *zero;
    int rc = 0;

    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        return -errno;
    zero = calloc(1, len);
    if (!zero)
        return -ENOMEM;
    rc = rm_pio_all(fd, zero, len, off, true);
    free(zero);
    return rc;
}

/* ------------------------------------------------------------ hypercalls */

/* Check @io for @call; RM_HC_DISK_E* or 0. */
static int32_t check_io(struct rm_vm *vm, unsigned call,
                        const struct rm_hc_disk_io *io)
{
    const struct vm_disk *d = &vm->disk;
    uint32_t flags_ok = call == RM_HC_DISK_WRITE ? RM_HC_DISK_FUA : 0;

    if (io->disk != 0 || d->fd < 0)
        return RM_HC_DISK_ENODEV;
    if (io->flags & ~flags_ok)
        return RM_HC_DISK_EINVAL;
    if (call == RM_HC_DISK_FLUSH)
        return 0;
    if (!io->len || io->len > RM_DISK_IO_MAX || io->len % RM_DISK_SECTOR ||
        io->offset % RM_DISK_SECTOR)
        return RM_HC_DISK_EINVAL;
    if (io->offset > d->size || io->len > d->size - io->offset)
        return RM_HC_DISK_ERANGE;
    if (call != RM_HC_DISK_DISCARD && !gpa_ok(vm, io->data, io->len))
        return RM_HC_DISK_EFAULT;
    return 0;
}

/* COLO's replica: the overlay is emptied (a checkpoint, a takeover's fold):
 * say what the writes that found it full waited, and wake them.  d->lock
 * held. */
static void overlay_emptied(struct vm_disk *d, const char *by)
{
    if (d->stats.overlay_waits > d->ov_waits_mark)
        LOG_INFO("disk '%s': %s emptied the COLO replica's overlay: %" PRIu64
                 " of its guest's writes had waited for it, %.1f ms in all",
                 d->path, by, d->stats.overlay_waits - d->ov_waits_mark,
                 (double)(d->stats.overlay_wait_ns - d->ov_wait_ns_mark) / 1e6);
    d->ov_waits_mark = d->stats.overlay_waits;
    d->ov_wait_ns_mark = d->stats.overlay_wait_ns;
    pthread_cond_broadcast(&d->ov_room);
}

/* COLO's replica: half of the overlay full asks for a checkpoint, once
 * until the next overlay_start.  d->lock held, d->ov set. */
static void overlay_maybe_ask(struct vm_disk *d)
{
    char why[128];

    if (d->ov_asked || !d->ov_ask ||
        rm_disk_overlay_bytes(d->ov) < d->ov_max / 2)
        return;
    d->ov_asked = true;
    snprintf(why, sizeof(why), "the replica's disk overlay holds %" PRIu64
             " of its %" PRIu64 " bytes", rm_disk_overlay_bytes(d->ov),
             d->ov_max);
    d->ov_ask(d->ov_ask_opaque, why);
}

/*
 * COLO's replica: store @io's write (@buf) or discard (NULL) in the
 * overlay.  One that finds it full (-ENOSPC) waits, d->lock dropped, for
 * the checkpoint that empties it, and stores then: the replica's guest
 * sees no error, as the primary's writes wait at the disk log's cap.
 * Never past a pause (that checkpoint pauses the replica first, and a
 * takeover pauses it before it folds) nor the VM's end: then -EAGAIN,
 * nothing stored, and the guest calls again (guest_abi.h).  d->lock
 * held, d->ov set; d->ov may be gone on return (folded meanwhile: then
 * -EAGAIN).
 */
static int overlay_store(struct rm_vm *vm, const struct rm_hc_disk_io *io,
                         const uint8_t *buf)
{
    struct vm_disk *d = &vm->disk;
    uint64_t t0 = 0;
    int rc;

    for (;;) {
        struct timespec until;

        rc = buf ? rm_disk_overlay_write(d->ov, io->offset, buf, io->len)
                 : rm_disk_overlay_discard(d->ov, io->offset, io->len);
        if (rc != -ENOSPC)
            break;
        if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
            rc = -EAGAIN;
            break;
        }
        if (!t0) {
            t0 = rm_now_ns();
            overlay_maybe_ask(d);   /* one write may jump past half */
            if (d->stats.overlay_waits++ == d->ov_waits_mark)
                LOG_INFO("disk '%s': the COLO replica's overlay is full (%"
                         PRIu64 " of its %" PRIu64 " bytes): its guest's "
                         "writes wait for the checkpoint that empties it",
                         d->path, rm_disk_overlay_bytes(d->ov), d->ov_max);
        }
        /* The pause's kick does not reach a condition wait: look again
         * every millisecond. */
        until = rm_deadline_ts(1000000);
        pthread_cond_timedwait(&d->ov_room, &d->lock, &until);
        if (!d->ov) {
            rc = -EAGAIN;
            break;
        }
    }
    if (t0)
        d->stats.overlay_wait_ns += rm_now_ns() - t0;
    return rc;
}

/* COLO's replica: the checked @io against the overlay over the image (no
 * observer: nothing of it is replicated).  d->lock held. */
static int32_t do_overlay_io(struct rm_vm *vm, unsigned call,
                             const struct rm_hc_disk_io *io)
{
    struct vm_disk *d = &vm->disk;
    uint8_t *buf = call == RM_HC_DISK_READ || call == RM_HC_DISK_WRITE
                   ? vm->mem + io->data : NULL;
    int rc = 0;

    switch (call) {
    case RM_HC_DISK_READ:
        rc = rm_pio_all(d->fd, buf, io->len, io->offset, false);
        if (!rc)
            rm_disk_overlay_read(d->ov, io->offset, buf, io->len);
        mark_vmm_dirty(vm, io->data, io->len);
        if (!rc) {
            d->stats.reads++;
            d->stats.read_bytes += io->len;
        }
        break;
    case RM_HC_DISK_WRITE:
        rc = overlay_store(vm, io, buf);
        if (!rc) {
            d->stats.writes++;
            d->stats.write_bytes += io->len;
        }
        break;
    case RM_HC_DISK_FLUSH:          /* the overlay is the replica's own */
        d->stats.flushes++;
        break;
    case RM_HC_DISK_DISCARD:
        rc = overlay_store(vm, io, NULL);
        if (!rc)
            d->stats.discards++;
        break;
    }
    if (rc == -EAGAIN)
        return RM_HC_DISK_EAGAIN;
    if (rc)
        LOG_WARN("disk '%s' (COLO replica's overlay, %" PRIu64 " bytes): "
                 "guest request %u at %" PRIu64 " (+%" PRIu64 ") failed: %s",
                 d->path, rm_disk_overlay_bytes(d->ov), call, io->offset,
                 io->len, strerror(-rc));
    overlay_maybe_ask(d);
    return rc ? RM_HC_DISK_EIO : 0;
}

/* Do the checked @io on the image, then tell the observer.  d->lock held. */
static int32_t do_io(struct rm_vm *vm, unsigned call,
                     const struct rm_hc_disk_io *io)
{
    struct vm_disk *d = &vm->disk;
    const struct rm_vm_disk_observer *o = &d->obs;
    /* READ and WRITE only: check_io checked their buffer. */
    uint8_t *buf = call == RM_HC_DISK_READ || call == RM_HC_DISK_WRITE
                   ? vm->mem + io->data : NULL;
    bool fua = io->flags & RM_HC_DISK_FUA;
    int rc = 0;

    switch (call) {
    case RM_HC_DISK_READ:
        rc = rm_pio_all(d->fd, buf, io->len, io->offset, false);
        mark_vmm_dirty(vm, io->data, io->len);
        if (!rc) {
            d->stats.reads++;
            d->stats.read_bytes += io->len;
        }
        return rc ? RM_HC_DISK_EIO : 0;
    case RM_HC_DISK_WRITE:
        rc = rm_pio_all(d->fd, buf, io->len, io->offset, true);
        if (!rc && fua)
            rc = image_sync(d->fd);
        if (!rc && o->write)
            rc = o->write(o->opaque, 0, io->offset, buf, (uint32_t)io->len,
                          fua);
        if (!rc) {
            d->stats.writes++;
            d->stats.write_bytes += io->len;
        }
        break;
    case RM_HC_DISK_FLUSH:
        rc = image_sync(d->fd);
        if (!rc && o->flush)
            rc = o->flush(o->opaque, 0);
        if (!rc)
            d->stats.flushes++;
        break;
    case RM_HC_DISK_DISCARD:
        rc = image_discard(d->fd, io->offset, io->len);
        if (!rc && o->discard)
            rc = o->discard(o->opaque, 0, io->offset, io->len);
        if (!rc)
            d->stats.discards++;
        break;
    }
    if (rc)
        LOG_WARN("disk '%s': guest request %u at %" PRIu64 " (+%" PRIu64
                 ") failed: %s", d->path, call, io->offset, io->len,
                 strerror(-rc));
    return rc ? RM_HC_DISK_EIO : 0;
}

static int hc_disk_info(struct rm_vm *vm, uint64_t gpa)
{
    struct rm_hc_disk_info in;

    if (!gpa_ok(vm, gpa, sizeof(in)))
        return -EFAULT;
    memcpy(&in, vm->mem + gpa, sizeof(in));
    if (in.disk == 0 && vm->disk.fd >= 0) {
        in.flags = RM_HC_DISK_PRESENT;
        in.size = vm->disk.size;
        in.sector = RM_DISK_SECTOR;
        in.max_io = RM_DISK_IO_MAX;
    } else {
        in.flags = 0;
        in.size = 0;
        in.sector = 0;
        in.max_io = 0;
    }
    memcpy(vm->mem + gpa, &in, sizeof(in));
    mark_vmm_dirty(vm, gpa, sizeof(in));
    return 0;
}

int hc_disk(struct rm_vm *vm, unsigned call, uint64_t gpa)
{
    struct vm_disk *d = &vm->disk;
    struct rm_hc_disk_io io;
    int32_t ret;

    if (call == RM_HC_DISK_INFO)
        return hc_disk_info(vm, gpa);
    if (!gpa_ok(vm, gpa, sizeof(io)))
        return -EFAULT;
    memcpy(&io, vm->mem + gpa, sizeof(io));
    pthread_mutex_lock(&d->lock);
    ret = check_io(vm, call, &io);
    if (!ret)
        ret = d->ov ? do_overlay_io(vm, call, &io) : do_io(vm, call, &io);
    else
        d->stats.errors++;
    if (ret == RM_HC_DISK_EIO)
        d->stats.errors++;
    pthread_mutex_unlock(&d->lock);
    memcpy(vm->mem + gpa + offsetof(struct rm_hc_disk_io, ret), &ret,
           sizeof(ret));
    mark_vmm_dirty(vm, gpa + offsetof(struct rm_hc_disk_io, ret),
                   sizeof(ret));
    return 0;
}

/* ------------------------------------------------------------ public */

void rm_vm_set_disk_observer(struct rm_vm *vm,
                             const struct rm_vm_disk_observer *obs)
{
    pthread_mutex_lock(&vm->disk.lock);
    if (obs)
        vm->disk.obs = *obs;
    else
        memset(&vm->disk.obs, 0, sizeof(vm->disk.obs));
    pthread_mutex_unlock(&vm->disk.lock);
}

int rm_vm_disk_fd(const struct rm_vm *vm) { return vm->disk.fd; }
uint64_t rm_vm_disk_size(const struct rm_vm *vm) { return vm->disk.size; }

const char *rm_vm_disk_path(const struct rm_vm *vm)
{
    return vm->disk.fd >= 0 ? vm->disk.path : NULL;
}

int rm_vm_disk_overlay_start(struct rm_vm *vm, uint64_t max_bytes,
                             void (*ask)(void *opaque, const char *why),
                             void *ask_opaque, struct rm_error *err)
{
    struct vm_disk *d = &vm->disk;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    if (d->fd < 0)
        goto out;
    d->ov_ask = ask;
    d->ov_ask_opaque = ask_opaque;
    d->ov_asked = false;
    overlay_emptied(d, "a checkpoint");
    if (d->ov) {
        rm_disk_overlay_clear(d->ov);
    } else if (!(d->ov = rm_disk_overlay_new(max_bytes))) {
        rc = rm_error_set(err, -ENOMEM, "disk '%s': no memory for the "
                          "replica's overlay", d->path);
    } else {
        d->ov_max = max_bytes ? max_bytes : 256ull << 20;
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

uint64_t rm_vm_disk_overlay_clear(struct rm_vm *vm)
{
    struct vm_disk *d = &vm->disk;
    uint64_t sectors = 0;

    pthread_mutex_lock(&d->lock);
    if (d->ov) {
        sectors = rm_disk_overlay_sectors(d->ov);
        rm_disk_overlay_clear(d->ov);
        overlay_emptied(d, "a checkpoint");
    }
    pthread_mutex_unlock(&d->lock);
    return sectors;
}

uint64_t rm_vm_disk_overlay_sectors(struct rm_vm *vm)
{
    struct vm_disk *d = &vm->disk;
    uint64_t sectors = 0;

    pthread_mutex_lock(&d->lock);
    if (d->ov)
        sectors = rm_disk_overlay_sectors(d->ov);
    pthread_mutex_unlock(&d->lock);
    return sectors;
}

int rm_vm_disk_overlay_fold(struct rm_vm *vm, uint64_t *sectors,
                            struct rm_error *err)
{
    struct vm_disk *d = &vm->disk;
    int rc = 0;

    *sectors = 0;
    pthread_mutex_lock(&d->lock);
    if (!d->ov)
        goto out;
    *sectors = rm_disk_overlay_sectors(d->ov);
    rc = rm_disk_overlay_fold(d->ov, d->fd);
    if (rc) {
        rm_error_set(err, rc, "disk '%s': writing the replica's overlay "
                     "into the image: %s", d->path, strerror(-rc));
        goto out;
    }
    rm_disk_overlay_free(d->ov);
    d->ov = NULL;
    overlay_emptied(d, "the takeover's fold");
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void rm_vm_disk_stats(struct rm_vm *vm, struct rm_vm_disk_stats *st)
{
    pthread_mutex_lock(&vm->disk.lock);
    *st = vm->disk.stats;
    pthread_mutex_unlock(&vm->disk.lock);
}
