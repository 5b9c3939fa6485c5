/* SPDX-License-Identifier: MIT */
/* Pre-authentication connections (common/net.h, rm_preauth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/net.h"

struct lis {
    int lfd, port;
    struct rm_preauth pa;
};

static void lis_open(struct lis *l, unsigned limit_ms, uint32_t fixed,
                     bool frame)
{
    struct rm_hostport hp = { .host = "127.0.0.1", .port = 0 };
    struct rm_error err = { 0 };

    l->lfd = rm_tcp_listen(&hp, &err);
    assert_true(l->lfd >= 0);
    l->port = rm_tcp_local_port(l->lfd);
    assert_true(l->port > 0);
    rm_preauth_init(&l->pa, l->lfd, limit_ms, fixed, frame, 1000, "hello");
}

static void lis_close(struct lis *l)
{
    rm_preauth_close(&l->pa, "test over");
    close(l->lfd);
}

static int dial(const struct lis *l)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)l->port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void put(int fd, const void *d, size_t n)
{
    assert_int_equal(send(fd, d, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* A frame: u32 big-endian length, then @n bytes of @c. */
static void put_frame(int fd, uint32_t n, char c)
{
    uint32_t be = htonl(n);
    char body[64];

    assert_true(n <= sizeof(body));
    memset(body, c, n);
    put(fd, &be, 4);
    put(fd, body, n);
}

/* Did the server close @fd (EOF or reset within @ms)? */
static bool closed_by_server(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char b;

    if (poll(&p, 1, ms) != 1)
        return false;
    return recv(fd, &b, 1, MSG_DONTWAIT) <= 0;
}

/* Wait for a candidate; its fd (owned by the caller) or a -errno. */
static int wait_one(struct lis *l, int ms, struct rm_preauth_conn *c)
{
    struct rm_error err = { 0 };
    int rc = rm_preauth_wait(&l->pa, ms, c, &err);

    return rc ? rc : c->fd;
}

/* An idle peer and a trickling one are dropped at the limit; a peer with
 * its whole frame is a candidate at once, whoever came first. */
static void test_slow_peers_hold_up_nobody(void **state)
{
    struct rm_preauth_conn c;
    struct lis l;
    uint32_t be = htonl(8);
    int idle, slow, good, fd, i;
    uint64_t t0;

    (void)state;
    lis_open(&l, 600, 0, true);
    idle = dial(&l);
    slow = dial(&l);
    put(slow, &be, 4);
    put(slow, "ab", 2);          /* 6 of its 8 bytes never come */
    assert_int_equal(wait_one(&l, 200, &c), -ETIMEDOUT);
    assert_int_equal(l.pa.n, 2);
    good = dial(&l);
    put_frame(good, 8, 'g');
    t0 = rm_now_ns();
    fd = wait_one(&l, 2000, &c);
    assert_true(fd >= 0);
    assert_true(rm_now_ns() - t0 < 400000000ull);
    assert_non_null(strstr(c.addr, "127.0.0.1:"));
    /* Nothing consumed: the caller reads the whole frame. */
    {
        char buf[12];

        assert_int_equal(rm_read_all(fd, buf, sizeof(buf)), 0);
        assert_int_equal(buf[11], 'g');
    }
    close(fd);
    /* The two others run out of time and are closed. */
    for (i = 0; i < 10 && l.pa.n; i++)
        assert_int_equal(wait_one(&l, 200, &c), -ETIMEDOUT);
    assert_int_equal(l.pa.n, 0);
    assert_true(closed_by_server(idle, 100));
    assert_true(closed_by_server(slow, 100));
    close(idle);
    close(slow);
    close(good);
    lis_close(&l);
}

/* A fixed prefix (a token) then a frame: a candidate only when both are
 * whole; a length out of range makes a candidate at once (for the
 * caller's reader to refuse). */
static void test_token_and_frame(void **state)
{
    struct rm_preauth_conn c;
    struct lis l;
    uint32_t big = htonl(5000);
    int a, b, fd;

    (void)state;
    lis_open(&l, 2000, 16, true);
    a = dial(&l);
    put(a, "0123456789abcdef", 16);
    assert_int_equal(wait_one(&l, 200, &c), -ETIMEDOUT);
    put_frame(a, 4, 'x');
    fd = wait_one(&l, 1000, &c);
    assert_true(fd >= 0);
    close(fd);
    b = dial(&l);
    put(b, "0123456789abcdef", 16);
    put(b, &big, 4);             /* beyond max_frame (1000) */
    fd = wait_one(&l, 1000, &c);
    assert_true(fd >= 0);
    close(fd);
    close(a);
    close(b);
    lis_close(&l);
}

/* A peer that closes before its message is whole is dropped at once. */
static void test_closed_early(void **state)
{
    struct rm_preauth_conn c;
    struct lis l;
    int a;

    (void)state;
    lis_open(&l, 5000, 0, true);
    a = dial(&l);
    put(a, "\0\0", 2);
    assert_int_equal(wait_one(&l, 200, &c), -ETIMEDOUT);
    assert_int_equal(l.pa.n, 1);
    close(a);
    assert_int_equal(wait_one(&l, 300, &c), -ETIMEDOUT);
    assert_int_equal(l.pa.n, 0);
    lis_close(&l);
}

/* At most RM_PREAUTH_MAX pending: one more drops the oldest. */
static void test_oldest_dropped_when_full(void **state)
{
    struct rm_preauth_conn c;
    struct lis l;
    int fds[RM_PREAUTH_MAX + 1], i;

    (void)state;
    lis_open(&l, 10000, 0, true);
    for (i = 0; i <= (int)RM_PREAUTH_MAX; i++) {
        fds[i] = dial(&l);
        /* accepted (and kept: it sent nothing) before the next one */
        assert_int_equal(wait_one(&l, 100, &c), -ETIMEDOUT);
    }
    assert_int_equal(l.pa.n, RM_PREAUTH_MAX);
    assert_true(closed_by_server(fds[0], 500));
    assert_false(closed_by_server(fds[1], 100));
    for (i = 0; i <= (int)RM_PREAUTH_MAX; i++)
        close(fds[i]);
    lis_close(&l);
}

static unsigned freed;

static void count_free(void *opaque)
{
    (void)opaque;
    freed++;
}

/* A connection put back (the next step of its handshake) comes back with
 * its state once its next frame is whole, waiting on nobody meanwhile;
 * one whose next frame never comes is dropped with its state freed. */
static void test_readd_next_step(void **state)
{
    struct rm_preauth_conn ca, cb, d;
    struct lis l;
    char buf[8];
    int a, b, other, fd;
    int tag_a = 1, tag_b = 2;

    (void)state;
    lis_open(&l, 800, 0, true);
    l.pa.on_drop = count_free;
    freed = 0;
    a = dial(&l);
    b = dial(&l);
    /* Both send their first frame; both are put back for their next. */
    put_frame(a, 4, 'h');
    assert_true(wait_one(&l, 1000, &ca) >= 0);
    put_frame(b, 4, 'h');
    assert_true(wait_one(&l, 1000, &cb) >= 0);
    assert_int_equal(rm_read_all(ca.fd, buf, 8), 0);
    assert_int_equal(rm_read_all(cb.fd, buf, 8), 0);
    ca.opaque = &tag_a;
    ca.what = "key proof";
    rm_preauth_add(&l.pa, &ca);
    cb.opaque = &tag_b;
    cb.what = "key proof";
    rm_preauth_add(&l.pa, &cb);
    /* A third connection is served at once while both wait. */
    other = dial(&l);
    put_frame(other, 4, 'o');
    fd = wait_one(&l, 300, &d);
    assert_true(fd >= 0);
    assert_null(d.opaque);
    close(fd);
    close(other);
    /* a's next frame: it comes back with its state. */
    put_frame(a, 4, 'p');
    fd = wait_one(&l, 1000, &d);
    assert_int_equal(fd, ca.fd);
    assert_ptr_equal(d.opaque, &tag_a);
    close(fd);
    /* b never sends it: dropped at the limit, its state freed. */
    while (l.pa.n)
        assert_int_equal(wait_one(&l, 200, &d), -ETIMEDOUT);
    assert_int_equal(freed, 1);
    assert_true(closed_by_server(b, 100));
    close(a);
    close(b);
    lis_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_peers_hold_up_nobody),
        cmocka_unit_test(test_token_and_frame),
        cmocka_unit_test(test_closed_early),
        cmocka_unit_test(test_oldest_dropped_when_full),
        cmocka_unit_test(test_readd_next_step),
    };

    rm_log_init(RM_LOG_WARN, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
