/* SPDX-License-Identifier: MIT */
/* COLO, the primary's side: mirroring, the replica's dirty pages, and
 * checkpoints on demand (colo/primary.h). */
#define RM_LOG_PREFIX "colo"
#include "colo/primary.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/io.h"
#include "common/disklog.h"
#include "common/log.h"
#include "common/sr.h"
#include "netbuf/netbuf_colo.h"

/* What the next checkpoint changes (decided by wait(), done by cut()). */
enum switch_to {
    STAY,
    TO_BUFFERED,                   /* the fallback */
    TO_COMPARING,                  /* the hold is over */
};

#define HOLD_MAX_FACTOR 64u

struct rm_colo_primary {
    struct rm_colo_primary_cfg cfg;
    uint64_t in_seq;               /* __atomic: input frames mirrored */
    bool started;                  /* checkpoint 1 was cut */
    bool mirroring;
    enum rm_colo_cause next_cause; /* of the checkpoint wait() ended for */
    /* the checkpoint loop's own (wait() and cut()): */
    bool buffered;                 /* the replica does not run */
    enum switch_to next_switch;
    uint64_t *div_at;              /* the last fallback_rate divergence
                                    * checkpoints' times, a ring */
    unsigned div_n, div_next;
    uint64_t since_ns;             /* buffered: since; comparing: since
                                    * the return (0: never buffered) */
    unsigned hold_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock: the replica's dirty pages being collected */
    uint64_t want_epoch;           /* 0: none asked */
    unsigned long *dirty;
    uint64_t nr_pfns;
    bool got_last;
    bool replica_asked;            /* a ColoAsk since the last cut */
    bool aborted;                  /* rm_colo_primary_abort(): why */
    char abort_why[RM_ERROR_MSG_MAX];
    struct rm_colo_primary_stats st;
};

struct rm_colo_primary *rm_colo_primary_new(const struct rm_colo_primary_cfg *cfg,
                                            struct rm_error *err)
{
    struct rm_colo_primary *cp;

    if (!cfg->chan || !cfg->netbuf || !cfg->set_mirror) {
        rm_error_set(err, -EINVAL, "colo: no channel, netbuf or mirror");
        return NULL;
    }
    cp = calloc(1, sizeof(*cp));
    if (!cp) {
        rm_error_set(err, -ENOMEM, "colo: out of memory");
        return NULL;
    }
    cp->cfg = *cfg;
    if (!cp->cfg.max_interval_ms)
        cp->cfg.max_interval_ms = 2000;
    if (!cp->cfg.dirty_timeout_ms)
        cp->cfg.dirty_timeout_ms = 4000;
    if (!cp->cfg.fallback_hold_ms)
        cp->cfg.fallback_hold_ms = 10000;
    if (!cp->cfg.buffered_interval_ms)
        cp->cfg.buffered_interval_ms = 20;
    cp->hold_ms = cp->cfg.fallback_hold_ms;
    if (cp->cfg.fallback_rate &&
        !(cp->div_at = calloc(cp->cfg.fallback_rate, sizeof(uint64_t)))) {
        free(cp);
        rm_error_set(err, -ENOMEM, "colo: out of memory");
        return NULL;
    }
    cp->next_cause = RM_COLO_CAUSE_PERIODIC;
    pthread_mutex_init(&cp->lock, NULL);
    if (rm_cond_init_monotonic(&cp->cond)) {   /* rm_deadline_ts's clock */
        pthread_mutex_destroy(&cp->lock);
        free(cp->div_at);
        free(cp);
        rm_error_set(err, -ENOMEM, "colo: no condition variable");
        return NULL;
    }
    return cp;
}

/* The VM's input tap (its vCPU 0's thread): to the replica, in order. */
static void mirror(void *opaque, const void *frame, size_t len)
{
    struct rm_colo_primary *cp = opaque;
    uint64_t seq = __atomic_add_fetch(&cp->in_seq, 1, __ATOMIC_RELAXED);
    int rc = rm_chan_send_colo_frame(cp->cfg.chan, true, seq, frame, len);

    pthread_mutex_lock(&cp->lock);
    if (rc)
        cp->st.input_errors++;
    else
        cp->st.input_frames++;
    pthread_mutex_unlock(&cp->lock);
}

static int on_dirty(struct rm_colo_primary *cp, const struct rm_ctl_msg *msg,
                    struct rm_error *err)
{
    uint32_t i;
    int rc = 0;

    pthread_mutex_lock(&cp->lock);
    if (!cp->want_epoch || msg->u.colo_dirty.epoch != cp->want_epoch) {
        rc = rm_error_set(err, -EPROTO, "the replica's dirty pages of "
                          "checkpoint %" PRIu64 " came while %s",
                          msg->u.colo_dirty.epoch, cp->want_epoch ?
                          "another checkpoint's were asked" : "none were "
                          "asked");
        goto out;
    }
    for (i = 0; i < msg->u.colo_dirty.count; i++) {
        uint64_t pfn = msg->u.colo_dirty.pfns[i];

        if (pfn >= cp->nr_pfns) {
            rc = rm_error_set(err, -EPROTO, "the replica names dirty pfn %#"
                              PRIx64 ", beyond the guest's %" PRIu64
                              " pages", pfn, cp->nr_pfns);
            goto out;
        }
        rm_bitmap_set(cp->dirty, pfn);
    }
    cp->st.replica_dirty_pages += msg->u.colo_dirty.count;
    if (msg->u.colo_dirty.last) {
        cp->got_last = true;
        pthread_cond_broadcast(&cp->cond);
    }
out:
    pthread_mutex_unlock(&cp->lock);
    return rc;
}

int rm_colo_primary_message(struct rm_colo_primary *cp,
                            const struct rm_ctl_msg *msg, struct rm_error *err)
{
    switch (msg->kind) {
    case RM_CTL_COLO_OUTPUT:
        rm_netbuf_replica_output(cp->cfg.netbuf, msg->u.colo_frame.frame,
                                 msg->u.colo_frame.len);
        return 0;
    case RM_CTL_COLO_DIRTY:
        return on_dirty(cp, msg, err);
    case RM_CTL_COLO_ASK:
        /* The replica's disk overlay is half full: a checkpoint (as for a
         * full queue) before its writes would wait for one. */
        pthread_mutex_lock(&cp->lock);
        if (!cp->replica_asked)
            LOG_INFO("COLO: the replica asks for a checkpoint: %s",
                     msg->u.colo_ask.why);
        cp->replica_asked = true;
        cp->st.replica_asks++;
        pthread_mutex_unlock(&cp->lock);
        return 0;
    case RM_CTL_ACK:
        /* The replica holds the checkpoint: what the comparator held from
         * before its cut leaves, before the replica's next frame (which
         * follows this ack on the channel) is compared. */
        return rm_netbuf_release(cp->cfg.netbuf, msg->u.ack.epoch);
    default:
        return 0;
    }
}

/* At checkpoint @epoch's cut (the VM suspended, the replica paused): into
 * or out of buffered mode, as wait() decided. */
static int switch_mode(struct rm_colo_primary *cp, uint64_t epoch,
                       struct rm_error *err)
{
    bool to_buffered = cp->next_switch == TO_BUFFERED;
    uint64_t now = rm_now_ns();
    int rc;

    rc = cp->cfg.set_mirror(cp->cfg.set_mirror_opaque,
                            to_buffered ? NULL : mirror, cp);
    if (rc)
        return rm_error_set(err, rc, "%s mirroring the VM's input",
                            to_buffered ? "stopping" : "starting");
    cp->mirroring = !to_buffered;
    rc = rm_netbuf_colo_set_buffered(cp->cfg.netbuf, to_buffered);
    if (rc)
        return rm_error_set(err, rc, "colo: the netbuf is not COLO's");
    if (to_buffered) {
        /* Falling back again soon after the return: hold longer. */
        if (cp->since_ns && now - cp->since_ns <
                            (uint64_t)cp->hold_ms * 1000000)
            cp->hold_ms = cp->hold_ms * 2 > cp->cfg.fallback_hold_ms *
                                            HOLD_MAX_FACTOR
                              ? cp->cfg.fallback_hold_ms * HOLD_MAX_FACTOR
                              : cp->hold_ms * 2;
        else
            cp->hold_ms = cp->cfg.fallback_hold_ms;
        LOG_WARN("COLO: %u checkpoints asked by a divergence within 1 s "
                 "(--colo-fallback %u): buffered (Remus) mode from "
                 "checkpoint %" PRIu64 " for %u ms, a checkpoint every %u "
                 "ms, the replica paused", cp->cfg.fallback_rate,
                 cp->cfg.fallback_rate, epoch, cp->hold_ms,
                 cp->cfg.buffered_interval_ms);
    } else {
        LOG_INFO("COLO: comparing outputs again from checkpoint %" PRIu64
                 " after %" PRIu64 " ms of buffered mode", epoch,
                 (now - cp->since_ns) / 1000000);
    }
    cp->buffered = to_buffered;
    cp->since_ns = now;
    cp->div_n = cp->div_next = 0;
    cp->next_switch = STAY;
    pthread_mutex_lock(&cp->lock);
    cp->st.buffered = to_buffered;
    cp->st.hold_ms = cp->hold_ms;
    if (to_buffered)
        cp->st.fallbacks++;
    pthread_mutex_unlock(&cp->lock);
    return 0;
}

int rm_colo_primary_cut(struct rm_colo_primary *cp, uint64_t epoch,
                        unsigned long *dirty, uint64_t nr_pfns,
                        struct rm_error *err)
{
    struct timespec deadline;
    uint64_t input;
    int rc = 0;

    if (!cp->started) {
        /* Checkpoint 1 holds everything the VM read so far: the replica
         * gets what comes from now on. */
        rc = cp->cfg.set_mirror(cp->cfg.set_mirror_opaque, mirror, cp);
        if (rc)
            return rm_error_set(err, rc, "mirroring the VM's input");
        cp->mirroring = cp->started = true;
        return 0;
    }
    if (cp->buffered && cp->next_switch == STAY) {
        /* The replica does not run: it changed nothing. */
        pthread_mutex_lock(&cp->lock);
        cp->st.buffered_checkpoints++;
        pthread_mutex_unlock(&cp->lock);
        return 0;
    }
    input = __atomic_load_n(&cp->in_seq, __ATOMIC_RELAXED);
    pthread_mutex_lock(&cp->lock);
    cp->want_epoch = epoch;
    cp->dirty = dirty;
    cp->nr_pfns = nr_pfns;
    cp->got_last = false;
    if (cp->buffered)
        cp->st.buffered_checkpoints++;
    else
        cp->st.by_cause[cp->next_cause]++;
    pthread_mutex_unlock(&cp->lock);
    rc = rm_chan_send_colo_checkpoint(cp->cfg.chan, epoch, input,
                                      cp->next_cause,
                                      cp->next_switch == TO_BUFFERED);
    if (rc) {
        rm_error_set(err, rc, "asking the replica to pause for checkpoint %"
                     PRIu64 ": %s", epoch, strerror(-rc));
        goto out;
    }
    deadline = rm_deadline_ts((uint64_t)cp->cfg.dirty_timeout_ms * 1000000);
    pthread_mutex_lock(&cp->lock);
    while (!cp->got_last && !cp->aborted && rc == 0)
        rc = pthread_cond_timedwait(&cp->cond, &cp->lock, &deadline);
    if (cp->aborted)
        rc = rm_error_set(err, -ECONNABORTED, "the replica's dirty pages of "
                          "checkpoint %" PRIu64 " will not come: %s", epoch,
                          cp->abort_why);
    else if (!cp->got_last)
        rc = rm_error_set(err, -ETIMEDOUT, "the replica's dirty pages of "
                          "checkpoint %" PRIu64 " did not come within %u ms",
                          epoch, cp->cfg.dirty_timeout_ms);
    else
        rc = 0;
    /* An ask of the run this checkpoint ends came before its dirty pages
     * (one channel, sent in that order): it is answered. */
    if (!rc)
        cp->replica_asked = false;
    pthread_mutex_unlock(&cp->lock);
    if (rc)
        goto out;
    if (cp->next_switch != STAY)
        rc = switch_mode(cp, epoch, err);
out:
    pthread_mutex_lock(&cp->lock);
    cp->want_epoch = 0;
    cp->dirty = NULL;
    pthread_mutex_unlock(&cp->lock);
    return rc;
}

void rm_colo_primary_abort(struct rm_colo_primary *cp, const char *why)
{
    pthread_mutex_lock(&cp->lock);
    if (!cp->aborted) {
        cp->aborted = true;
        snprintf(cp->abort_why, sizeof(cp->abort_why), "%s", why);
        pthread_cond_broadcast(&cp->cond);
    }
    pthread_mutex_unlock(&cp->lock);
}

static enum rm_colo_cause cause_of(enum rm_diverge_cause c)
{
    switch (c) {
    case RM_DIVERGE_MISMATCH:
        return RM_COLO_CAUSE_MISMATCH;
    case RM_DIVERGE_TIMEOUT:
        return RM_COLO_CAUSE_TIMEOUT;
    case RM_DIVERGE_OVERFLOW:
        return RM_COLO_CAUSE_OVERFLOW;
    }
    return RM_COLO_CAUSE_MISMATCH;
}

/* One more checkpoint asked by a divergence, at @now: are there
 * fallback_rate of them within the last second? */
static bool divergence_rate_high(struct rm_colo_primary *cp, uint64_t now)
{
    uint64_t oldest;

    if (!cp->cfg.fallback_rate)
        return false;
    cp->div_at[cp->div_next] = now;
    cp->div_next = (cp->div_next + 1) % cp->cfg.fallback_rate;
    if (cp->div_n < cp->cfg.fallback_rate)
        cp->div_n++;
    if (cp->div_n < cp->cfg.fallback_rate)
        return false;
    oldest = cp->div_at[cp->div_next];     /* the ring is full */
    return now - oldest < 1000000000ull;
}

/* Buffered mode: a checkpoint every buffered_interval_ms; the one after
 * the hold runs the replica again. */
static int wait_buffered(struct rm_colo_primary *cp,
                         int (*keep_waiting)(void *opaque), void *opaque,
                         enum rm_colo_cause *cause)
{
    uint64_t end = rm_now_ns() +
                   (uint64_t)cp->cfg.buffered_interval_ms * 1000000, now;
    int rc;

    while ((now = rm_now_ns()) < end) {
        rc = keep_waiting(opaque);
        if (rc)
            return rc;
        rm_sleep_ms(1);
    }
    *cause = cp->next_cause = RM_COLO_CAUSE_PERIODIC;
    if (now - cp->since_ns >= (uint64_t)cp->hold_ms * 1000000)
        cp->next_switch = TO_COMPARING;
    return 0;
}

int rm_colo_primary_wait(struct rm_colo_primary *cp,
                         int (*keep_waiting)(void *opaque), void *opaque,
                         enum rm_colo_cause *cause)
{
    uint64_t start = rm_now_ns(), now;
    uint64_t max = (uint64_t)cp->cfg.max_interval_ms * 1000000;
    struct rm_compare_stats st;
    int rc;

    if (cp->buffered)
        return wait_buffered(cp, keep_waiting, opaque, cause);
    for (;;) {
        rm_netbuf_colo_tick(cp->cfg.netbuf);
        rm_netbuf_colo_stats(cp->cfg.netbuf, &st);
        if (st.diverged) {
            *cause = cause_of(st.cause);
            break;
        }
        pthread_mutex_lock(&cp->lock);
        if (cp->replica_asked) {
            pthread_mutex_unlock(&cp->lock);
            *cause = RM_COLO_CAUSE_OVERFLOW;
            break;
        }
        pthread_mutex_unlock(&cp->lock);
        if (cp->cfg.disks) {
            struct rm_disklog_stats ds;

            rm_disklog_get_stats(cp->cfg.disks, &ds);
            if (ds.cap_bytes && ds.unacked_bytes >= ds.cap_bytes / 2) {
                *cause = RM_COLO_CAUSE_OVERFLOW;
                break;
            }
        }
        now = rm_now_ns();
        if (now - start >= max) {
            *cause = RM_COLO_CAUSE_PERIODIC;
            break;
        }
        rc = keep_waiting(opaque);
        if (rc)
            return rc;
        rm_sleep_ms(1);
    }
    cp->next_cause = *cause;
    if (*cause != RM_COLO_CAUSE_PERIODIC &&
        divergence_rate_high(cp, rm_now_ns()))
        cp->next_switch = TO_BUFFERED;
    return 0;
}

void rm_colo_primary_get_stats(struct rm_colo_primary *cp,
                               struct rm_colo_primary_stats *st)
{
    pthread_mutex_lock(&cp->lock);
    *st = cp->st;
    pthread_mutex_unlock(&cp->lock);
}

void rm_colo_primary_free(struct rm_colo_primary *cp)
{
    if (!cp)
        return;
    if (cp->mirroring)
        cp->cfg.set_mirror(cp->cfg.set_mirror_opaque, NULL, NULL);
    pthread_mutex_destroy(&cp->lock);
    pthread_cond_destroy(&cp->cond);
    free(cp->div_at);
    free(cp);
}
