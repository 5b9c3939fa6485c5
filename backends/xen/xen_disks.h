/* SPDX-License-Identifier: MIT */
/*
 * A protected domain's disks (#19): every VBD backed by a kernel NBD
 * device that `remus disk serve --device /dev/nbdN` serves (phy:/dev/nbdN)
 * is attached to one disk-epoch log (nbd/attach.h): the server sends each
 * of the guest's writes to the log before it answers it, and the save
 * engine cuts the log once the domain reports suspended, so a write the
 * guest saw complete is in the checkpoint's epoch or an earlier one; a
 * request still in flight at the cut is not complete for the guest, and
 * blkfront issues it again when it reconnects on the replica.
 *
 * Disk ids: the served VBDs in the order of their names (xvda, xvdb, ...);
 * the secondary's `--disk` images are given in that order.  Any other VBD
 * is refused unless -F -d (xen_devices.h).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_DISKS_H
#define REMUS_BACKENDS_XEN_XEN_DISKS_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/disklog.h"
#include "common/err.h"

struct rm_xen_disks;

/*
 * Attach @domid's served VBDs to a new log (at most @max_unacked bytes
 * logged and not acknowledged: 0 for the default); any other VBD is
 * refused.  With @no_disk (-F -d) nothing is attached: every VBD is
 * named in a warning and listed in @unrep (ids in name order, sizes from
 * blkback), *@nr_unrep of them, for the secondary to know its images of
 * them fall behind.  *@out NULL when nothing is attached.  0 or -errno
 * with the reason (a disk server that refuses the attach: another
 * protection holds it, ...).
 */
int rm_xen_disks_protect(struct rm_xen_host *h, uint32_t domid,
                         bool no_disk, uint64_t max_unacked,
                         struct rm_xen_disks **out,
                         struct rm_unreplicated_disk *unrep,
                         uint32_t *nr_unrep, struct rm_error *err);
/* The log the save engine cuts (NULL for @d NULL). */
struct rm_disklog *rm_xen_disks_log(struct rm_xen_disks *d);
/* Detach from every server (each serves a plain disk again) and free the
 * log.  NULL: nothing. */
void rm_xen_disks_close(struct rm_xen_disks *d);

#endif
