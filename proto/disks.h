/* SPDX-License-Identifier: MIT */
/*
 * The disks in the handshake (common/disklog.h): the primary's hello lists
 * the disks it replicates, the secondary's its replica images; both sets
 * must be the same, disk by disk and byte for byte in size.  Right after
 * the handshake the secondary sends its images' chunk hashes (DiskHashes)
 * and the primary queues the chunks that differ: the initial sync, and the
 * resync of a reprotect.
 */
#ifndef REMUS_PROTO_DISKS_H
#define REMUS_PROTO_DISKS_H

#include <stddef.h>

#include "common/disklog.h"
#include "proto/channel.h"

/* Why the primary's disks (@primary) and the secondary's images
 * (@secondary) cannot pair, into @why; NULL when they can. */
const char *rm_disks_disagree(const struct rm_hello *primary,
                              const struct rm_hello *secondary, char *why,
                              size_t len);

/* Secondary: hash its image (@r) of each disk the primary replicates
 * (@primary: the primary's hello, checked) in @chunk-byte chunks and send
 * the hashes.  0 or -errno with the reason in @err. */
int rm_disk_hashes_send(struct rm_chan *ch, struct rm_disk_replica *r,
                        const struct rm_hello *primary, uint32_t chunk,
                        struct rm_error *err);

/* Primary: receive the secondary's hashes of every disk of @hello (its
 * own) but the unreplicated ones within @timeout_ms and queue the chunks that differ in @log.
 * @nr_differ (may be NULL) gets how many chunks will be sent, @nr_chunks
 * (may be NULL) how many there are.  0 or -errno with the reason. */
int rm_disk_hashes_recv(struct rm_chan *ch, struct rm_disklog *log,
                        const struct rm_hello *hello, int timeout_ms,
                        uint64_t *nr_differ, uint64_t *nr_chunks,
                        struct rm_error *err);

#endif
