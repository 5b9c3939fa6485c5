/* SPDX-License-Identifier: MIT */
/*
 * The feed: how a served disk's changes reach the disk-epoch log of the
 * protection attached to it (nbd/attach.h).  One stream socket (a
 * socketpair the protection made): the server sends each change after it
 * reached the image and before its NBD reply, and waits for the log's
 * answer; so a write the guest saw complete is in the log already, and
 * the cut the protection takes once the domain is suspended puts it in
 * the right epoch (common/disklog.h, P3).
 *
 * Wire (little endian): a 32-byte header { u32 magic "RMDF", u32 kind
 * (1 write, 2 discard/zeroed range, 3 flush), u64 offset, u64 length, u32
 * flags (bit 0: FUA), u32 zero } and, for a write, its data (at most
 * RM_NBD_FEED_MAX_WRITE bytes); the answer is an i32: 0 when logged, else
 * -errno.
 *
 * Server end (rm_nbd_feed_send_*): called from the export's observer.  It
 * waits for the answer as long as the log takes (a log over its cap holds
 * the guest's writes until the secondary acknowledges: P6), but not past
 * the peer's end: a closed or broken feed is -EPIPE.
 *
 * Protection end (rm_nbd_feed_start): a thread that reads the changes of
 * disk @disk into the log and answers each.  A malformed message, a change
 * the log refuses or a feed that breaks before rm_nbd_feed_stop() marks
 * the log failed (rm_disklog_fail): the protection's next checkpoint then
 * fails with that reason instead of missing a write.
 */
#ifndef REMUS_NBD_FEED_H
#define REMUS_NBD_FEED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/disklog.h"
#include "common/err.h"

#define RM_NBD_FEED_MAGIC 0x46444d52u      /* "RMDF" */
#define RM_NBD_FEED_MAX_WRITE (1u << 20)   /* the observer's pieces */

enum rm_nbd_feed_kind {
    RM_NBD_FEED_WRITE = 1,
    RM_NBD_FEED_DISCARD = 2,
    RM_NBD_FEED_FLUSH = 3,
};

/* Server end: one change, then its answer.  0 (logged), the log's -errno,
 * or -EPIPE / -EPROTO when the feed itself failed (the caller detaches). */
int rm_nbd_feed_send_write(int fd, uint64_t off, const void *data,
                           uint32_t len, bool fua);
int rm_nbd_feed_send_discard(int fd, uint64_t off, uint64_t len);
int rm_nbd_feed_send_flush(int fd);

struct rm_nbd_feed;

/*
 * Protection end: read @fd's changes of disk @disk into @log, in a thread,
 * until rm_nbd_feed_stop().  @fd is the feed's (the caller keeps it open
 * until after the stop).  0 or -errno.
 */
int rm_nbd_feed_start(struct rm_nbd_feed **out, int fd,
                      struct rm_disklog *log, uint32_t disk,
                      struct rm_error *err);
/* Stop reading (shuts the feed down: the server detaches), join, free.
 * A change waiting on the log's cap holds the thread: shut the log down
 * first (rm_disklog_shutdown) when the secondary may not answer any more.
 * NULL: nothing. */
void rm_nbd_feed_stop(struct rm_nbd_feed *f);
/* The feed is about to end on purpose (a detach): its end is not an
 * error.  rm_nbd_feed_stop() still follows. */
void rm_nbd_feed_quiet(struct rm_nbd_feed *f);
/* Changes logged so far (for status and tests). */
uint64_t rm_nbd_feed_changes(const struct rm_nbd_feed *f);

#endif
