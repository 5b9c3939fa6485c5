/* SPDX-License-Identifier: MIT */
/* COLO's disk overlay (backends/kvm/disk_overlay.h): a hash table of 4 KiB
 * chunks keyed by chunk index, each with the mask of its sectors held. */
#include "backends/kvm/disk_overlay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/disklog.h"   /* RM_DISK_SECTOR */
#include "common/io.h"

#define SECTORS (RM_OVERLAY_CHUNK / RM_DISK_SECTOR)   /* 8: a uint8_t mask */
#define NBUCKETS 4096u

struct ochunk {
    struct ochunk *next;
    uint64_t index;              /* chunk number: offset / 4096 */
    uint8_t mask;                /* sectors held */
    uint8_t data[RM_OVERLAY_CHUNK];
};

struct rm_disk_overlay {
    struct ochunk *buckets[NBUCKETS];
    uint64_t max_bytes, bytes, sectors;
};

struct rm_disk_overlay *rm_disk_overlay_new(uint64_t max_bytes)
{
    struct rm_disk_overlay *ov = calloc(1, sizeof(*ov));

    if (ov)
        ov->max_bytes = max_bytes ? max_bytes : 256ull << 20;
    return ov;
}

static unsigned bucket(uint64_t index)
{
    return (unsigned)((index * 0x9e3779b97f4a7c15ull) >> 52) % NBUCKETS;
}

static struct ochunk *find(const struct rm_disk_overlay *ov, uint64_t index)
{
    struct ochunk *c;

    for (c = ov->buckets[bucket(index)]; c; c = c->next)
        if (c->index == index)
            return c;
    return NULL;
}

/* Chunks [first, last] not held yet: would they fit? */
static bool fits(const struct rm_disk_overlay *ov, uint64_t first,
                 uint64_t last)
{
    uint64_t i, need = 0;

    for (i = first; i <= last; i++)
        if (!find(ov, i))
            need += RM_OVERLAY_CHUNK;
    return ov->bytes + need <= ov->max_bytes;
}

/* Copy @len bytes at @off (within one chunk) from @src (NULL: zeros). */
static int put(struct rm_disk_overlay *ov, uint64_t off, const uint8_t *src,
               uint64_t len)
{
    uint64_t index = off / RM_OVERLAY_CHUNK;
    uint64_t in = off % RM_OVERLAY_CHUNK, s;
    struct ochunk *c = find(ov, index);

    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return -ENOMEM;
        c->index = index;
        c->next = ov->buckets[bucket(index)];
        ov->buckets[bucket(index)] = c;
        ov->bytes += RM_OVERLAY_CHUNK;
    }
    if (src)
        memcpy(c->data + in, src, len);
    else
        memset(c->data + in, 0, len);
    for (s = in / RM_DISK_SECTOR; s < (in + len) / RM_DISK_SECTOR; s++)
        c->mask |= (uint8_t)(1u << s);
    ov->sectors += len / RM_DISK_SECTOR;
    return 0;
}

static int store(struct rm_disk_overlay *ov, uint64_t off, const uint8_t *src,
                 uint64_t len)
{
    uint64_t done = 0, first, last;
    int rc;

    if (!len)
        return 0;
    first = off / RM_OVERLAY_CHUNK;
    last = (off + len - 1) / RM_OVERLAY_CHUNK;
    if ((last - first + 1) * RM_OVERLAY_CHUNK > ov->max_bytes)
        return -EFBIG;      /* not even an empty overlay holds it */
    if (!fits(ov, first, last))
        return -ENOSPC;
    while (done < len) {
        uint64_t at = off + done;
        uint64_t n = RM_OVERLAY_CHUNK - at % RM_OVERLAY_CHUNK;

        if (n > len - done)
            n = len - done;
        rc = put(ov, at, src ? src + done : NULL, n);
        if (rc)
            return rc;
        done += n;
    }
    return 0;
}

int rm_disk_overlay_write(struct rm_disk_overlay *ov, uint64_t off,
                          const void *data, uint64_t len)
{
    return store(ov, off, data, len);
}

int rm_disk_overlay_discard(struct rm_disk_overlay *ov, uint64_t off,
                            uint64_t len)
{
    return store(ov, off, NULL, len);
}

void rm_disk_overlay_read(const struct rm_disk_overlay *ov, uint64_t off,
                          void *buf, uint64_t len)
{
    uint8_t *out = buf;
    uint64_t at;

    if (!ov->bytes)
        return;
    for (at = off; at < off + len; at += RM_DISK_SECTOR) {
        const struct ochunk *c = find(ov, at / RM_OVERLAY_CHUNK);
        unsigned s = (unsigned)(at % RM_OVERLAY_CHUNK) / RM_DISK_SECTOR;

        if (c && (c->mask & (1u << s)))
            memcpy(out + (at - off), c->data + s * RM_DISK_SECTOR,
                   RM_DISK_SECTOR);
    }
}

int rm_disk_overlay_fold(struct rm_disk_overlay *ov, int fd)
{
    unsigned b, s;
    int rc;

    for (b = 0; b < NBUCKETS; b++) {
        const struct ochunk *c;

        for (c = ov->buckets[b]; c; c = c->next) {
            for (s = 0; s < SECTORS; s++) {
                unsigned e = s;

                if (!(c->mask & (1u << s)))
                    continue;
                while (e + 1 < SECTORS && (c->mask & (1u << (e + 1))))
                    e++;
                rc = rm_pio_all(fd, (void *)(c->data + s * RM_DISK_SECTOR),
                                (size_t)(e - s + 1) * RM_DISK_SECTOR,
                                c->index * RM_OVERLAY_CHUNK +
                                s * RM_DISK_SECTOR, true);
                if (rc)
                    return rc;
                s = e;
            }
        }
    }
    while (fdatasync(fd) < 0)
        if (errno != EINTR)
            return -errno;
    rm_disk_overlay_clear(ov);
    return 0;
}

void rm_disk_overlay_clear(struct rm_disk_overlay *ov)
{
    unsigned b;

    for (b = 0; b < NBUCKETS; b++) {
        while (ov->buckets[b]) {
            struct ochunk *c = ov->buckets[b];

            ov->buckets[b] = c->next;
            free(c);
        }
    }
    ov->bytes = ov->sectors = 0;
}

uint64_t rm_disk_overlay_bytes(const struct rm_disk_overlay *ov)
{
    return ov->bytes;
}

uint64_t rm_disk_overlay_sectors(const struct rm_disk_overlay *ov)
{
    return ov->sectors;
}

void rm_disk_overlay_free(struct rm_disk_overlay *ov)
{
    if (!ov)
        return;
    rm_disk_overlay_clear(ov);
    free(ov);
}
