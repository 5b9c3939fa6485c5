/* SPDX-License-Identifier: MIT */
#include "common/io.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rm_buf_reserve(struct rm_buf *b, size_t extra)
{
    size_t want, cap;
    uint8_t *p;

    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    want = b->len + extra;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int rm_buf_append(struct rm_buf *b, const void *data, size_t len)
{
    int rc = rm_buf_reserve(b, len);

    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void rm_buf_reset(struct rm_buf *b)
{
    b->len = 0;
}

void rm_buf_release_tail(struct rm_buf *b, size_t keep)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start, end;

    if (!b->data || keep >= b->cap)
        return;
    if (keep < b->len)
        keep = b->len;
    start = ((uintptr_t)b->data + keep + page - 1) & ~(page - 1);
    end = ((uintptr_t)b->data + b->cap) & ~(page - 1);
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
}

int rm_buf_prefault(struct rm_buf *b, size_t from, size_t upto)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start, end, lim, a;
    int rc;

    if (upto > b->len) {
        rc = rm_buf_reserve(b, upto - b->len);
        if (rc)
            return rc;
    }
    if (from >= upto)
        return 0;
    /* Whole pages inside the allocation only (its first and last may
     * hold the allocator's own data); a partial first page is faulted
     * in by the first append that reaches it, at most one fault. */
    start = ((uintptr_t)b->data + from + page - 1) & ~(page - 1);
    end = ((uintptr_t)b->data + upto + page - 1) & ~(page - 1);
    lim = ((uintptr_t)b->data + b->cap) & ~(page - 1);
    if (end > lim)
        end = lim;
    if (end <= start)
        return 0;
    if (madvise((void *)start, end - start, MADV_POPULATE_WRITE) == 0)
        return 0;
    for (a = start; a < end; a += page)   /* older kernels */
        *(volatile uint8_t *)a = 0;
    return 0;
}

void rm_buf_free(struct rm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rm_src_init_fd(struct rm_src *s, int fd)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->timeout_ms = -1;
}

void rm_src_init_mem(struct rm_src *s, const void *mem, size_t len)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->mem = mem;
    s->mem_len = len;
    s->timeout_ms = -1;
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int rc;

    if (timeout_ms < 0)
        return 0;
    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return -ETIMEDOUT;
    return 0;
}

int rm_src_read_exact(struct rm_src *s, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;

    if (s->layer_read)
        return s->layer_read(s, buf, len);
    if (s->fd < 0) {
        size_t avail = s->mem_len - s->mem_pos;
        size_t n = avail < len ? avail : len;

        if (n)
            memcpy(p, s->mem + s->mem_pos, n);
        s->mem_pos += n;
        s->offset += n;
        if (n == len)
            return 0;
        return n == 0 ? -ENODATA : -EPIPE;
    }

    while (done < len) {
        ssize_t n;
        int rc = wait_readable(s->fd, s->timeout_ms);

        if (rc == -ETIMEDOUT && s->keep_waiting &&
            s->keep_waiting(s->keep_waiting_arg))
            continue;
        if (rc)
            return rc;
        n = read(s->fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return done == 0 ? -ENODATA : -EPIPE;
        done += (size_t)n;
        s->offset += (uint64_t)n;
    }
    return 0;
}

void rm_sink_init_fd(struct rm_sink *s, int fd)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
}

void rm_sink_init_buf(struct rm_sink *s, struct rm_buf *buf)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->buf = buf;
}

static int writev_fd(int fd, const struct iovec *iov_in, int iovcnt)
{
    struct iovec local[64];
    int idx = 0;

    while (idx < iovcnt) {
        int n = iovcnt - idx < 64 ? iovcnt - idx : 64;
        ssize_t w;

        memcpy(local, iov_in + idx, (size_t)n * sizeof(local[0]));
        {
            struct iovec *v = local;
            int left = n;

            while (left > 0) {
                w = writev(fd, v, left);
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    /* A blocking socket's send deadline passed. */
                    if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return -ETIMEDOUT;
                    return -errno;
                }
                while (left > 0 && (size_t)w >= v->iov_len) {
                    w -= (ssize_t)v->iov_len;
                    v++;
                    left--;
                }
                if (left > 0 && w > 0) {
                    v->iov_base = (uint8_t *)v->iov_base + w;
                    v->iov_len -= (size_t)w;
                }
            }
        }
        idx += n;
    }
    return 0;
}

int rm_sink_writev(struct rm_sink *s, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    int i, rc;

    for (i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;

    if (s->layer_writev) {
        rc = s->layer_writev(s, iov, iovcnt);
        if (rc)
            return rc;
    } else if (s->fd >= 0) {
        rc = writev_fd(s->fd, iov, iovcnt);
        if (rc)
            return rc;
    } else {
        rc = rm_buf_reserve(s->buf, total);
        if (rc)
            return rc;
        for (i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len)
                memcpy(s->buf->data + s->buf->len, iov[i].iov_base,
                       iov[i].iov_len);
            s->buf->len += iov[i].iov_len;
        }
    }
    s->offset += total;
    return 0;
}

int rm_sink_write(struct rm_sink *s, const void *data, size_t len)
{
    struct iovec v = { .iov_base = (void *)data, .iov_len = len };

    return rm_sink_writev(s, &v, 1);
}

int rm_write_all(int fd, const void *data, size_t len)
{
    struct iovec v = { .iov_base = (void *)data, .iov_len = len };

    return writev_fd(fd, &v, 1);
}

int rm_read_all(int fd, void *data, size_t len)
{
    struct rm_src s;
    int rc;

    rm_src_init_fd(&s, fd);
    rc = rm_src_read_exact(&s, data, len);
    return rc == -ENODATA ? -EPIPE : rc;
}

int rm_pio_all(int fd, void *buf, size_t len, uint64_t off, bool write)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = write ? pwrite(fd, p, len, (off_t)off)
                          : pread(fd, p, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;   /* a file shorter than its size */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

uint64_t rm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rm_sleep_ns(uint64_t ns)
{
    struct timespec ts = {
        .tv_sec = (time_t)(ns / 1000000000ull),
        .tv_nsec = (long)(ns % 1000000000ull),
    };

    nanosleep(&ts, NULL);
}

void rm_sleep_ms(unsigned ms)
{
    rm_sleep_ns((uint64_t)ms * 1000000ull);
}

int rm_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc;

    rc = pthread_condattr_init(&attr);
    if (rc)
        return -rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return -rc;
}

struct timespec rm_deadline_ts(uint64_t from_now_ns)
{
    uint64_t t = rm_now_ns() + from_now_ns;
    struct timespec ts = {
        .tv_sec = (time_t)(t / 1000000000ull),
        .tv_nsec = (long)(t % 1000000000ull),
    };

    return ts;
}

int rm_fd_set_send_timeout(int fd, unsigned timeout_ms)
{
    struct timeval tv = {
        .tv_sec = (time_t)(timeout_ms / 1000),
        .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000,
    };

    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
        return -errno;
    return 0;
}

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

void rm_name_mapping(void *addr, size_t len, const char *name)
{
    (void)prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)addr,
                (unsigned long)len, (unsigned long)name);
}
