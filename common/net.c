/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "net"
#include "common/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
