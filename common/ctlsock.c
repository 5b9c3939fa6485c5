/* SPDX-License-Identifier: MIT */
/* The control socket's transport (see ctlsock.h). */
#define RM_LOG_PREFIX "ctlsock"
#include "common/ctlsock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/status.h"

struct rm_ctlsock {
    const struct rm_ctlsock_ops *ops;
    void *opaque;
    int lfd, stop_pipe[2];
    pthread_t thread;
    char path[108];
    dev_t dev;                  /* the socket file bound: removed at stop */
    ino_t ino;                  /* only while it is still this one (its
                                   inode number may be reused at once by
                                   the socket of a process that took the
                                   name over: the change time tells them
                                   apart) */
    struct timespec ctime;
};

static int sock_path(const char *name, char *out, size_t len,
                     struct rm_error *err)
{
    size_t i;

    if (!*name || strlen(name) > 48)
        return rm_error_set(err, -EINVAL, "VM name '%s' is empty or too "
                            "long", name);
    for (i = 0; name[i]; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
              name[i] == '_'))
            return rm_error_set(err, -EINVAL, "VM name '%s': use letters, "
                                "digits, - and _", name);
    if ((size_t)snprintf(out, len, "%s/%s.sock", rm_run_dir(), name) >= len)
        return rm_error_set(err, -ENAMETOOLONG, "run directory path too "
                            "long");
    return 0;
}

/*
 * Only root and the uid this process runs as may use the socket (it can
 * dump the guest's memory, move the VM): the file is 0600 in a 0700
 * directory, and the peer's credentials are checked as well.
 */
static bool client_allowed(int cfd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);

    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len) ||
        len != sizeof(cr)) {
        LOG_WARN("control socket: cannot read the client's credentials "
                 "(%s): refused", strerror(errno));
        return false;
    }
    if (cr.uid == 0 || cr.uid == geteuid())
        return true;
    LOG_WARN("control socket: refused a client of uid %u (pid %d): only "
             "root and uid %u may use it", (unsigned)cr.uid, (int)cr.pid,
             (unsigned)geteuid());
    return false;
}

/* The client's request (a non-blocking socket): it has
 * RM_CTLSOCK_CLIENT_MS to send it. */
static ssize_t recv_request(int cfd, struct msghdr *mh)
{
    uint64_t deadline = rm_now_ns() + RM_CTLSOCK_CLIENT_MS * 1000000ull;

    for (;;) {
        struct pollfd p = { cfd, POLLIN, 0 };
        uint64_t now = rm_now_ns();
        ssize_t n = recvmsg(cfd, mh, MSG_CMSG_CLOEXEC);

        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            return n;
        if (now >= deadline)
            break;
        poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
    }
    LOG_WARN("control socket: a client sent no request within %u ms: "
             "dropped", RM_CTLSOCK_CLIENT_MS);
    return -1;
}

static void send_reply(int cfd, char *reply, size_t len)
{
    size_t n = strnlen(reply, len - 1);

    if (!n || reply[n - 1] != '\n') {
        if (n + 1 >= len)
            n = len - 2;
        reply[n++] = '\n';
        reply[n] = '\0';
    }
    if (send(cfd, reply, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        LOG_DBG("control socket: the client left before the answer");
}

static void serve_one(struct rm_ctlsock *s, int cfd)
{
    char req[RM_CTLSOCK_REQ_MAX + 2] = { 0 }, reply[600] = "";
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { req, sizeof(req) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm;
    int fd = -1;
    ssize_t n;

    if (!client_allowed(cfd)) {
        snprintf(reply, sizeof(reply), "error permission denied: only root "
                 "and uid %u may use this VM's control socket",
                 (unsigned)geteuid());
        send_reply(cfd, reply, sizeof(reply));
        return;
    }
    n = recv_request(cfd, &mh);
    if (n <= 0)
        return;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if ((size_t)n > RM_CTLSOCK_REQ_MAX + 1 ||
        ((size_t)n == RM_CTLSOCK_REQ_MAX + 1 && req[n - 1])) {
        snprintf(reply, sizeof(reply), "error request longer than %u bytes",
                 RM_CTLSOCK_REQ_MAX);
    } else {
        req[strcspn(req, "\n")] = '\0';
        s->ops->serve(s->opaque, req, fd, reply, sizeof(reply));
    }
    if (fd >= 0)
        close(fd);
    if (!reply[0])
        snprintf(reply, sizeof(reply), "error the request was not answered");
    send_reply(cfd, reply, sizeof(reply));
}

/*
 * The name's lock (PATH.lock, flock): held while a server replaces the
 * socket file (unlink, bind, listen) and while one that ends decides
 * whether the file is still its own and removes it, so that the two never
 * interleave (a takeover's socket removed by the old primary ending at the
 * same moment: seen after handovers).  -1 when it cannot be had (then
 * unlocked, as before).
 */
static int name_lock(const char *path)
{
    char lpath[128];
    int fd;

    if ((size_t)snprintf(lpath, sizeof(lpath), "%s.lock", path) >=
        sizeof(lpath))
        return -1;
    fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void name_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Remove the socket file if it still is the one this server bound (a
 * process that took the name over keeps its own).  Called with the
 * listening socket closed, under the name's lock: the file is ours when
 * it is the inode we bound, with our change time (once our socket closed,
 * its inode number may have gone to the newer one). */
static void unlink_own(const struct rm_ctlsock *s)
{
    int lock = name_lock(s->path);
    struct stat st;

    if (stat(s->path, &st) == 0 && st.st_dev == s->dev &&
        st.st_ino == s->ino && st.st_ctim.tv_sec == s->ctime.tv_sec &&
        st.st_ctim.tv_nsec == s->ctime.tv_nsec)
        unlink(s->path);
    name_unlock(lock);
}

static void *ctl_main(void *arg)
{
    struct rm_ctlsock *s = arg;

    for (;;) {
        int wfd = s->ops->watch_fd ? s->ops->watch_fd(s->opaque) : -1;
        struct pollfd p[3] = { { s->lfd, POLLIN, 0 },
                               { s->stop_pipe[0], POLLIN, 0 },
                               { wfd, POLLIN, 0 } };
        int cfd;

        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (wfd >= 0 && p[2].revents)
            s->ops->on_watch(s->opaque);
        if (!(p[0].revents & POLLIN))
            continue;
        cfd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
            continue;
        serve_one(s, cfd);
        close(cfd);
    }
    return NULL;
}

struct rm_ctlsock *rm_ctlsock_start(const char *name,
                                    const struct rm_ctlsock_ops *ops,
                                    void *opaque, struct rm_error *err)
{
    struct rm_ctlsock *s = calloc(1, sizeof(*s));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lock;

    if (!s) {
        rm_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    s->ops = ops;
    s->opaque = opaque;
    s->lfd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    if (sock_path(name, s->path, sizeof(s->path), err))
        goto fail;
    if (rm_run_dir_prepare(err))
        goto fail;
    lock = name_lock(s->path);
    unlink(s->path);            /* a dead process's, or taken over */
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* 0600 whatever the umask, before anyone can connect (listen). */
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
        chmod(s->path, 0600) || listen(s->lfd, 4) ||
        pipe2(s->stop_pipe, O_CLOEXEC)) {
        rm_error_set(err, -errno, "control socket %s: %s", s->path,
                     strerror(errno));
        name_unlock(lock);
        goto fail;
    }
    {
        struct stat st;

        if (stat(s->path, &st) == 0) {
            s->dev = st.st_dev;
            s->ino = st.st_ino;
            s->ctime = st.st_ctim;
        }
    }
    name_unlock(lock);
    if (pthread_create(&s->thread, NULL, ctl_main, s)) {
        rm_error_set(err, -EAGAIN, "cannot start the control thread");
        goto fail;
    }
    return s;
fail:
    if (s->lfd >= 0) {
        close(s->lfd);
        unlink_own(s);
    }
    if (s->stop_pipe[0] >= 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    free(s);
    return NULL;
}

void rm_ctlsock_stop(struct rm_ctlsock *s)
{
    if (!s)
        return;
    if (write(s->stop_pipe[1], "x", 1) < 0)
        LOG_WARN("cannot wake the control thread: %s", strerror(errno));
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    unlink_own(s);
    free(s);
}

int rm_ctlsock_request(const char *name, const char *req, int fd,
                       char *reply, size_t reply_len, struct rm_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char path[108];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov;
    struct msghdr mh;
    struct cmsghdr *cm;
    ssize_t n;
    size_t got = 0;
    int s, rc;

    if (strlen(req) > RM_CTLSOCK_REQ_MAX)
        return rm_error_set(err, -E2BIG, "request longer than %u bytes",
                            RM_CTLSOCK_REQ_MAX);
    rc = sock_path(name, path, sizeof(path), err);
    if (rc)
        return rc;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
        rc = errno == ECONNREFUSED ? -ENOENT : -errno;
        rm_error_set(err, rc, "no VM named '%s' is held by a remus process "
                     "here (%s: %s)", name, path, strerror(errno));
        if (s >= 0)
            close(s);
        return rc;
    }
    iov.iov_base = (void *)req;
    iov.iov_len = strlen(req) + 1;
    memset(&mh, 0, sizeof(mh));
    memset(cbuf, 0, sizeof(cbuf));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0) {
        rc = rm_error_set(err, -errno, "sending the request: %s",
                          strerror(errno));
        close(s);
        return rc;
    }
    while (got + 1 < reply_len &&
           (n = read(s, reply + got, reply_len - 1 - got)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(s);
    if (got && reply[got - 1] == '\n')
        reply[got - 1] = '\0';
    if (strncmp(reply, "ok", 2) || (reply[2] && reply[2] != ' '))
        return rm_error_set(err, -EIO, "%s", strncmp(reply, "error ", 6)
                            ? "the VM's process gave no answer" : reply + 6);
    return 0;
}
