/* SPDX-License-Identifier: MIT */
/*
 * The key-value service's log on the disk (guest/PROTOCOL.md, "Disk"):
 *
 *   sector 0        header: magic "RMKVLOG1", version, sector size, disk
 *                   size, generation, first record sector, FNV-1a-64 sum;
 *                   written once, with FUA, when the disk is formatted
 *   sector 1 + i    record i + 1: key, value, the header's generation,
 *                   its sequence number (i + 1) and an FNV-1a-64 sum;
 *                   one record per sector, each written with FUA
 *
 * Append-only: a record is written to the sector after the last valid one
 * and acknowledged once the write returned.  The replay at boot stops at
 * the first sector that is not the next valid record (torn or garbage
 * tail, an older generation's record, zeros): what follows is ignored
 * and overwritten by the next append.
 */
#ifndef REMUS_GUEST_KVLOG_H
#define REMUS_GUEST_KVLOG_H

#include <stddef.h>
#include <stdint.h>

#include "guest/disk/blk.h"

#define KV_NKEYS 256
#define KV_KEYLEN 16

enum kvlog_state {
    KVLOG_NODISK = 0,     /* no disk: the service keeps memory only */
    KVLOG_OK = 1,
    KVLOG_BAD = 2,        /* unusable (see kvlog.why) */
};

/* kvlog_append's results besides 0 */
#define KVLOG_EFULL (-1000)

/* Given each replayed record: set @key (NUL-terminated) to @value. */
typedef void (*kvlog_apply_fn)(void *ctx, const char *key, uint64_t value);
/* The in-memory value of @key: 1 and *value if present, else 0. */
typedef int (*kvlog_lookup_fn)(void *ctx, const char *key, uint64_t *value);

struct kvlog {
    enum kvlog_state state;
    struct blk blk;
    uint64_t gen;          /* the format's generation */
    uint64_t records;      /* valid records = the last record's seq */
    uint64_t capacity;     /* records the disk can hold */
    uint64_t formatted;    /* 1 if this boot formatted the disk */
    uint64_t full_refusals, io_errors;
    char why[64];
    uint8_t buf[64 * 1024];  /* replay / check reads */
    struct {               /* kvlog_check's index rebuilt from the disk */
        char key[KV_KEYLEN];
        uint64_t value;
    } idx[KV_NKEYS];
};

/*
 * Find the disk, read its header and replay the records through @apply.
 * A disk whose header sector is all zeros, or any disk when @format, is
 * formatted (header with FUA) instead.  A non-zero header that is not
 * ours leaves the state KVLOG_BAD (nothing written).
 */
void kvlog_open(struct kvlog *l, int format, uint64_t gen_seed,
                kvlog_apply_fn apply, void *ctx);
/* Append key=value durably.  0, KVLOG_EFULL (nothing written), or an
 * RM_HC_DISK_E* error (the record may or may not be on the disk). */
int kvlog_append(struct kvlog *l, const char *key, size_t klen,
                 uint64_t value);
/*
 * Re-read the log from the disk and compare its last value of every key
 * with @lookup, and its number of keys with @mem_keys.  0 when they agree
 * (l->why empty) or -1 with l->why saying what differs.
 */
int kvlog_check(struct kvlog *l, kvlog_lookup_fn lookup, void *ctx,
                uint64_t mem_keys, uint64_t *disk_records);

/*
 * Keep the log below byte @end of the disk from now on (the disk
 * workload's scratch area follows): capacity shrinks to the records that
 * fit before it.  0, or -1 when the log already reaches past @end (or is
 * not usable); nothing changes then.
 */
int kvlog_reserve_tail(struct kvlog *l, uint64_t end);

#endif
