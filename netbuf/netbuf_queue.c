/* SPDX-License-Identifier: MIT */
/*
 * The KVM implementation of netbuf: an in-process FIFO of outgoing frames,
 * each tagged with its epoch.  vCPU threads append under a mutex; release
 * detaches the released prefix under the mutex and writes it to the sink
 * outside it, so a slow TAP never stalls the guest's vCPUs.
 */
#define RM_LOG_PREFIX "netbuf"
#include "netbuf/netbuf.h"

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

struct rm_netbuf {
    struct rm_netbuf_queue_cfg cfg;
    pthread_mutex_t lock;
    pthread_mutex_t sink_lock;    /* keeps released frames in order */
    struct frame *head, *tail;
    uint64_t cur_tag;
    bool passthrough;
    uint64_t full_logged_tag;     /* one "bound hit" line per epoch */
    struct rm_netbuf_stats st;
};

struct rm_netbuf *rm_netbuf_queue_new(const struct rm_netbuf_queue_cfg *cfg,
                                      struct rm_error *err)
{
    struct rm_netbuf *nb;

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
    return nb;
}

static void send_list(struct rm_netbuf *nb, struct frame *f,
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

int rm_netbuf_output(struct rm_netbuf *nb, const void *data, size_t len)
{
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

int rm_netbuf_start_epoch(struct rm_netbuf *nb, uint64_t epoch)
{
    pthread_mutex_lock(&nb->lock);
    nb->cur_tag = epoch + 1;
    pthread_mutex_unlock(&nb->lock);
    return 0;
}

/* Detach the frames tagged <= @upto (all with UINT64_MAX). */
static struct frame *detach_upto(struct rm_netbuf *nb, uint64_t upto)
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

int rm_netbuf_release(struct rm_netbuf *nb, uint64_t epoch)
{
    struct frame *list;

    pthread_mutex_lock(&nb->sink_lock);
    pthread_mutex_lock(&nb->lock);
    list = detach_upto(nb, epoch);
    pthread_mutex_unlock(&nb->lock);
    send_list(nb, list, epoch);
    pthread_mutex_unlock(&nb->sink_lock);
    return 0;
}

int rm_netbuf_discard(struct rm_netbuf *nb)
{
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

int rm_netbuf_passthrough(struct rm_netbuf *nb)
{
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

void rm_netbuf_get_stats(struct rm_netbuf *nb, struct rm_netbuf_stats *st)
{
    pthread_mutex_lock(&nb->lock);
    *st = nb->st;
    pthread_mutex_unlock(&nb->lock);
}

void rm_netbuf_free(struct rm_netbuf *nb)
{
    if (!nb)
        return;
    rm_netbuf_discard(nb);
    pthread_mutex_destroy(&nb->lock);
    pthread_mutex_destroy(&nb->sink_lock);
    free(nb);
}
