/* SPDX-License-Identifier: MIT */
/* COLO, the secondary's side: the replica runs between checkpoints
 * (colo/replica.h). */
#define RM_LOG_PREFIX "colo"
#include "colo/replica.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "colo/input_queue.h"
#include "common/io.h"
#include "common/log.h"

struct rm_colo_replica {
    struct rm_colo_replica_ops ops;
    struct rm_chan *chan;
    struct rm_colo_inq *inq;
    uint64_t out_seq;              /* __atomic: the replica's frames sent */
    pthread_mutex_t lock;
    /* under lock: */
    uint64_t cut_epoch;            /* the checkpoint under way (0: none) */
    uint64_t paused_at;            /* rm_now_ns() it paused for it (0: it
                                    * was not running) */
    uint64_t cut_input;            /* its input_seq */
    bool cut_buffered;             /* ... and its buffered mark */
    bool parked;                   /* buffered mode: the replica is paused
                                    * and stays so at commits */
    uint64_t *pfns;                /* a ColoDirty part being filled */
    bool test_drop_dirty;          /* TESTS ONLY */
    bool test_no_ask;              /* TESTS ONLY */
    struct rm_colo_replica_stats st;
};

struct rm_colo_replica *rm_colo_replica_new(const struct rm_colo_replica_ops *ops,
                                            struct rm_chan *chan,
                                            struct rm_error *err)
{
    struct rm_colo_replica *cr = calloc(1, sizeof(*cr));

    if (!cr || !(cr->pfns = calloc(RM_COLO_PFNS_MAX, sizeof(uint64_t)))) {
        free(cr);
        rm_error_set(err, -ENOMEM, "colo: out of memory");
        return NULL;
    }
    cr->inq = rm_colo_inq_new(0, err);
    if (!cr->inq) {
        free(cr->pfns);
        free(cr);
        return NULL;
    }
    cr->ops = *ops;
    cr->chan = chan;
    pthread_mutex_init(&cr->lock, NULL);
    return cr;
}

void rm_colo_replica_test_drop_dirty(struct rm_colo_replica *cr)
{
    cr->test_drop_dirty = true;
}

void rm_colo_replica_test_no_ask(struct rm_colo_replica *cr)
{
    cr->test_no_ask = true;
}

/* The replica's input (its vCPU 0's thread): the mirrored frames. */
static ssize_t replica_in(void *opaque, void *buf, size_t cap)
{
    struct rm_colo_replica *cr = opaque;

    return rm_colo_inq_read(cr->inq, buf, cap);
}

/* The replica's output (its vCPU 0's thread): back to the primary. */
static int replica_out(void *opaque, const void *frame, size_t len)
{
    struct rm_colo_replica *cr = opaque;
    uint64_t seq = __atomic_add_fetch(&cr->out_seq, 1, __ATOMIC_RELAXED);
    int rc = rm_chan_send_colo_frame(cr->chan, false, seq, frame, len);

    pthread_mutex_lock(&cr->lock);
    if (rc)
        cr->st.output_errors++;
    else
        cr->st.output_frames++;
    pthread_mutex_unlock(&cr->lock);
    return rc;
}

/* The replica needs a checkpoint (its vCPU's thread): ask the primary. */
static void replica_ask(void *opaque, const char *why)
{
    struct rm_colo_replica *cr = opaque;
    int rc = cr->test_no_ask ? 0 : rm_chan_send_colo_ask(cr->chan,
                                                        RM_COLO_CAUSE_OVERFLOW,
                                                        why);

    pthread_mutex_lock(&cr->lock);
    if (!cr->test_no_ask && !rc)
        cr->st.asks++;
    pthread_mutex_unlock(&cr->lock);
    if (cr->test_no_ask)
        LOG_WARN("COLO: TEST MODE: the replica does not ask for the "
                 "checkpoint it needs (%s)", why);
    else if (rc)
        LOG_WARN("COLO: asking the primary for a checkpoint failed: %s",
                 strerror(-rc));
}

/* Send the replica's dirty pages as ColoDirty parts. */
static int send_dirty(struct rm_colo_replica *cr, uint64_t epoch,
                      const unsigned long *dirty, uint64_t nr_pfns)
{
    uint64_t out = __atomic_load_n(&cr->out_seq, __ATOMIC_RELAXED);
    uint64_t pfn, sent = 0;
    uint32_t n = 0;
    int rc;

    if (cr->test_drop_dirty)
        nr_pfns = 0;
    for (pfn = 0; pfn < nr_pfns; pfn++) {
        if (!rm_bitmap_test(dirty, pfn))
            continue;
        cr->pfns[n++] = pfn;
        if (n == RM_COLO_PFNS_MAX) {
            rc = rm_chan_send_colo_dirty(cr->chan, epoch, out, cr->pfns, n,
                                         false);
            if (rc)
                return rc;
            sent += n;
            n = 0;
        }
    }
    rc = rm_chan_send_colo_dirty(cr->chan, epoch, out, cr->pfns, n, true);
    cr->st.dirty_pages_sent += sent + n;
    return rc;
}

static int on_checkpoint(struct rm_colo_replica *cr,
                         const struct rm_ctl_msg *msg, struct rm_error *err)
{
    const unsigned long *dirty = NULL;
    uint64_t nr_pfns = 0, epoch = msg->u.colo_checkpoint.epoch;
    bool parked;
    int rc;

    pthread_mutex_lock(&cr->lock);
    if (cr->cut_epoch) {
        rc = rm_error_set(err, -EPROTO, "COLO checkpoint %" PRIu64 " asked "
                          "while checkpoint %" PRIu64 " is under way", epoch,
                          cr->cut_epoch);
        pthread_mutex_unlock(&cr->lock);
        return rc;
    }
    cr->cut_epoch = epoch;
    cr->cut_input = msg->u.colo_checkpoint.input_seq;
    cr->cut_buffered = msg->u.colo_checkpoint.buffered;
    cr->st.checkpoints_asked++;
    parked = cr->parked;
    cr->paused_at = parked ? 0 : rm_now_ns();
    pthread_mutex_unlock(&cr->lock);
    /* Parked, it did not run since it last paused: it changed nothing
     * (no pages to send). */
    rc = parked ? 0 : cr->ops.pause(cr->ops.opaque, &dirty, &nr_pfns, err);
    if (rc) {
        rm_error_prefix(err, "pausing the replica for checkpoint %" PRIu64
                        ": ", epoch);
        return rc;
    }
    rc = send_dirty(cr, epoch, dirty, nr_pfns);
    if (rc)
        return rm_error_set(err, rc, "sending the replica's dirty pages of "
                            "checkpoint %" PRIu64 ": %s", epoch,
                            strerror(-rc));
    return 0;
}

int rm_colo_replica_message(struct rm_colo_replica *cr,
                            const struct rm_ctl_msg *msg,
                            struct rm_error *err)
{
    switch (msg->kind) {
    case RM_CTL_COLO_INPUT:
        return rm_colo_inq_push(cr->inq, msg->u.colo_frame.seq,
                                msg->u.colo_frame.frame,
                                msg->u.colo_frame.len, err);
    case RM_CTL_COLO_CHECKPOINT:
        return on_checkpoint(cr, msg, err);
    default:
        return 0;
    }
}

bool rm_colo_replica_ran_for(struct rm_colo_replica *cr, uint64_t epoch)
{
    bool ran;

    pthread_mutex_lock(&cr->lock);
    ran = cr->cut_epoch == epoch && cr->paused_at != 0;
    pthread_mutex_unlock(&cr->lock);
    return ran;
}

int rm_colo_replica_committed(struct rm_colo_replica *cr, uint64_t epoch,
                              struct rm_error *err)
{
    struct rm_colo_net net = {
        .opaque = cr, .in_fd = rm_colo_inq_fd(cr->inq),
        .in_read = replica_in, .out = replica_out, .ask = replica_ask,
    };
    uint64_t input = 0;
    bool park = false, was_parked;
    int rc;

    pthread_mutex_lock(&cr->lock);
    if (cr->cut_epoch && cr->cut_epoch != epoch) {
        rc = rm_error_set(err, -EPROTO, "checkpoint %" PRIu64 " committed, "
                          "but COLO checkpoint %" PRIu64 " was asked",
                          epoch, cr->cut_epoch);
        pthread_mutex_unlock(&cr->lock);
        return rc;
    }
    was_parked = cr->parked;
    if (cr->cut_epoch) {
        input = cr->cut_input;
        park = cr->cut_buffered;
    } else if (cr->parked) {
        /* Buffered mode: it stays paused, its memory now the
         * checkpoint's. */
        cr->st.buffered_commits++;
        pthread_mutex_unlock(&cr->lock);
        return 0;
    } else if (epoch > 1) {
        /* Its dirty pages were never asked for: the replica's memory is a
         * mix of its own run and the checkpoint.  It must not run. */
        pthread_mutex_unlock(&cr->lock);
        return rm_error_set(err, -EPROTO, "checkpoint %" PRIu64 " came "
                            "without a COLO checkpoint request: the "
                            "replica's own changes were not replaced",
                            epoch);
    }
    cr->cut_epoch = 0;
    pthread_mutex_unlock(&cr->lock);
    /* The input the checkpoint holds is not the replica's to read. */
    rc = rm_colo_inq_cut(cr->inq, input, err);
    if (rc)
        return rc;
    if (park) {
        cr->ops.park(cr->ops.opaque);
        pthread_mutex_lock(&cr->lock);
        cr->parked = true;
        cr->st.buffered_commits++;
        pthread_mutex_unlock(&cr->lock);
        if (!was_parked)
            LOG_WARN("COLO: buffered (Remus) mode from checkpoint %" PRIu64
                     " (the primary's choice): the replica stays paused",
                     epoch);
        return 0;
    }
    rc = cr->ops.run(cr->ops.opaque, &net, err);
    if (!rc) {
        pthread_mutex_lock(&cr->lock);
        cr->parked = false;
        cr->st.runs++;
        if (cr->paused_at) {      /* paused for a checkpoint .. runs again */
            uint64_t ns = rm_now_ns() - cr->paused_at;

            cr->st.pauses++;
            cr->st.pause_ns_total += ns;
            if (ns > cr->st.pause_ns_max)
                cr->st.pause_ns_max = ns;
            cr->paused_at = 0;
        }
        pthread_mutex_unlock(&cr->lock);
        if (was_parked)
            LOG_INFO("COLO: the replica runs again from checkpoint %" PRIu64,
                     epoch);
    }
    return rc;
}

void rm_colo_replica_get_stats(struct rm_colo_replica *cr,
                               struct rm_colo_replica_stats *st)
{
    pthread_mutex_lock(&cr->lock);
    *st = cr->st;
    st->parked = cr->parked;
    pthread_mutex_unlock(&cr->lock);
}

void rm_colo_replica_free(struct rm_colo_replica *cr)
{
    if (!cr)
        return;
    rm_colo_inq_free(cr->inq);
    pthread_mutex_destroy(&cr->lock);
    free(cr->pfns);
    free(cr);
}
