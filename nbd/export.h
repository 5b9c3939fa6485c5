/* SPDX-License-Identifier: MIT */
/*
 * One disk image served over NBD (`remus disk serve`): the export, its
 * I/O, and the serving of one client connection (fixed newstyle
 * negotiation, then the transmission phase with simple replies).
 *
 * The image is written through: a WRITE reaches the image (and, with FUA,
 * its fdatasync) before its reply; FLUSH fdatasyncs.  An observer, when
 * set, sees every change after it reached the image and before the reply
 * (the disk-epoch log of a protection attaches there), in the order the
 * client's requests arrive: one connection is served at a time and its
 * requests one after another, so completion order is arrival order.
 *
 * Bad input from a client (a wrong magic, an option or request that is
 * too long, a range beyond the export, an unknown command, a client that
 * vanishes or stalls in the middle of a request) gets an error reply or a
 * clean close of that connection; the export serves the next one.
 *
 * Every function returns 0 or a negative errno with the reason in @err;
 * none exits.
 */
#ifndef REMUS_NBD_EXPORT_H
#define REMUS_NBD_EXPORT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define RM_NBD_MAX_REQUEST (32u << 20)  /* one READ/WRITE: at most 32 MiB */
#define RM_NBD_BLOCK 512u               /* the block size we advertise */

struct rm_nbd_export;

struct rm_nbd_params {
    const char *image;       /* a raw image file or block device */
    const char *name;        /* the export's name ("" when NULL); a client
                                may also ask for "" */
    bool read_only;
    unsigned request_timeout_ms; /* the rest of a begun request or of the
                                    negotiation must arrive within this
                                    (0: 30 s); between requests a client
                                    may be idle as long as it likes */
    enum rm_nbd_cache {
        RM_NBD_CACHE_PAGE = 0,   /* the image through the page cache */
        RM_NBD_CACHE_DIRECT,     /* also opened O_DIRECT: a request whose
                                    offset and length are multiples of
                                    RM_NBD_DIRECT_ALIGN bypasses the page
                                    cache (the others go through it: the
                                    kernel writes back and drops a range
                                    before direct I/O on it, so both
                                    agree); an image whose file system
                                    refuses O_DIRECT fails the open */
        RM_NBD_CACHE_AUTO,       /* DIRECT where the file system allows
                                    it, else PAGE (logged) */
    } cache;
    const char *hold_while;  /* while this file exists, each request waits
                                before it is served (NULL: never): holds
                                a client's I/O in flight without a signal
                                to the server (a stopped NBD_DO_IT thread
                                ends the kernel's device), for tests and
                                drills of a stalled disk */
};
#define RM_NBD_DIRECT_ALIGN 4096u

/*
 * Sees each change, after it reached the image, before its reply.  Called
 * from the serving thread; an error fails that request (EIO to the
 * client).  @disk is always 0 (one image per export).
 */
struct rm_nbd_observer {
    void *opaque;
    int (*write)(void *opaque, uint32_t disk, uint64_t off, const void *data,
                 uint32_t len, bool fua);
    int (*discard)(void *opaque, uint32_t disk, uint64_t off, uint64_t len);
    int (*flush)(void *opaque, uint32_t disk);
};

/* Open the image (its size must be a multiple of RM_NBD_BLOCK). */
int rm_nbd_export_open(struct rm_nbd_export **out,
                       const struct rm_nbd_params *params,
                       struct rm_error *err);
void rm_nbd_export_close(struct rm_nbd_export *e);
uint64_t rm_nbd_export_size(const struct rm_nbd_export *e);
/* Whether requests may bypass the page cache (RM_NBD_CACHE_DIRECT, or
 * AUTO where the file system allowed it). */
bool rm_nbd_export_direct(const struct rm_nbd_export *e);
/* While params.hold_while exists (and no stop was asked for), wait; the
 * serving loop calls it with each request received, before serving it. */
void nbd_export_hold(struct rm_nbd_export *e, volatile sig_atomic_t *stop);
/* The image's fd (for a disk log's resync reads). */
int rm_nbd_export_fd(const struct rm_nbd_export *e);
/* Set (NULL: remove) the observer; a copy is kept.  Waits for a request
 * in progress to end, so after it returns no request uses the old one. */
void rm_nbd_export_set_observer(struct rm_nbd_export *e,
                                const struct rm_nbd_observer *obs);

/* What one connection did. */
struct rm_nbd_conn_stats {
    uint64_t requests, reads, writes, flushes, trims, zeroes, errors;
    uint64_t read_bytes, write_bytes;
};

/*
 * Serve one client on @fd (a connected stream socket; one at a time per
 * export: its request buffer is the export's) until it
 * disconnects (NBD_CMD_DISC, or a close between requests: 0), until *@stop
 * (may be NULL) is set between requests (0), or until its bad input or a
 * stall ends it (-EPROTO, -ETIMEDOUT, -EPIPE, with the reason).  @fd is
 * not closed.  @st (may be NULL) gets the counts.
 */
int rm_nbd_serve(struct rm_nbd_export *e, int fd, volatile sig_atomic_t *stop,
                 struct rm_nbd_conn_stats *st, struct rm_error *err);
/* The same without the negotiation: the kernel's client (nbd/kernel.h),
 * whose size and flags were set by ioctl. */
int rm_nbd_serve_transmission(struct rm_nbd_export *e, int fd,
                              volatile sig_atomic_t *stop,
                              struct rm_nbd_conn_stats *st,
                              struct rm_error *err);

#endif
