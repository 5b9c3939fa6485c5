/* SPDX-License-Identifier: MIT */
#include "drill/kvclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"

int kv_open(struct kv_client *c, uint32_t id, const char *ip, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    c->dst.sin_family = AF_INET;
    c->dst.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &c->dst.sin_addr) != 1) {
        close(c->fd);
        c->fd = -1;
        return -EINVAL;
    }
    c->id = id;
    c->next_req = 1;
    return 0;
}

void kv_close(struct kv_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void parse(struct kv_reply *r, const char *buf)
{
    const char *p;
    char *end;

    snprintf(r->text, sizeof(r->text), "%.159s", buf);
    r->req = strtoull(buf, &end, 10);
    r->ok = !strncmp(end, " OK", 3);
    r->value = 0;
    if (r->ok) {
        r->value = strtoull(end + 3, NULL, 10);
        p = strstr(end, "writes=");
        if (p)
            r->value = strtoull(p + 7, NULL, 10);
    }
    p = strstr(buf, "seq=");
    r->seq = p ? strtoull(p + 4, NULL, 10) : 0;
}

int kv_call(struct kv_client *c, const char *cmd, struct kv_reply *r,
            int try_ms, uint64_t deadline_ns, volatile int *stop)
{
    char msg[200], buf[256];
    uint64_t req = c->next_req++;
    int n = snprintf(msg, sizeof(msg), "%u %" PRIu64 " %s", c->id, req, cmd);

    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        uint64_t try_end = rm_now_ns() + (uint64_t)try_ms * 1000000;

        if (stop && *stop)
            return -EINTR;
        if (sendto(c->fd, msg, (size_t)n, 0, (struct sockaddr *)&c->dst,
                   sizeof(c->dst)) < 0 && errno != ENOBUFS &&
            errno != EHOSTUNREACH && errno != ECONNREFUSED)
            return -errno;
        for (;;) {
            uint64_t now = rm_now_ns();
            ssize_t got;

            if (now >= try_end)
                break;
            if (poll(&pfd, 1, (int)((try_end - now) / 1000000) + 1) <= 0)
                continue;
            got = recv(c->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
            if (got <= 0)
                continue;
            buf[got] = '\0';
            parse(r, buf);
            if (r->req == req)
                return 0;
            /* a late reply to an older request: ignore */
        }
        if (!deadline_ns || rm_now_ns() >= deadline_ns)
            return -ETIMEDOUT;
    }
}
