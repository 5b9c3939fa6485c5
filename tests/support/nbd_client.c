/* SPDX-License-Identifier: MIT */
/* A raw NBD client for the unit tests (nbd_client.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/nbd_client.h"

#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "nbd/nbd_wire.h"

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

/* The client's side of the negotiation: flags, GO "", its replies. */
void tnbd_negotiate(int fd)
{
    uint8_t b[64];
    uint32_t type, len;

    assert_int_equal(rm_read_all(fd, b, 18), 0);
    put32(b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    assert_int_equal(rm_write_all(fd, b, 4), 0);
    put64(b, NBD_MAGIC_OPTS);
    put32(b + 8, NBD_OPT_GO);
    put32(b + 12, 6);
    memset(b + 16, 0, 6);
    assert_int_equal(rm_write_all(fd, b, 22), 0);
    do {
        assert_int_equal(rm_read_all(fd, b, 20), 0);
        type = get32(b + 12);
        len = get32(b + 16);
        assert_true(len <= sizeof(b));
        assert_int_equal(rm_read_all(fd, b, len), 0);
    } while (type != NBD_REP_ACK);
}

/* One request and its simple reply's error. */
uint32_t tnbd_request(int fd, uint16_t type, uint16_t flags, uint64_t off,
                      uint32_t len, const void *data)
{
    uint8_t h[28], r[16];

    put32(h, NBD_MAGIC_REQUEST);
    h[4] = (uint8_t)(flags >> 8);
    h[5] = (uint8_t)flags;
    h[6] = (uint8_t)(type >> 8);
    h[7] = (uint8_t)type;
    put64(h + 8, 42);
    put64(h + 16, off);
    put32(h + 24, len);
    assert_int_equal(rm_write_all(fd, h, 28), 0);
    if (data)
        assert_int_equal(rm_write_all(fd, data, len), 0);
    assert_int_equal(rm_read_all(fd, r, 16), 0);
    assert_int_equal(get32(r), NBD_MAGIC_SIMPLE_REPLY);
    return get32(r + 4);
}

void tnbd_disconnect(int fd)
{
    uint8_t h[28] = { 0 };

    put32(h, NBD_MAGIC_REQUEST);
    h[7] = NBD_CMD_DISC;
    assert_int_equal(rm_write_all(fd, h, 28), 0);
    /* the server closes its end after DISC */
    assert_int_equal(read(fd, h, 1), 0);
}
