/* SPDX-License-Identifier: MIT */
/*
 * The primary's connections as the secondary accepts them
 * (secondary/receive.c's first step): the control connection and its
 * handshake (proto/channel.h), then the stream connection that presents
 * the session's token, with a key under a layer that opens its sealed
 * chunks (common/auth.h).
 *
 * Nobody can end or hold up the secondary by connecting: every candidate
 * connection is served at once beside the others (common/net.h
 * rm_preauth), has a bounded time for its first messages, and one that
 * fails (a stranger, a probe, a wrong key, an incompatible or another
 * session's primary) is logged and closed while the wait goes on.
 */
#ifndef REMUS_SECONDARY_ACCEPT_H
#define REMUS_SECONDARY_ACCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/err.h"
#include "common/io.h"
#include "common/status.h"
#include "proto/channel.h"
#include "secondary/receive.h"

struct rm_primary_conn {
    int lfd;                       /* the listening socket (-1: none) */
    int ctl_fd, stream_fd;         /* -1: not accepted */
    struct rm_chan chan;           /* the control connection's */
    bool have_chan;
    char ctl_addr[64], stream_addr[64];  /* the peers, for logs */
    /* The restore engine reads stream_src; with a key its layer opens the
     * sealed chunks that arrive on stream_lower (the stream socket). */
    struct rm_src stream_lower, stream_src;
    struct rm_auth_src auth_src;
    bool have_auth_src;
    struct rm_hello peer;          /* the accepted primary's hello */
};

/* Nothing accepted (fds -1): what rm_primary_conn_close() may be given. */
void rm_primary_conn_init(struct rm_primary_conn *pc);
/*
 * Accept on pc->lfd the primary's control connection and run the
 * handshake, as @cfg says (its key, capabilities, timing, disks); a
 * failing candidate is logged and the next awaited, until
 * cfg->accept_timeout_ms (0: for ever) or *cfg->stop_requested.  @status
 * is ticked while it waits (the loop is alive).  0 with pc->chan,
 * pc->ctl_fd, pc->ctl_addr, pc->peer and @mine (the agreed hello, with
 * the session token) set; or -errno with @err naming why.
 */
int rm_accept_control(struct rm_primary_conn *pc,
                      const struct rm_receive_cfg *cfg,
                      struct rm_status *status, struct rm_hello *mine,
                      struct rm_error *err);
/*
 * Accept on pc->lfd the stream connection that presents @token (the
 * session's) and, with cfg->key, its sealed confirmation, within 10 s in
 * all.  0 with pc->stream_fd and pc->stream_src (what the restore engine
 * reads) set; or -errno with @err naming why.
 */
int rm_accept_stream(struct rm_primary_conn *pc,
                     const struct rm_receive_cfg *cfg, const uint8_t *token,
                     size_t token_len, struct rm_error *err);
/* Free the opening layer and the channel, close both connections and the
 * listening socket unless it is @listen_fd (the caller's). */
void rm_primary_conn_close(struct rm_primary_conn *pc, int listen_fd);

#endif
