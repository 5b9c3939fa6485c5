/* SPDX-License-Identifier: MIT */
/*
 * TCP helpers for the replication link: HOST:PORT parsing, listening,
 * accepting and connecting with timeouts.  Sockets are TCP_NODELAY (acks
 * and heartbeats are small and latency-critical) and close-on-exec.
 */
#ifndef REMUS_COMMON_NET_H
#define REMUS_COMMON_NET_H

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

#endif
