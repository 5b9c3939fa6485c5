/* SPDX-License-Identifier: MIT */
/*
 * The guest's block driver over the RM_HC_DISK_* hypercalls (disk 0).
 * Synchronous; requests longer than the device's max_io are split.
 * Returns 0 or an RM_HC_DISK_E* value (negative).
 */
#ifndef REMUS_GUEST_BLK_H
#define REMUS_GUEST_BLK_H

#include <stdint.h>

#include "backends/kvm/guest_abi.h"

struct blk {
    int present;
    uint64_t size;        /* bytes */
    uint32_t sector;      /* 512 */
    uint32_t max_io;      /* bytes per request */
    uint64_t reads, writes, flushes, discards, errors;
};

/* Ask the VMM about disk 0; b->present is 0 when there is none. */
void blk_init(struct blk *b);
int blk_read(struct blk *b, uint64_t off, void *buf, uint64_t len);
/* @fua: the data is on stable storage when this returns. */
int blk_write(struct blk *b, uint64_t off, const void *buf, uint64_t len,
              int fua);
int blk_flush(struct blk *b);
int blk_discard(struct blk *b, uint64_t off, uint64_t len);
/* One request as given, unchecked and unsplit (the boot-time probe of
 * the VMM's checks); returns the VMM's ret. */
int blk_raw(unsigned call, uint32_t disk, uint32_t flags, uint64_t off,
            uint64_t data, uint64_t len);

/* Boot-time self-test of the VMM's checks (cmdline disk_probe=1): one
 * request of each kind of mistake, their rets on the console ("disk
 * probe: badbuf=-14 ..."); nothing is written. */
void blk_probe(uint64_t mem_bytes);

#endif
