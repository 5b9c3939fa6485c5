/* SPDX-License-Identifier: MIT */
/*
 * TCP helpers for the replication link: HOST:PORT parsing, listening,
 * accepting and connecting with timeouts.  Sockets are TCP_NODELAY (acks
 * and heartbeats are small and latency-critical) and close-on-exec.
 */
#ifndef REMUS_COMMON_NET_H
#define REMUS_COMMON_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define RM_HOST_MAX 256

struct rm_hostport {
    char host[RM_HOST_MAX];
    uint16_t port;
};

/* Parse "HOST:PORT" or "[V6]:PORT".  0 or -EINVAL with the reason. */
int rm_parse_hostport(const char *s, struct rm_hostport *hp,
                      struct rm_error *err);

/* Listening socket bound to @hp (HOST may be "*" or empty for any).
 * Returns the fd or -errno. */
int rm_tcp_listen(const struct rm_hostport *hp, struct rm_error *err);

/* Accept one connection, waiting at most @timeout_ms (-1: forever).
 * Returns the fd, -ETIMEDOUT, or -errno. */
int rm_tcp_accept(int lfd, int timeout_ms, struct rm_error *err);

/* Connect within @timeout_ms.  Returns the fd or -errno. */
int rm_tcp_connect(const struct rm_hostport *hp, int timeout_ms,
                   struct rm_error *err);

/* The local port a listening socket got (for port 0). */
int rm_tcp_local_port(int fd);

/* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of a connected socket's peer, for
 * logs ("an unknown address" when it has none). */
void rm_tcp_peer_name(int fd, char *buf, size_t len);

/*
 * Connections accepted but not yet authenticated ("pre-authentication"),
 * served all at once: a connection becomes a candidate only when its whole
 * first message (or, once re-added, its next frame) has arrived (@fixed bytes, then, with @frame, one frame of
 * a u32 big-endian length and that many bytes), so the caller's checks
 * never wait on a slow or idle peer.  Each connection has @limit_ms in all
 * to get there; one that runs out, closes first, or is the oldest when
 * RM_PREAUTH_MAX are pending and another arrives, is dropped with a log
 * line naming its address and the reason.  The kernel holds the bytes
 * (SO_RCVLOWAT), so nothing is consumed before the caller reads.
 */
#define RM_PREAUTH_MAX 16

struct rm_preauth_conn {
    int fd;
    uint64_t deadline_ns;        /* its pre-authentication time runs out */
    uint32_t fixed;              /* bytes before the awaited frame */
    uint32_t need;               /* bytes the awaited message takes */
    char addr[64];
    const char *what;            /* the awaited message, for the logs */
    void *opaque;                /* the caller's, for a re-added one */
};

struct rm_preauth {
    int lfd;
    unsigned limit_ms;
    uint32_t fixed;              /* bytes before the frame */
    bool frame;                  /* a length-prefixed frame follows them */
    uint32_t max_frame;          /* larger: a candidate at once, so that
                                    the caller's reader refuses it */
    const char *what;            /* "hello": the first message, for logs */
    /* Frees the caller's state of a re-added connection the set drops
     * (its fd is closed by the set).  Optional. */
    void (*on_drop)(void *opaque);
    unsigned n;
    struct rm_preauth_conn c[RM_PREAUTH_MAX];
};

void rm_preauth_init(struct rm_preauth *pa, int lfd, unsigned limit_ms,
                     uint32_t fixed, bool frame, uint32_t max_frame,
                     const char *what);

/*
 * Accept and watch connections for at most @timeout_ms (-1: forever) until
 * one has its first message whole.  0 with *out (the caller owns out->fd;
 * out->deadline_ns still bounds its authentication), -ETIMEDOUT, or -errno
 * when the listening socket fails.
 */
int rm_preauth_wait(struct rm_preauth *pa, int timeout_ms,
                    struct rm_preauth_conn *out, struct rm_error *err);

/*
 * Put back a connection that rm_preauth_wait() returned, to await its next
 * message (one frame, named @c->what in the logs) under the same deadline,
 * without waiting on it: for the steps of a handshake.  @c->opaque comes
 * back with it.
 */
void rm_preauth_add(struct rm_preauth *pa, const struct rm_preauth_conn *c);

/* Close every pending connection, logging @why for each. */
void rm_preauth_close(struct rm_preauth *pa, const char *why);

#endif
