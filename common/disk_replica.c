/* SPDX-License-Identifier: MIT */
/*
 * The secondary's replica images (common/disklog.h): open checks, the
 * checks of each disk record on arrival, the apply at commit, and the
 * dirty-state file around each apply.
 *
 * The dirty mark of an image is the file "<state_dir>/<image's base
 * name>.remus-dirty" (state_dir NULL: the image's own directory).  It is
 * written and fsync'd (with its directory) before the first byte of an
 * epoch reaches the image, and removed after the epoch is applied (and
 * fdatasync'd when asked).  A mark found at open means an apply died half
 * way, or a resync never finished: the image is not a consistent disk.
 */
#define RM_LOG_PREFIX "disk"
#include "common/disklog.h"

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

#include "common/log.h"

struct rr_disk {
    bool present;
    int fd;
    char *path;
    char *mark;                /* dirty-state file */
    uint64_t size;
    bool dirty;                /* a mark is on disk */
    bool needs_resync;         /* dirty at open: until a resync's last part */
    bool in_info;              /* named by the stream's DISK_INFO */
    /* part sequence of the stream's records for this disk */
    bool seq_seen;
    uint64_t seq_epoch;
    uint32_t next_part;
    bool closed;               /* RM_DISK_WR_LAST seen for seq_epoch */
    bool touched;              /* written in the open apply */
    bool resynced;             /* the open apply holds a resync's last part */
};

struct rm_disk_replica {
    char *state_dir;
    bool sync_every_epoch;
    struct rr_disk d[RM_DISK_MAX];
    bool info_seen;
    bool past_resync;          /* a record of epoch >= 1 was seen */
    bool applying;
    uint64_t apply_epoch;
    bool apply_sync;
    struct rm_disk_replica_stats st;
    uint8_t *zeros;            /* for discards that cannot punch */
};

int rm_disk_replica_open(struct rm_disk_replica **out,
                         const struct rm_disk_replica_params *params,
                         struct rm_error *err)
{
    struct rm_disk_replica *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (!r)
        return rm_error_set(err, -ENOMEM, "out of memory");
    if (params && params->state_dir) {
        r->state_dir = strdup(params->state_dir);
        if (!r->state_dir) {
            free(r);
            return rm_error_set(err, -ENOMEM, "out of memory");
        }
    }
    r->sync_every_epoch = params && params->sync_every_epoch;
    *out = r;
    return 0;
}

static char *mark_path(const struct rm_disk_replica *r, const char *path)
{
    const char *base = strrchr(path, '/');
    char *dir = NULL, *out = NULL;

    base = base ? base + 1 : path;
    if (r->state_dir)
        dir = strdup(r->state_dir);
    else if (base == path)
        dir = strdup(".");
    else
        dir = strndup(path, (size_t)(base - path - 1));
    if (dir && asprintf(&out, "%s/%s.remus-dirty", *dir ? dir : "/",
                        base) < 0)
        out = NULL;
    free(dir);
    return out;
}

static int image_size(int fd, const struct stat *st, uint64_t *size)
{
    if (S_ISREG(st->st_mode)) {
        *size = (uint64_t)st->st_size;
        return 0;
    }
    if (ioctl(fd, BLKGETSIZE64, size))
        return -errno;
    return 0;
}

int rm_disk_replica_add(struct rm_disk_replica *r, uint32_t id,
                        const char *path, bool allow_dirty,
                        struct rm_error *err)
{
    struct rr_disk *d;
    struct stat st;
    int fd, rc;

    if (id >= RM_DISK_MAX)
        return rm_error_set(err, -EINVAL, "disk %u: ids are 0..%u", id,
                            RM_DISK_MAX - 1);
    d = &r->d[id];
    if (d->present)
        return rm_error_set(err, -EEXIST, "disk %u is already given (%s)",
                            id, d->path);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (errno == ENOENT)
            return rm_error_set(err, rc, "disk %u: replica image %s is "
                                "missing", id, path);
        if (errno == EACCES || errno == EROFS || errno == EPERM)
            return rm_error_set(err, rc, "disk %u: replica image %s cannot "
                                "be opened for writing (read-only): %s", id,
                                path, strerror(-rc));
        return rm_error_set(err, rc, "disk %u: replica image %s: %s", id,
                            path, strerror(-rc));
    }
    if (fstat(fd, &st) || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        close(fd);
        return rm_error_set(err, -EINVAL, "disk %u: replica image %s is not "
                            "a regular file or a block device", id, path);
    }
    rc = image_size(fd, &st, &d->size);
    if (rc) {
        close(fd);
        return rm_error_set(err, rc, "disk %u: size of %s: %s", id, path,
                            strerror(-rc));
    }
    d->path = strdup(path);
    d->mark = mark_path(r, path);
    if (!d->path || !d->mark) {
        close(fd);
        free(d->path);
        free(d->mark);
        d->path = d->mark = NULL;
        return rm_error_set(err, -ENOMEM, "out of memory");
    }
    d->fd = fd;
    d->dirty = access(d->mark, F_OK) == 0;
    if (d->dirty && !allow_dirty) {
        rc = rm_error_set(err, -EBUSY, "disk %u: replica image %s is marked "
                          "dirty by %s (an apply died half way or a resync "
                          "did not finish): it serves neither takeover nor "
                          "failback until a full resync", id, path, d->mark);
        close(fd);
        free(d->path);
        free(d->mark);
        memset(d, 0, sizeof(*d));
        return rc;
    }
    d->needs_resync = d->dirty;
    if (d->dirty)
        LOG_WARN("disk %u: %s is dirty (%s); it must be fully resynced", id,
                 path, d->mark);
    d->present = true;
    return 0;
}

int rm_disk_replica_size(struct rm_disk_replica *r, uint32_t id,
                         uint64_t *size, struct rm_error *err)
{
    if (id >= RM_DISK_MAX || !r->d[id].present)
        return rm_error_set(err, -ENOENT, "disk %u has no replica image", id);
    *size = r->d[id].size;
    return 0;
}

int rm_disk_replica_hash(struct rm_disk_replica *r, uint32_t id,
                         uint32_t chunk, uint8_t *hashes,
                         struct rm_error *err)
{
    if (id >= RM_DISK_MAX || !r->d[id].present)
        return rm_error_set(err, -ENOENT, "disk %u has no replica image", id);
    return rm_disk_hash_chunks(r->d[id].fd, r->d[id].size, chunk, hashes,
                               err);
}

bool rm_disk_replica_dirty(struct rm_disk_replica *r, uint32_t id)
{
    return id < RM_DISK_MAX && r->d[id].present && r->d[id].dirty;
}

void rm_disk_replica_close(struct rm_disk_replica *r)
{
    unsigned i;

    if (!r)
        return;
    for (i = 0; i < RM_DISK_MAX; i++) {
        if (!r->d[i].present)
            continue;
        close(r->d[i].fd);
        free(r->d[i].path);
        free(r->d[i].mark);
    }
    free(r->zeros);
    free(r->state_dir);
    free(r);
}

/* ------------------------------------------------------------ checks */

int rm_disk_replica_info(struct rm_disk_replica *r,
                         const struct rm_record *rec, struct rm_error *err)
{
    struct rm_disk_info_hdr hdr;
    struct rm_disk_info_entry e[RM_DISK_MAX];
    uint32_t i;
    int rc = rm_disk_info_parse(rec, &hdr, e, err);

    if (rc)
        return rc;
    for (i = 0; i < hdr.count; i++) {
        struct rr_disk *d = &r->d[e[i].id];

        if (!d->present)
            return rm_error_set(err, -EINVAL, "the stream carries disk %u "
                                "but this receiver has no --disk for it",
                                e[i].id);
        if (d->size != e[i].size)
            return rm_error_set(err, -EINVAL, "disk %u: the primary's disk "
                                "has %" PRIu64 " bytes, the replica image %s "
                                "has %" PRIu64, e[i].id, (uint64_t)e[i].size,
                                d->path, d->size);
    }
    for (i = 0; i < RM_DISK_MAX; i++) {
        uint32_t k;
        bool named = false;

        for (k = 0; k < hdr.count; k++)
            named = named || e[k].id == i;
        if (r->d[i].present && !named)
            return rm_error_set(err, -EINVAL, "this receiver has a replica "
                                "image for disk %u (%s) but the stream "
                                "carries no such disk", i, r->d[i].path);
    }
    for (i = 0; i < RM_DISK_MAX; i++) {
        r->d[i].in_info = r->d[i].present;
        r->d[i].seq_seen = false;
    }
    r->info_seen = true;
    r->past_resync = false;
    return 0;
}

struct check_arg {
    const struct rr_disk *d;
    const struct rm_record *rec;
    struct rm_error *err;
};

static int check_entry(void *opaque, const struct rm_disk_writes_hdr *hdr,
                       const struct rm_disk_write_entry *e, const void *data)
{
    struct check_arg *a = opaque;

    (void)data;
    if (e->offset > a->d->size || e->length > a->d->size - e->offset)
        return rm_error_set(a->err, -EBADMSG, "byte %" PRIu64 ": disk %u "
                            "epoch %" PRIu64 ": %s of %u bytes at byte %"
                            PRIu64 " ends beyond the disk's %" PRIu64
                            " bytes", a->rec->offset, hdr->disk, hdr->epoch,
                            e->op == RM_DISK_OP_WRITE ? "write" : "discard",
                            e->length, (uint64_t)e->offset, a->d->size);
    return 0;
}

int rm_disk_replica_check(struct rm_disk_replica *r, uint64_t epoch,
                          const struct rm_record *rec, struct rm_error *err)
{
    struct rm_disk_writes_hdr hdr;
    struct check_arg a = { .rec = rec, .err = err };
    struct rr_disk *d;
    bool new_seq;
    int rc;

    if (!r->info_seen)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": DISK_WRITES "
                            "before DISK_INFO", rec->offset);
    /* The shape first: the header is only trusted after the walk. */
    rc = rm_disk_writes_walk(rec, &hdr, NULL, NULL, err);
    if (rc) {
        rm_error_prefix(err, "byte %" PRIu64 ": ", rec->offset);
        return rc;
    }
    d = &r->d[hdr.disk];
    if (!d->present || !d->in_info)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": DISK_WRITES "
                            "for disk %u, which DISK_INFO did not describe",
                            rec->offset, hdr.disk);
    if (hdr.epoch != epoch &&
        !(hdr.epoch == 0 && epoch == 1 && !r->past_resync))
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": disk %u: "
                            "writes of epoch %" PRIu64 " inside checkpoint %"
                            PRIu64, rec->offset, hdr.disk,
                            (uint64_t)hdr.epoch, epoch);
    new_seq = !d->seq_seen || d->seq_epoch != hdr.epoch;
    if (new_seq && hdr.part != 0)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": disk %u epoch "
                            "%" PRIu64 ": part %u arrived first (expected "
                            "part 0)", rec->offset, hdr.disk,
                            (uint64_t)hdr.epoch, hdr.part);
    if (!new_seq && d->closed)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": disk %u epoch "
                            "%" PRIu64 ": part %u after the last part",
                            rec->offset, hdr.disk, (uint64_t)hdr.epoch,
                            hdr.part);
    if (!new_seq && hdr.part != d->next_part)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": disk %u epoch "
                            "%" PRIu64 ": part %u out of sequence (expected "
                            "%u)", rec->offset, hdr.disk, (uint64_t)hdr.epoch,
                            hdr.part, d->next_part);
    a.d = d;
    rc = rm_disk_writes_walk(rec, &hdr, check_entry, &a, err);
    if (rc)
        return rc;
    /* Accepted: only now does the sequence move. */
    d->seq_seen = true;
    d->seq_epoch = hdr.epoch;
    d->next_part = hdr.part + 1;
    d->closed = (hdr.flags & RM_DISK_WR_LAST) != 0;
    if (hdr.epoch)
        r->past_resync = true;
    return 0;
}

/* ------------------------------------------------------------ apply */

static int fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    int fd, rc = 0;

    if (!dir)
        return -ENOMEM;
    fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd))
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

static int set_mark(struct rr_disk *d, uint32_t id, uint64_t epoch,
                    struct rm_error *err)
{
    char text[128];
    int fd, rc = 0, n;

    fd = open(d->mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return rm_error_set(err, -errno, "disk %u: cannot write the dirty "
                            "mark %s: %s", id, d->mark, strerror(errno));
    n = snprintf(text, sizeof(text), "applying epoch %" PRIu64 "\n", epoch);
    rc = rm_write_all(fd, text, (size_t)n);
    if (!rc && fsync(fd))
        rc = -errno;
    close(fd);
    if (!rc)
        rc = fsync_dir_of(d->mark);
    if (rc)
        return rm_error_set(err, rc, "disk %u: cannot make the dirty mark %s "
                            "durable: %s", id, d->mark, strerror(-rc));
    d->dirty = true;
    return 0;
}

int rm_disk_replica_begin_apply(struct rm_disk_replica *r, uint64_t epoch,
                                struct rm_error *err)
{
    uint32_t i;
    int rc;

    if (r->applying)
        return rm_error_set(err, -EINVAL, "disk apply of epoch %" PRIu64
                            " begun while epoch %" PRIu64 " is open", epoch,
                            r->apply_epoch);
    for (i = 0; i < RM_DISK_MAX; i++) {
        if (!r->d[i].present)
            continue;
        rc = set_mark(&r->d[i], i, epoch, err);
        if (rc)
            return rc;
        r->d[i].touched = false;
        r->d[i].resynced = false;
    }
    r->applying = true;
    r->apply_epoch = epoch;
    r->apply_sync = false;
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOSPC;
        done += (size_t)n;
    }
    return 0;
}

struct apply_arg {
    struct rm_disk_replica *r;
    struct rr_disk *d;
    struct rm_error *err;
};

static int apply_entry(void *opaque, const struct rm_disk_writes_hdr *hdr,
                       const struct rm_disk_write_entry *e, const void *data)
{
    struct apply_arg *a = opaque;
    int rc;

    if (e->op == RM_DISK_OP_WRITE) {
        rc = pwrite_all(a->d->fd, data, e->length, e->offset);
        a->r->st.bytes += e->length;
    } else {
        rc = fallocate(a->d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       (off_t)e->offset, (off_t)e->length) ? -errno : 0;
        if (rc == -EOPNOTSUPP || rc == -ENOSYS || rc == -ENODEV) {
            if (!a->r->zeros)
                a->r->zeros = calloc(1, RM_DISK_IO_MAX);
            rc = a->r->zeros ? pwrite_all(a->d->fd, a->r->zeros, e->length,
                                          e->offset)
                             : -ENOMEM;
        }
        a->r->st.discards++;
    }
    if (rc)
        return rm_error_set(a->err, rc, "disk %u epoch %" PRIu64 ": %s of "
                            "%u bytes at byte %" PRIu64 " on %s failed: %s",
                            hdr->disk, (uint64_t)hdr->epoch,
                            e->op == RM_DISK_OP_WRITE ? "write" : "discard",
                            e->length, (uint64_t)e->offset, a->d->path,
                            strerror(-rc));
    return 0;
}

int rm_disk_replica_apply(struct rm_disk_replica *r,
                          const struct rm_record *rec, struct rm_error *err)
{
    struct rm_disk_writes_hdr hdr;
    struct apply_arg a = { .r = r, .err = err };
    int rc;

    if (!r->applying)
        return rm_error_set(err, -EINVAL, "byte %" PRIu64 ": disk writes "
                            "applied outside begin/end_apply", rec->offset);
    rc = rm_disk_writes_walk(rec, &hdr, NULL, NULL, err);
    if (rc)
        return rc;
    if (!r->d[hdr.disk].present)
        return rm_error_set(err, -EINVAL, "byte %" PRIu64 ": disk %u has no "
                            "replica image", rec->offset, hdr.disk);
    a.d = &r->d[hdr.disk];
    a.d->touched = true;
    if (hdr.flags & RM_DISK_WR_SYNC)
        r->apply_sync = true;
    rc = rm_disk_writes_walk(rec, &hdr, apply_entry, &a, err);
    if (rc)
        return rc;
    r->st.records++;
    if (hdr.epoch == 0 && (hdr.flags & RM_DISK_WR_LAST))
        a.d->resynced = true;   /* every differing chunk is in place */
    return rc;
}

int rm_disk_replica_end_apply(struct rm_disk_replica *r, uint64_t epoch,
                              struct rm_error *err)
{
    uint32_t i;

    if (!r->applying || r->apply_epoch > epoch)
        return rm_error_set(err, -EINVAL, "disk apply of epoch %" PRIu64
                            " ended but not begun", epoch);
    for (i = 0; i < RM_DISK_MAX; i++) {
        struct rr_disk *d = &r->d[i];

        if (!d->present || !d->touched ||
            !(r->apply_sync || r->sync_every_epoch))
            continue;
        if (fdatasync(d->fd))
            return rm_error_set(err, -errno, "disk %u: fdatasync of %s "
                                "after epoch %" PRIu64 " failed: %s", i,
                                d->path, epoch, strerror(errno));
        r->st.syncs++;
    }
    /* Every disk is consistent at @epoch now, except one found dirty at
     * open that no resync has repaired yet: lift the other marks.  A crash
     * before the unlink reaches the disk leaves a mark: the safe side. */
    for (i = 0; i < RM_DISK_MAX; i++) {
        struct rr_disk *d = &r->d[i];

        if (!d->present)
            continue;
        if (d->resynced)
            d->needs_resync = false;
        if (d->needs_resync)
            continue;
        if (unlink(d->mark) && errno != ENOENT)
            return rm_error_set(err, -errno, "disk %u: cannot remove the "
                                "dirty mark %s: %s", i, d->mark,
                                strerror(errno));
        d->dirty = false;
    }
    r->applying = false;
    r->st.epochs++;
    return 0;
}

void rm_disk_replica_get_stats(const struct rm_disk_replica *r,
                               struct rm_disk_replica_stats *st)
{
    *st = r->st;
}

int rm_disk_replica_open_images(const char *const *paths, unsigned n,
                                bool sync, struct rm_disk_replica **out,
                                struct rm_error *err)
{
    struct rm_disk_replica_params p = { .sync_every_epoch = sync };
    struct rm_disk_replica *r = NULL;
    unsigned i;
    int rc;

    *out = NULL;
    if (!n)
        return 0;
    rc = rm_disk_replica_open(&r, &p, err);
    /* A dirty image is taken: the initial sync compares every chunk, and
     * it serves no takeover before the first checkpoint commits. */
    for (i = 0; !rc && i < n; i++)
        rc = rm_disk_replica_add(r, i, paths[i], true, err);
    if (rc) {
        rm_disk_replica_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int rm_disk_replica_usable(struct rm_disk_replica *r, unsigned n,
                           struct rm_error *err)
{
    unsigned i;

    for (i = 0; r && i < n; i++)
        if (rm_disk_replica_dirty(r, i))
            return rm_error_set(err, -EIO, "disk %u's replica image is "
                                "dirty (an apply did not finish): it "
                                "serves no takeover before a full resync",
                                i);
    return 0;
}
