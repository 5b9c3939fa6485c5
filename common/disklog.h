/* SPDX-License-Identifier: MIT */
/*
 * Disk replication at the checkpoint's cut (Remus's disk semantics, DRBD's
 * out-of-tree "protocol D"): the secondary's disk equals the primary's disk
 * at the same cut as the memory checkpoint -- never ahead, never behind.
 *
 * Primary: a device model (backends/kvm/disk.c, later Xen's blktap/qdisk
 * front end) writes the guest's write to the primary's image first, then
 * appends it to the current epoch's log with rm_disklog_write().  At the
 * cut (VM suspended) the save engine calls rm_disklog_cut(), an O(1) swap:
 * the current log becomes the sealed log of that epoch and an empty one
 * takes its place.  The engine then writes the sealed epoch's DISK_WRITES
 * records into the checkpoint (rm_disklog_emit()), and after the
 * secondary's acknowledgement calls rm_disklog_acked(), which frees the
 * epoch's bytes and wakes writers that waited for room (the cap: bytes
 * logged but not acknowledged never exceed params.max_unacked_bytes; a
 * writer past it blocks, nothing is dropped).
 *
 * Secondary: the restore engine checks each disk record on arrival
 * (rm_disk_replica_check(): disk id, offset + length within the disk,
 * alignment, size; a bad record refuses the whole checkpoint and writes
 * nothing), keeps it in the checkpoint's buffer (spilled to a file past the
 * engine's bound, as page records are), and applies the checkpoint's disk
 * writes only at commit, in order, between rm_disk_replica_begin_apply()
 * and rm_disk_replica_end_apply().  begin_apply marks the image dirty in a
 * state file (fsync'd) and end_apply fdatasyncs the image when the epoch
 * asked for it (a guest FLUSH/FUA in it, or params.sync_every_epoch) and
 * then clears the mark.  An image found dirty at open serves neither
 * takeover nor failback until a full resync, and open says so.
 *
 * Initial sync and reprotect: the secondary hashes its images in chunks
 * (rm_disk_hash_chunks(), BLAKE2b from libsodium) and the session carries
 * the hashes to the primary; the primary starts logging guest writes first,
 * then queues every chunk whose hash differs (rm_disklog_resync()).  The
 * engine sends those chunks before the first checkpoint (applied as they
 * arrive, as the first pass's pages are); writes made meanwhile are in the
 * log and reach the secondary in checkpoint 1, after the chunks, so P1
 * holds from the first acknowledgement on.
 *
 * Stream records (remus-typed streams only; mandatory, so an old receiver
 * refuses them):
 *   RM_REC_DISK_INFO    static data: struct rm_disk_info_hdr, then count x
 *                       struct rm_disk_info_entry.
 *   RM_REC_DISK_WRITES  one part of one epoch's writes for one disk:
 *                       struct rm_disk_writes_hdr, then count x (struct
 *                       rm_disk_write_entry, then for RM_DISK_OP_WRITE its
 *                       length bytes of data padded with zeros to 8).
 *                       Records are bounded by RM_REC_LENGTH_MAX: an epoch
 *                       with more writes is cut into parts 0, 1, ...; the
 *                       last part has RM_DISK_WR_LAST.  Epoch 0 carries the
 *                       initial sync's chunks.  DISK_WRITES is a state record
 *                       (rm_rec_is_state): the epoch's state digest covers it.
 *
 * Threads: rm_disklog_write/flush/discard may be called from any vCPU
 * thread; rm_disklog_cut/emit/acked/resync from the save engine's thread.
 * The log takes its own lock.  A replica is used from one thread.
 *
 * Every function returns 0 or a negative errno with the reason in @err
 * (which names the disk, the offset and what was wrong); none exits.
 */
#ifndef REMUS_COMMON_DISKLOG_H
#define REMUS_COMMON_DISKLOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/stream.h"

#define RM_REC_DISK_INFO (RM_REC_REMUS_BASE | 0x0020u)
#define RM_REC_DISK_WRITES (RM_REC_REMUS_BASE | 0x0021u)

#define RM_DISK_MAX 8u                 /* disks per VM */
#define RM_DISK_SECTOR 512u            /* offsets and lengths: multiples */
#define RM_DISK_IO_MAX (1u << 20)      /* one write: at most 1 MiB */
#define RM_DISK_CHUNK_DEFAULT (64u << 10)  /* resync hash chunk */
#define RM_DISK_HASH_BYTES 32u         /* BLAKE2b-256 per chunk */

struct rm_disk_info_hdr {
    uint32_t count;        /* 1..RM_DISK_MAX */
    uint32_t reserved;     /* 0 */
};
struct rm_disk_info_entry {
    uint32_t id;           /* 0..RM_DISK_MAX-1, unique */
    uint32_t sector;       /* RM_DISK_SECTOR */
    uint64_t size;         /* bytes, a multiple of sector, > 0 */
};

enum rm_disk_op {
    RM_DISK_OP_WRITE = 1,    /* data follows */
    RM_DISK_OP_DISCARD = 2,  /* no data: the range reads as zeros after */
};
#define RM_DISK_WR_SYNC 0x1u   /* hdr.flags: the epoch holds a FLUSH/FUA */
#define RM_DISK_WR_LAST 0x2u   /* hdr.flags: last part of this epoch */

struct rm_disk_writes_hdr {
    uint64_t epoch;        /* the checkpoint these writes belong to */
    uint32_t disk;         /* id from DISK_INFO */
    uint32_t count;        /* entries that follow */
    uint32_t part;         /* 0, 1, ... within (epoch, disk) */
    uint32_t flags;        /* RM_DISK_WR_* */
};
struct rm_disk_write_entry {
    uint64_t offset;       /* bytes, multiple of RM_DISK_SECTOR */
    uint32_t length;       /* bytes, multiple of RM_DISK_SECTOR, > 0,
                              <= RM_DISK_IO_MAX */
    uint16_t op;           /* enum rm_disk_op */
    uint16_t reserved;     /* 0 */
};

/* ======================= Record shapes (both ends) ===================== */

/*
 * Parse a DISK_INFO body: header, count entries, reserved zero, ids below
 * RM_DISK_MAX and unique, sector RM_DISK_SECTOR, size a non-zero multiple
 * of it.  Fills @hdr and @e[0..count) in host order.  0 or -EBADMSG
 * (common/disk_records.c).
 */
int rm_disk_info_parse(const struct rm_record *rec,
                       struct rm_disk_info_hdr *hdr,
                       struct rm_disk_info_entry e[RM_DISK_MAX],
                       struct rm_error *err);
/*
 * Walk a DISK_WRITES body: checks its shape (header, exactly count entries
 * that fit, each offset and length sector multiples, 0 < length <=
 * RM_DISK_IO_MAX, op known, reserved zero, data padding zero, nothing
 * after the last entry, flags known, disk below RM_DISK_MAX) and calls
 * @fn (may be NULL: check only) for each entry in order with its data
 * (NULL for a discard), all in host order.  A non-zero return of @fn
 * stops the walk and is returned.  0 or -EBADMSG.
 */
typedef int (*rm_disk_write_fn)(void *opaque,
                                const struct rm_disk_writes_hdr *hdr,
                                const struct rm_disk_write_entry *e,
                                const void *data);
int rm_disk_writes_walk(const struct rm_record *rec,
                        struct rm_disk_writes_hdr *hdr, rm_disk_write_fn fn,
                        void *opaque, struct rm_error *err);

/* A disk the primary has and does not replicate (-F -d): the handshake
 * names it, so the secondary knows its image of it falls behind. */
struct rm_unreplicated_disk {
    uint32_t id;
    uint64_t size;
};

/* ====================== Primary: the epoch log ====================== */

struct rm_disklog;

struct rm_disklog_params {
    uint64_t max_unacked_bytes; /* cap on logged, unacknowledged data
                                   (0: 64 MiB) */
};

/* Allocate an empty log (no disk yet). */
int rm_disklog_open(struct rm_disklog **out,
                    const struct rm_disklog_params *params,
                    struct rm_error *err);
/*
 * Describe disk @id: @fd is the primary's image, open read-write, which the
 * log reads for resync (it does not close it); @size its size in bytes.
 * Before the save starts only.
 */
int rm_disklog_add_disk(struct rm_disklog *log, uint32_t id, int fd,
                        uint64_t size, struct rm_error *err);
/* Number of disks added (the engine writes DISK_INFO when > 0). */
unsigned rm_disklog_nr_disks(const struct rm_disklog *log);
/* The @i-th disk added (i < rm_disklog_nr_disks): its id and size. */
void rm_disklog_disk(const struct rm_disklog *log, unsigned i, uint32_t *id,
                     uint64_t *size);
/* Free the log (after rm_disklog_shutdown() if writers may still run). */
void rm_disklog_close(struct rm_disklog *log);

/*
 * The guest's write of @len bytes at @offset reached the primary's image
 * (pwrite done; with @fua also fdatasync'd): log it in the current epoch.
 * Blocks while the unacknowledged bytes are over the cap, until an ack
 * makes room or rm_disklog_shutdown() (then -ECANCELED).  -EINVAL for a
 * range outside the disk or misaligned.  It waits only while an ack can
 * make room, i.e. while a sealed epoch is unacknowledged: when the current
 * epoch alone is over the cap the write passes (the cut that would seal it
 * needs the vCPUs parked, and a vCPU waiting here would never park), so
 * the bound is the cap plus what the guest writes in one epoch.
 */
int rm_disklog_write(struct rm_disklog *log, uint32_t disk, uint64_t offset,
                     const void *data, uint32_t len, bool fua,
                     struct rm_error *err);
/* The guest discarded a range (the device already punched it). */
int rm_disklog_discard(struct rm_disklog *log, uint32_t disk,
                       uint64_t offset, uint64_t len, struct rm_error *err);
/* The guest flushed disk @disk (the device fdatasync'd the image): the
 * current epoch becomes a sync epoch. */
int rm_disklog_flush(struct rm_disklog *log, uint32_t disk,
                     struct rm_error *err);
/* Wake every blocked writer with -ECANCELED; later writes fail too. */
void rm_disklog_shutdown(struct rm_disklog *log);
/*
 * A change of the disks could not be logged (e.g. the feed from a disk
 * served in another process broke): from now on every cut fails with @rc
 * and @why, so that no checkpoint misses the write.  The first call wins.
 */
void rm_disklog_fail(struct rm_disklog *log, int rc, const char *why);

/*
 * Logging is off until rm_disklog_start() (writes before it are not
 * logged: an unprotected VM).  Start before the resync reads the image.
 */
void rm_disklog_start(struct rm_disklog *log);
/* Stop logging and drop every epoch (the protection ended). */
void rm_disklog_stop(struct rm_disklog *log);

/*
 * Resync of disk @disk against the secondary's chunk hashes (@nr hashes of
 * @chunk bytes each; nr must cover the disk).  Queues every differing chunk
 * for epoch 0; @nr_differ (may be NULL) gets their number.  With @hashes
 * NULL every chunk differs (full copy).
 */
int rm_disklog_resync(struct rm_disklog *log, uint32_t disk, uint32_t chunk,
                      const uint8_t *hashes, uint64_t nr,
                      uint64_t *nr_differ, struct rm_error *err);
/*
 * The same with the primary's own hashes of the disk (@mine: @nr of @chunk
 * bytes, from rm_disklog_hash() after rm_disklog_start()), so that the
 * primary can hash its image while the secondary hashes its own.
 */
int rm_disklog_resync_hashed(struct rm_disklog *log, uint32_t disk,
                             uint32_t chunk, const uint8_t *hashes,
                             const uint8_t *mine, uint64_t nr,
                             uint64_t *nr_differ, struct rm_error *err);
/*
 * Hash the primary's image of disk @disk in @chunk-byte chunks into
 * @hashes (ceil(size / chunk) of them).  Any thread; it only reads the
 * image.  Stops with -ECANCELED once *@stop (may be NULL) is set.
 */
int rm_disklog_hash(struct rm_disklog *log, uint32_t disk, uint32_t chunk,
                    uint8_t *hashes, const atomic_bool *stop,
                    struct rm_error *err);

/* Queue a full copy of every disk for epoch 0 (a plain save, or a
 * secondary without hashes). */
int rm_disklog_resync_all(struct rm_disklog *log, struct rm_error *err);

/* Save engine: with the VM suspended, seal the current epoch as @epoch. */
int rm_disklog_cut(struct rm_disklog *log, uint64_t epoch,
                   struct rm_error *err);
/*
 * Save engine: rm_disklog_emit_info() writes DISK_INFO (static data);
 * rm_disklog_emit() the queued resync chunks (@epoch 0, read from the
 * images now; the last part of each disk flagged SYNC) or the sealed epoch
 * @epoch's DISK_WRITES records into @w (one record per disk with writes or
 * a flush in the epoch, cut into parts).  @bytes (may be NULL) gets the
 * data bytes written.  Errors go to @w->err.
 */
int rm_disklog_emit_info(struct rm_disklog *log, struct rm_stream_writer *w);
int rm_disklog_emit(struct rm_disklog *log, uint64_t epoch,
                    struct rm_stream_writer *w, uint64_t *bytes);
/* Save engine: the secondary acknowledged @epoch (and every one before). */
void rm_disklog_acked(struct rm_disklog *log, uint64_t epoch);

struct rm_disklog_stats {
    uint64_t logged_bytes;     /* total data bytes logged */
    uint64_t unacked_bytes;    /* now */
    uint64_t cap_bytes;        /* the cap on them */
    uint64_t waits;            /* writers that blocked on the cap */
    uint64_t sync_epochs;      /* epochs with a FLUSH/FUA */
};
void rm_disklog_get_stats(struct rm_disklog *log, struct rm_disklog_stats *st);
/* Changes (writes, discards) logged in the current epoch so far.  After a
 * cut, the VM still suspended: those that completed since, i.e. were in
 * flight at the cut (always 0 on the micro-VMM, whose vCPUs park only
 * between hypercalls). */
uint64_t rm_disklog_current_changes(struct rm_disklog *log);

/* ======================= Secondary: the replica ======================= */

struct rm_disk_replica;

struct rm_disk_replica_params {
    const char *state_dir;     /* where the dirty-state files live */
    bool sync_every_epoch;     /* --disk-sync: fdatasync before every ack */
};

/* Allocate an empty replica set. */
int rm_disk_replica_open(struct rm_disk_replica **out,
                         const struct rm_disk_replica_params *params,
                         struct rm_error *err);
/*
 * Add the replica image of disk @id at @path (opened read-write; refused:
 * missing, read-only, not a regular file or block device, dirty without
 * @allow_dirty).  Its size is checked against DISK_INFO later.
 */
int rm_disk_replica_add(struct rm_disk_replica *r, uint32_t id,
                        const char *path, bool allow_dirty,
                        struct rm_error *err);
/* A replica set of the images @paths[0..n) as disks 0..n-1 (dirty
 * images taken: the initial sync compares every chunk); @sync: fdatasync
 * before every acknowledgement.  *@out NULL when n is 0.  0 or -errno. */
int rm_disk_replica_open_images(const char *const *paths, unsigned n,
                                bool sync, struct rm_disk_replica **out,
                                struct rm_error *err);
/* May a replica run on its images (none is dirty: an apply that did not
 * finish)?  0, or -EIO naming the disk.  @r NULL: 0. */
int rm_disk_replica_usable(struct rm_disk_replica *r, unsigned n,
                           struct rm_error *err);
/* Size of disk @id's replica image (for the handshake). */
int rm_disk_replica_size(struct rm_disk_replica *r, uint32_t id,
                         uint64_t *size, struct rm_error *err);
/* Is disk @id's image marked dirty (a dead apply, or a resync under way)? */
bool rm_disk_replica_dirty(struct rm_disk_replica *r, uint32_t id);
void rm_disk_replica_close(struct rm_disk_replica *r);

/* Hash @fd's first @size bytes in @chunk-byte chunks into @hashes
 * (RM_DISK_HASH_BYTES each, ceil(size / chunk) of them).  A whole chunk in
 * a hole of a sparse image (SEEK_DATA) is not read: it hashes as zeros. */
int rm_disk_hash_chunks(int fd, uint64_t size, uint32_t chunk,
                        uint8_t *hashes, struct rm_error *err);
/* The same, ending with -ECANCELED once *@stop (may be NULL) is set (it is
 * read between chunks, from another thread). */
int rm_disk_hash_chunks_stop(int fd, uint64_t size, uint32_t chunk,
                             uint8_t *hashes, const atomic_bool *stop,
                             struct rm_error *err);
/* The same of disk @id's replica image (for the handshake's hashes). */
int rm_disk_replica_hash(struct rm_disk_replica *r, uint32_t id,
                         uint32_t chunk, uint8_t *hashes,
                         struct rm_error *err);

/* Restore engine: a DISK_INFO record (static data): same disks, same sizes
 * as the replica images, or -EINVAL naming the difference. */
int rm_disk_replica_info(struct rm_disk_replica *r,
                         const struct rm_record *rec, struct rm_error *err);
/* Restore engine, on arrival: check a DISK_WRITES record for epoch
 * @epoch (the open checkpoint: last committed + 1).  Resync chunks (epoch
 * 0) are accepted before any record of checkpoint 1 of the stream.
 * -EBADMSG with the reason; nothing is written. */
int rm_disk_replica_check(struct rm_disk_replica *r, uint64_t epoch,
                          const struct rm_record *rec, struct rm_error *err);
/* Restore engine, at commit of @epoch: mark dirty, apply each checked
 * record in order with apply(), then end_apply(): fdatasync if asked, clear
 * the mark.  Epoch 0 chunks (before the first checkpoint) are applied the
 * same way as they arrive. */
int rm_disk_replica_begin_apply(struct rm_disk_replica *r, uint64_t epoch,
                                struct rm_error *err);
int rm_disk_replica_apply(struct rm_disk_replica *r,
                          const struct rm_record *rec, struct rm_error *err);
int rm_disk_replica_end_apply(struct rm_disk_replica *r, uint64_t epoch,
                              struct rm_error *err);

struct rm_disk_replica_stats {
    uint64_t records;          /* DISK_WRITES records applied */
    uint64_t bytes;            /* data bytes written */
    uint64_t discards;         /* discard entries applied */
    uint64_t syncs;            /* image fdatasyncs at end_apply */
    uint64_t epochs;           /* end_apply calls */
};
void rm_disk_replica_get_stats(const struct rm_disk_replica *r,
                               struct rm_disk_replica_stats *st);

#endif
