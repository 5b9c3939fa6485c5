/* SPDX-License-Identifier: MIT */
/*
 * COLO's disk overlay (private to backends/kvm): while the replica runs
 * between checkpoints, its disk writes go here, in memory, and never to
 * the image, which holds the last committed checkpoint's disk (the disk
 * replica applies the primary's writes to it at each commit).  Its reads
 * see the image with the overlay on top.  A checkpoint replaces the
 * replica's state: the overlay is cleared.  A takeover goes on from the
 * replica's own state: the overlay is folded into the image.
 *
 * Kept as 4 KiB chunks, each with a mask of the 512-byte sectors it holds.
 * A discard is a write of zeros.  At most max_bytes of chunks: a write
 * beyond that is refused (-ENOSPC), and the caller waits for the next
 * checkpoint to empty the overlay (disk.c); a write that not even an
 * empty overlay would hold is refused for good (-EFBIG).  Not
 * thread-safe: the caller serialises (the disk lock).
 */
#ifndef REMUS_BACKENDS_KVM_DISK_OVERLAY_H
#define REMUS_BACKENDS_KVM_DISK_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

struct rm_disk_overlay;

#define RM_OVERLAY_CHUNK 4096u

/* NULL when out of memory; @max_bytes 0: 256 MiB. */
struct rm_disk_overlay *rm_disk_overlay_new(uint64_t max_bytes);
void rm_disk_overlay_free(struct rm_disk_overlay *ov);

/* Sector-aligned @off and @len (the caller checked them against the
 * disk).  0; -ENOSPC: no room now (nothing of it kept), room in an empty
 * overlay; -EFBIG: the chunks it spans are more than max_bytes (nothing
 * kept); -ENOMEM. */
int rm_disk_overlay_write(struct rm_disk_overlay *ov, uint64_t off,
                          const void *data, uint64_t len);
int rm_disk_overlay_discard(struct rm_disk_overlay *ov, uint64_t off,
                            uint64_t len);
/* @buf holds [off, off + len) as read from the image: put the overlay's
 * sectors over it. */
void rm_disk_overlay_read(const struct rm_disk_overlay *ov, uint64_t off,
                          void *buf, uint64_t len);
/* Write every sector it holds into the image @fd, fdatasync, and clear.
 * 0 or -errno (what was written stays written; the overlay is kept). */
int rm_disk_overlay_fold(struct rm_disk_overlay *ov, int fd);
/* Forget everything. */
void rm_disk_overlay_clear(struct rm_disk_overlay *ov);

/* Bytes of chunks held now; sectors written since the last clear. */
uint64_t rm_disk_overlay_bytes(const struct rm_disk_overlay *ov);
uint64_t rm_disk_overlay_sectors(const struct rm_disk_overlay *ov);

#endif
