/* SPDX-License-Identifier: MIT */
/*
 * Inside the NBD server: one client connection (its socket, its deadline
 * for a begun request) and the export's I/O as the protocol phases use it.
 * Not for use outside nbd/.
 */
#ifndef REMUS_NBD_CONN_H
#define REMUS_NBD_CONN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "nbd/export.h"

struct nbd_conn {
    int fd;
    unsigned timeout_ms;
    volatile sig_atomic_t *stop;   /* may be NULL */
    struct rm_error *err;
};

/*
 * Receive exactly @len bytes.  @idle_ok: the first byte may take as long
 * as the client likes (between requests); otherwise all of it must come
 * within the connection's timeout.  0; 1 when @idle_ok and the client
 * closed before the first byte, or a stop was asked for meanwhile (a clean
 * end); -ETIMEDOUT or -EPIPE (closed
 * in the middle) or another -errno, with @what named in the error.
 */
int nbd_recv(struct nbd_conn *c, void *buf, size_t len, bool idle_ok,
             const char *what);
int nbd_send(struct nbd_conn *c, const void *buf, size_t len,
             const char *what);

uint64_t nbd_get64(const uint8_t *p);
uint32_t nbd_get32(const uint8_t *p);
uint16_t nbd_get16(const uint8_t *p);
void nbd_put64(uint8_t *p, uint64_t v);
void nbd_put32(uint8_t *p, uint32_t v);
void nbd_put16(uint8_t *p, uint16_t v);

/* The export as the phases see it (nbd/export.c). */
const char *nbd_export_name(const struct rm_nbd_export *e);
/* The export's request buffer, RM_NBD_MAX_REQUEST bytes (one connection
 * is served at a time). */
uint8_t *nbd_export_buffer(struct rm_nbd_export *e);
bool nbd_export_read_only(const struct rm_nbd_export *e);
/*
 * The I/O of one request: 0, or a positive NBD error number for the reply
 * (NBD_EIO, NBD_ENOSPC, ...) with the reason logged.  @off/@len are
 * already checked against the export's size.
 */
uint32_t nbd_export_read(struct rm_nbd_export *e, uint64_t off, void *buf,
                         uint32_t len);
uint32_t nbd_export_write(struct rm_nbd_export *e, uint64_t off,
                          const void *data, uint32_t len, bool fua);
uint32_t nbd_export_flush(struct rm_nbd_export *e);
/* Make the range read as zeros (TRIM and WRITE_ZEROES): @keep_allocated
 * (NO_HOLE) writes zeros instead of punching a hole; @fua syncs. */
uint32_t nbd_export_zero(struct rm_nbd_export *e, uint64_t off, uint32_t len,
                         bool keep_allocated, bool fua);

/* The phases (nbd/negotiate.c, nbd/transmit.c).  negotiate: 0 to go on
 * to transmission, 1 when the client ended it cleanly (NBD_OPT_ABORT),
 * or -errno. */
int nbd_negotiate(struct rm_nbd_export *e, struct nbd_conn *c);
int nbd_transmit(struct rm_nbd_export *e, struct nbd_conn *c,
                 struct rm_nbd_conn_stats *st);

#endif
