/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "vmctl"
#include "backends/kvm/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/kvm/kvm_sr.h"
#include "common/log.h"
#include "common/status.h"

struct rm_vmctl {
    struct rm_vm *vm;
    int lfd, stop_pipe[2];
    pthread_t thread;
    char path[108];
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

static void serve_one(struct rm_vmctl *c, int cfd)
{
    char req[64] = { 0 }, reply[600];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { req, sizeof(req) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm;
    int fd = -1;
    ssize_t n = recvmsg(cfd, &mh, MSG_CMSG_CLOEXEC);

    if (n <= 0)
        return;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (fd < 0 || strncmp(req, "save ", 5)) {
        snprintf(reply, sizeof(reply), "error bad request (expected 'save "
                 "live|nonlive' and a file descriptor)\n");
    } else {
        struct rm_save_ctx sctx;
        struct rm_error err = { 0 };
        struct rm_sink sink;
        bool live = strstr(req, "save live") != NULL;
        bool keep = strstr(req, "continue") != NULL;
        int rc;

        memset(&sctx, 0, sizeof(sctx));
        sctx.ops = &rm_kvm_save_ops;
        sctx.backend_arg = c->vm;
        sctx.err = &err;
        rm_save_params_default(&sctx.params,
                               live ? RM_SAVE_LIVE : RM_SAVE_NONLIVE);
        sctx.params.resume_after = keep;
        rm_sink_init_fd(&sink, fd);
        rc = rm_save(&sctx, &sink);
        if (rc) {
            snprintf(reply, sizeof(reply), "error %s\n", rm_error_str(&err));
        } else {
            snprintf(reply, sizeof(reply), "ok %" PRIu64 " %" PRIu64 " %u\n",
                     sink.offset, sctx.pages_sent, sctx.iterations);
            LOG_INFO("saved (%s): %" PRIu64 " bytes, %" PRIu64 " pages, %u "
                     "iterations", live ? "live" : "non-live", sink.offset,
                     sctx.pages_sent, sctx.iterations);
            if (!keep)
                rm_vm_request_stop(c->vm);
        }
    }
    if (fd >= 0)
        close(fd);
    if (write(cfd, reply, strlen(reply)) < 0)
        (void)0;
}

static void *ctl_main(void *arg)
{
    struct rm_vmctl *c = arg;

    for (;;) {
        struct pollfd p[2] = { { c->lfd, POLLIN, 0 },
                               { c->stop_pipe[0], POLLIN, 0 } };
        int cfd;

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        cfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        serve_one(c, cfd);
        close(cfd);
    }
    return NULL;
}

struct rm_vmctl *rm_vmctl_start(struct rm_vm *vm, const char *name,
                                struct rm_error *err)
{
    struct rm_vmctl *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (!c)
        return NULL;
    c->vm = vm;
    c->lfd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
    if (sock_path(name, c->path, sizeof(c->path), err))
        goto fail;
    mkdir(rm_run_dir(), 0755);
    unlink(c->path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
        listen(c->lfd, 4) || pipe2(c->stop_pipe, O_CLOEXEC)) {
        rm_error_set(err, -errno, "control socket %s: %s", c->path,
                     strerror(errno));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, ctl_main, c)) {
        rm_error_set(err, -EAGAIN, "cannot start the control thread");
        goto fail;
    }
    return c;
fail:
    if (c->lfd >= 0)
        close(c->lfd);
    if (c->stop_pipe[0] >= 0) {
        close(c->stop_pipe[0]);
        close(c->stop_pipe[1]);
    }
    free(c);
    return NULL;
}

void rm_vmctl_stop(struct rm_vmctl *c)
{
    if (!c)
        return;
    if (write(c->stop_pipe[1], "x", 1) < 0)
        (void)0;
    pthread_join(c->thread, NULL);
    close(c->lfd);
    close(c->stop_pipe[0]);
    close(c->stop_pipe[1]);
    unlink(c->path);
    free(c);
}

int rm_vmctl_save(const char *name, bool live, bool keep_running, int fd,
                  char *reply, size_t reply_len, struct rm_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char path[108], req[64];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov;
    struct msghdr mh;
    struct cmsghdr *cm;
    ssize_t n;
    size_t got = 0;
    int s, rc;

    rc = sock_path(name, path, sizeof(path), err);
    if (rc)
        return rc;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
        rc = rm_error_set(err, -errno, "no VM named '%s' runs here (%s: "
                          "%s)", name, path, strerror(errno));
        if (s >= 0)
            close(s);
        return rc;
    }
    snprintf(req, sizeof(req), "save %s%s", live ? "live" : "nonlive",
             keep_running ? " continue" : "");
    iov.iov_base = req;
    iov.iov_len = strlen(req) + 1;
    memset(&mh, 0, sizeof(mh));
    memset(cbuf, 0, sizeof(cbuf));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    if (sendmsg(s, &mh, 0) < 0) {
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
    if (strncmp(reply, "ok ", 3))
        return rm_error_set(err, -EIO, "%s", strncmp(reply, "error ", 6)
                            ? "the VM process gave no answer" : reply + 6);
    return 0;
}
