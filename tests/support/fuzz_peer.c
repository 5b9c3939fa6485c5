/* SPDX-License-Identifier: MIT */
#include "tests/support/fuzz_peer.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *peer_main(void *arg)
{
    struct rm_fuzz_peer *p = arg;
    size_t off = 0;
    uint8_t sink[65536];
    bool fed = p->len == 0;

    if (fed)
        shutdown(p->fd, SHUT_WR);
    for (;;) {
        struct pollfd pfd = { .fd = p->fd,
                              .events = POLLIN | (fed ? 0 : POLLOUT) };

        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            break;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(p->fd, sink, sizeof(sink));

            if (n <= 0)
                break;
            if (p->out_len < p->out_cap) {
                size_t k = (size_t)n < p->out_cap - p->out_len ?
                           (size_t)n : p->out_cap - p->out_len;

                memcpy(p->out + p->out_len, sink, k);
                p->out_len += k;
            }
        }
        if (!fed && (pfd.revents & POLLOUT)) {
            ssize_t n = send(p->fd, p->in + off, p->len - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                fed = true;         /* the other side is gone */
                continue;
            }
            if (n > 0)
                off += (size_t)n;
            if (off == p->len) {
                fed = true;
                shutdown(p->fd, SHUT_WR);
            }
        }
    }
    return NULL;
}

void rm_fuzz_peer_start(struct rm_fuzz_peer *p)
{
    p->out_len = 0;
    if (pthread_create(&p->thread, NULL, peer_main, p))
        abort();
}

void rm_fuzz_peer_join(struct rm_fuzz_peer *p)
{
    pthread_join(p->thread, NULL);
}
