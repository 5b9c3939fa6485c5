/* SPDX-License-Identifier: MIT */
/*
 * Attaching a protection to a served disk.  `remus disk serve` answers on
 * a control socket (common/ctlsock.h: $REMUS_RUN_DIR/NAME.sock, 0600,
 * root or our uid only), by default NAME = "disk-nbdN" for --device
 * /dev/nbdN (rm_nbd_attach_name()).  Requests:
 *   "attach" with one end of a socketpair (SCM_RIGHTS): from now on every
 *       change of the export goes through that feed (nbd/feed.h) before
 *       its reply; answer "ok size=BYTES dev=DEV ino=INO path=IMAGE", the
 *       image the protection reads for its initial sync.  One protection
 *       at a time: a second one is refused while the first one's feed
 *       lives ("error disk ... is attached to a protection already").
 *   "detach": back to a plain disk server.
 *   "status": "ok attached|detached size=BYTES changes=N path=IMAGE".
 * A feed that breaks (its protection died or stopped) detaches it at the
 * next change, which stays answered: it is in the image, and the disk is
 * a plain one again (logged loudly).
 *
 * The protection's end: rm_nbd_attach() makes the socketpair, asks, opens
 * the image read-only (checked to be the server's file by device and
 * inode), adds the disk to its log and starts the feed's thread.
 */
#ifndef REMUS_NBD_ATTACH_H
#define REMUS_NBD_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "common/disklog.h"
#include "common/err.h"
#include "nbd/export.h"

/* ---------------------------------------------------------- server end */

struct rm_nbd_attach_point;

/* Serve @e's control socket NAME (a thread) until closed. */
int rm_nbd_attach_point_open(struct rm_nbd_attach_point **out,
                             struct rm_nbd_export *e, const char *image,
                             const char *name, struct rm_error *err);
/* Detach any protection, stop serving, remove the socket.  NULL: none. */
void rm_nbd_attach_point_close(struct rm_nbd_attach_point *a);

/* The control socket's default name for the kernel device @dev
 * ("/dev/nbd3" -> "disk-nbd3").  0, or -EINVAL for another path. */
int rm_nbd_attach_name(const char *dev, char *name, size_t len,
                       struct rm_error *err);

/* ------------------------------------------------------ protection end */

struct rm_nbd_attached;

/*
 * Attach to the disk served under control socket NAME as disk @disk of
 * @log (before the save starts: rm_disklog_add_disk).  -ENOENT when
 * nothing serves NAME; otherwise -errno with the server's reason.
 */
int rm_nbd_attach(const char *name, struct rm_disklog *log, uint32_t disk,
                  struct rm_nbd_attached **out, struct rm_error *err);
/* The served image's size. */
uint64_t rm_nbd_attached_size(const struct rm_nbd_attached *a);
/* Detach (the server goes back to a plain disk), stop the feed, close.
 * Shut the log down first if a change may wait on its cap (feed.h).
 * NULL: nothing. */
void rm_nbd_detach(struct rm_nbd_attached *a);

#endif
