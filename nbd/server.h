/* SPDX-License-Identifier: MIT */
/*
 * `remus disk serve`'s listener: an export (nbd/export.h) served on a
 * Unix socket, one client at a time, until asked to stop.
 */
#ifndef REMUS_NBD_SERVER_H
#define REMUS_NBD_SERVER_H

#include <signal.h>

#include "common/err.h"
#include "nbd/export.h"

struct rm_nbd_server;

/*
 * Listen on the Unix socket @path (mode 0600: only this user's clients).
 * A socket file left by a server that is gone is replaced; one a live
 * server answers on is refused, as is any other file.
 */
int rm_nbd_server_open_unix(struct rm_nbd_server **out,
                            struct rm_nbd_export *e, const char *path,
                            struct rm_error *err);
/*
 * Serve clients one after another until *@stop is set (checked at least
 * every 200 ms while no client is connected, and between requests).  A
 * client's bad input or stall ends its connection, logged with the
 * reason, and the next one is served.  0 when stopped, or -errno when the
 * listener itself fails.
 */
int rm_nbd_server_run(struct rm_nbd_server *s, volatile sig_atomic_t *stop,
                      struct rm_error *err);
/* Close the listener and remove its socket file. */
void rm_nbd_server_close(struct rm_nbd_server *s);

#endif
