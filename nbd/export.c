/* SPDX-License-Identifier: MIT */
/*
 * The NBD export: the image, its write-through I/O, the observer, and the
 * serving of one connection (nbd/export.h).
 */
#define RM_LOG_PREFIX "nbd"
#include "nbd/export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "common/io.h"
#include "common/log.h"
#include "nbd/nbd_conn.h"
#include "nbd/nbd_wire.h"

#define RM_NBD_TIMEOUT_DEFAULT_MS 30000u
#define OBS_PIECE (1u << 20)     /* an observer sees at most 1 MiB a call */

struct rm_nbd_export {
    int fd;
    int dfd;                         /* the image O_DIRECT, or -1 */
    uint64_t size;
    char *image;
    char *name;
    char *hold_while;                /* or NULL */
    bool read_only;
    unsigned timeout_ms;
    pthread_mutex_t lock;            /* a request's I/O, and obs */
    struct rm_nbd_observer obs;
    bool has_obs;
    uint8_t *zeros;                  /* OBS_PIECE zero bytes, on demand,
                                        aligned for O_DIRECT */
    uint8_t *buf;                    /* a request's data: allocated once,
                                        before any I/O depends on us;
                                        aligned for O_DIRECT */
};

/* e->dfd: the image again, O_DIRECT; for AUTO, a file system that refuses
 * it leaves -1 (logged).  0 or -errno. */
static int open_direct(struct rm_nbd_export *e,
                       const struct rm_nbd_params *p, struct rm_error *err)
{
    e->dfd = open(p->image, (p->read_only ? O_RDONLY : O_RDWR) | O_DIRECT |
                  O_CLOEXEC);
    if (e->dfd >= 0)
        return 0;
    if (p->cache == RM_NBD_CACHE_AUTO && errno == EINVAL) {
        LOG_WARN("'%s': its file system refuses O_DIRECT: served through "
                 "the page cache", p->image);
        return 0;
    }
    return rm_error_set(err, -errno, "cannot open the image '%s' O_DIRECT%s:"
                        " %s", p->image, errno == EINVAL ? " (its file "
                        "system refuses it; serve it through the page cache"
                        ")" : "", strerror(errno));
}

int rm_nbd_export_open(struct rm_nbd_export **out,
                       const struct rm_nbd_params *p, struct rm_error *err)
{
    struct rm_nbd_export *e;
    struct stat st;
    int rc = 0;

    *out = NULL;
    if (!p->image || !p->image[0])
        return rm_error_set(err, -EINVAL, "no image to serve");
    e = calloc(1, sizeof(*e));
    if (!e)
        return rm_error_set(err, -ENOMEM, "out of memory");
    e->fd = -1;
    e->dfd = -1;
    e->read_only = p->read_only;
    e->timeout_ms = p->request_timeout_ms ? p->request_timeout_ms
                                          : RM_NBD_TIMEOUT_DEFAULT_MS;
    e->image = strdup(p->image);
    e->name = strdup(p->name ? p->name : "");
    if (p->hold_while)
        e->hold_while = strdup(p->hold_while);
    if (posix_memalign((void **)&e->buf, RM_NBD_DIRECT_ALIGN,
                       RM_NBD_MAX_REQUEST))
        e->buf = NULL;
    pthread_mutex_init(&e->lock, NULL);
    if (!e->image || !e->name || !e->buf ||
        (p->hold_while && !e->hold_while)) {
        rc = rm_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    e->fd = open(p->image, (p->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (e->fd < 0) {
        rc = rm_error_set(err, -errno, "cannot open the image '%s'%s: %s",
                          p->image, p->read_only ? "" : " for writing",
                          strerror(errno));
        goto out;
    }
    if (fstat(e->fd, &st)) {
        rc = rm_error_set(err, -errno, "'%s': %s", p->image, strerror(errno));
        goto out;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(e->fd, BLKGETSIZE64, &e->size)) {
            rc = rm_error_set(err, -errno, "'%s': cannot read the device's "
                              "size: %s", p->image, strerror(errno));
            goto out;
        }
    } else if (S_ISREG(st.st_mode)) {
        e->size = (uint64_t)st.st_size;
    } else {
        rc = rm_error_set(err, -EINVAL, "'%s' is neither a file nor a block "
                          "device", p->image);
        goto out;
    }
    if (e->size == 0 || e->size % RM_NBD_BLOCK) {
        rc = rm_error_set(err, -EINVAL, "the image '%s' is %" PRIu64 " bytes:"
                          " it must be a non-zero multiple of %u", p->image,
                          e->size, RM_NBD_BLOCK);
        goto out;
    }
    if (p->cache != RM_NBD_CACHE_PAGE)
        rc = open_direct(e, p, err);
out:
    if (rc) {
        rm_nbd_export_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void rm_nbd_export_close(struct rm_nbd_export *e)
{
    if (!e)
        return;
    if (e->fd >= 0)
        close(e->fd);
    if (e->dfd >= 0)
        close(e->dfd);
    pthread_mutex_destroy(&e->lock);
    free(e->zeros);
    free(e->buf);
    free(e->image);
    free(e->name);
    free(e->hold_while);
    free(e);
}

uint64_t rm_nbd_export_size(const struct rm_nbd_export *e)
{
    return e->size;
}

bool rm_nbd_export_direct(const struct rm_nbd_export *e)
{
    return e->dfd >= 0;
}

void nbd_export_hold(struct rm_nbd_export *e, volatile sig_atomic_t *stop)
{
    bool held = false;

    while (e->hold_while && !access(e->hold_while, F_OK) &&
           !(stop && *stop)) {
        if (!held)
            LOG_WARN("requests held while '%s' exists", e->hold_while);
        held = true;
        rm_sleep_ms(10);
    }
    if (held)
        LOG_WARN("requests served again ('%s' is gone)", e->hold_while);
}

int rm_nbd_export_fd(const struct rm_nbd_export *e)
{
    return e->fd;
}

void rm_nbd_export_set_observer(struct rm_nbd_export *e,
                                const struct rm_nbd_observer *obs)
{
    pthread_mutex_lock(&e->lock);
    e->has_obs = obs != NULL;
    if (obs)
        e->obs = *obs;
    pthread_mutex_unlock(&e->lock);
}

uint8_t *nbd_export_buffer(struct rm_nbd_export *e)
{
    return e->buf;
}

const char *nbd_export_name(const struct rm_nbd_export *e)
{
    return e->name;
}

bool nbd_export_read_only(const struct rm_nbd_export *e)
{
    return e->read_only;
}

/* ------------------------------------------------------------------ I/O */

static uint32_t io_error(const struct rm_nbd_export *e, const char *what,
                         uint64_t off, uint64_t len, int rc)
{
    LOG_ERR("%s of %" PRIu64 " bytes at byte %" PRIu64 " of '%s' failed: %s",
            what, len, off, e->image, strerror(-rc));
    return rc == -ENOSPC ? NBD_ENOSPC : NBD_EIO;
}

/* The fd for I/O of @len bytes at @off from/to @buf: the O_DIRECT one
 * when there is one and all three are aligned for it. */
static int io_fd(const struct rm_nbd_export *e, uint64_t off, uint64_t len,
                 const void *buf)
{
    if (e->dfd >= 0 && !(off % RM_NBD_DIRECT_ALIGN) &&
        !(len % RM_NBD_DIRECT_ALIGN) &&
        !((uintptr_t)buf % RM_NBD_DIRECT_ALIGN))
        return e->dfd;
    return e->fd;
}

uint32_t nbd_export_read(struct rm_nbd_export *e, uint64_t off, void *buf,
                         uint32_t len)
{
    int rc = rm_pio_all(io_fd(e, off, len, buf), buf, len, off, false);

    return rc ? io_error(e, "a read", off, len, rc) : 0;
}

/* The observer's part of a change (under e->lock): 0 or an NBD error. */
static uint32_t observe_write(struct rm_nbd_export *e, uint64_t off,
                              const uint8_t *data, uint64_t len, bool fua)
{
    while (e->has_obs && len) {
        uint32_t n = len > OBS_PIECE ? OBS_PIECE : (uint32_t)len;
        int rc = e->obs.write(e->obs.opaque, 0, off, data, n, fua);

        if (rc)
            return io_error(e, "logging a write", off, n, rc);
        off += n;
        data += n;
        len -= n;
    }
    return 0;
}

uint32_t nbd_export_write(struct rm_nbd_export *e, uint64_t off,
                          const void *data, uint32_t len, bool fua)
{
    uint32_t nerr = 0;
    int rc;

    pthread_mutex_lock(&e->lock);
    rc = rm_pio_all(io_fd(e, off, len, data), (void *)data, len, off, true);
    if (!rc && fua && fdatasync(e->fd))
        rc = -errno;
    if (rc)
        nerr = io_error(e, fua ? "a write (FUA)" : "a write", off, len, rc);
    else
        nerr = observe_write(e, off, data, len, fua);
    pthread_mutex_unlock(&e->lock);
    return nerr;
}

uint32_t nbd_export_flush(struct rm_nbd_export *e)
{
    uint32_t nerr = 0;
    int rc;

    pthread_mutex_lock(&e->lock);
    rc = fdatasync(e->fd) ? -errno : 0;
    if (rc)
        nerr = io_error(e, "a flush", 0, 0, rc);
    else if (e->has_obs && (rc = e->obs.flush(e->obs.opaque, 0)))
        nerr = io_error(e, "logging a flush", 0, 0, rc);
    pthread_mutex_unlock(&e->lock);
    return nerr;
}

uint32_t nbd_export_zero(struct rm_nbd_export *e, uint64_t off, uint32_t len,
                         bool keep_allocated, bool fua)
{
    uint32_t nerr = 0;
    uint64_t done = 0;
    int rc;

    pthread_mutex_lock(&e->lock);
    rc = fallocate(e->fd, keep_allocated ? FALLOC_FL_ZERO_RANGE
                   : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                   (off_t)len) ? -errno : 0;
    if (rc == -EOPNOTSUPP || rc == -ENOSYS || rc == -EINVAL ||
        rc == -ENODEV) {
        /* a device or file system that cannot: write the zeros */
        rc = 0;
        if (!e->zeros) {
            if (posix_memalign((void **)&e->zeros, RM_NBD_DIRECT_ALIGN,
                               OBS_PIECE))
                e->zeros = NULL;
            if (e->zeros)
                memset(e->zeros, 0, OBS_PIECE);
            else
                rc = -ENOMEM;
        }
        while (!rc && done < len) {
            uint64_t n = len - done > OBS_PIECE ? OBS_PIECE : len - done;

            rc = rm_pio_all(io_fd(e, off + done, n, e->zeros), e->zeros, n,
                            off + done, true);
            done += n;
        }
    }
    if (!rc && fua && fdatasync(e->fd))
        rc = -errno;
    if (rc)
        nerr = io_error(e, "zeroing", off, len, rc);
    else if (e->has_obs && (rc = e->obs.discard(e->obs.opaque, 0, off, len)))
        nerr = io_error(e, "logging a zeroed range", off, len, rc);
    else if (e->has_obs && fua && (rc = e->obs.flush(e->obs.opaque, 0)))
        nerr = io_error(e, "logging a flush", off, len, rc);
    pthread_mutex_unlock(&e->lock);
    return nerr;
}

/* ----------------------------------------------------------- the socket */

uint64_t nbd_get64(const uint8_t *p)
{
    return ((uint64_t)nbd_get32(p) << 32) | nbd_get32(p + 4);
}

uint32_t nbd_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

uint16_t nbd_get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

void nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, (uint32_t)(v >> 32));
    nbd_put32(p + 4, (uint32_t)v);
}

void nbd_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int nbd_recv(struct nbd_conn *c, void *buf, size_t len, bool idle_ok,
             const char *what)
{
    uint64_t deadline = 0;
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int left = 200, n;
        ssize_t r;

        if (idle_ok && got == 0 && c->stop && *c->stop)
            return 1;
        if (!(idle_ok && got == 0)) {
            uint64_t now = rm_now_ns();

            if (!deadline)
                deadline = now + (uint64_t)c->timeout_ms * 1000000;
            if (now >= deadline)
                return rm_error_set(c->err, -ETIMEDOUT, "the client sent %zu"
                                    " of the %zu bytes of %s and then "
                                    "nothing for %u ms", got, len, what,
                                    c->timeout_ms);
            left = (int)((deadline - now + 999999) / 1000000);
        }
        n = poll(&pfd, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return rm_error_set(c->err, -errno, "waiting for %s: %s", what,
                                strerror(errno));
        if (n == 0)
            continue;   /* the deadline or the stop above ends it */
        r = recv(c->fd, (uint8_t *)buf + got, len - got, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0 && errno != ECONNRESET)
            return rm_error_set(c->err, -errno, "reading %s: %s", what,
                                strerror(errno));
        if (r <= 0) {
            if (got == 0 && idle_ok)
                return 1;
            return rm_error_set(c->err, -EPIPE, "the client closed the "
                                "connection after %zu of the %zu bytes of %s",
                                got, len, what);
        }
        got += (size_t)r;
    }
    return 0;
}

int nbd_send(struct nbd_conn *c, const void *buf, size_t len,
             const char *what)
{
    size_t done = 0;

    /* MSG_NOSIGNAL: a client gone is an error here, never a SIGPIPE; the
     * socket's send timeout (SO_SNDTIMEO) makes a client that reads
     * nothing an EAGAIN */
    while (done < len) {
        ssize_t n = send(c->fd, (const uint8_t *)buf + done, len - done,
                         MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return rm_error_set(c->err, -ETIMEDOUT, "sending %s: the client"
                                " read nothing for %u ms", what,
                                c->timeout_ms);
        if (n < 0)
            return rm_error_set(c->err, -errno, "sending %s: %s", what,
                                strerror(errno));
        done += (size_t)n;
    }
    return 0;
}

int rm_nbd_serve(struct rm_nbd_export *e, int fd, volatile sig_atomic_t *stop,
                 struct rm_nbd_conn_stats *st, struct rm_error *err)
{
    struct nbd_conn c = { .fd = fd, .timeout_ms = e->timeout_ms,
                          .stop = stop, .err = err };
    struct rm_nbd_conn_stats local;
    int rc;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    rm_fd_set_send_timeout(fd, e->timeout_ms);
    rc = nbd_negotiate(e, &c);
    if (rc == 1)
        return 0;
    if (rc == 0)
        rc = nbd_transmit(e, &c, st);
    return rc;
}

int rm_nbd_serve_transmission(struct rm_nbd_export *e, int fd,
                              volatile sig_atomic_t *stop,
                              struct rm_nbd_conn_stats *st,
                              struct rm_error *err)
{
    struct nbd_conn c = { .fd = fd, .timeout_ms = e->timeout_ms,
                          .stop = stop, .err = err };
    struct rm_nbd_conn_stats local;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    rm_fd_set_send_timeout(fd, e->timeout_ms);
    return nbd_transmit(e, &c, st);
}
