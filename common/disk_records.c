/* SPDX-License-Identifier: MIT */
/*
 * The shapes of the two disk records (common/disklog.h), shared by the
 * stream validator, the replica's checks and its apply: nothing of a disk
 * record is used before this walk has checked it.
 */
#include "common/disklog.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int bad(struct rm_error *err, const struct rm_record *rec,
               const char *what, uint64_t a, uint64_t b)
{
    return rm_error_set(err, -EBADMSG, "record %s (length %u): %s (%"
                        PRIu64 ", %" PRIu64 ")", rm_rec_type_name(rec->type),
                        rec->length, what, a, b);
}

int rm_disk_info_parse(const struct rm_record *rec,
                       struct rm_disk_info_hdr *hdr,
                       struct rm_disk_info_entry e[RM_DISK_MAX],
                       struct rm_error *err)
{
    const uint8_t *d = rec->data;
    uint32_t seen = 0, i;

    if (rec->length < sizeof(*hdr) || !d)
        return bad(err, rec, "too short for its header (length, header)",
                   rec->length, sizeof(*hdr));
    memcpy(hdr, d, sizeof(*hdr));
    hdr->count = le32toh(hdr->count);
    hdr->reserved = le32toh(hdr->reserved);
    if (hdr->count == 0 || hdr->count > RM_DISK_MAX)
        return bad(err, rec, "disk count out of 1..max (count, max)",
                   hdr->count, RM_DISK_MAX);
    if (hdr->reserved)
        return bad(err, rec, "reserved field not zero (value, 0)",
                   hdr->reserved, 0);
    if (rec->length != sizeof(*hdr) + (uint64_t)hdr->count * sizeof(*e))
        return bad(err, rec, "length does not match the count (count, "
                   "entry size)", hdr->count, sizeof(*e));
    for (i = 0; i < hdr->count; i++) {
        memcpy(&e[i], d + sizeof(*hdr) + i * sizeof(*e), sizeof(*e));
        e[i].id = le32toh(e[i].id);
        e[i].sector = le32toh(e[i].sector);
        e[i].size = le64toh(e[i].size);
        if (e[i].id >= RM_DISK_MAX)
            return bad(err, rec, "disk id out of range (id, max)", e[i].id,
                       RM_DISK_MAX - 1);
        if (seen & (1u << e[i].id))
            return bad(err, rec, "disk id given twice (id, entry)", e[i].id,
                       i);
        seen |= 1u << e[i].id;
        if (e[i].sector != RM_DISK_SECTOR)
            return bad(err, rec, "sector size not supported (disk, sector)",
                       e[i].id, e[i].sector);
        if (e[i].size == 0 || e[i].size % RM_DISK_SECTOR)
            return bad(err, rec, "disk size not a non-zero sector multiple "
                       "(disk, size)", e[i].id, e[i].size);
    }
    return 0;
}

static bool zero(const uint8_t *p, size_t n)
{
    while (n--)
        if (*p++)
            return false;
    return true;
}

int rm_disk_writes_walk(const struct rm_record *rec,
                        struct rm_disk_writes_hdr *hdr, rm_disk_write_fn fn,
                        void *opaque, struct rm_error *err)
{
    const uint8_t *d = rec->data;
    uint64_t off = sizeof(*hdr);
    uint32_t i;
    int rc;

    if (rec->length < sizeof(*hdr) || !d)
        return bad(err, rec, "too short for its header (length, header)",
                   rec->length, sizeof(*hdr));
    memcpy(hdr, d, sizeof(*hdr));
    hdr->epoch = le64toh(hdr->epoch);
    hdr->disk = le32toh(hdr->disk);
    hdr->count = le32toh(hdr->count);
    hdr->part = le32toh(hdr->part);
    hdr->flags = le32toh(hdr->flags);
    if (hdr->disk >= RM_DISK_MAX)
        return bad(err, rec, "disk id out of range (id, max)", hdr->disk,
                   RM_DISK_MAX - 1);
    if (hdr->flags & ~(RM_DISK_WR_SYNC | RM_DISK_WR_LAST))
        return bad(err, rec, "unknown flags (disk, flags)", hdr->disk,
                   hdr->flags);
    if (hdr->count > (rec->length - sizeof(*hdr)) /
                     sizeof(struct rm_disk_write_entry))
        return bad(err, rec, "more entries than fit (disk, count)",
                   hdr->disk, hdr->count);
    for (i = 0; i < hdr->count; i++) {
        struct rm_disk_write_entry e;
        const uint8_t *data = NULL;

        if (rec->length - off < sizeof(e))
            return bad(err, rec, "entry past the end (entry, offset)", i,
                       off);
        memcpy(&e, d + off, sizeof(e));
        e.offset = le64toh(e.offset);
        e.length = le32toh(e.length);
        e.op = le16toh(e.op);
        e.reserved = le16toh(e.reserved);
        off += sizeof(e);
        if (e.reserved)
            return bad(err, rec, "entry reserved field not zero (entry, "
                       "value)", i, e.reserved);
        if (e.op != RM_DISK_OP_WRITE && e.op != RM_DISK_OP_DISCARD)
            return bad(err, rec, "unknown op (entry, op)", i, e.op);
        if (e.length == 0 || e.length > RM_DISK_IO_MAX)
            return bad(err, rec, "entry length out of 1..max (entry, "
                       "length)", i, e.length);
        if (e.offset % RM_DISK_SECTOR || e.length % RM_DISK_SECTOR)
            return bad(err, rec, "entry not sector aligned (offset, "
                       "length)", e.offset, e.length);
        if (e.offset > UINT64_MAX - e.length)
            return bad(err, rec, "entry range wraps (offset, length)",
                       e.offset, e.length);
        if (e.op == RM_DISK_OP_WRITE) {
            uint64_t padded = ((uint64_t)e.length + 7) & ~7ull;

            if (rec->length - off < padded)
                return bad(err, rec, "entry data past the end (entry, "
                           "length)", i, e.length);
            data = d + off;
            if (!zero(data + e.length, padded - e.length))
                return bad(err, rec, "entry padding not zero (entry, "
                           "length)", i, e.length);
            off += padded;
        }
        if (fn) {
            rc = fn(opaque, hdr, &e, data);
            if (rc)
                return rc;
        }
    }
    if (off != rec->length)
        return bad(err, rec, "bytes after the last entry (end, length)", off,
                   rec->length);
    return 0;
}
