/* SPDX-License-Identifier: MIT */
/*
 * The primary's connections to its secondary (primary/protect.c's first
 * step): the control connection and its handshake (proto/channel.h), the
 * stream connection with the session token, the sealed chunk layer on it
 * with a key (common/auth.h), the send deadlines, and the initial sync of
 * the disks (proto/disks.h).
 *
 * The secondary may still be starting: a refused control connection is
 * tried again until cfg->connect_timeout_ms.  Every write to the peer
 * has a deadline: cfg->hb_timeout_ms without progress fails it.
 */
#ifndef REMUS_PRIMARY_CONNECT_H
#define REMUS_PRIMARY_CONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/err.h"
#include "common/io.h"
#include "primary/protect.h"
#include "proto/channel.h"

struct rm_peer_conn {
    struct rm_chan chan;           /* the control connection's */
    bool have_chan;
    int ctl_fd, stream_fd;         /* -1: not connected */
    bool compress;                 /* negotiated */
    uint64_t peer_buffer;          /* the secondary's checkpoint buffer
                                      (its hello; 0: not said) */
    /* What the checkpoint stream is written to: the stream socket, or
     * with a key a layer that seals chunks onto it (stream_lower). */
    struct rm_sink stream_lower, stream_sink;
    struct rm_auth_sink auth_sink;
    bool have_auth_sink;
};

/* Not connected (fds -1): what rm_peer_close() may be given. */
void rm_peer_conn_init(struct rm_peer_conn *c);
/*
 * Connect to cfg->peer as cfg describes (its hello: the VM, the timing,
 * the capabilities, the disks; its key), and with cfg->disks start
 * logging the guest's writes and take the secondary's chunk hashes (the
 * chunks that differ are sent before the first pass).  Logs the session
 * it agreed.  0 or -errno with @err naming what failed; what was opened
 * stays in @c for rm_peer_close().
 */
int rm_peer_connect(struct rm_peer_conn *c, const struct rm_protect_cfg *cfg,
                    struct rm_error *err);
/* Free the sealing layer and the channel, close both connections. */
void rm_peer_close(struct rm_peer_conn *c);

#endif
