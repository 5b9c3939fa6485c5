/* SPDX-License-Identifier: MIT */
/* Attaching a protection to a served disk (attach.h). */
#define RM_LOG_PREFIX "disk attach"
#include "nbd/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ctlsock.h"
#include "common/log.h"
#include "nbd/feed.h"

/* ------------------------------------------------------------ server end */

struct rm_nbd_attach_point {
    struct rm_nbd_export *e;
    char image[PATH_MAX];
    dev_t dev;
    ino_t ino;
    struct rm_ctlsock *ctl;
    /* Held while a change goes through the feed.  feed_fd is set and
     * closed only by the control thread (attach, detach, close), under
     * it; the serving thread only uses it. */
    pthread_mutex_t io_lock;
    int feed_fd;
    atomic_bool broken;         /* the feed failed: no longer used */
    atomic_bool quiet;          /* a detach asked for: its end is no news */
    atomic_uint_fast64_t changes;
};

/* After a change reached the image: through the feed, when attached.
 * Always 0: the change is in the image whatever the feed says; a feed
 * that fails is dropped (loudly) and the disk is a plain one again. */
static int through_feed(struct rm_nbd_attach_point *a, int kind,
                        uint64_t off, const void *data, uint64_t len,
                        bool fua)
{
    int rc = 0;

    pthread_mutex_lock(&a->io_lock);
    if (a->feed_fd >= 0 && !atomic_load(&a->broken)) {
        if (kind == RM_NBD_FEED_WRITE)
            rc = rm_nbd_feed_send_write(a->feed_fd, off, data,
                                        (uint32_t)len, fua);
        else if (kind == RM_NBD_FEED_DISCARD)
            rc = rm_nbd_feed_send_discard(a->feed_fd, off, len);
        else
            rc = rm_nbd_feed_send_flush(a->feed_fd);
        if (rc) {
            atomic_store(&a->broken, true);
            if (!atomic_load(&a->quiet))
                LOG_ERR("%s: the protection's log %s (%s): the change at "
                        "byte %" PRIu64 " is in the image, and the disk is "
                        "served UNPROTECTED from now on", a->image,
                        rc == -EPIPE || rc == -EPROTO ? "is gone"
                                                      : "refused a change",
                        strerror(-rc), off);
        } else {
            atomic_fetch_add(&a->changes, 1);
        }
    }
    pthread_mutex_unlock(&a->io_lock);
    return 0;
}

static int obs_write(void *o, uint32_t disk, uint64_t off, const void *data,
                     uint32_t len, bool fua)
{
    (void)disk;
    return through_feed(o, RM_NBD_FEED_WRITE, off, data, len, fua);
}

static int obs_discard(void *o, uint32_t disk, uint64_t off, uint64_t len)
{
    (void)disk;
    return through_feed(o, RM_NBD_FEED_DISCARD, off, NULL, len, false);
}

static int obs_flush(void *o, uint32_t disk)
{
    (void)disk;
    return through_feed(o, RM_NBD_FEED_FLUSH, 0, NULL, 0, false);
}

/* Control thread: drop the feed (its peer is told by the shutdown). */
static void drop_feed(struct rm_nbd_attach_point *a)
{
    if (a->feed_fd < 0)
        return;
    atomic_store(&a->quiet, true);
    shutdown(a->feed_fd, SHUT_RDWR);   /* ends a change waiting on it */
    pthread_mutex_lock(&a->io_lock);
    close(a->feed_fd);
    a->feed_fd = -1;
    atomic_store(&a->broken, false);
    pthread_mutex_unlock(&a->io_lock);
}

/* Control thread: does the attached protection's feed still live? */
static bool feed_alive(struct rm_nbd_attach_point *a)
{
    struct pollfd p = { .fd = a->feed_fd, .events = POLLRDHUP };

    if (atomic_load(&a->broken))
        return false;
    return poll(&p, 1, 0) == 0 ||
           !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void serve_attach(struct rm_nbd_attach_point *a, int fd, char *reply,
                         size_t len)
{
    int mine;

    if (fd < 0) {
        snprintf(reply, len, "error attach needs the feed's socket");
        return;
    }
    if (a->feed_fd >= 0) {
        if (feed_alive(a)) {
            snprintf(reply, len, "error disk %s is attached to a protection "
                     "already", a->image);
            return;
        }
        LOG_INFO("%s: the last protection's feed had ended: detached",
                 a->image);
        drop_feed(a);
    }
    mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (mine < 0) {
        snprintf(reply, len, "error cannot keep the feed: %s",
                 strerror(errno));
        return;
    }
    pthread_mutex_lock(&a->io_lock);
    a->feed_fd = mine;
    atomic_store(&a->broken, false);
    atomic_store(&a->quiet, false);
    pthread_mutex_unlock(&a->io_lock);
    LOG_INFO("%s: a protection attached: every change goes to its log",
             a->image);
    snprintf(reply, len, "ok size=%" PRIu64 " dev=%llu ino=%llu path=%s",
             rm_nbd_export_size(a->e), (unsigned long long)a->dev,
             (unsigned long long)a->ino, a->image);
}

static void serve(void *opaque, const char *req, int fd, char *reply,
                  size_t len)
{
    struct rm_nbd_attach_point *a = opaque;

    if (!strcmp(req, "attach")) {
        serve_attach(a, fd, reply, len);
    } else if (!strcmp(req, "detach")) {
        if (a->feed_fd >= 0)
            LOG_INFO("%s: the protection detached", a->image);
        drop_feed(a);
        snprintf(reply, len, "ok detached");
    } else if (!strcmp(req, "status")) {
        snprintf(reply, len, "ok %s size=%" PRIu64 " changes=%" PRIu64
                 " path=%s", a->feed_fd >= 0 && feed_alive(a) ? "attached"
                 : "detached", rm_nbd_export_size(a->e),
                 (uint64_t)atomic_load(&a->changes), a->image);
    } else {
        snprintf(reply, len, "error unknown request '%.40s' (attach, "
                 "detach, status)", req);
    }
}

static const struct rm_ctlsock_ops attach_ops = { .serve = serve };

int rm_nbd_attach_point_open(struct rm_nbd_attach_point **out,
                             struct rm_nbd_export *e, const char *image,
                             const char *name, struct rm_error *err)
{
    struct rm_nbd_observer obs = { .write = obs_write,
                                   .discard = obs_discard,
                                   .flush = obs_flush };
    struct rm_nbd_attach_point *a;
    struct stat st;

    *out = NULL;
    if (fstat(rm_nbd_export_fd(e), &st))
        return rm_error_set(err, -errno, "%s: %s", image, strerror(errno));
    a = calloc(1, sizeof(*a));
    if (!a)
        return rm_error_set(err, -ENOMEM, "out of memory");
    if (!realpath(image, a->image))
        snprintf(a->image, sizeof(a->image), "%s", image);
    a->e = e;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    a->feed_fd = -1;
    pthread_mutex_init(&a->io_lock, NULL);
    atomic_init(&a->broken, false);
    atomic_init(&a->quiet, false);
    atomic_init(&a->changes, 0);
    obs.opaque = a;
    rm_nbd_export_set_observer(e, &obs);
    a->ctl = rm_ctlsock_start(name, &attach_ops, a, err);
    if (!a->ctl) {
        rm_nbd_export_set_observer(e, NULL);
        pthread_mutex_destroy(&a->io_lock);
        free(a);
        return err->code ? err->code : -EIO;
    }
    *out = a;
    return 0;
}

void rm_nbd_attach_point_close(struct rm_nbd_attach_point *a)
{
    if (!a)
        return;
    rm_ctlsock_stop(a->ctl);          /* no request runs after this */
    drop_feed(a);
    rm_nbd_export_set_observer(a->e, NULL);
    pthread_mutex_destroy(&a->io_lock);
    free(a);
}

int rm_nbd_attach_name(const char *dev, char *name, size_t len,
                       struct rm_error *err)
{
    const char *p = dev;
    unsigned n = 0;

    if (strncmp(p, "/dev/nbd", 8))
        goto bad;
    p += 8;
    if (*p < '0' || *p > '9')
        goto bad;
    while (*p >= '0' && *p <= '9' && n < 100000)
        n = n * 10 + (unsigned)(*p++ - '0');
    if (*p || n >= 100000)
        goto bad;
    snprintf(name, len, "disk-nbd%u", n);
    return 0;
bad:
    return rm_error_set(err, -EINVAL, "'%s' is not an NBD device "
                        "(/dev/nbdN)", dev);
}

/* -------------------------------------------------------- protection end */

struct rm_nbd_attached {
    char name[64];
    int feed_fd, image_fd;
    uint64_t size;
    struct rm_nbd_feed *feed;
};

/* "ok size=S dev=D ino=I path=P": 0 or -EPROTO. */
static int parse_reply(const char *reply, uint64_t *size,
                       unsigned long long *dev, unsigned long long *ino,
                       const char **path)
{
    unsigned long long s;
    int n = 0;

    if (sscanf(reply, "ok size=%llu dev=%llu ino=%llu path=%n", &s, dev, ino,
               &n) != 3 || !n || !reply[n])
        return -EPROTO;
    *size = s;
    *path = reply + n;
    return 0;
}

int rm_nbd_attach(const char *name, struct rm_disklog *log, uint32_t disk,
                  struct rm_nbd_attached **out, struct rm_error *err)
{
    struct rm_nbd_attached *a;
    unsigned long long dev = 0, ino = 0;
    const char *path = NULL;
    char reply[PATH_MAX + 128];
    int sv[2], rc, img = -1;
    struct stat st;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return rm_error_set(err, -ENOMEM, "out of memory");
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->feed_fd = a->image_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        rc = rm_error_set(err, -errno, "socketpair: %s", strerror(errno));
        free(a);
        return rc;
    }
    rc = rm_ctlsock_request(name, "attach", sv[1], reply, sizeof(reply), err);
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        free(a);
        if (rc == -ENOENT)
            return rm_error_force(err, rc, "no disk server answers on "
                                  "control socket '%s' (is `remus disk serve "
                                  "IMAGE --device /dev/nbdN` running?)", name);
        rm_error_prefix(err, "disk server '%s': ", name);
        return rc;
    }
    a->feed_fd = sv[0];
    if (parse_reply(reply, &a->size, &dev, &ino, &path)) {
        rc = rm_error_set(err, -EPROTO, "disk server '%s' answered '%.80s'",
                          name, reply);
        goto fail;
    }
    img = open(path, O_RDONLY | O_CLOEXEC);
    if (img < 0 || fstat(img, &st)) {
        rc = rm_error_set(err, -errno, "disk server '%s': its image %s: %s",
                          name, path, strerror(errno));
        goto fail;
    }
    if ((unsigned long long)st.st_dev != dev ||
        (unsigned long long)st.st_ino != ino) {
        rc = rm_error_set(err, -ESTALE, "disk server '%s': %s is not the "
                          "file it serves (replaced since it started?)",
                          name, path);
        goto fail;
    }
    a->image_fd = img;
    img = -1;
    rc = rm_disklog_add_disk(log, disk, a->image_fd, a->size, err);
    if (!rc)
        rc = rm_nbd_feed_start(&a->feed, a->feed_fd, log, disk, err);
    if (rc)
        goto fail;
    LOG_INFO("disk %u: attached to '%s' (%s, %" PRIu64 " bytes)", disk, name,
             path, a->size);
    *out = a;
    return 0;
fail:
    if (img >= 0)
        close(img);
    rm_nbd_detach(a);
    return rc;
}

uint64_t rm_nbd_attached_size(const struct rm_nbd_attached *a)
{
    return a->size;
}

void rm_nbd_detach(struct rm_nbd_attached *a)
{
    struct rm_error err = { 0 };
    char reply[128];

    if (!a)
        return;
    if (a->feed)
        rm_nbd_feed_quiet(a->feed);
    if (a->feed_fd >= 0 &&
        rm_ctlsock_request(a->name, "detach", -1, reply, sizeof(reply),
                           &err) && err.code != -ENOENT)
        LOG_WARN("disk server '%s': detach: %s (its feed ends anyway)",
                 a->name, rm_error_str(&err));
    rm_nbd_feed_stop(a->feed);
    if (a->feed_fd >= 0)
        close(a->feed_fd);
    if (a->image_fd >= 0)
        close(a->image_fd);
    free(a);
}
