/* SPDX-License-Identifier: MIT */
/*
 * The kernel's NBD client (/dev/nbdN, nbd.ko) attached to an export
 * served in this process: a socketpair, one end given to the kernel
 * (NBD_SET_SOCK, then NBD_DO_IT in a thread of ours, which the kernel
 * holds until the device is disconnected), the other served with
 * rm_nbd_serve_transmission() (the kernel does no negotiation: size and
 * flags are set by ioctl).  The device then reads and writes the image,
 * e.g. as a Xen guest's `phy:/dev/nbdN` disk.
 *
 * A server under the block layer of its own host must not wait on that
 * layer's memory reclaim: attach locks the process's memory (mlockall),
 * and the thread that serves must call rm_nbd_kernel_serving_thread()
 * (PR_SET_IO_FLUSHER: its allocations do not recurse into I/O).
 */
#ifndef REMUS_NBD_KERNEL_H
#define REMUS_NBD_KERNEL_H

#include "common/err.h"
#include "nbd/export.h"

struct rm_nbd_kernel;

/*
 * Attach @dev (e.g. "/dev/nbd0", unused) to @e.  *@serve_fd gets our end
 * of the connection (the caller serves it, and does not close it).  0 or
 * -errno: a device in use, no nbd module ("modprobe nbd"), ... named.
 */
int rm_nbd_kernel_attach(struct rm_nbd_kernel **out, const char *dev,
                         struct rm_nbd_export *e, int *serve_fd,
                         struct rm_error *err);
/* Mark the calling thread as one the block layer's I/O depends on. */
int rm_nbd_kernel_serving_thread(struct rm_error *err);
/* Disconnect the device (its pending requests fail), wait for the
 * kernel's thread, close.  NULL: nothing. */
void rm_nbd_kernel_detach(struct rm_nbd_kernel *k);

#endif
