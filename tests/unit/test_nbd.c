/* SPDX-License-Identifier: MIT */
/*
 * The NBD export's observer (nbd/export.h), the hook a protection's disk
 * log attaches to: it sees each change after the image holds it and before
 * the reply, in request order, a long write in pieces of at most 1 MiB,
 * TRIM and WRITE_ZEROES as a zeroed range, FLUSH and FUA; an observer that
 * fails makes the request fail (EIO) with the image written through; a
 * removed observer sees nothing.  A raw client over a socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "nbd/export.h"
#include "nbd/nbd_wire.h"
#include "tests/support/nbd_client.h"

#define SIZE (8u << 20)

struct call {
    char op;                /* 'w' write, 'd' discard (zeroed), 'f' flush */
    uint64_t off, len;
    bool fua;
    bool on_image;          /* the image held it when we were told */
};

struct obs {
    int fd;
    struct call calls[64];
    unsigned n;
    int fail;               /* -errno to return, 0: none */
};

static int o_write(void *opaque, uint32_t disk, uint64_t off, const void *data,
                   uint32_t len, bool fua)
{
    struct obs *o = opaque;
    uint8_t *img = malloc(len);
    struct call *c = &o->calls[o->n++ % 64];

    assert_int_equal(disk, 0);
    assert_int_equal(pread(o->fd, img, len, (off_t)off), (ssize_t)len);
    *c = (struct call){ 'w', off, len, fua, !memcmp(img, data, len) };
    free(img);
    return o->fail;
}

static int o_discard(void *opaque, uint32_t disk, uint64_t off, uint64_t len)
{
    struct obs *o = opaque;
    uint8_t *img = malloc(len), *zero = calloc(1, len);
    struct call *c = &o->calls[o->n++ % 64];

    assert_int_equal(disk, 0);
    assert_int_equal(pread(o->fd, img, len, (off_t)off), (ssize_t)len);
    *c = (struct call){ 'd', off, len, false, !memcmp(img, zero, len) };
    free(img);
    free(zero);
    return o->fail;
}

static int o_flush(void *opaque, uint32_t disk)
{
    struct obs *o = opaque;

    assert_int_equal(disk, 0);
    o->calls[o->n++ % 64] = (struct call){ 'f', 0, 0, false, true };
    return o->fail;
}

struct server {
    struct rm_nbd_export *e;
    int fd, rc;
    struct rm_error err;
};

static void *serve_main(void *arg)
{
    struct server *s = arg;

    s->rc = rm_nbd_serve(s->e, s->fd, NULL, NULL, &s->err);
    close(s->fd);
    return NULL;
}

static void start(struct server *s, struct obs *o, int *client)
{
    char path[] = "/tmp/remus-test-nbd.XXXXXX";
    struct rm_nbd_params p = { .image = path };
    struct rm_nbd_observer ob = { o, o_write, o_discard, o_flush };
    struct rm_error err = { 0 };
    int sv[2], fd = mkstemp(path);
    pthread_t th;

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SIZE), 0);
    memset(o, 0, sizeof(*o));
    memset(s, 0, sizeof(*s));
    o->fd = fd;
    assert_int_equal(rm_nbd_export_open(&s->e, &p, &err), 0);
    unlink(path);
    rm_nbd_export_set_observer(s->e, &ob);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s->fd = sv[1];
    *client = sv[0];
    assert_int_equal(pthread_create(&th, NULL, serve_main, s), 0);
    assert_int_equal(pthread_detach(th), 0);
    tnbd_negotiate(*client);
}

static void finish(struct server *s, struct obs *o, int client)
{
    tnbd_disconnect(client);
    close(client);
    usleep(10000);
    rm_nbd_export_close(s->e);
    close(o->fd);
}

static void test_observer_sees_changes_in_order(void **state)
{
    struct server s;
    struct obs o;
    uint8_t *big = malloc(3u << 20);
    int c;

    (void)state;
    start(&s, &o, &c);
    memset(big, 0x5a, 3u << 20);
    assert_int_equal(tnbd_request(c, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 4096,
                             (3u << 20) - 4096, big), 0);
    assert_int_equal(tnbd_request(c, NBD_CMD_TRIM, 0, 8192, 4096, NULL), 0);
    assert_int_equal(tnbd_request(c, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA,
                             1u << 20, 512, NULL), 0);
    assert_int_equal(tnbd_request(c, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    /* a write of 3 MiB - 4 KiB: three pieces of at most 1 MiB, FUA */
    assert_int_equal(o.n, 7);
    assert_int_equal(o.calls[0].op, 'w');
    assert_int_equal(o.calls[0].off, 4096);
    assert_int_equal(o.calls[0].len, 1u << 20);
    assert_int_equal(o.calls[1].off, 4096 + (1u << 20));
    assert_int_equal(o.calls[2].len, (1u << 20) - 4096);
    for (unsigned i = 0; i < 3; i++)
        assert_true(o.calls[i].fua && o.calls[i].on_image);
    assert_int_equal(o.calls[3].op, 'd');        /* TRIM: zeroed */
    assert_int_equal(o.calls[3].off, 8192);
    assert_int_equal(o.calls[3].len, 4096);
    assert_true(o.calls[3].on_image);
    assert_int_equal(o.calls[4].op, 'd');        /* WRITE_ZEROES, FUA */
    assert_true(o.calls[4].on_image);
    assert_int_equal(o.calls[5].op, 'f');
    assert_int_equal(o.calls[6].op, 'f');        /* FLUSH */
    free(big);
    finish(&s, &o, c);
}

static void test_failing_observer_fails_request(void **state)
{
    struct server s;
    struct obs o;
    uint8_t b[512];
    int c;

    (void)state;
    start(&s, &o, &c);
    memset(b, 0x33, sizeof(b));
    o.fail = -ENOMEM;
    assert_int_equal(tnbd_request(c, NBD_CMD_WRITE, 0, 0, 512, b), NBD_EIO);
    assert_int_equal(tnbd_request(c, NBD_CMD_FLUSH, 0, 0, 0, NULL), NBD_EIO);
    assert_int_equal(tnbd_request(c, NBD_CMD_TRIM, 0, 0, 512, NULL), NBD_EIO);
    /* removed: it sees nothing more, and the requests succeed */
    rm_nbd_export_set_observer(s.e, NULL);
    o.n = 0;
    assert_int_equal(tnbd_request(c, NBD_CMD_WRITE, 0, 512, 512, b), 0);
    assert_int_equal(tnbd_request(c, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    assert_int_equal(o.n, 0);
    finish(&s, &o, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observer_sees_changes_in_order),
        cmocka_unit_test(test_failing_observer_fails_request),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
