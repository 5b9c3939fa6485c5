/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "net"
#include "common/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

int rm_parse_hostport(const char *s, struct rm_hostport *hp,
                      struct rm_error *err)
{
    const char *colon, *host = s;
    size_t hlen;
    char *end;
    unsigned long port;

    memset(hp, 0, sizeof(*hp));
    if (!s || !*s)
        return rm_error_set(err, -EINVAL, "empty HOST:PORT");
    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':')
            return rm_error_set(err, -EINVAL, "'%s': expected [IPV6]:PORT",
                                s);
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return rm_error_set(err, -EINVAL, "'%s': expected HOST:PORT "
                                "(the port is missing)", s);
        hlen = (size_t)(colon - s);
    }
    if (hlen >= sizeof(hp->host))
        return rm_error_set(err, -EINVAL, "'%s': host name too long", s);
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port > 65535)
        return rm_error_set(err, -EINVAL, "'%s': port '%s' is not a number "
                            "from 0 to 65535", s, colon + 1);
    memcpy(hp->host, host, hlen);
    hp->host[hlen] = '\0';
    hp->port = (uint16_t)port;
    return 0;
}

static int resolve(const struct rm_hostport *hp, bool passive,
                   struct addrinfo **res, struct rm_error *err)
{
    struct addrinfo hints;
    char port[8];
    const char *host = hp->host;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    if (!*host || !strcmp(host, "*"))
        host = NULL;
    snprintf(port, sizeof(port), "%u", hp->port);
    rc = getaddrinfo(host, port, &hints, res);
    if (rc)
        return rm_error_set(err, -EHOSTUNREACH, "cannot resolve '%s': %s",
                            hp->host, gai_strerror(rc));
    return 0;
}

static void tune(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int rm_tcp_listen(const struct rm_hostport *hp, struct rm_error *err)
{
    struct addrinfo *res = NULL, *ai;
    int fd = -1, rc, one = 1;

    rc = resolve(hp, true, &res, err);
    if (rc)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 8) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (rc)
        return rm_error_set(err, rc, "cannot listen on %s:%u: %s", hp->host,
                            hp->port, strerror(-rc));
    return fd;
}

int rm_tcp_accept(int lfd, int timeout_ms, struct rm_error *err)
{
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    int rc, fd;

    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return rm_error_set(err, -errno, "poll: %s", strerror(errno));
    if (rc == 0)
        return rm_error_set(err, -ETIMEDOUT, "no connection within %d ms",
                            timeout_ms);
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return rm_error_set(err, -errno, "accept: %s", strerror(errno));
    tune(fd);
    return fd;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    struct pollfd pfd;
    socklen_t len = sizeof(int);
    int fd, rc, soerr = 0, flags;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        return rc;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) {
        close(fd);
        return rc == 0 ? -ETIMEDOUT : -errno;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr) {
        close(fd);
        return -soerr;
    }
    flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    tune(fd);
    return fd;
}

int rm_tcp_connect(const struct rm_hostport *hp, int timeout_ms,
                   struct rm_error *err)
{
    struct addrinfo *res = NULL, *ai;
    int rc, fd = -ECONNREFUSED;

    rc = resolve(hp, false, &res, err);
    if (rc)
        return rc;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = connect_one(ai, timeout_ms);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    if (fd == -ECONNREFUSED)
        return rm_error_set(err, fd, "cannot connect to %s:%u: %s (nothing "
                            "listens there: the secondary is not running, "
                            "or it is already paired with a primary and "
                            "listens no more)", hp->host, hp->port,
                            strerror(-fd));
    if (fd < 0)
        return rm_error_set(err, fd, "cannot connect to %s:%u: %s",
                            hp->host, hp->port, strerror(-fd));
    return fd;
}

int rm_tcp_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len))
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

void rm_tcp_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    snprintf(buf, len, "an unknown address");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl))
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)))
            snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)))
            snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
    }
}

/* ------------------------------------------- pre-authentication connections */

/* The prefix peeked to learn a frame's length: @fixed bytes, then 4. */
#define PREAUTH_FIXED_MAX 60u

void rm_preauth_init(struct rm_preauth *pa, int lfd, unsigned limit_ms,
                     uint32_t fixed, bool frame, uint32_t max_frame,
                     const char *what)
{
    memset(pa, 0, sizeof(*pa));
    pa->lfd = lfd;
    pa->limit_ms = limit_ms;
    pa->fixed = fixed < PREAUTH_FIXED_MAX ? fixed : PREAUTH_FIXED_MAX;
    pa->frame = frame;
    pa->max_frame = max_frame;
    pa->what = what;
    pa->on_drop = NULL;
}

/* Wake poll() only when @need bytes are buffered (or at EOF). */
static void set_lowat(int fd, uint32_t need)
{
    int v = (int)need;

    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
}

/* Take entry @i out of the set (its fd stays open). */
static void remove_at(struct rm_preauth *pa, unsigned i)
{
    memmove(&pa->c[i], &pa->c[i + 1], (pa->n - i - 1) * sizeof(pa->c[0]));
    pa->n--;
}

static void drop_at(struct rm_preauth *pa, unsigned i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void drop_at(struct rm_preauth *pa, unsigned i, const char *fmt, ...)
{
    char why[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    LOG_WARN("dropped the connection from %s: %s", pa->c[i].addr, why);
    close(pa->c[i].fd);
    if (pa->c[i].opaque && pa->on_drop)
        pa->on_drop(pa->c[i].opaque);
    remove_at(pa, i);
}

/* A free slot at the end of the set (the oldest is dropped when full). */
static struct rm_preauth_conn *make_room(struct rm_preauth *pa)
{
    if (pa->n == RM_PREAUTH_MAX)
        drop_at(pa, 0, "%u connections are waiting to authenticate and "
                "another arrived (this one was the oldest)", RM_PREAUTH_MAX);
    return &pa->c[pa->n++];
}

/* Await @c's message: its fixed bytes, then (if any) a frame's length. */
static void await_message(struct rm_preauth *pa, struct rm_preauth_conn *c)
{
    c->need = c->fixed + (pa->frame ? 4 : 0);
    if (!c->need)
        c->need = 1;
    set_lowat(c->fd, c->need);
}

/* Accept one connection into the pending set; 0 or -errno (listener). */
static int preauth_accept(struct rm_preauth *pa)
{
    struct rm_preauth_conn *c;
    int fd = accept4(pa->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        int e = errno;

        /* A peer gone before we took it, or no descriptors right now:
         * not the listener's fault, keep listening. */
        if (e == EBADF || e == EINVAL || e == ENOTSOCK || e == EFAULT ||
            e == EOPNOTSUPP)
            return -e;
        if (e != EAGAIN && e != EINTR)
            LOG_WARN("accepting a connection failed: %s", strerror(e));
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
            rm_sleep_ms(100);
        return 0;
    }
    tune(fd);
    c = make_room(pa);
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->deadline_ns = rm_now_ns() + (uint64_t)pa->limit_ms * 1000000;
    c->fixed = pa->fixed;
    c->what = pa->what;
    rm_tcp_peer_name(fd, c->addr, sizeof(c->addr));
    await_message(pa, c);
    return 0;
}

void rm_preauth_add(struct rm_preauth *pa, const struct rm_preauth_conn *c)
{
    struct rm_preauth_conn *slot = make_room(pa);

    *slot = *c;
    slot->fixed = 0;
    await_message(pa, slot);
}

/*
 * Has @c's whole awaited message arrived?  1 yes, 0 not yet, or -EPIPE:
 * the peer closed (or the connection broke) before it did (@hup).
 */
static int preauth_ready(struct rm_preauth *pa, struct rm_preauth_conn *c,
                         bool hup)
{
    uint8_t head[PREAUTH_FIXED_MAX + 4];
    uint32_t be, len;
    int avail = 0;

    if (ioctl(c->fd, FIONREAD, &avail) || avail < 0)
        return -EPIPE;
    if (pa->frame && c->need == c->fixed + 4 &&
        (uint32_t)avail >= c->need) {
        if (recv(c->fd, head, c->need, MSG_PEEK | MSG_DONTWAIT) !=
            (ssize_t)c->need)
            return -EPIPE;
        memcpy(&be, head + c->fixed, 4);
        len = ntohl(be);
        if (len == 0 || len > pa->max_frame)
            return 1;     /* let the caller's reader refuse it */
        c->need += len;
        set_lowat(c->fd, c->need);
    }
    if ((uint32_t)avail >= c->need)
        return 1;
    return hup ? -EPIPE : 0;
}

int rm_preauth_wait(struct rm_preauth *pa, int timeout_ms,
                    struct rm_preauth_conn *out, struct rm_error *err)
{
    uint64_t until = timeout_ms < 0 ? UINT64_MAX :
                     rm_now_ns() + (uint64_t)timeout_ms * 1000000;

    for (;;) {
        struct pollfd pfd[RM_PREAUTH_MAX + 1];
        uint64_t now = rm_now_ns(), wake = until;
        unsigned i, k, n;
        int rc, ms;

        /* Drop the connections whose time ran out. */
        for (i = 0; i < pa->n;) {
            if (pa->c[i].deadline_ns <= now) {
                drop_at(pa, i, "no complete %s within %u ms (the limit "
                        "before authentication)", pa->c[i].what,
                        pa->limit_ms);
                continue;
            }
            if (pa->c[i].deadline_ns < wake)
                wake = pa->c[i].deadline_ns;
            i++;
        }
        if (now >= until)
            return rm_error_set(err, -ETIMEDOUT, "no connection within %d "
                                "ms", timeout_ms);
        ms = wake == UINT64_MAX ? -1
                                : (int)((wake - now + 999999) / 1000000);
        n = pa->n;
        for (i = 0; i < n; i++) {
            pfd[i].fd = pa->c[i].fd;
            pfd[i].events = POLLIN | POLLRDHUP;
            pfd[i].revents = 0;
        }
        pfd[n].fd = pa->lfd;
        pfd[n].events = POLLIN;
        pfd[n].revents = 0;
        rc = poll(pfd, n + 1, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return rm_error_set(err, -errno, "poll: %s", strerror(errno));
        /* Pending ones first, oldest first (k follows the drops); then
         * the listener (an accept may drop the oldest). */
        for (i = 0, k = 0; i < n; i++) {
            bool hup = pfd[i].revents & (POLLRDHUP | POLLHUP | POLLERR);

            if (!pfd[i].revents) {
                k++;
                continue;
            }
            rc = preauth_ready(pa, &pa->c[k], hup);
            if (rc == 1) {
                *out = pa->c[k];
                set_lowat(out->fd, 1);
                remove_at(pa, k);
                return 0;
            }
            if (rc < 0)
                drop_at(pa, k, "it closed the connection before its %s "
                        "was complete", pa->c[k].what);
            else
                k++;
        }
        if (pfd[n].revents & POLLIN) {
            rc = preauth_accept(pa);
            if (rc)
                return rm_error_set(err, rc, "accept: %s", strerror(-rc));
        } else if (pfd[n].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            return rm_error_set(err, -EIO, "the listening socket failed");
        }
    }
}

void rm_preauth_close(struct rm_preauth *pa, const char *why)
{
    while (pa->n)
        drop_at(pa, pa->n - 1, "%s", why);
}
