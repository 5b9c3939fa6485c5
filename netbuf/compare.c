/* SPDX-License-Identifier: MIT */
/*
 * COLO's packet comparator (netbuf/compare.h).
 *
 * Each side (0: the primary VM, 1: the replica) keeps its frames in one
 * arrival list, oldest first (the timeouts look at its head; a checkpoint
 * releases the primary's in that order); while comparing, each frame is
 * also in its flow's queue for that side.  Invariant while comparing: at
 * most one of a flow's two queues is non-empty (a frame that finds the
 * other side's queue non-empty is compared with its head at once), and a
 * flow with both empty is freed.  Once diverged, flows are not used: the
 * primary's frames only join the arrival list, the replica's are dropped.
 * From a cut (a checkpoint under way) to its checkpoint_done, the
 * primary's new frames wait at the tail of its arrival list (from
 * post_head on), outside the flows; checkpoint_done releases what came
 * before them and compares them afresh against the resumed replica.
 */
#include "netbuf/compare.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


#define NBUCKETS 1024
#define PRIMARY 0
#define REPLICA 1

struct flow;

struct cframe {
    struct cframe *fnext;           /* in its flow's queue */
    struct cframe *aprev, *anext;   /* in its side's arrival list */
    struct flow *flow;              /* NULL once diverged */
    uint64_t at;
    size_t len;
    uint8_t data[];
};

struct flow {
    struct flow *hnext;
    struct rm_flow_key key;
    struct cframe *qhead[2], *qtail[2];
};

struct side {
    struct cframe *ahead, *atail;
    size_t frames, bytes;
};

struct rm_compare {
    struct rm_compare_cfg cfg;
    pthread_mutex_t lock;
    pthread_mutex_t sink_lock;      /* keeps released frames in order */
    struct flow *buckets[NBUCKETS];
    size_t nflows;
    struct side side[2];
    bool diverged;
    bool held_start;                /* diverged: no replica yet (start_held),
                                     * or buffered */
    bool buffered;                  /* set_buffered(): held_start again at
                                     * every checkpoint_done */
    enum rm_diverge_cause cause;    /* of the divergence, if diverged */
    bool cut;                       /* a checkpoint is under way */
    struct cframe *post_head;       /* first primary frame since the cut */
    bool passthrough;               /* protection ended */
    struct rm_compare_stats st;
};

/* What one call found, acted on once the lock is dropped. */
struct outcome {
    struct cframe *release_head, *release_tail;
    bool diverge;
    struct rm_divergence why;
};

const char *rm_diverge_cause_name(enum rm_diverge_cause cause)
{
    switch (cause) {
    case RM_DIVERGE_MISMATCH:
        return "mismatch";
    case RM_DIVERGE_TIMEOUT:
        return "timeout";
    case RM_DIVERGE_OVERFLOW:
        return "overflow";
    }
    return "?";
}

struct rm_compare *rm_compare_new(const struct rm_compare_cfg *cfg,
                                  struct rm_error *err)
{
    struct rm_compare *c;

    if (!cfg->sink) {
        rm_error_set(err, -EINVAL, "compare: no output sink");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        rm_error_set(err, -ENOMEM, "compare: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (!c->cfg.timeout_ns)
        c->cfg.timeout_ns = 20 * 1000000ull;
    if (!c->cfg.max_frames)
        c->cfg.max_frames = 4096;
    if (!c->cfg.max_bytes)
        c->cfg.max_bytes = 8u << 20;
    if (!c->cfg.max_flows)
        c->cfg.max_flows = 1024;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->sink_lock, NULL);
    c->diverged = cfg->start_held;     /* held, and not counted */
    c->held_start = cfg->start_held;
    return c;
}

static size_t key_hash(const struct rm_flow_key *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < sizeof(*k); i++)
        h = (h ^ p[i]) * 16777619u;
    return h % NBUCKETS;
}

static struct flow *flow_find(struct rm_compare *c,
                              const struct rm_flow_key *k)
{
    struct flow *f;

    for (f = c->buckets[key_hash(k)]; f; f = f->hnext)
        if (!memcmp(&f->key, k, sizeof(*k)))
            return f;
    return NULL;
}

static struct flow *flow_add(struct rm_compare *c, const struct rm_flow_key *k)
{
    struct flow *f = calloc(1, sizeof(*f));
    size_t b = key_hash(k);

    if (!f)
        return NULL;
    f->key = *k;
    f->hnext = c->buckets[b];
    c->buckets[b] = f;
    c->nflows++;
    return f;
}

static void flow_remove(struct rm_compare *c, struct flow *f)
{
    struct flow **pp = &c->buckets[key_hash(&f->key)];

    while (*pp != f)
        pp = &(*pp)->hnext;
    *pp = f->hnext;
    c->nflows--;
    free(f);
}

static void arrival_append(struct rm_compare *c, int s, struct cframe *fr)
{
    struct side *sd = &c->side[s];

    fr->anext = NULL;
    fr->aprev = sd->atail;
    if (sd->atail)
        sd->atail->anext = fr;
    else
        sd->ahead = fr;
    sd->atail = fr;
    sd->frames++;
    sd->bytes += fr->len;
}

static void arrival_unlink(struct rm_compare *c, int s, struct cframe *fr)
{
    struct side *sd = &c->side[s];

    if (fr->aprev)
        fr->aprev->anext = fr->anext;
    else
        sd->ahead = fr->anext;
    if (fr->anext)
        fr->anext->aprev = fr->aprev;
    else
        sd->atail = fr->aprev;
    sd->frames--;
    sd->bytes -= fr->len;
}

static void flow_push(struct flow *f, int s, struct cframe *fr)
{
    fr->flow = f;
    fr->fnext = NULL;
    if (f->qtail[s])
        f->qtail[s]->fnext = fr;
    else
        f->qhead[s] = fr;
    f->qtail[s] = fr;
}

/* Take the head of @f's queue for side @s out of the flow and of its
 * arrival list. */
static struct cframe *flow_pop(struct rm_compare *c, struct flow *f, int s)
{
    struct cframe *fr = f->qhead[s];

    f->qhead[s] = fr->fnext;
    if (!f->qhead[s])
        f->qtail[s] = NULL;
    arrival_unlink(c, s, fr);
    fr->flow = NULL;
    return fr;
}

static void release_append(struct outcome *o, struct cframe *fr)
{
    fr->anext = NULL;
    if (o->release_tail)
        o->release_tail->anext = fr;
    else
        o->release_head = fr;
    o->release_tail = fr;
}

/* Record the first divergence since the last checkpoint. */
static void diverge(struct rm_compare *c, struct outcome *o,
                    const struct rm_divergence *why)
{
    if (c->diverged)
        return;
    c->diverged = true;
    c->cause = why->cause;
    switch (why->cause) {
    case RM_DIVERGE_MISMATCH:
        c->st.mismatches++;
        break;
    case RM_DIVERGE_TIMEOUT:
        c->st.timeouts++;
        break;
    case RM_DIVERGE_OVERFLOW:
        c->st.overflows++;
        break;
    }
    o->diverge = true;
    o->why = *why;
}

/* Time out the oldest frame of either side; the next deadline. */
static uint64_t check_timeouts(struct rm_compare *c, struct outcome *o,
                               uint64_t now)
{
    uint64_t next = UINT64_MAX;
    int s;

    if (c->diverged || c->cut)      /* a checkpoint is asked for or under
                                     * way: the replica may be paused */
        return UINT64_MAX;
    for (s = PRIMARY; s <= REPLICA; s++) {
        struct cframe *old = c->side[s].ahead;
        uint64_t due;

        if (!old)
            continue;
        due = old->at + c->cfg.timeout_ns;
        if (now >= due) {
            struct rm_divergence why = {
                .cause = RM_DIVERGE_TIMEOUT, .replica_side = s == REPLICA,
                .waited_ns = now - old->at,
            };

            if (old->flow)
                why.flow = old->flow->key;
            diverge(c, o, &why);
            return UINT64_MAX;
        }
        if (due < next)
            next = due;
    }
    return next;
}

/* Would one more frame of @len overflow side @s? */
static bool side_full(const struct rm_compare *c, int s, size_t len)
{
    const struct side *sd = &c->side[s];

    return sd->frames + 1 > c->cfg.max_frames ||
           sd->bytes + len > c->cfg.max_bytes;
}

/* Diverged: a primary frame joins the arrival list (to be released at the
 * checkpoint), or is dropped when it does not fit; a replica frame is
 * dropped (the checkpoint replaces the replica's state). */
static void hold_diverged(struct rm_compare *c, int s, struct cframe *fr)
{
    if (s == REPLICA) {
        c->st.dropped_replica++;
        free(fr);
    } else if (side_full(c, s, fr->len)) {
        c->st.dropped_full++;
        free(fr);
    } else {
        fr->flow = NULL;
        arrival_append(c, s, fr);
    }
}

/* One frame of side @s, under the lock. */
static void add_locked(struct rm_compare *c, int s, struct cframe *fr,
                       struct outcome *o)
{
    int other = !s;
    struct rm_flow_key key;
    struct flow *f;
    size_t where = 0;

    if (c->passthrough) {
        if (s == PRIMARY) {
            release_append(o, fr);
        } else {
            c->st.dropped_replica++;
            free(fr);
        }
        return;
    }
    if (c->cut && s == PRIMARY) {   /* after the cut: wait for its ack */
        if (side_full(c, s, fr->len)) {
            c->st.dropped_full++;
            free(fr);
            return;
        }
        fr->flow = NULL;
        arrival_append(c, s, fr);
        if (!c->post_head)
            c->post_head = fr;
        return;
    }
    check_timeouts(c, o, fr->at);
    if (c->diverged) {
        hold_diverged(c, s, fr);
        return;
    }
    rm_frame_flow(fr->data, fr->len, &key);
    f = flow_find(c, &key);
    if (f && f->qhead[other]) {
        struct cframe *head = f->qhead[other];
        struct cframe *pri = s == PRIMARY ? fr : head;
        struct cframe *rep = s == PRIMARY ? head : fr;

        if (rm_frame_same(pri->data, pri->len, rep->data, rep->len, &where)) {
            flow_pop(c, f, other);
            if (!f->qhead[PRIMARY] && !f->qhead[REPLICA])
                flow_remove(c, f);
            c->st.matched++;
            free(rep);
            release_append(o, pri);
            return;
        }
        struct rm_divergence why = {
            .cause = RM_DIVERGE_MISMATCH, .flow = key, .offset = where,
        };
        diverge(c, o, &why);
        hold_diverged(c, s, fr);
        return;
    }
    /* A full side, a full flow table, or no memory for a flow: full. */
    if (side_full(c, s, fr->len) || (!f && c->nflows >= c->cfg.max_flows) ||
        (!f && !(f = flow_add(c, &key)))) {
        struct rm_divergence why = {
            .cause = RM_DIVERGE_OVERFLOW, .flow = key,
            .replica_side = s == REPLICA,
        };
        diverge(c, o, &why);
        hold_diverged(c, s, fr);
        return;
    }
    arrival_append(c, s, fr);
    flow_push(f, s, fr);
}

/* Called with c->lock held: drops it, sends what was released (in order:
 * sink_lock is taken before the lock is dropped), then tells of a
 * divergence. */
static void finish(struct rm_compare *c, struct outcome *o)
{
    struct cframe *fr, *next;
    uint64_t frames = 0, bytes = 0, errors = 0;

    if (!o->release_head) {
        pthread_mutex_unlock(&c->lock);
    } else {
        pthread_mutex_lock(&c->sink_lock);
        pthread_mutex_unlock(&c->lock);
        for (fr = o->release_head; fr; fr = next) {
            next = fr->anext;
            if (c->cfg.sink(c->cfg.sink_opaque, fr->data, fr->len))
                errors++;
            frames++;
            bytes += fr->len;
            free(fr);
        }
        pthread_mutex_unlock(&c->sink_lock);
        pthread_mutex_lock(&c->lock);
        c->st.released_frames += frames;
        c->st.released_bytes += bytes;
        c->st.sink_errors += errors;
        pthread_mutex_unlock(&c->lock);
    }
    if (o->diverge && c->cfg.on_diverge)
        c->cfg.on_diverge(c->cfg.diverge_opaque, &o->why);
}

static int add(struct rm_compare *c, int s, const void *frame, size_t len,
               uint64_t now)
{
    struct outcome o = { 0 };
    struct cframe *fr = malloc(sizeof(*fr) + len);

    if (!fr)
        return -ENOMEM;
    memcpy(fr->data, frame, len);
    fr->len = len;
    fr->at = now;
    fr->flow = NULL;
    pthread_mutex_lock(&c->lock);
    if (s == PRIMARY)
        c->st.primary_frames++;
    else
        c->st.replica_frames++;
    add_locked(c, s, fr, &o);
    finish(c, &o);
    return 0;
}

int rm_compare_primary(struct rm_compare *c, const void *frame, size_t len,
                       uint64_t now_ns)
{
    return add(c, PRIMARY, frame, len, now_ns);
}

int rm_compare_secondary(struct rm_compare *c, const void *frame, size_t len,
                         uint64_t now_ns)
{
    return add(c, REPLICA, frame, len, now_ns);
}

uint64_t rm_compare_tick(struct rm_compare *c, uint64_t now_ns)
{
    struct outcome o = { 0 };
    uint64_t next;

    pthread_mutex_lock(&c->lock);
    next = check_timeouts(c, &o, now_ns);
    finish(c, &o);
    return next;
}

bool rm_compare_diverged(struct rm_compare *c)
{
    bool d;

    pthread_mutex_lock(&c->lock);
    d = c->diverged && !c->held_start;
    pthread_mutex_unlock(&c->lock);
    return d;
}

/* Empty the flow table (the frames are in the arrival lists). */
static void flows_clear(struct rm_compare *c)
{
    size_t b;

    for (b = 0; b < NBUCKETS; b++) {
        while (c->buckets[b]) {
            struct flow *f = c->buckets[b];

            c->buckets[b] = f->hnext;
            free(f);
        }
    }
    c->nflows = 0;
}

static void free_list(struct cframe *fr)
{
    while (fr) {
        struct cframe *next = fr->anext;

        free(fr);
        fr = next;
    }
}

/* Forget every frame (the caller took the lists first) and every
 * divergence, cut and hold: comparing starts from nothing. */
static void reset_locked(struct rm_compare *c)
{
    flows_clear(c);
    memset(c->side, 0, sizeof(c->side));
    c->diverged = c->buffered;
    c->held_start = c->buffered;
    c->cut = false;
    c->post_head = NULL;
}

void rm_compare_cut(struct rm_compare *c)
{
    pthread_mutex_lock(&c->lock);
    if (!c->passthrough)
        c->cut = true;
    pthread_mutex_unlock(&c->lock);
}

void rm_compare_set_buffered(struct rm_compare *c, bool on)
{
    pthread_mutex_lock(&c->lock);
    c->buffered = on;
    pthread_mutex_unlock(&c->lock);
}

void rm_compare_checkpoint_done(struct rm_compare *c, uint64_t now_ns)
{
    struct outcome o = { 0 };
    struct cframe *rep, *post, *fr, *next;

    pthread_mutex_lock(&c->lock);
    post = c->post_head;
    /* What came before the cut leaves; what came after is compared. */
    if (c->side[PRIMARY].ahead != post) {
        o.release_head = c->side[PRIMARY].ahead;
        o.release_tail = post ? post->aprev : c->side[PRIMARY].atail;
        o.release_tail->anext = NULL;
    }
    rep = c->side[REPLICA].ahead;
    c->st.dropped_replica += c->side[REPLICA].frames;
    reset_locked(c);
    c->st.checkpoints++;
    for (fr = post; fr; fr = next) {
        next = fr->anext;
        fr->at = now_ns;
        add_locked(c, PRIMARY, fr, &o);
    }
    finish(c, &o);
    free_list(rep);
}

void rm_compare_discard(struct rm_compare *c)
{
    struct cframe *pri, *rep;

    pthread_mutex_lock(&c->lock);
    pri = c->side[PRIMARY].ahead;
    rep = c->side[REPLICA].ahead;
    c->st.discarded += c->side[PRIMARY].frames + c->side[REPLICA].frames;
    reset_locked(c);
    pthread_mutex_unlock(&c->lock);
    free_list(pri);
    free_list(rep);
}

void rm_compare_passthrough(struct rm_compare *c)
{
    struct outcome o = { 0 };
    struct cframe *rep;

    pthread_mutex_lock(&c->lock);
    o.release_head = c->side[PRIMARY].ahead;
    o.release_tail = c->side[PRIMARY].atail;
    rep = c->side[REPLICA].ahead;
    c->st.dropped_replica += c->side[REPLICA].frames;
    reset_locked(c);
    c->passthrough = true;
    finish(c, &o);
    free_list(rep);
}

void rm_compare_get_stats(struct rm_compare *c, struct rm_compare_stats *st)
{
    pthread_mutex_lock(&c->lock);
    *st = c->st;
    st->held_primary = c->side[PRIMARY].frames;
    st->held_replica = c->side[REPLICA].frames;
    st->flows = c->nflows;
    st->diverged = c->diverged && !c->held_start;
    st->buffered = c->buffered;
    st->cause = c->cause;
    pthread_mutex_unlock(&c->lock);
}

void rm_compare_free(struct rm_compare *c)
{
    if (!c)
        return;
    flows_clear(c);
    free_list(c->side[PRIMARY].ahead);
    free_list(c->side[REPLICA].ahead);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->sink_lock);
    free(c);
}
