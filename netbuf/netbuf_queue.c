/* SPDX-License-Identifier: MIT */
/*
 * The KVM implementation of netbuf: an in-process FIFO of outgoing frames,
 * each tagged with its epoch.  vCPU threads append under a mutex; release
 * detaches the released prefix under the mutex and writes it to the sink
 * outside it, so a slow TAP never stalls the guest's vCPUs.
 */
#define RM_LOG_PREFIX "netbuf"
#include "netbuf/netbuf_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct frame {
    struct frame *next;
    uint64_t tag;
    size_t len;
    uint8_t data[];
};

struct nb_queue {
    struct rm_netbuf base;        /* first: ops */
    struct rm_netbuf_queue_cfg cfg;
    pthread_mutex_t lock;
    pthread_mutex_t sink_lock;    /* keeps released frames in order */
    struct frame *head, *tail;
    uint64_t cur_tag;
    bool passthrough;
    uint64_t full_logged_tag;     /* one "bound hit" line per epoch */
    struct rm_netbuf_stats st;
};

static const struct rm_netbuf_ops queue_ops;

struct rm_netbuf *rm_netbuf_queue_new(const struct rm_netbuf_queue_cfg *cfg,
                                      struct rm_error *err)
{
    struct nb_queue *nb;

    if (!cfg->sink) {
        rm_error_set(err, -EINVAL, "netbuf: no output sink");
        return NULL;
    }
    nb = calloc(1, sizeof(*nb));
    if (!nb) {
        rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        return NULL;
    }
    nb->cfg = *cfg;
    if (!nb->cfg.max_bytes)
        nb->cfg.max_bytes = 16u << 20;
    if (!nb->cfg.max_frames)
        nb->cfg.max_frames = 16384;
    nb->passthrough = cfg->passthrough;
    nb->cur_tag = 1;
    pthread_mutex_init(&nb->lock, NULL);
    pthread_mutex_init(&nb->sink_lock, NULL);
    nb->base.ops = &queue_ops;
    return &nb->base;
}

static void send_list(struct nb_queue *nb, struct frame *f,
                      uint64_t released_by)
{
    while (f) {
        struct frame *next = f->next;
        int rc = nb->cfg.sink(nb->cfg.sink_opaque, f->data, f->len);

        if (nb->cfg.on_release)
            nb->cfg.on_release(nb->cfg.on_release_opaque, f->data, f->len,
                               f->tag, released_by);
        pthread_mutex_lock(&nb->lock);
        if (rc)
            nb->st.sink_errors++;
        nb->st.released_frames++;
        nb->st.released_bytes += f->len;
        pthread_mutex_unlock(&nb->lock);
        free(f);
        f = next;
    }
}

static int q_output(struct rm_netbuf *base, const void *data, size_t len)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    struct frame *f;

    pthread_mutex_lock(&nb->lock);
    if (nb->passthrough) {
        pthread_mutex_unlock(&nb->lock);
        pthread_mutex_lock(&nb->sink_lock);
        {
            int rc = nb->cfg.sink(nb->cfg.sink_opaque, data, len);

            if (nb->cfg.on_release)
                nb->cfg.on_release(nb->cfg.on_release_opaque, data, len, 0,
                                   0);
            pthread_mutex_lock(&nb->lock);
            if (rc)
                nb->st.sink_errors++;
            nb->st.released_frames++;
            nb->st.released_bytes += len;
            pthread_mutex_unlock(&nb->lock);
        }
        pthread_mutex_unlock(&nb->sink_lock);
        return 0;
    }
    if (nb->st.held_frames + 1 > nb->cfg.max_frames ||
        nb->st.held_bytes + len > nb->cfg.max_bytes) {
        nb->st.dropped_full++;
        if (nb->full_logged_tag != nb->cur_tag) {
            nb->full_logged_tag = nb->cur_tag;
            LOG_WARN("output buffer full (%" PRIu64 " frames, %" PRIu64
                     " bytes held; bound %zu frames / %zu bytes) in epoch %"
                     PRIu64 ": dropping new frames until the next release",
                     nb->st.held_frames, nb->st.held_bytes,
                     nb->cfg.max_frames, nb->cfg.max_bytes, nb->cur_tag);
        }
        pthread_mutex_unlock(&nb->lock);
        return -ENOBUFS;
    }
    f = malloc(sizeof(*f) + len);
    if (!f) {
        nb->st.dropped_full++;
        pthread_mutex_unlock(&nb->lock);
        return -ENOMEM;
    }
    f->next = NULL;
    f->tag = nb->cur_tag;
    f->len = len;
    memcpy(f->data, data, len);
    if (nb->tail)
        nb->tail->next = f;
    else
        nb->head = f;
    nb->tail = f;
    nb->st.held_frames++;
    nb->st.held_bytes += len;
    nb->st.queued_frames++;
    nb->st.queued_bytes += len;
    pthread_mutex_unlock(&nb->lock);
    return 0;
}

static int q_start_epoch(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    pthread_mutex_lock(&nb->lock);
    nb->cur_tag = epoch + 1;
    pthread_mutex_unlock(&nb->lock);
    return 0;
}

/* Detach the frames tagged <= @upto (all with UINT64_MAX). */
static struct frame *detach_upto(struct nb_queue *nb, uint64_t upto)
{
    struct frame *first = nb->head, *last = NULL, *f = nb->head;

    while (f && f->tag <= upto) {
        nb->st.held_frames--;
        nb->st.held_bytes -= f->len;
        last = f;
        f = f->next;
    }
    if (!last)
        return NULL;
    nb->head = f;
    if (!f)
        nb->tail = NULL;
    last->next = NULL;
    return first;
}

static int q_release(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    struct frame *list;

    pthread_mutex_lock(&nb->sink_lock);
    pthread_mutex_lock(&nb->lock);
    list = detach_upto(nb, epoch);
    pthread_mutex_unlock(&nb->lock);
    send_list(nb, list, epoch);
    pthread_mutex_unlock(&nb->sink_lock);
    return 0;
}

static int q_discard(struct rm_netbuf *base)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    struct frame *f;

    pthread_mutex_lock(&nb->lock);
    f = detach_upto(nb, UINT64_MAX);
    while (f) {
        struct frame *next = f->next;

        nb->st.discarded_frames++;
        free(f);
        f = next;
    }
    pthread_mutex_unlock(&nb->lock);
    return 0;
}

static int q_passthrough(struct rm_netbuf *base)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    struct frame *list;

    pthread_mutex_lock(&nb->sink_lock);
    pthread_mutex_lock(&nb->lock);
    nb->passthrough = true;
    list = detach_upto(nb, UINT64_MAX);
    pthread_mutex_unlock(&nb->lock);
    send_list(nb, list, UINT64_MAX);
    pthread_mutex_unlock(&nb->sink_lock);
    return 0;
}

static void q_get_stats(struct rm_netbuf *base, struct rm_netbuf_stats *st)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    pthread_mutex_lock(&nb->lock);
    *st = nb->st;
    pthread_mutex_unlock(&nb->lock);
}

static void q_destroy(struct rm_netbuf *base)
{
    struct nb_queue *nb = (struct nb_queue *)base;
    q_discard(base);
    pthread_mutex_destroy(&nb->lock);
    pthread_mutex_destroy(&nb->sink_lock);
    free(nb);
}

static const struct rm_netbuf_ops queue_ops = {
    .kind = "queue",
    .output = q_output,
    .start_epoch = q_start_epoch,
    .release = q_release,
    .discard = q_discard,
    .passthrough = q_passthrough,
    .get_stats = q_get_stats,
    .destroy = q_destroy,
};
