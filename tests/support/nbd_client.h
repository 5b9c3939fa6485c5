/* SPDX-License-Identifier: MIT */
/*
 * A raw NBD client for the unit tests (cmocka asserts on every step): the
 * client's side of the fixed newstyle negotiation (GO ""), one request and
 * its simple reply, DISC.
 */
#ifndef REMUS_TESTS_NBD_CLIENT_H
#define REMUS_TESTS_NBD_CLIENT_H

#include <stdint.h>

/* Negotiate on @fd: flags, GO "", its replies up to ACK. */
void tnbd_negotiate(int fd);
/* One request; returns its simple reply's error (0: done). */
uint32_t tnbd_request(int fd, uint16_t type, uint16_t flags, uint64_t off,
                      uint32_t len, const void *data);
/* NBD_CMD_DISC, then wait for the server to close its end. */
void tnbd_disconnect(int fd);

#endif
