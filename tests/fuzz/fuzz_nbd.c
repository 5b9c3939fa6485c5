/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: `remus disk serve` (nbd/) on any bytes from a client.  The
 * first byte chooses the phase: even, the whole connection (negotiation,
 * then transmission: rm_nbd_serve); odd, the transmission alone (what the
 * kernel's client speaks: rm_nbd_serve_transmission).  The rest is what
 * the client sends, over a socketpair whose other end a thread feeds and
 * drains.  Never a crash, a hang, or a read or write outside the 64 KiB
 * export.  Seeds (tests/fuzz/corpus/fuzz_nbd): a GO and one of each
 * request, an EXPORT_NAME session, and a transmission-only session.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "nbd/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXPORT_BYTES (64u << 10)

struct client {
    int fd;
    const uint8_t *in;
    size_t len;
};

/* Feed the input, then drain the replies until the server closes. */
static void *client_main(void *arg)
{
    struct client *c = arg;
    size_t off = 0;
    uint8_t sink[65536];
    bool fed = c->len == 0;

    if (fed)
        shutdown(c->fd, SHUT_WR);
    for (;;) {
        struct pollfd p = { .fd = c->fd,
                            .events = POLLIN | (fed ? 0 : POLLOUT) };

        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(c->fd, sink, sizeof(sink));

            if (n <= 0)
                break;
        }
        if (!fed && (p.revents & POLLOUT)) {
            ssize_t n = send(c->fd, c->in + off, c->len - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                fed = true;         /* the server is gone */
                continue;
            }
            if (n > 0)
                off += (size_t)n;
            if (off == c->len) {
                fed = true;
                shutdown(c->fd, SHUT_WR);
            }
        }
    }
    return NULL;
}

static struct rm_nbd_export *export_once(void)
{
    static struct rm_nbd_export *e;
    char path[] = "/dev/shm/remus-fuzz-nbd.XXXXXX";   /* tmpfs: no real syncs */
    struct rm_nbd_params p = { .image = path, .name = "fuzz",
                               .request_timeout_ms = 50 };
    struct rm_error err = { 0 };
    int fd;

    if (e)
        return e;
    rm_log_init(RM_LOG_ERROR, NULL);
    signal(SIGPIPE, SIG_IGN);
    fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, EXPORT_BYTES))
        abort();
    close(fd);
    if (rm_nbd_export_open(&e, &p, &err))
        abort();
    unlink(path);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_nbd_export *e = export_once();
    struct client c;
    struct rm_error err = { 0 };
    pthread_t th;
    int sv[2];

    if (size < 1)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    c.fd = sv[0];
    c.in = data + 1;
    c.len = size - 1;
    if (pthread_create(&th, NULL, client_main, &c))
        abort();
    if (data[0] & 1)
        rm_nbd_serve_transmission(e, sv[1], NULL, NULL, &err);
    else
        rm_nbd_serve(e, sv[1], NULL, NULL, &err);
    close(sv[1]);
    pthread_join(th, NULL);
    close(sv[0]);
    return 0;
}
