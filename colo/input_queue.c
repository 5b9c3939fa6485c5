/* SPDX-License-Identifier: MIT */
/* COLO: the replica's network input, mirrored from the primary
 * (colo/input_queue.h).  A FIFO under a mutex; an eventfd counts what
 * waits, so poll() on it tells the replica's vCPU 0 a frame is there. */
#include "colo/input_queue.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct inframe {
    struct inframe *next;
    uint64_t seq;
    size_t len;
    uint8_t data[];
};

struct rm_colo_inq {
    pthread_mutex_t lock;
    int efd;                       /* EFD_SEMAPHORE: one count per frame */
    size_t max_frames;
    struct inframe *head, *tail;
    struct rm_colo_inq_stats st;
};

struct rm_colo_inq *rm_colo_inq_new(size_t max_frames, struct rm_error *err)
{
    struct rm_colo_inq *q = calloc(1, sizeof(*q));

    if (!q) {
        rm_error_set(err, -ENOMEM, "colo input queue: out of memory");
        return NULL;
    }
    q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    if (q->efd < 0) {
        rm_error_set(err, -errno, "colo input queue: eventfd: %s",
                     strerror(errno));
        free(q);
        return NULL;
    }
    q->max_frames = max_frames ? max_frames : 4096;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

int rm_colo_inq_push(struct rm_colo_inq *q, uint64_t seq, const void *frame,
                     size_t len, struct rm_error *err)
{
    struct inframe *f;
    uint64_t one = 1;
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (seq != q->st.last_pushed + 1) {
        rc = rm_error_set(err, -EPROTO, "colo input frame %" PRIu64
                          " arrived after frame %" PRIu64 " (a gap or a "
                          "repeat)", seq, q->st.last_pushed);
        goto out;
    }
    if (q->st.waiting >= q->max_frames) {
        /* The replica is that far behind: this frame is dropped (counted),
         * as a full NIC would; it is in the primary's state from the next
         * cut on, and missing it makes the replica diverge until then. */
        q->st.dropped_full++;
        q->st.last_pushed = seq;
        goto out;
    }
    f = malloc(sizeof(*f) + len);
    if (!f) {
        rc = rm_error_set(err, -ENOMEM, "colo input queue: out of memory");
        goto out;
    }
    f->next = NULL;
    f->seq = seq;
    f->len = len;
    memcpy(f->data, frame, len);
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->st.waiting++;
    q->st.pushed++;
    q->st.last_pushed = seq;
    if (write(q->efd, &one, sizeof(one)) != sizeof(one))
        rc = rm_error_set(err, -EIO, "colo input queue: eventfd write");
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Take one count off the eventfd (a frame left the queue). */
static void efd_take(struct rm_colo_inq *q)
{
    uint64_t v;

    if (read(q->efd, &v, sizeof(v)) != sizeof(v))
        return;    /* cannot happen while the count matches the queue */
}

/* Take the head frame out of the queue (and its count off the eventfd).
 * Under q->lock; the queue is not empty. */
static struct inframe *pop_locked(struct rm_colo_inq *q)
{
    struct inframe *f = q->head;

    q->head = f->next;
    if (!q->head)
        q->tail = NULL;
    q->st.waiting--;
    efd_take(q);
    return f;
}

ssize_t rm_colo_inq_read(void *opaque, void *buf, size_t cap)
{
    struct rm_colo_inq *q = opaque;
    struct inframe *f;
    size_t n;

    pthread_mutex_lock(&q->lock);
    if (!q->head) {
        pthread_mutex_unlock(&q->lock);
        return 0;
    }
    f = pop_locked(q);
    q->st.read++;
    q->st.last_read = f->seq;
    pthread_mutex_unlock(&q->lock);
    n = f->len < cap ? f->len : cap;
    memcpy(buf, f->data, n);
    free(f);
    return (ssize_t)n;
}

int rm_colo_inq_fd(const struct rm_colo_inq *q)
{
    return q->efd;
}

int rm_colo_inq_cut(struct rm_colo_inq *q, uint64_t input_seq,
                    struct rm_error *err)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (q->st.last_read > input_seq) {
        rc = rm_error_set(err, -EPROTO, "the replica read input frame %"
                          PRIu64 ", past the primary's %" PRIu64 " at the "
                          "cut", q->st.last_read, input_seq);
        goto out;
    }
    if (q->st.last_pushed < input_seq) {
        rc = rm_error_set(err, -EPROTO, "the primary's VM read %" PRIu64
                          " input frames at the cut, but only %" PRIu64
                          " were mirrored", input_seq, q->st.last_pushed);
        goto out;
    }
    while (q->head && q->head->seq <= input_seq) {
        free(pop_locked(q));
        q->st.dropped_at_cut++;
    }
    q->st.last_read = input_seq;
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void rm_colo_inq_stats(struct rm_colo_inq *q, struct rm_colo_inq_stats *st)
{
    pthread_mutex_lock(&q->lock);
    *st = q->st;
    pthread_mutex_unlock(&q->lock);
}

void rm_colo_inq_free(struct rm_colo_inq *q)
{
    if (!q)
        return;
    while (q->head) {
        struct inframe *f = q->head;

        q->head = f->next;
        free(f);
    }
    close(q->efd);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
