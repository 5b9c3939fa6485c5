/* SPDX-License-Identifier: MIT */
/*
 * The primary's disk-epoch log (common/disklog.h).
 *
 * Each epoch is a list of entries (disk, offset, length, op, a private copy
 * of the data).  Writers append to the current epoch under the log's lock;
 * rm_disklog_cut() swaps in an empty epoch (a pointer swap: the pause does
 * not grow with the log) and queues the sealed one until its
 * acknowledgement.  Only the save engine's thread reads sealed epochs, and
 * writers never touch them, so emit runs without the lock.
 *
 * The cap counts, for every logged entry not yet acknowledged, its data and
 * its wire entry (a flood of discards is bounded too).  A writer that would
 * pass it waits on a condition variable until rm_disklog_acked() frees
 * room, or rm_disklog_shutdown()/stop() ends the wait -- but only while a
 * sealed epoch is unacknowledged: the current epoch alone can only be freed
 * after a cut, which needs the writer's vCPU parked (see disklog.h).
 */
#define RM_LOG_PREFIX "disklog"
#include "common/disklog.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

#define DL_CAP_DEFAULT (64ull << 20)

struct dl_entry {
    uint64_t offset;
    uint32_t length;
    uint32_t disk;
    uint16_t op;
    uint8_t *data;             /* RM_DISK_OP_WRITE: length bytes */
};

struct dl_epoch {
    struct dl_epoch *next;
    uint64_t epoch;
    struct dl_entry *e;
    size_t n, cap;
    uint64_t cost;             /* counted against the cap */
    uint32_t sync_mask;        /* disks with a FLUSH/FUA in this epoch */
    uint32_t touched_mask;     /* disks with entries */
};

struct dl_disk {
    bool present;
    int fd;
    uint64_t size;
    uint32_t chunk;            /* resync: chunk size, 0 when none queued */
    uint64_t nr_chunks;
    uint8_t *queued;           /* resync: 1 per chunk to send */
};

struct rm_disklog {
    pthread_mutex_t lock;
    pthread_cond_t room;
    uint64_t cap;
    bool logging, shutdown;
    int failed;                /* rm_disklog_fail(): every cut fails */
    char failed_why[200];
    struct dl_epoch *cur;
    struct dl_epoch *sealed, *sealed_tail;  /* oldest first */
    uint64_t unacked;
    uint64_t sealed_cost;      /* the part of unacked in sealed epochs */
    struct dl_disk disks[RM_DISK_MAX];
    unsigned nr_disks;
    struct rm_disklog_stats st;
};

static uint64_t entry_cost(uint32_t data_len)
{
    return (uint64_t)data_len + sizeof(struct rm_disk_write_entry);
}

static void epoch_free(struct dl_epoch *ep)
{
    size_t i;

    if (!ep)
        return;
    for (i = 0; i < ep->n; i++)
        free(ep->e[i].data);
    free(ep->e);
    free(ep);
}

int rm_disklog_open(struct rm_disklog **out,
                    const struct rm_disklog_params *params,
                    struct rm_error *err)
{
    struct rm_disklog *log = calloc(1, sizeof(*log));
    int rc;

    *out = NULL;
    if (!log)
        return rm_error_set(err, -ENOMEM, "out of memory");
    log->cap = params && params->max_unacked_bytes ? params->max_unacked_bytes
                                                   : DL_CAP_DEFAULT;
    log->cur = calloc(1, sizeof(*log->cur));
    if (!log->cur) {
        free(log);
        return rm_error_set(err, -ENOMEM, "out of memory");
    }
    rc = pthread_mutex_init(&log->lock, NULL);
    if (rc == 0) {
        rc = rm_cond_init_monotonic(&log->room);
        if (rc)
            pthread_mutex_destroy(&log->lock);
    }
    if (rc) {
        free(log->cur);
        free(log);
        return rm_error_set(err, rc < 0 ? rc : -rc, "disk log: cannot "
                            "initialise its lock");
    }
    *out = log;
    return 0;
}

int rm_disklog_add_disk(struct rm_disklog *log, uint32_t id, int fd,
                        uint64_t size, struct rm_error *err)
{
    if (id >= RM_DISK_MAX)
        return rm_error_set(err, -EINVAL, "disk %u: ids are 0..%u", id,
                            RM_DISK_MAX - 1);
    if (log->disks[id].present)
        return rm_error_set(err, -EEXIST, "disk %u is already added", id);
    if (fd < 0)
        return rm_error_set(err, -EBADF, "disk %u: no image descriptor", id);
    if (size == 0 || size % RM_DISK_SECTOR)
        return rm_error_set(err, -EINVAL, "disk %u: size %" PRIu64 " is not "
                            "a non-zero multiple of %u bytes", id, size,
                            RM_DISK_SECTOR);
    log->disks[id].present = true;
    log->disks[id].fd = fd;
    log->disks[id].size = size;
    log->nr_disks++;
    return 0;
}

unsigned rm_disklog_nr_disks(const struct rm_disklog *log)
{
    return log ? log->nr_disks : 0;
}

void rm_disklog_disk(const struct rm_disklog *log, unsigned i, uint32_t *id,
                     uint64_t *size)
{
    uint32_t d;

    *id = 0;
    *size = 0;
    for (d = 0; d < RM_DISK_MAX; d++) {
        if (!log->disks[d].present)
            continue;
        if (i-- == 0) {
            *id = d;
            *size = log->disks[d].size;
            return;
        }
    }
}

static void drop_epochs(struct rm_disklog *log, struct dl_epoch **list)
{
    /* Caller holds the lock or is the only user. */
    *list = log->sealed;
    log->sealed = log->sealed_tail = NULL;
}

void rm_disklog_close(struct rm_disklog *log)
{
    struct dl_epoch *ep, *next;
    unsigned i;

    if (!log)
        return;
    drop_epochs(log, &ep);
    for (; ep; ep = next) {
        next = ep->next;
        epoch_free(ep);
    }
    epoch_free(log->cur);
    for (i = 0; i < RM_DISK_MAX; i++)
        free(log->disks[i].queued);
    pthread_cond_destroy(&log->room);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

/* ------------------------------------------------------------ writers */

static int check_range(struct rm_disklog *log, uint32_t disk, uint64_t offset,
                       uint64_t len, struct rm_error *err)
{
    if (disk >= RM_DISK_MAX || !log->disks[disk].present)
        return rm_error_set(err, -EINVAL, "disk %u is not in the log", disk);
    if (len == 0 || offset % RM_DISK_SECTOR || len % RM_DISK_SECTOR)
        return rm_error_set(err, -EINVAL, "disk %u: range at byte %" PRIu64
                            " of %" PRIu64 " bytes is not a non-empty "
                            "multiple of %u-byte sectors", disk, offset, len,
                            RM_DISK_SECTOR);
    if (offset > log->disks[disk].size ||
        len > log->disks[disk].size - offset)
        return rm_error_set(err, -EINVAL, "disk %u: range at byte %" PRIu64
                            " of %" PRIu64 " bytes ends beyond the disk's %"
                            PRIu64 " bytes", disk, offset, len,
                            log->disks[disk].size);
    return 0;
}

/*
 * Append @e (its data already copied) to the current epoch, waiting for
 * room under the cap.  Takes ownership of e->data in every case.
 */
static int append(struct rm_disklog *log, struct dl_entry *e, bool sync,
                  struct rm_error *err)
{
    uint64_t cost = entry_cost(e->op == RM_DISK_OP_WRITE ? e->length : 0);
    bool waited = false;
    int rc = 0;

    pthread_mutex_lock(&log->lock);
    while (log->logging && !log->shutdown && log->sealed_cost > 0 &&
           log->unacked + cost > log->cap) {
        if (!waited) {
            log->st.waits++;
            waited = true;
        }
        pthread_cond_wait(&log->room, &log->lock);
    }
    if (log->shutdown) {
        rc = rm_error_set(err, -ECANCELED, "disk %u: the disk log was shut "
                          "down; the write at byte %" PRIu64 " is not "
                          "replicated", e->disk, e->offset);
        goto out;
    }
    if (!log->logging)
        goto out;   /* not protected (yet, or any more): nothing to log */
    if (log->cur->n == log->cur->cap) {
        size_t cap = log->cur->cap ? log->cur->cap * 2 : 256;
        struct dl_entry *ne = realloc(log->cur->e, cap * sizeof(*ne));

        if (!ne) {
            rc = rm_error_set(err, -ENOMEM, "disk %u: out of memory for the "
                              "log", e->disk);
            goto out;
        }
        log->cur->e = ne;
        log->cur->cap = cap;
    }
    log->cur->e[log->cur->n++] = *e;
    e->data = NULL;
    log->cur->cost += cost;
    log->cur->touched_mask |= 1u << e->disk;
    if (sync)
        log->cur->sync_mask |= 1u << e->disk;
    log->unacked += cost;
    if (e->op == RM_DISK_OP_WRITE)
        log->st.logged_bytes += e->length;
out:
    pthread_mutex_unlock(&log->lock);
    free(e->data);
    return rc;
}

int rm_disklog_write(struct rm_disklog *log, uint32_t disk, uint64_t offset,
                     const void *data, uint32_t len, bool fua,
                     struct rm_error *err)
{
    struct dl_entry e = { .offset = offset, .length = len, .disk = disk,
                          .op = RM_DISK_OP_WRITE };
    int rc = check_range(log, disk, offset, len, err);

    if (rc)
        return rc;
    if (len > RM_DISK_IO_MAX)
        return rm_error_set(err, -EINVAL, "disk %u: a write of %u bytes at "
                            "byte %" PRIu64 " is over the %u-byte limit",
                            disk, len, offset, RM_DISK_IO_MAX);
    e.data = malloc(len);
    if (!e.data)
        return rm_error_set(err, -ENOMEM, "disk %u: out of memory for the "
                            "log", disk);
    memcpy(e.data, data, len);
    return append(log, &e, fua, err);
}

int rm_disklog_discard(struct rm_disklog *log, uint32_t disk,
                       uint64_t offset, uint64_t len, struct rm_error *err)
{
    int rc = check_range(log, disk, offset, len, err);

    while (rc == 0 && len) {
        struct dl_entry e = { .offset = offset, .disk = disk,
                              .op = RM_DISK_OP_DISCARD };

        e.length = len > RM_DISK_IO_MAX ? RM_DISK_IO_MAX : (uint32_t)len;
        rc = append(log, &e, false, err);
        offset += e.length;
        len -= e.length;
    }
    return rc;
}

int rm_disklog_flush(struct rm_disklog *log, uint32_t disk,
                     struct rm_error *err)
{
    int rc = 0;

    if (disk >= RM_DISK_MAX || !log->disks[disk].present)
        return rm_error_set(err, -EINVAL, "disk %u is not in the log", disk);
    pthread_mutex_lock(&log->lock);
    if (log->shutdown)
        rc = rm_error_set(err, -ECANCELED, "disk %u: the disk log was shut "
                          "down; the flush is not replicated", disk);
    else if (log->logging)
        log->cur->sync_mask |= 1u << disk;
    pthread_mutex_unlock(&log->lock);
    return rc;
}

void rm_disklog_shutdown(struct rm_disklog *log)
{
    pthread_mutex_lock(&log->lock);
    log->shutdown = true;
    pthread_cond_broadcast(&log->room);
    pthread_mutex_unlock(&log->lock);
}

void rm_disklog_fail(struct rm_disklog *log, int rc, const char *why)
{
    pthread_mutex_lock(&log->lock);
    if (!log->failed) {
        log->failed = rc < 0 ? rc : -EIO;
        snprintf(log->failed_why, sizeof(log->failed_why), "%s", why);
    }
    pthread_mutex_unlock(&log->lock);
}

void rm_disklog_start(struct rm_disklog *log)
{
    pthread_mutex_lock(&log->lock);
    log->logging = true;
    pthread_mutex_unlock(&log->lock);
}

void rm_disklog_stop(struct rm_disklog *log)
{
    struct dl_epoch *list, *next, old;
    size_t k;
    unsigned i;

    pthread_mutex_lock(&log->lock);
    log->logging = false;
    drop_epochs(log, &list);
    old = *log->cur;           /* its entries are freed below */
    memset(log->cur, 0, sizeof(*log->cur));
    log->unacked = log->sealed_cost = 0;
    pthread_cond_broadcast(&log->room);
    pthread_mutex_unlock(&log->lock);
    for (k = 0; k < old.n; k++)
        free(old.e[k].data);
    free(old.e);
    for (; list; list = next) {
        next = list->next;
        epoch_free(list);
    }
    for (i = 0; i < RM_DISK_MAX; i++) {
        free(log->disks[i].queued);
        log->disks[i].queued = NULL;
        log->disks[i].chunk = 0;
    }
}

/* ------------------------------------------------------------ resync */

/* A resync's arguments: the disk, the chunk size and (with @hashes) the
 * number of the secondary's hashes, which must cover the disk. */
static int check_resync(struct rm_disklog *log, uint32_t disk,
                        uint32_t chunk, const uint8_t *hashes, uint64_t nr,
                        struct rm_error *err)
{
    uint64_t need;

    if (disk >= RM_DISK_MAX || !log->disks[disk].present)
        return rm_error_set(err, -EINVAL, "resync: disk %u is not in the log",
                            disk);
    if (chunk == 0 || chunk % RM_DISK_SECTOR || chunk > RM_DISK_IO_MAX)
        return rm_error_set(err, -EINVAL, "resync of disk %u: chunk of %u "
                            "bytes must be a multiple of %u up to %u", disk,
                            chunk, RM_DISK_SECTOR, RM_DISK_IO_MAX);
    need = (log->disks[disk].size + chunk - 1) / chunk;
    if (hashes && nr != need)
        return rm_error_set(err, -EINVAL, "resync of disk %u: %" PRIu64
                            " chunk hashes for a disk of %" PRIu64 " chunks "
                            "of %u bytes (the images differ in size?)", disk,
                            nr, need, chunk);
    return 0;
}

int rm_disklog_hash(struct rm_disklog *log, uint32_t disk, uint32_t chunk,
                    uint8_t *hashes, const atomic_bool *stop,
                    struct rm_error *err)
{
    int rc = check_resync(log, disk, chunk, NULL, 0, err);

    if (rc)
        return rc;      /* already names the disk */
    rc = rm_disk_hash_chunks_stop(log->disks[disk].fd, log->disks[disk].size,
                                  chunk, hashes, stop, err);
    if (rc)
        rm_error_prefix(err, "resync of disk %u: ", disk);
    return rc;
}

int rm_disklog_resync_hashed(struct rm_disklog *log, uint32_t disk,
                             uint32_t chunk, const uint8_t *hashes,
                             const uint8_t *mine, uint64_t nr,
                             uint64_t *nr_differ, struct rm_error *err)
{
    struct dl_disk *d;
    uint64_t need, i, differ = 0;
    uint8_t *queued;
    int rc = check_resync(log, disk, chunk, hashes, nr, err);

    if (rc)
        return rc;
    d = &log->disks[disk];
    need = (d->size + chunk - 1) / chunk;
    if (hashes && !mine)
        return rm_error_set(err, -EINVAL, "resync of disk %u: the "
                            "secondary's hashes without the primary's", disk);
    queued = calloc(need, 1);
    if (!queued)
        return rm_error_set(err, -ENOMEM, "out of memory");
    for (i = 0; i < need; i++) {
        if (hashes && !memcmp(mine + i * RM_DISK_HASH_BYTES,
                              hashes + i * RM_DISK_HASH_BYTES,
                              RM_DISK_HASH_BYTES))
            continue;
        queued[i] = 1;
        differ++;
    }
    free(d->queued);
    d->queued = queued;
    d->chunk = chunk;
    d->nr_chunks = need;
    if (nr_differ)
        *nr_differ = differ;
    LOG_DBG("disk %u: %" PRIu64 " of %" PRIu64 " chunks to resync", disk,
            differ, need);
    return 0;
}

int rm_disklog_resync(struct rm_disklog *log, uint32_t disk, uint32_t chunk,
                      const uint8_t *hashes, uint64_t nr,
                      uint64_t *nr_differ, struct rm_error *err)
{
    uint8_t *mine = NULL;
    int rc = check_resync(log, disk, chunk, hashes, nr, err);

    if (!rc && hashes) {
        mine = malloc(nr * RM_DISK_HASH_BYTES);
        rc = mine ? rm_disklog_hash(log, disk, chunk, mine, NULL, err)
                  : rm_error_set(err, -ENOMEM, "out of memory");
    }
    if (!rc)
        rc = rm_disklog_resync_hashed(log, disk, chunk, hashes, mine, nr,
                                      nr_differ, err);
    free(mine);
    return rc;
}

int rm_disklog_resync_all(struct rm_disklog *log, struct rm_error *err)
{
    uint32_t id;
    int rc = 0;

    for (id = 0; id < RM_DISK_MAX && !rc; id++)
        if (log->disks[id].present)
            rc = rm_disklog_resync(log, id, RM_DISK_CHUNK_DEFAULT, NULL, 0,
                                   NULL, err);
    return rc;
}

/* ------------------------------------------------------------ engine */

int rm_disklog_cut(struct rm_disklog *log, uint64_t epoch,
                   struct rm_error *err)
{
    struct dl_epoch *fresh;
    uint64_t last = log->sealed_tail ? log->sealed_tail->epoch : 0;

    if (epoch == 0 || epoch <= last)
        return rm_error_set(err, -EINVAL, "disk log: cut of epoch %" PRIu64
                            " while epoch %" PRIu64 " is not acknowledged",
                            epoch, last);
    fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        return rm_error_set(err, -ENOMEM, "disk log: out of memory at the "
                            "cut of epoch %" PRIu64, epoch);
    pthread_mutex_lock(&log->lock);
    if (log->failed) {
        int rc = rm_error_set(err, log->failed, "disk log: epoch %" PRIu64
                              " cannot be cut: %s", epoch, log->failed_why);

        pthread_mutex_unlock(&log->lock);
        free(fresh);
        return rc;
    }
    log->cur->epoch = epoch;
    log->sealed_cost += log->cur->cost;
    if (log->cur->sync_mask)
        log->st.sync_epochs++;
    if (log->sealed_tail)
        log->sealed_tail->next = log->cur;
    else
        log->sealed = log->cur;
    log->sealed_tail = log->cur;
    log->cur = fresh;
    pthread_mutex_unlock(&log->lock);
    return 0;
}

int rm_disklog_emit_info(struct rm_disklog *log, struct rm_stream_writer *w)
{
    struct rm_disk_info_hdr hdr = { 0 };
    struct rm_disk_info_entry e[RM_DISK_MAX];
    uint32_t i;

    for (i = 0; i < RM_DISK_MAX; i++) {
        if (!log->disks[i].present)
            continue;
        e[hdr.count].id = htole32(i);
        e[hdr.count].sector = htole32(RM_DISK_SECTOR);
        e[hdr.count].size = htole64(log->disks[i].size);
        hdr.count++;
    }
    if (!hdr.count)
        return 0;
    {
        struct iovec v[2] = {
            { .iov_base = &hdr, .iov_len = sizeof(hdr) },
            { .iov_base = e, .iov_len = hdr.count * sizeof(e[0]) },
        };

        hdr.count = htole32(hdr.count);
        return rm_stream_write_recordv(w, RM_REC_DISK_INFO, v, 2);
    }
}

/*
 * One DISK_WRITES record under construction: its header, then per entry
 * the wire entry and (for a write) a pointer to its data.
 */
struct part {
    struct rm_stream_writer *w;
    struct rm_disk_writes_hdr hdr;
    struct rm_disk_write_entry *ents;
    struct iovec *iov;
    uint32_t n, cap;           /* entries */
    uint64_t len;              /* body bytes so far */
    uint64_t data_bytes;
};

static int part_flush(struct part *pt, bool last, uint32_t sync_flag)
{
    struct rm_disk_writes_hdr h = pt->hdr;
    int rc;

    h.epoch = htole64(h.epoch);
    h.disk = htole32(h.disk);
    h.count = htole32(pt->n);
    h.part = htole32(h.part);
    h.flags = htole32((last ? RM_DISK_WR_LAST : 0) | sync_flag);
    pt->iov[0].iov_base = &h;
    pt->iov[0].iov_len = sizeof(h);
    /* ents may have moved while the part grew: point at them only now */
    for (uint32_t i = 0; i < pt->n; i++) {
        pt->iov[1 + 2 * i].iov_base = &pt->ents[i];
        pt->iov[1 + 2 * i].iov_len = sizeof(pt->ents[i]);
    }
    rc = rm_stream_write_recordv(pt->w, RM_REC_DISK_WRITES, pt->iov,
                                 1 + 2 * (int)pt->n);
    pt->hdr.part++;
    pt->n = 0;
    pt->len = sizeof(h);
    return rc;
}

/* Add one entry; flushes the part first when it would not fit. */
static int part_add(struct part *pt, uint64_t offset, uint32_t length,
                    uint16_t op, const void *data, uint32_t sync_flag)
{
    uint64_t need = sizeof(struct rm_disk_write_entry) +
                    (op == RM_DISK_OP_WRITE ? length : 0);
    struct rm_disk_write_entry *e;
    int rc;

    if (pt->n && pt->len + need > RM_REC_LENGTH_MAX) {
        rc = part_flush(pt, false, sync_flag);
        if (rc)
            return rc;
    }
    if (pt->n == pt->cap) {
        uint32_t cap = pt->cap ? pt->cap * 2 : 64;
        struct rm_disk_write_entry *ne = realloc(pt->ents, cap * sizeof(*ne));
        struct iovec *nv;

        if (!ne)
            return rm_error_set(pt->w->err, -ENOMEM, "out of memory");
        pt->ents = ne;
        nv = realloc(pt->iov, (1 + 2 * (size_t)cap) * sizeof(*nv));
        if (!nv)
            return rm_error_set(pt->w->err, -ENOMEM, "out of memory");
        pt->iov = nv;
        pt->cap = cap;
    }
    e = &pt->ents[pt->n];
    e->offset = htole64(offset);
    e->length = htole32(length);
    e->op = htole16(op);
    e->reserved = 0;
    pt->iov[2 + 2 * pt->n].iov_base = (void *)data;
    pt->iov[2 + 2 * pt->n].iov_len = op == RM_DISK_OP_WRITE ? length : 0;
    pt->n++;
    pt->len += need;
    if (op == RM_DISK_OP_WRITE)
        pt->data_bytes += length;
    return 0;
}

static int part_init(struct part *pt, struct rm_stream_writer *w,
                     uint64_t epoch, uint32_t disk)
{
    memset(pt, 0, sizeof(*pt));
    pt->w = w;
    pt->hdr.epoch = epoch;
    pt->hdr.disk = disk;
    pt->len = sizeof(pt->hdr);
    pt->iov = malloc(sizeof(*pt->iov));
    return pt->iov ? 0 : rm_error_set(w->err, -ENOMEM, "out of memory");
}

static void part_free(struct part *pt)
{
    free(pt->ents);
    free(pt->iov);
}

static int read_at(int fd, uint8_t *buf, size_t len, uint64_t off,
                   uint32_t disk, struct rm_error *err)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return rm_error_set(err, n < 0 ? -errno : -EIO, "resync of disk "
                                "%u: reading the image at byte %" PRIu64
                                ": %s", disk, off + done,
                                n < 0 ? strerror(errno) : "short image");
        done += (size_t)n;
    }
    return 0;
}

/* Epoch 0: every queued resync chunk, read from the primary's image now. */
static int emit_resync(struct rm_disklog *log, struct rm_stream_writer *w,
                       uint64_t *bytes)
{
    uint32_t id;
    int rc = 0;

    for (id = 0; id < RM_DISK_MAX && !rc; id++) {
        struct dl_disk *d = &log->disks[id];
        uint64_t i, batch_cap;
        uint8_t *buf;
        size_t used = 0;
        struct part pt;

        if (!d->present || !d->queued)
            continue;
        /* Chunks of one record are read into one buffer: at most a
         * record's worth of data is held at a time. */
        batch_cap = RM_REC_LENGTH_MAX;
        buf = malloc(batch_cap);
        rc = buf ? part_init(&pt, w, 0, id)
                 : rm_error_set(w->err, -ENOMEM, "out of memory");
        if (rc) {
            free(buf);
            break;
        }
        for (i = 0; i < d->nr_chunks && !rc; i++) {
            uint64_t off = i * d->chunk;
            uint32_t len = d->size - off < d->chunk ? (uint32_t)(d->size - off)
                                                     : d->chunk;

            if (!d->queued[i])
                continue;
            if (pt.n && pt.len + sizeof(struct rm_disk_write_entry) + len >
                            RM_REC_LENGTH_MAX) {
                rc = part_flush(&pt, false, 0);
                used = 0;
                if (rc)
                    break;
            }
            rc = read_at(d->fd, buf + used, len, off, id, w->err);
            if (!rc)
                rc = part_add(&pt, off, len, RM_DISK_OP_WRITE, buf + used, 0);
            used += len;
        }
        /* The last part flushes the image on the replica. */
        if (!rc)
            rc = part_flush(&pt, true, RM_DISK_WR_SYNC);
        if (!rc && bytes)
            *bytes += pt.data_bytes;
        part_free(&pt);
        free(buf);
        free(d->queued);
        d->queued = NULL;
        d->chunk = 0;
    }
    return rc;
}

int rm_disklog_emit(struct rm_disklog *log, uint64_t epoch,
                    struct rm_stream_writer *w, uint64_t *bytes)
{
    struct dl_epoch *ep;
    uint32_t id;
    int rc = 0;

    if (bytes)
        *bytes = 0;
    if (epoch == 0)
        return emit_resync(log, w, bytes);
    for (ep = log->sealed; ep && ep->epoch != epoch; ep = ep->next)
        ;
    if (!ep)
        return rm_error_set(w->err, -ENOENT, "disk log: epoch %" PRIu64
                            " is not sealed (or already acknowledged)",
                            epoch);
    for (id = 0; id < RM_DISK_MAX && !rc; id++) {
        uint32_t sync = ep->sync_mask & (1u << id) ? RM_DISK_WR_SYNC : 0;
        struct part pt;
        size_t i;

        if (!((ep->touched_mask | ep->sync_mask) & (1u << id)))
            continue;
        rc = part_init(&pt, w, epoch, id);
        if (rc)
            break;
        for (i = 0; i < ep->n && !rc; i++)
            if (ep->e[i].disk == id)
                rc = part_add(&pt, ep->e[i].offset, ep->e[i].length,
                              ep->e[i].op, ep->e[i].data, sync);
        if (!rc)
            rc = part_flush(&pt, true, sync);
        if (!rc && bytes)
            *bytes += pt.data_bytes;
        part_free(&pt);
    }
    return rc;
}

void rm_disklog_acked(struct rm_disklog *log, uint64_t epoch)
{
    struct dl_epoch *done = NULL, **tail = &done, *next;

    pthread_mutex_lock(&log->lock);
    while (log->sealed && log->sealed->epoch <= epoch) {
        struct dl_epoch *ep = log->sealed;

        log->sealed = ep->next;
        ep->next = NULL;
        log->unacked -= ep->cost;
        log->sealed_cost -= ep->cost;
        *tail = ep;
        tail = &ep->next;
    }
    if (!log->sealed)
        log->sealed_tail = NULL;
    pthread_cond_broadcast(&log->room);
    pthread_mutex_unlock(&log->lock);
    for (; done; done = next) {
        next = done->next;
        epoch_free(done);
    }
}

uint64_t rm_disklog_current_changes(struct rm_disklog *log)
{
    uint64_t n;

    pthread_mutex_lock(&log->lock);
    n = log->cur->n;
    pthread_mutex_unlock(&log->lock);
    return n;
}

void rm_disklog_get_stats(struct rm_disklog *log, struct rm_disklog_stats *st)
{
    pthread_mutex_lock(&log->lock);
    *st = log->st;
    st->unacked_bytes = log->unacked;
    st->cap_bytes = log->cap;
    pthread_mutex_unlock(&log->lock);
}
