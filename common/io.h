/* SPDX-License-Identifier: MIT */
/*
 * Byte sources and sinks for streams.
 *
 * A source is a file descriptor (file, pipe, socket) or a memory buffer
 * (a staged checkpoint, a fuzzer input).  A sink is a file descriptor or a
 * growable memory buffer (the primary stages each checkpoint in memory
 * while the guest is paused and sends it after resuming the guest).
 */
#ifndef REMUS_COMMON_IO_H
#define REMUS_COMMON_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* A growable byte buffer.  Zero-initialise; free with rm_buf_free(). */
struct rm_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Ensure room for @extra more bytes.  0 or -ENOMEM. */
int rm_buf_reserve(struct rm_buf *b, size_t extra);
int rm_buf_append(struct rm_buf *b, const void *data, size_t len);
void rm_buf_reset(struct rm_buf *b);  /* len = 0, keeps the allocation */
/* Give the kernel back the whole pages of @b's allocation beyond its first
 * max(@keep, len) bytes (madvise DONTNEED: resident memory drops, the
 * capacity stays, and a later append faults the pages in again). */
void rm_buf_release_tail(struct rm_buf *b, size_t keep);
/* Make the allocation hold at least @upto bytes and its bytes from @from
 * to @upto resident (MADV_POPULATE_WRITE, or a write to each page where
 * the kernel lacks it), so that appends up to @upto take no page fault.
 * The contents beyond len are undefined.  0 or -ENOMEM. */
int rm_buf_prefault(struct rm_buf *b, size_t from, size_t upto);
void rm_buf_free(struct rm_buf *b);

/* Name an anonymous mapping (/proc/PID/smaps and pmap show
 * "[anon:NAME]"), where the kernel can (CONFIG_ANON_VMA_NAME); silently
 * nothing elsewhere. */
void rm_name_mapping(void *addr, size_t len, const char *name);

struct rm_src {
    int fd;               /* >= 0: read from this descriptor */
    const uint8_t *mem;   /* fd < 0: read from [mem, mem + mem_len) */
    size_t mem_len;
    size_t mem_pos;
    int timeout_ms;       /* fd only: -1 waits forever; else per-read poll */
    uint64_t offset;      /* bytes consumed so far (for error messages) */
    /* Optional layer (the init functions leave it NULL: none).  When set,
     * rm_src_read_exact() hands every read to layer_read, which keeps the
     * same contract and counts the bytes it delivers in s->offset; @layer
     * is its state.  The authenticated checkpoint stream (common/auth.h)
     * sits here, under the stream engines. */
    int (*layer_read)(struct rm_src *s, void *buf, size_t len);
    void *layer;
    /* Optional (fd only; the init functions leave it NULL): asked when a
     * read has waited timeout_ms with no byte.  true: wait another
     * timeout_ms (the secondary's stream while the primary's heartbeats
     * still arrive: a slow checkpoint, not a dead primary); false: the
     * read fails with -ETIMEDOUT.  Called from the reading thread. */
    bool (*keep_waiting)(void *arg);
    void *keep_waiting_arg;
};

void rm_src_init_fd(struct rm_src *s, int fd);
void rm_src_init_mem(struct rm_src *s, const void *mem, size_t len);

/*
 * Read exactly @len bytes.  Returns 0; -ENODATA when the source ended
 * before the first byte (a clean end); -EPIPE when it ended part-way
 * (truncated); -ETIMEDOUT when timeout_ms passed with no data; or another
 * negative errno.  On any error the bytes that did arrive are consumed
 * and counted in s->offset.
 */
int rm_src_read_exact(struct rm_src *s, void *buf, size_t len);

struct rm_sink {
    int fd;               /* >= 0: write to this descriptor */
    struct rm_buf *buf;   /* fd < 0: append to this buffer */
    uint64_t offset;      /* bytes written so far */
    /* Optional layer (NULL: none): when set, rm_sink_writev() hands the
     * bytes to layer_writev (same contract; offset is still counted by
     * rm_sink_writev); @layer is its state (common/auth.h). */
    int (*layer_writev)(struct rm_sink *s, const struct iovec *iov,
                        int iovcnt);
    void *layer;
};

void rm_sink_init_fd(struct rm_sink *s, int fd);
void rm_sink_init_buf(struct rm_sink *s, struct rm_buf *buf);

/*
 * Write every byte of @iov[0..iovcnt) (any iovcnt: batches of IOV_MAX are
 * made internally; short writes and EINTR are retried).  0 or -errno
 * (-EPIPE when the peer went away; SIGPIPE must be ignored by the caller;
 * -ETIMEDOUT when a send deadline, rm_fd_set_send_timeout(), passed with
 * no progress).
 */
int rm_sink_writev(struct rm_sink *s, const struct iovec *iov, int iovcnt);
int rm_sink_write(struct rm_sink *s, const void *data, size_t len);

/* Plain descriptor helpers: 0 or -errno, retrying EINTR/short transfers. */
int rm_write_all(int fd, const void *data, size_t len);
int rm_read_all(int fd, void *data, size_t len); /* -EPIPE on early EOF */
/* Positioned: pread (@write false) or pwrite every byte of [@off, @off +
 * @len) of @fd (an image), retrying EINTR and short transfers.  0, -errno,
 * or -EIO when the file ends first. */
int rm_pio_all(int fd, void *buf, size_t len, uint64_t off, bool write);

/* Monotonic clock in nanoseconds. */
uint64_t rm_now_ns(void);
/* Sleep @ns nanoseconds / @ms milliseconds (once: a signal may end it
 * early, as nanosleep does). */
void rm_sleep_ns(uint64_t ns);
void rm_sleep_ms(unsigned ms);

/*
 * Nanoseconds from @then to @now, 0 when @then is later: a time stamp
 * written by another thread after @now was read (a message heard between
 * reading the clock and taking the lock) is "just now", never an unsigned
 * wrap to 584 years of silence.
 */
static inline uint64_t rm_ns_since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

/*
 * Deadlines are monotonic: a wall-clock step (NTP, an operator) must never
 * end a wait early or make it last forever.  rm_cond_init_monotonic() makes
 * a condition variable whose timed waits measure CLOCK_MONOTONIC, and
 * rm_deadline_ts() the absolute time @from_now_ns ahead on that clock, for
 * pthread_cond_timedwait().  Every condition variable in the tree is made
 * with it (tests/integration/clock_lint.sh checks).  0 or -errno.
 */
int rm_cond_init_monotonic(pthread_cond_t *cond);
struct timespec rm_deadline_ts(uint64_t from_now_ns);

/*
 * A send deadline on a socket: a blocking write that can hand no byte to
 * the kernel for @timeout_ms fails with -ETIMEDOUT (the writers here map
 * the kernel's EAGAIN to it) instead of blocking for good when the peer
 * stops reading.  0 or -errno.
 */
int rm_fd_set_send_timeout(int fd, unsigned timeout_ms);

#endif
