/* SPDX-License-Identifier: MIT */
/* Chunk hashes of a disk image for the resync (BLAKE2b-256, libsodium). */
#include "common/disklog.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Where the next data at or after @off begins (SEEK_DATA), so that a chunk
 * wholly in a hole of a sparse image is hashed as the zeros it reads as,
 * without reading it.  A file system without SEEK_DATA: @off (all data).
 */
static uint64_t next_data(int fd, uint64_t off, uint64_t size)
{
    off_t at = lseek(fd, (off_t)off, SEEK_DATA);

    if (at >= 0)
        return (uint64_t)at;
    return errno == ENXIO ? size : off;
}

int rm_disk_hash_chunks(int fd, uint64_t size, uint32_t chunk,
                        uint8_t *hashes, struct rm_error *err)
{
    return rm_disk_hash_chunks_stop(fd, size, chunk, hashes, NULL, err);
}

int rm_disk_hash_chunks_stop(int fd, uint64_t size, uint32_t chunk,
                             uint8_t *hashes, const atomic_bool *stop,
                             struct rm_error *err)
{
    uint64_t off, i = 0, data = 0;
    struct stat st;
    uint8_t zero_hash[RM_DISK_HASH_BYTES];
    uint8_t *buf;
    int rc = 0;

    if (chunk == 0 || chunk % RM_DISK_SECTOR || chunk > RM_DISK_IO_MAX)
        return rm_error_set(err, -EINVAL, "hash chunk of %u bytes: must be "
                            "a multiple of %u up to %u", chunk,
                            RM_DISK_SECTOR, RM_DISK_IO_MAX);
    if (sodium_init() < 0)
        return rm_error_set(err, -EIO, "libsodium could not initialise");
    buf = calloc(1, chunk);
    if (!buf)
        return rm_error_set(err, -ENOMEM, "out of memory");
    /* an image shorter than @size is read, to fail as it must */
    if (fstat(fd, &st) || (uint64_t)st.st_size < size)
        data = UINT64_MAX;
    /* every whole chunk of a hole hashes the same */
    crypto_generichash(zero_hash, RM_DISK_HASH_BYTES, buf, chunk, NULL, 0);
    for (off = 0; off < size; off += chunk, i++) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        size_t done = 0;

        if (stop && atomic_load(stop)) {
            rc = rm_error_set(err, -ECANCELED, "hashing the image: stopped "
                              "at byte %" PRIu64, off);
            goto out;
        }
        if (data < off)
            data = next_data(fd, off, size);
        if (want == chunk && data != UINT64_MAX && data >= off + want) {
            memcpy(hashes + i * RM_DISK_HASH_BYTES, zero_hash,
                   RM_DISK_HASH_BYTES);
            continue;
        }
        while (done < want) {
            ssize_t n = pread(fd, buf + done, want - done,
                              (off_t)(off + done));

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = rm_error_set(err, n < 0 ? -errno : -EIO, "hashing the "
                                  "image at byte %" PRIu64 ": %s", off + done,
                                  n < 0 ? strerror(errno)
                                        : "the image is shorter than its "
                                          "size");
                goto out;
            }
            done += (size_t)n;
        }
        crypto_generichash(hashes + i * RM_DISK_HASH_BYTES,
                           RM_DISK_HASH_BYTES, buf, want, NULL, 0);
    }
out:
    free(buf);
    return rc;
}
