/* SPDX-License-Identifier: MIT */
/* Chunk hashes of a disk image for the resync (BLAKE2b-256, libsodium). */
#include "common/disklog.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rm_disk_hash_chunks(int fd, uint64_t size, uint32_t chunk,
                        uint8_t *hashes, struct rm_error *err)
{
    uint64_t off, i = 0;
    uint8_t *buf;
    int rc = 0;

    if (chunk == 0 || chunk % RM_DISK_SECTOR || chunk > RM_DISK_IO_MAX)
        return rm_error_set(err, -EINVAL, "hash chunk of %u bytes: must be "
                            "a multiple of %u up to %u", chunk,
                            RM_DISK_SECTOR, RM_DISK_IO_MAX);
    if (sodium_init() < 0)
        return rm_error_set(err, -EIO, "libsodium could not initialise");
    buf = malloc(chunk);
    if (!buf)
        return rm_error_set(err, -ENOMEM, "out of memory");
    for (off = 0; off < size; off += chunk, i++) {
        size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
        size_t done = 0;

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
