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

/* What committed() does with the checkpoint committing() took in. */
enum rm_colo_next {
    RM_COLO_NEXT_NONE,             /* nothing was committing */
    RM_COLO_NEXT_RUN,              /* run the replica from it */
    RM_COLO_NEXT_PARK,             /* stay paused from it on (buffered) */
    RM_COLO_NEXT_STAY,             /* already parked: nothing */
};

struct rm_colo_replica {
    struct rm_colo_replica_ops ops;
    struct rm_chan *chan;
    struct rm_colo_inq *inq;
    uint64_t out_seq;              /* __atomic: the replica's frames sent */
    /* Held while the replica is started (committed) or paused for a
     * checkpoint (on_checkpoint): a request that comes between a commit's
     * acknowledgement and the replica's start waits for it, or finds it
     * not started.  Taken before lock, never inside it. */
    pthread_mutex_t run_lock;
    pthread_mutex_t lock;
    /* under lock: */
    uint64_t cut_epoch;            /* the checkpoint under way (0: none) */
    uint64_t paused_at;            /* rm_now_ns() it paused for it (0: it
                                    * was not running) */
    uint64_t cut_input;            /* its input_seq */
    bool cut_buffered;             /* ... and its buffered mark */
    bool cut_ran;                  /* ... and the replica ran before it
                                    * paused for it */
    enum rm_colo_next next;        /* committing() .. committed(): what */
    uint64_t next_epoch;           /* ... for this checkpoint */
    bool parked;                   /* buffered mode: the replica is paused
                                    * and stays so at commits */
    bool running;                  /* it runs from the last commit (not
                                    * yet paused for the next request) */
    bool at_checkpoint;            /* its state is the last commit's: it
                                    * did not run from it (parked, or the
                                    * next request came first) */
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
    cr->at_checkpoint = true;      /* it has not run yet */
    pthread_mutex_init(&cr->run_lock, NULL);
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
    bool running;
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
    pthread_mutex_unlock(&cr->lock);
    /* Not running -- parked, or the request came before the last commit
     * started it (committed() then leaves it paused) -- it changed nothing
     * since that commit: no pages to send. */
    pthread_mutex_lock(&cr->run_lock);
    pthread_mutex_lock(&cr->lock);
    running = cr->running;
    cr->running = false;
    cr->cut_ran = running;
    if (running)
        cr->paused_at = rm_now_ns();
    else if (cr->parked)
        cr->paused_at = 0;        /* the pause counted is up to the park */
    pthread_mutex_unlock(&cr->lock);
    rc = running ? cr->ops.pause(cr->ops.opaque, &dirty, &nr_pfns, err) : 0;
    pthread_mutex_unlock(&cr->run_lock);
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
    ran = cr->cut_epoch == epoch && cr->cut_ran;
    pthread_mutex_unlock(&cr->lock);
    return ran;
}

int rm_colo_replica_committing(struct rm_colo_replica *cr, uint64_t epoch,
                               struct rm_error *err)
{
    enum rm_colo_next next = RM_COLO_NEXT_RUN;
    uint64_t input = 0;
    int rc = 0;

    pthread_mutex_lock(&cr->lock);
    if (cr->cut_epoch && cr->cut_epoch != epoch) {
        rc = rm_error_set(err, -EPROTO, "checkpoint %" PRIu64 " committed, "
                          "but COLO checkpoint %" PRIu64 " was asked",
                          epoch, cr->cut_epoch);
        goto out;
    }
    if (cr->cut_epoch) {
        input = cr->cut_input;
        if (cr->cut_buffered)
            next = RM_COLO_NEXT_PARK;
    } else if (cr->parked) {
        /* Buffered mode: it stays paused, its memory now the
         * checkpoint's. */
        next = RM_COLO_NEXT_STAY;
    } else if (epoch > 1) {
        /* Its dirty pages were never asked for: the replica's memory is a
         * mix of its own run and the checkpoint.  It must not run. */
        rc = rm_error_set(err, -EPROTO, "checkpoint %" PRIu64 " came "
                          "without a COLO checkpoint request: the "
                          "replica's own changes were not replaced", epoch);
        goto out;
    }
    /* From here a request is the next checkpoint's */
    cr->cut_epoch = 0;
    cr->next = next;
    cr->next_epoch = epoch;
out:
    pthread_mutex_unlock(&cr->lock);
    /* The input the checkpoint holds is not the replica's to read. */
    if (!rc && next != RM_COLO_NEXT_STAY)
        rc = rm_colo_inq_cut(cr->inq, input, err);
    return rc;
}

int rm_colo_replica_committed(struct rm_colo_replica *cr, uint64_t epoch,
                              struct rm_error *err)
{
    struct rm_colo_net net = {
        .opaque = cr, .in_fd = rm_colo_inq_fd(cr->inq),
        .in_read = replica_in, .out = replica_out, .ask = replica_ask,
    };
    enum rm_colo_next next;
    uint64_t asked;
    bool was_parked;
    int rc;

    pthread_mutex_lock(&cr->lock);
    next = cr->next_epoch == epoch ? cr->next : RM_COLO_NEXT_NONE;
    cr->next = RM_COLO_NEXT_NONE;
    was_parked = cr->parked;
    if (next == RM_COLO_NEXT_STAY)
        cr->st.buffered_commits++;
    pthread_mutex_unlock(&cr->lock);
    switch (next) {
    case RM_COLO_NEXT_NONE:
        return rm_error_set(err, -EPROTO, "checkpoint %" PRIu64 " committed "
                            "without rm_colo_replica_committing()", epoch);
    case RM_COLO_NEXT_STAY:
        return 0;
    case RM_COLO_NEXT_PARK:
        cr->ops.park(cr->ops.opaque);
        pthread_mutex_lock(&cr->lock);
        cr->parked = true;
        cr->at_checkpoint = true;
        cr->st.buffered_commits++;
        pthread_mutex_unlock(&cr->lock);
        if (!was_parked)
            LOG_WARN("COLO: buffered (Remus) mode from checkpoint %" PRIu64
                     " (the primary's choice): the replica stays paused",
                     epoch);
        return 0;
    case RM_COLO_NEXT_RUN:
        break;
    }
    /*
     * The acknowledgement went out before this (colo/replica.h): the
     * primary may have asked for the next checkpoint already.  Then the
     * replica does not run from this one: it stays paused at it, its state
     * the checkpoint's (as parked: ops.park), the request is answered with
     * no pages (on_checkpoint), and the next commit runs it.  Started
     * anyway, it would change pages that answer no longer names (seen in
     * the nested KVM lab, where a start takes long: the pause then found
     * no replica running, and COLO ended).
     */
    pthread_mutex_lock(&cr->run_lock);
    pthread_mutex_lock(&cr->lock);
    asked = cr->cut_epoch;
    pthread_mutex_unlock(&cr->lock);
    if (asked) {
        cr->ops.park(cr->ops.opaque);
        pthread_mutex_lock(&cr->lock);
        cr->at_checkpoint = true;
        cr->st.runs_skipped++;
        pthread_mutex_unlock(&cr->lock);
        pthread_mutex_unlock(&cr->run_lock);
        LOG_DBG("COLO: checkpoint %" PRIu64 " was asked before the replica "
                "ran from %" PRIu64 ": it stays paused at %" PRIu64, asked,
                epoch, epoch);
        return 0;
    }
    rc = cr->ops.run(cr->ops.opaque, &net, err);
    if (!rc) {
        pthread_mutex_lock(&cr->lock);
        cr->parked = false;
        cr->running = true;
        cr->at_checkpoint = false;
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
    pthread_mutex_unlock(&cr->run_lock);
    return rc;
}

void rm_colo_replica_get_stats(struct rm_colo_replica *cr,
                               struct rm_colo_replica_stats *st)
{
    pthread_mutex_lock(&cr->lock);
    *st = cr->st;
    st->parked = cr->parked;
    st->at_checkpoint = cr->at_checkpoint;
    pthread_mutex_unlock(&cr->lock);
}

void rm_colo_replica_free(struct rm_colo_replica *cr)
{
    if (!cr)
        return;
    rm_colo_inq_free(cr->inq);
    pthread_mutex_destroy(&cr->lock);
    pthread_mutex_destroy(&cr->run_lock);
    free(cr->pfns);
    free(cr);
}
