/* SPDX-License-Identifier: MIT */
/* The feed of a served disk's changes into a protection's log (feed.h). */
#define RM_LOG_PREFIX "disk feed"
#include "nbd/feed.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

#define HDR_BYTES 32u

struct feed_hdr {
    uint32_t magic, kind;
    uint64_t off, len;
    uint32_t flags, zero;
};

static void hdr_encode(uint8_t *b, const struct feed_hdr *h)
{
    uint32_t v32;
    uint64_t v64;

    v32 = htole32(h->magic);
    memcpy(b, &v32, 4);
    v32 = htole32(h->kind);
    memcpy(b + 4, &v32, 4);
    v64 = htole64(h->off);
    memcpy(b + 8, &v64, 8);
    v64 = htole64(h->len);
    memcpy(b + 16, &v64, 8);
    v32 = htole32(h->flags);
    memcpy(b + 24, &v32, 4);
    v32 = 0;
    memcpy(b + 28, &v32, 4);
}

static void hdr_decode(const uint8_t *b, struct feed_hdr *h)
{
    uint32_t v32;
    uint64_t v64;

    memcpy(&v32, b, 4);
    h->magic = le32toh(v32);
    memcpy(&v32, b + 4, 4);
    h->kind = le32toh(v32);
    memcpy(&v64, b + 8, 8);
    h->off = le64toh(v64);
    memcpy(&v64, b + 16, 8);
    h->len = le64toh(v64);
    memcpy(&v32, b + 24, 4);
    h->flags = le32toh(v32);
    memcpy(&v32, b + 28, 4);
    h->zero = le32toh(v32);
}

/* ------------------------------------------------------------ server end */

/* All of @len bytes, without SIGPIPE: 0 or -EPIPE (and the like). */
static int send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_change(int fd, const struct feed_hdr *h, const void *data)
{
    uint8_t b[HDR_BYTES];
    int32_t answer;
    int rc;

    hdr_encode(b, h);
    rc = send_all(fd, b, sizeof(b));
    if (!rc && h->kind == RM_NBD_FEED_WRITE)
        rc = send_all(fd, data, (size_t)h->len);
    if (!rc)
        rc = rm_read_all(fd, &answer, sizeof(answer));
    if (rc)
        return rc == -ECONNRESET ? -EPIPE : rc;
    answer = (int32_t)le32toh((uint32_t)answer);
    /* An answer is 0 or a negative errno; anything else is not ours. */
    return answer > 0 || answer < -4095 ? -EPROTO : answer;
}

int rm_nbd_feed_send_write(int fd, uint64_t off, const void *data,
                           uint32_t len, bool fua)
{
    struct feed_hdr h = { RM_NBD_FEED_MAGIC, RM_NBD_FEED_WRITE, off, len,
                          fua ? 1u : 0u, 0 };

    if (!len || len > RM_NBD_FEED_MAX_WRITE)
        return -EINVAL;
    return send_change(fd, &h, data);
}

int rm_nbd_feed_send_discard(int fd, uint64_t off, uint64_t len)
{
    struct feed_hdr h = { RM_NBD_FEED_MAGIC, RM_NBD_FEED_DISCARD, off, len,
                          0, 0 };

    return send_change(fd, &h, NULL);
}

int rm_nbd_feed_send_flush(int fd)
{
    struct feed_hdr h = { RM_NBD_FEED_MAGIC, RM_NBD_FEED_FLUSH, 0, 0, 0, 0 };

    return send_change(fd, &h, NULL);
}

/* -------------------------------------------------------- protection end */

struct rm_nbd_feed {
    int fd;
    struct rm_disklog *log;
    uint32_t disk;
    pthread_t thread;
    atomic_bool stopping;
    atomic_uint_fast64_t changes;
    uint8_t *buf;                   /* one write's data */
};

/* Check one header: 0, or -EPROTO with the reason in @why. */
static int check_hdr(const struct feed_hdr *h, char *why, size_t len)
{
    if (h->magic != RM_NBD_FEED_MAGIC || h->zero) {
        snprintf(why, len, "a message without the feed's magic (0x%08x)",
                 h->magic);
        return -EPROTO;
    }
    if (h->kind == RM_NBD_FEED_WRITE &&
        (!h->len || h->len > RM_NBD_FEED_MAX_WRITE || h->flags > 1)) {
        snprintf(why, len, "a write of %" PRIu64 " bytes (flags 0x%x): "
                 "1 to %u bytes, flag FUA only", h->len, h->flags,
                 RM_NBD_FEED_MAX_WRITE);
        return -EPROTO;
    }
    if ((h->kind == RM_NBD_FEED_DISCARD || h->kind == RM_NBD_FEED_FLUSH) &&
        h->flags) {
        snprintf(why, len, "flags 0x%x on a %s", h->flags,
                 h->kind == RM_NBD_FEED_FLUSH ? "flush" : "discard");
        return -EPROTO;
    }
    if (h->kind < RM_NBD_FEED_WRITE || h->kind > RM_NBD_FEED_FLUSH) {
        snprintf(why, len, "an unknown change (kind %u)", h->kind);
        return -EPROTO;
    }
    return 0;
}

/* One change into the log.  0; else -errno with the reason in @why. */
static int log_change(struct rm_nbd_feed *f, const struct feed_hdr *h,
                      char *why, size_t len)
{
    struct rm_error err = { 0 };
    int rc;

    if (h->kind == RM_NBD_FEED_WRITE)
        rc = rm_disklog_write(f->log, f->disk, h->off, f->buf,
                              (uint32_t)h->len, h->flags & 1, &err);
    else if (h->kind == RM_NBD_FEED_DISCARD)
        rc = rm_disklog_discard(f->log, f->disk, h->off, h->len, &err);
    else
        rc = rm_disklog_flush(f->log, f->disk, &err);
    if (rc)
        snprintf(why, len, "%s", rm_error_str(&err));
    return rc;
}

static void *feed_main(void *arg)
{
    struct rm_nbd_feed *f = arg;
    char why[300] = "";
    int rc;

    for (;;) {
        uint8_t b[HDR_BYTES];
        struct feed_hdr h;
        int32_t answer;

        rc = rm_read_all(f->fd, b, sizeof(b));
        if (rc) {
            snprintf(why, sizeof(why), "the disk server's feed of disk %u "
                     "%s", f->disk, rc == -EPIPE ? "ended" : strerror(-rc));
            break;
        }
        hdr_decode(b, &h);
        rc = check_hdr(&h, why, sizeof(why));
        if (!rc && h.kind == RM_NBD_FEED_WRITE) {
            rc = rm_read_all(f->fd, f->buf, (size_t)h.len);
            if (rc)
                snprintf(why, sizeof(why), "the disk server's feed of disk "
                         "%u broke in the middle of a write", f->disk);
        }
        if (rc)
            break;
        rc = log_change(f, &h, why, sizeof(why));
        answer = (int32_t)htole32((uint32_t)rc);
        if (send_all(f->fd, &answer, sizeof(answer)) && !rc) {
            rc = -EPIPE;
            snprintf(why, sizeof(why), "the disk server of disk %u went "
                     "away before it had the log's answer", f->disk);
        }
        if (rc)
            break;
        atomic_fetch_add(&f->changes, 1);
    }
    /* The server must not wait for an answer that will never come: it
     * sees the end at its next change and serves the disk unprotected. */
    shutdown(f->fd, SHUT_RDWR);
    /* A log shut down (-ECANCELED) is its protection ending: not news. */
    if (!atomic_load(&f->stopping) && rc != -ECANCELED) {
        LOG_ERR("%s: the protection's next checkpoint fails", why);
        rm_disklog_fail(f->log, rc, why);
    }
    return NULL;
}

int rm_nbd_feed_start(struct rm_nbd_feed **out, int fd,
                      struct rm_disklog *log, uint32_t disk,
                      struct rm_error *err)
{
    struct rm_nbd_feed *f;
    int rc;

    *out = NULL;
    f = calloc(1, sizeof(*f));
    if (f)
        f->buf = malloc(RM_NBD_FEED_MAX_WRITE);
    if (!f || !f->buf) {
        if (f)
            free(f);
        return rm_error_set(err, -ENOMEM, "out of memory for disk %u's "
                            "feed", disk);
    }
    f->fd = fd;
    f->log = log;
    f->disk = disk;
    atomic_init(&f->stopping, false);
    atomic_init(&f->changes, 0);
    rc = -pthread_create(&f->thread, NULL, feed_main, f);
    if (rc) {
        free(f->buf);
        free(f);
        return rm_error_set(err, rc, "cannot start disk %u's feed: %s", disk,
                            strerror(-rc));
    }
    *out = f;
    return 0;
}

void rm_nbd_feed_stop(struct rm_nbd_feed *f)
{
    if (!f)
        return;
    atomic_store(&f->stopping, true);
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    free(f->buf);
    free(f);
}

void rm_nbd_feed_quiet(struct rm_nbd_feed *f)
{
    atomic_store(&f->stopping, true);
}

uint64_t rm_nbd_feed_changes(const struct rm_nbd_feed *f)
{
    return atomic_load(&f->changes);
}
