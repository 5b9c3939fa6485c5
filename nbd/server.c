/* SPDX-License-Identifier: MIT */
/* The Unix-socket listener of `remus disk serve` (nbd/server.h). */
#define RM_LOG_PREFIX "nbd"
#include "nbd/server.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

struct rm_nbd_server {
    struct rm_nbd_export *e;
    int lfd;
    char *path;
    unsigned served;
};

/* Is a server answering on @addr? */
static bool live(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool yes = fd >= 0 &&
               connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;

    if (fd >= 0)
        close(fd);
    return yes;
}

int rm_nbd_server_open_unix(struct rm_nbd_server **out,
                            struct rm_nbd_export *e, const char *path,
                            struct rm_error *err)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct rm_nbd_server *s;
    struct stat st;
    mode_t old;
    int rc = 0;

    *out = NULL;
    if (strlen(path) >= sizeof(addr.sun_path))
        return rm_error_set(err, -ENAMETOOLONG, "the socket path '%s' is "
                            "longer than %zu bytes", path,
                            sizeof(addr.sun_path) - 1);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return rm_error_set(err, -EEXIST, "'%s' exists and is not a "
                                "socket: not replaced", path);
        if (live(&addr))
            return rm_error_set(err, -EADDRINUSE, "a server already answers"
                                " on '%s'", path);
        unlink(path);   /* left by a server that is gone */
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return rm_error_set(err, -ENOMEM, "out of memory");
    }
    s->e = e;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0) {
        rc = rm_error_set(err, -errno, "socket: %s", strerror(errno));
        goto out;
    }
    old = umask(0177);
    if (bind(s->lfd, (struct sockaddr *)&addr, sizeof(addr)))
        rc = rm_error_set(err, -errno, "cannot listen on '%s': %s", path,
                          strerror(errno));
    umask(old);
    if (!rc && listen(s->lfd, 4))
        rc = rm_error_set(err, -errno, "listen on '%s': %s", path,
                          strerror(errno));
out:
    if (rc) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s->path);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int rm_nbd_server_run(struct rm_nbd_server *s, volatile sig_atomic_t *stop,
                      struct rm_error *err)
{
    while (!*stop) {
        struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
        struct rm_nbd_conn_stats st;
        struct rm_error cerr = { 0 };
        int fd, rc;

        rc = poll(&pfd, 1, 200);
        if (rc < 0 && errno != EINTR)
            return rm_error_set(err, -errno, "waiting for a client: %s",
                                strerror(errno));
        if (rc <= 0)
            continue;
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            return rm_error_set(err, -errno, "accept on '%s': %s", s->path,
                                strerror(errno));
        }
        s->served++;
        LOG_DBG("client %u connected", s->served);
        rc = rm_nbd_serve(s->e, fd, stop, &st, &cerr);
        close(fd);
        if (rc)
            LOG_WARN("client %u: connection ended: %s", s->served,
                     rm_error_str(&cerr));
        else
            LOG_INFO("client %u: %" PRIu64 " requests (%" PRIu64 " reads, %"
                     PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64 " trims,"
                     " %" PRIu64 " zeroes, %" PRIu64 " errors)", s->served,
                     st.requests, st.reads, st.writes, st.flushes, st.trims,
                     st.zeroes, st.errors);
    }
    return 0;
}

void rm_nbd_server_close(struct rm_nbd_server *s)
{
    if (!s)
        return;
    if (s->lfd >= 0)
        close(s->lfd);
    unlink(s->path);
    free(s->path);
    free(s);
}
