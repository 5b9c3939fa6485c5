/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "quorum"
#include "cluster/quorum.h"

#include <errno.h>
#include <inttypes.h>
#include <endian.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>

#include "common/io.h"
#include "common/log.h"

#define MAX_MEMBERS 64

struct rm_quorum {
    struct rm_quorum_cfg cfg;
    quorum_handle_t qh;
    votequorum_handle_t vqh;
    cpg_handle_t cpgh;
    bool have_q, have_vq, have_cpg, joined;
    struct cpg_name group;
    uint32_t my_node;
    uint32_t my_pid;

    /* The group's members as last reported by cpg. */
    struct cpg_address members[MAX_MEMBERS];
    size_t nr_members;
    /* The peer: the process the handshake named (bound), else the first
     * other process seen in the group. */
    bool peer_seen, peer_bound;
    uint32_t peer_node, peer_pid;

    /* The token (see quorum.h): who may run the VM. */
    pthread_mutex_t lock;         /* every public function holds it; the
                                     callbacks run inside pump(), under it */
    bool holds;                   /* this process runs the VM, or won it */
    bool yielded;                 /* answered YIELD: never acts */
    bool deciding;                /* inside rm_quorum_decide() */
    uint64_t claim_id;            /* our claim in flight (0: none) */
    uint64_t claims_sent;
    bool claim_delivered;         /* ours came back to us */
    bool claim_peer_present;      /* the peer was in the view it came in */
    uint32_t answer;              /* the peer's TK_YIELD / TK_HELD to it */
};

/*
 * A token message, multicast to the group with agreed (total) order.
 * Little-endian on the wire.  Only the bound peer's messages count.
 */
#define TK_MAGIC 0x4b544d52u      /* "RMTK" */
enum { TK_CLAIM = 1, TK_YIELD = 2, TK_HELD = 3 };
struct tk_msg {
    uint32_t magic;
    uint32_t type;
    uint32_t to_node, to_pid;     /* YIELD/HELD: the claimant */
    uint64_t claim_id;            /* the claim this is, or answers */
};

static const char *cs_str(cs_error_t e)
{
    switch (e) {
    case CS_OK: return "ok";
    case CS_ERR_LIBRARY: return "cannot reach corosync (CS_ERR_LIBRARY: is "
                                "corosync running on this host?)";
    case CS_ERR_TRY_AGAIN: return "corosync is busy (CS_ERR_TRY_AGAIN)";
    case CS_ERR_ACCESS: return "permission denied by corosync (CS_ERR_ACCESS)";
    case CS_ERR_BAD_HANDLE: return "the corosync connection was lost "
                                   "(CS_ERR_BAD_HANDLE)";
    case CS_ERR_NOT_EXIST: return "not configured in corosync "
                                  "(CS_ERR_NOT_EXIST)";
    default: return "corosync error";
    }
}

static int cs_errno(cs_error_t e)
{
    switch (e) {
    case CS_OK: return 0;
    case CS_ERR_TRY_AGAIN: return -EAGAIN;
    case CS_ERR_ACCESS: return -EACCES;
    case CS_ERR_NOT_EXIST: return -ENOENT;
    default: return -ENOTCONN;
    }
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *group,
                       const struct cpg_address *member, size_t nr_member,
                       const struct cpg_address *left, size_t nr_left,
                       const struct cpg_address *joined, size_t nr_joined)
{
    struct rm_quorum *q = NULL;
    size_t i;

    (void)group;
    if (cpg_context_get(h, (void **)&q) != CS_OK || !q)
        return;
    q->nr_members = nr_member < MAX_MEMBERS ? nr_member : MAX_MEMBERS;
    memcpy(q->members, member, q->nr_members * sizeof(*member));
    for (i = 0; i < nr_joined; i++)
        if (!(joined[i].nodeid == q->my_node && joined[i].pid == q->my_pid))
            LOG_INFO("group %s: process %u on node %u joined",
                     q->group.value, joined[i].pid, joined[i].nodeid);
    for (i = 0; i < nr_left; i++)
        LOG_INFO("group %s: process %u on node %u left (%s)",
                 q->group.value, left[i].pid, left[i].nodeid,
                 left[i].reason == CPG_REASON_NODEDOWN ? "its node left "
                 "this partition" : left[i].reason == CPG_REASON_PROCDOWN ?
                 "its process ended" : "it left");
}

static const char *peer_role(const struct rm_quorum *q)
{
    return q->cfg.role == RM_QUORUM_PRIMARY ? "secondary" : "primary";
}

static void tk_send(struct rm_quorum *q, uint32_t type, uint32_t to_node,
                    uint32_t to_pid, uint64_t id)
{
    struct tk_msg m = {
        .magic = htole32(TK_MAGIC), .type = htole32(type),
        .to_node = htole32(to_node), .to_pid = htole32(to_pid),
        .claim_id = htole64(id),
    };
    struct iovec iov = { &m, sizeof(m) };
    cs_error_t e;
    int tries;

    for (tries = 0; tries < 50; tries++) {
        e = cpg_mcast_joined(q->cpgh, CPG_TYPE_AGREED, &iov, 1);
        if (e != CS_ERR_TRY_AGAIN)
            break;
        rm_sleep_ms(10);
    }
    if (e != CS_OK)
        LOG_ERR("group %s: cannot send to the group: %s", q->group.value,
                cs_str(e));
}

static bool member_present(const struct rm_quorum *q, uint32_t node,
                           uint32_t pid)
{
    size_t i;

    for (i = 0; i < q->nr_members; i++)
        if (q->members[i].nodeid == node && q->members[i].pid == pid)
            return true;
    return false;
}

/*
 * The token's rule, applied in the order corosync delivers (the same for
 * every member of a partition): the first claim delivered wins; a claimant
 * whose peer is in the view of its claim waits for the peer's answer.
 */
static void on_deliver(cpg_handle_t h, const struct cpg_name *group,
                       uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
    struct rm_quorum *q = NULL;
    struct tk_msg m;
    uint32_t type;
    uint64_t id;

    (void)group;
    if (cpg_context_get(h, (void **)&q) != CS_OK || !q)
        return;
    if (len != sizeof(m))
        return;
    memcpy(&m, msg, sizeof(m));
    if (le32toh(m.magic) != TK_MAGIC)
        return;
    type = le32toh(m.type);
    id = le64toh(m.claim_id);
    if (nodeid == q->my_node && pid == q->my_pid) {
        if (type == TK_CLAIM && id == q->claim_id && !q->claim_delivered) {
            q->claim_delivered = true;
            q->claim_peer_present = q->peer_seen &&
                member_present(q, q->peer_node, q->peer_pid);
        }
        return;
    }
    if (!q->peer_seen || nodeid != q->peer_node || pid != q->peer_pid) {
        LOG_WARN("group %s: token message from process %u on node %u, "
                 "which is not the %s: ignored", q->group.value, pid,
                 nodeid, peer_role(q));
        return;
    }
    if (type == TK_CLAIM) {
        bool first = q->claim_id && q->claim_delivered;

        if (!first && (q->claim_id || q->deciding || !q->holds)) {
            /* The peer's claim is first: this side never acts. */
            q->yielded = true;
            q->holds = false;
            LOG_INFO("group %s: the %s claimed the VM first: yielding",
                     q->group.value, peer_role(q));
            tk_send(q, TK_YIELD, nodeid, pid, id);
        } else {
            LOG_INFO("group %s: the %s claimed the VM, which this process "
                     "%s: answering HELD", q->group.value, peer_role(q),
                     first ? "claimed first" : "runs");
            tk_send(q, TK_HELD, nodeid, pid, id);
        }
        return;
    }
    if ((type == TK_YIELD || type == TK_HELD) &&
        le32toh(m.to_node) == q->my_node && le32toh(m.to_pid) == q->my_pid &&
        id && id == q->claim_id)
        q->answer = type;
}

static void on_quorum(quorum_handle_t h, uint32_t quorate, uint64_t ring,
                      uint32_t nr_view, uint32_t *view)
{
    struct rm_quorum *q = NULL;

    (void)view;
    if (quorum_context_get(h, (const void **)&q) != CS_OK || !q)
        return;
    LOG_INFO("partition %s: %u node(s), ring %" PRIx64,
             quorate ? "quorate" : "NOT quorate", nr_view, ring);
}

/* Process pending callbacks of both services without blocking. */
static int pump(struct rm_quorum *q, struct rm_error *err)
{
    cs_error_t e;

    e = cpg_dispatch(q->cpgh, CS_DISPATCH_ALL);
    if (e != CS_OK && e != CS_ERR_TRY_AGAIN)
        return rm_error_set(err, cs_errno(e), "corosync cpg: %s", cs_str(e));
    e = quorum_dispatch(q->qh, CS_DISPATCH_ALL);
    if (e != CS_OK && e != CS_ERR_TRY_AGAIN)
        return rm_error_set(err, cs_errno(e), "corosync quorum: %s",
                            cs_str(e));
    return 0;
}

/* Record the peer the first time another process is in the group. */
static bool peer_visible(struct rm_quorum *q)
{
    size_t i;

    for (i = 0; i < q->nr_members; i++) {
        const struct cpg_address *m = &q->members[i];

        if (m->nodeid == q->my_node && m->pid == q->my_pid)
            continue;
        if (!q->peer_seen && !q->peer_bound) {
            q->peer_seen = true;
            q->peer_node = m->nodeid;
            q->peer_pid = m->pid;
            LOG_INFO("group %s: the %s is process %u on node %u",
                     q->group.value, peer_role(q), m->pid, m->nodeid);
        }
        if (m->nodeid == q->peer_node && m->pid == q->peer_pid)
            return true;
    }
    return false;
}

void rm_quorum_self(const struct rm_quorum *q, uint32_t *node,
                    uint32_t *pid)
{
    *node = q->my_node;
    *pid = q->my_pid;
}

void rm_quorum_bind_peer(struct rm_quorum *q, uint32_t node, uint32_t pid)
{
    pthread_mutex_lock(&q->lock);
    if (q->peer_seen && (q->peer_node != node || q->peer_pid != pid))
        LOG_WARN("group %s: process %u on node %u is not the %s the "
                 "handshake named (process %u on node %u): ignored",
                 q->group.value, q->peer_pid, q->peer_node, peer_role(q),
                 pid, node);
    q->peer_bound = q->peer_seen = true;
    q->peer_node = node;
    q->peer_pid = pid;
    LOG_INFO("group %s: the %s is process %u on node %u (named in the "
             "handshake)", q->group.value, peer_role(q), pid, node);
    pthread_mutex_unlock(&q->lock);
}

void rm_quorum_become_primary(struct rm_quorum *q)
{
    pthread_mutex_lock(&q->lock);
    q->cfg.role = RM_QUORUM_PRIMARY;
    q->peer_seen = q->peer_bound = false;
    q->yielded = false;
    q->claim_id = 0;
    q->answer = 0;
    pthread_mutex_unlock(&q->lock);
}

void rm_quorum_release(struct rm_quorum *q)
{
    pthread_mutex_lock(&q->lock);
    q->holds = false;
    pthread_mutex_unlock(&q->lock);
}

/* Wait for corosync to say something, up to @ms (called with q->lock
 * held; drops it while waiting). */
static void wait_fds(struct rm_quorum *q, int ms)
{
    struct pollfd pfd[2];
    int fd;

    memset(pfd, 0, sizeof(pfd));
    pfd[0].fd = pfd[1].fd = -1;
    if (cpg_fd_get(q->cpgh, &fd) == CS_OK)
        pfd[0].fd = fd;
    if (quorum_fd_get(q->qh, &fd) == CS_OK)
        pfd[1].fd = fd;
    pfd[0].events = pfd[1].events = POLLIN;
    pthread_mutex_unlock(&q->lock);
    (void)poll(pfd, 2, ms);
    pthread_mutex_lock(&q->lock);
}

static int read_quorate(struct rm_quorum *q, bool *quorate,
                        struct rm_error *err)
{
    int v = 0;
    cs_error_t e = quorum_getquorate(q->qh, &v);

    if (e != CS_OK)
        return rm_error_set(err, cs_errno(e), "corosync quorum: %s",
                            cs_str(e));
    *quorate = v != 0;
    return 0;
}

static void describe_votes(struct rm_quorum *q, char *buf, size_t len)
{
    struct votequorum_info vi;

    memset(&vi, 0, sizeof(vi));
    if (!q->have_vq ||
        votequorum_getinfo(q->vqh, q->my_node, &vi) != CS_OK) {
        snprintf(buf, len, "votes unknown");
        return;
    }
    snprintf(buf, len, "%u of %u votes, quorum %u, qdevice %s",
             vi.total_votes, vi.highest_expected, vi.quorum,
             !(vi.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) ? "absent" :
             (vi.flags & VOTEQUORUM_INFO_QDEVICE_CAST_VOTE) ? "voting for "
             "this partition" : (vi.flags & VOTEQUORUM_INFO_QDEVICE_ALIVE) ?
             "not voting for this partition" : "not alive");
}

int rm_quorum_open(const struct rm_quorum_cfg *cfg, struct rm_quorum **out,
                   struct rm_error *err)
{
    struct rm_quorum *q;
    quorum_callbacks_t qcb;
    cpg_model_v1_data_t model;
    uint32_t qtype = 0;
    cs_error_t e;
    int rc = 0, n;

    *out = NULL;
    if (!cfg->vm_name || !*cfg->vm_name)
        return rm_error_set(err, -EINVAL, "the quorum group needs the VM's "
                            "name");
    q = calloc(1, sizeof(*q));
    if (!q)
        return rm_error_set(err, -ENOMEM, "out of memory");
    q->cfg = *cfg;
    pthread_mutex_init(&q->lock, NULL);
    q->holds = cfg->role == RM_QUORUM_PRIMARY;   /* the primary runs it */
    if (!q->cfg.settle_ms)
        q->cfg.settle_ms = 10000;
    if (!q->cfg.stable_ms)
        q->cfg.stable_ms = 1500;
    q->my_pid = (uint32_t)getpid();
    n = snprintf(q->group.value, sizeof(q->group.value), "remus:%s",
                 cfg->vm_name);
    if (n < 0 || (size_t)n >= sizeof(q->group.value)) {
        rc = rm_error_set(err, -ENAMETOOLONG, "VM name '%s' is too long for "
                          "a corosync group name", cfg->vm_name);
        goto out;
    }
    q->group.length = (uint32_t)n;

    memset(&qcb, 0, sizeof(qcb));
    qcb.quorum_notify_fn = on_quorum;
    e = quorum_initialize(&q->qh, &qcb, &qtype);
    if (e != CS_OK) {
        rc = rm_error_set(err, cs_errno(e), "corosync quorum service: %s",
                          cs_str(e));
        goto out;
    }
    q->have_q = true;
    if (qtype != QUORUM_SET) {
        rc = rm_error_set(err, -ENOENT, "corosync has no quorum provider "
                          "(set quorum.provider: corosync_votequorum, with "
                          "a quorum.device for the arbiter)");
        goto out;
    }
    quorum_context_set(q->qh, q);
    e = quorum_trackstart(q->qh, CS_TRACK_CHANGES);
    if (e != CS_OK) {
        rc = rm_error_set(err, cs_errno(e), "corosync quorum tracking: %s",
                          cs_str(e));
        goto out;
    }
    if (votequorum_initialize(&q->vqh, NULL) == CS_OK)
        q->have_vq = true;

    memset(&model, 0, sizeof(model));
    model.model = CPG_MODEL_V1;
    model.cpg_deliver_fn = on_deliver;
    model.cpg_confchg_fn = on_confchg;
    e = cpg_model_initialize(&q->cpgh, CPG_MODEL_V1,
                             (cpg_model_data_t *)&model, q);
    if (e != CS_OK) {
        rc = rm_error_set(err, cs_errno(e), "corosync cpg: %s", cs_str(e));
        goto out;
    }
    q->have_cpg = true;
    e = cpg_local_get(q->cpgh, &q->my_node);
    if (e != CS_OK) {
        rc = rm_error_set(err, cs_errno(e), "corosync cpg (local node): %s",
                          cs_str(e));
        goto out;
    }
    e = cpg_join(q->cpgh, &q->group);
    if (e != CS_OK) {
        rc = rm_error_set(err, cs_errno(e), "joining corosync group '%s': %s",
                          q->group.value, cs_str(e));
        goto out;
    }
    q->joined = true;
    {
        /* The current membership, before any change arrives. */
        int nm = MAX_MEMBERS;

        if (cpg_membership_get(q->cpgh, &q->group, q->members, &nm) == CS_OK)
            q->nr_members = (size_t)nm;
    }
    rc = pump(q, err);
    if (rc)
        goto out;
    LOG_INFO("node %u, process %u in corosync group %s", q->my_node,
             q->my_pid, q->group.value);
    *out = q;
    q = NULL;
out:
    rm_quorum_close(q);
    return rc;
}

int rm_quorum_open_checked(const struct rm_quorum_cfg *cfg,
                           bool require_quorate, struct rm_quorum **out,
                           struct rm_error *err)
{
    char desc[320];
    bool quorate = false;
    int rc;

    rc = rm_quorum_open(cfg, out, err);
    if (!rc)
        rc = rm_quorum_status(*out, &quorate, desc, sizeof(desc), err);
    if (!rc && require_quorate && !quorate)
        rc = rm_error_set(err, -ENOLCK, "this host's partition is not "
                          "quorate (%s): not running a VM the other side "
                          "may run", desc);
    if (rc) {
        rm_quorum_close(*out);
        *out = NULL;
        return rc;
    }
    LOG_INFO("corosync: %s", desc);
    return 0;
}

void rm_quorum_close(struct rm_quorum *q)
{
    if (!q)
        return;
    if (q->joined)
        cpg_leave(q->cpgh, &q->group);
    if (q->have_cpg)
        cpg_finalize(q->cpgh);
    if (q->have_vq)
        votequorum_finalize(q->vqh);
    if (q->have_q)
        quorum_finalize(q->qh);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

void rm_quorum_sample(struct rm_quorum *q, uint64_t *last_ns, bool *known,
                      bool *quorate)
{
    uint64_t now = rm_now_ns();
    struct rm_error err = { 0 };
    char desc[320];
    bool v = false;

    if (!q || (*last_ns && now - *last_ns < 1000000000ull))
        return;
    *last_ns = now;
    *known = rm_quorum_status(q, &v, desc, sizeof(desc), &err) == 0;
    *quorate = *known && v;
}

int rm_quorum_status(struct rm_quorum *q, bool *quorate, char *desc,
                     size_t len, struct rm_error *err)
{
    char votes[160];
    bool vis;
    int rc;

    pthread_mutex_lock(&q->lock);
    rc = pump(q, err);
    if (!rc)
        rc = read_quorate(q, quorate, err);
    if (rc) {
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    vis = peer_visible(q);
    describe_votes(q, votes, sizeof(votes));
    if (q->peer_seen)
        snprintf(desc, len, "quorate: %s (%s); peer: process %u on node %u, "
                 "%s", *quorate ? "yes" : "NO", votes, q->peer_pid,
                 q->peer_node, vis ? "visible" : "not visible");
    else
        snprintf(desc, len, "quorate: %s (%s); peer: not seen yet",
                 *quorate ? "yes" : "NO", votes);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int rm_quorum_wait_peer(struct rm_quorum *q, unsigned ms,
                        struct rm_error *err)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)ms * 1000000;
    int rc;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        rc = pump(q, err);
        if (rc)
            break;
        if (peer_visible(q)) {
            rc = 1;
            break;
        }
        if (rm_now_ns() >= deadline)
            break;
        wait_fds(q, 50);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* 2. Until the quorate state (and the peer's presence) has been stable
 * for stable_ms (bounded: settle_ms).  q->lock held. */
static int settle_quorum(struct rm_quorum *q, struct rm_quorum_verdict *v,
                         struct rm_error *err)
{
    uint64_t stable_since, hard_end, now;
    bool quorate = false, last;
    int rc;

    rc = pump(q, err);
    if (rc)
        return rc;
    v->peer_visible = peer_visible(q);
    rc = read_quorate(q, &last, err);
    if (rc)
        return rc;
    stable_since = rm_now_ns();
    hard_end = stable_since + (uint64_t)q->cfg.settle_ms * 1000000;
    for (;;) {
        wait_fds(q, 50);
        rc = pump(q, err);
        if (rc)
            return rc;
        rc = read_quorate(q, &quorate, err);
        if (rc)
            return rc;
        now = rm_now_ns();
        if (quorate != last || peer_visible(q) != v->peer_visible) {
            last = quorate;
            v->peer_visible = peer_visible(q);
            stable_since = now;
        }
        if (now - stable_since >= (uint64_t)q->cfg.stable_ms * 1000000 ||
            now >= hard_end || q->yielded)
            break;
    }
    v->quorate = quorate;
    v->peer_seen = q->peer_seen;
    return 0;
}

/* The rules before the claim: may this side act?  Sets v->act, v->why. */
static void judge(struct rm_quorum *q, struct rm_quorum_verdict *v)
{
    char votes[160];

    describe_votes(q, votes, sizeof(votes));
    v->act = false;
    if (q->yielded) {
        snprintf(v->why, sizeof(v->why), "the %s claimed the VM's token "
                 "first (it runs the VM)", peer_role(q));
    } else if (q->cfg.role == RM_QUORUM_SECONDARY) {
        if (v->peer_visible) {
            snprintf(v->why, sizeof(v->why), "the primary's process (%u on "
                     "node %u) is still alive in this partition after %u ms:"
                     " it runs on, so the replica must not",
                     q->peer_pid, q->peer_node, q->cfg.settle_ms);
        } else if (!v->quorate) {
            snprintf(v->why, sizeof(v->why), "this partition has no quorum "
                     "(%s): the primary's side holds it, or no side does",
                     votes);
        } else {
            v->act = true;
            snprintf(v->why, sizeof(v->why), "the primary is gone from this "
                     "partition, which holds quorum (%s)", votes);
        }
    } else {
        if (!v->quorate) {
            snprintf(v->why, sizeof(v->why), "this partition has no quorum "
                     "(%s): the secondary's side may take over, so the VM "
                     "must stop here", votes);
        } else {
            v->act = true;
            snprintf(v->why, sizeof(v->why), "this partition holds quorum "
                     "(%s)", votes);
        }
    }
}

/*
 * The claim round (q->lock held): send a claim and wait until corosync
 * delivers it back.  Won (1) if the peer was not in the view it was
 * delivered in (and this partition is still quorate), or the peer answered
 * YIELD; lost (0, the reason appended to @v->why) if the peer's claim came
 * first, it answered HELD, or it is in the view and silent until the
 * deadline (it may run the VM).  2 when the peer left the view before it
 * answered: the membership changed, decide again.  -errno when corosync
 * failed.
 */
static int claim_round(struct rm_quorum *q, struct rm_quorum_verdict *v,
                       struct rm_error *err)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)q->cfg.settle_ms * 1000000;
    size_t n = strlen(v->why);
    char *why = v->why + n;
    size_t wlen = sizeof(v->why) - n;
    bool quorate;
    int rc;

    if (q->yielded)
        goto claimed_first;
    q->claim_id = ((uint64_t)q->my_pid << 32) | ++q->claims_sent;
    q->claim_delivered = false;
    q->answer = 0;
    tk_send(q, TK_CLAIM, 0, 0, q->claim_id);
    for (;;) {
        rc = pump(q, err);
        if (rc)
            return rc;
        if (q->yielded)
            goto claimed_first;
        if (q->claim_delivered) {
            if (!q->claim_peer_present) {
                rc = read_quorate(q, &quorate, err);
                if (rc)
                    return rc;
                if (!quorate) {
                    char votes[160];

                    describe_votes(q, votes, sizeof(votes));
                    snprintf(v->why, sizeof(v->why), "this partition "
                             "has no quorum (%s): it lost it while this "
                             "side claimed the VM's token", votes);
                    return 0;
                }
                snprintf(why, wlen, "; the VM's token is this side's "
                         "(the %s is not in this partition)",
                         peer_role(q));
                return 1;
            }
            if (q->answer == TK_YIELD) {
                snprintf(why, wlen, "; the %s, still in this partition,"
                         " yielded the VM's token", peer_role(q));
                return 1;
            }
            if (q->answer == TK_HELD) {
                snprintf(why, wlen, "; but the %s (process %u on node "
                         "%u) holds the VM's token: it runs the VM",
                         peer_role(q), q->peer_pid, q->peer_node);
                return 0;
            }
            if (!peer_visible(q))
                return 2;   /* it left before answering: decide again */
        }
        if (rm_now_ns() >= deadline) {
            if (q->claim_delivered)
                snprintf(why, wlen, "; but the %s (process %u on node "
                         "%u) is in this partition and did not answer "
                         "the claim for the VM's token within %u ms: it "
                         "may run the VM", peer_role(q), q->peer_pid,
                         q->peer_node, q->cfg.settle_ms);
            else
                snprintf(why, wlen, "; but corosync did not deliver the "
                         "claim for the VM's token within %u ms",
                         q->cfg.settle_ms);
            return 0;
        }
        wait_fds(q, 50);
    }
claimed_first:
    snprintf(why, wlen, "; but the %s claimed the VM's token first",
             peer_role(q));
    return 0;
}

int rm_quorum_decide(struct rm_quorum *q, struct rm_quorum_verdict *v,
                     struct rm_error *err)
{
    uint64_t t0 = rm_now_ns(), settle_end;
    int rc, round;

    memset(v, 0, sizeof(*v));
    pthread_mutex_lock(&q->lock);
    q->deciding = true;
    settle_end = t0 + (uint64_t)q->cfg.settle_ms * 1000000;
    /* 1. (The secondary) until the primary has left our view, or
     * settle_ms: a primary that is still there runs on.  The primary does
     * not wait for the secondary to vanish: a secondary still in the
     * group answers its claim (step 3). */
    while (q->cfg.role == RM_QUORUM_SECONDARY) {
        rc = pump(q, err);
        if (rc)
            goto out;
        v->peer_visible = peer_visible(q);
        if (!v->peer_visible || rm_now_ns() >= settle_end || q->yielded)
            break;
        wait_fds(q, 50);
    }
    for (round = 1;; round++) {
        rc = settle_quorum(q, v, err);
        if (rc)
            goto out;
        judge(q, v);
        if (!v->act)
            break;
        /* 3. Only one side may act: the one whose claim for the VM's
         * token corosync delivers first. */
        rc = claim_round(q, v, err);
        if (rc < 0)
            goto out;
        if (rc != 2 || round == 3) {
            v->act = rc == 1;
            if (rc == 2)
                snprintf(v->why + strlen(v->why), sizeof(v->why) -
                         strlen(v->why), "; but the membership kept "
                         "changing: not acting");
            rc = 0;
            break;
        }
        LOG_INFO("the %s left the group before it answered: deciding again",
                 peer_role(q));
    }
    q->holds = v->act;
    if (!v->act)
        q->claim_id = 0;
    if (!q->peer_seen)
        LOG_WARN("the %s never joined group %s (does it run with --quorum?):"
                 " deciding on quorum alone", peer_role(q), q->group.value);
    LOG_INFO("decided in %" PRIu64 " ms: %s: %s",
             (rm_now_ns() - t0) / 1000000, v->act ?
             (q->cfg.role == RM_QUORUM_PRIMARY ? "run on" : "take over") :
             (q->cfg.role == RM_QUORUM_PRIMARY ? "stop the VM" :
              "stand down"), v->why);
out:
    if (rc) {
        v->act = false;
        q->holds = false;
        q->claim_id = 0;
        snprintf(v->why, sizeof(v->why), "corosync failed: %s",
                 rm_error_str(err));
    }
    q->deciding = false;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int rm_quorum_hold(struct rm_quorum *q, int (*wait_vm)(void *opaque, int ms),
                   void (*stop_vm)(void *opaque), void *opaque,
                   char *why, size_t len)
{
    char votes[160];
    struct rm_error err = { 0 };
    uint64_t limit = (uint64_t)q->cfg.stable_ms * 1000000 / 2, now;
    uint64_t nonquorate_since = 0;    /* 0: quorate */
    bool quorate;
    int rc;

    for (;;) {
        if (wait_vm(opaque, 200) == 0)
            return 0;
        pthread_mutex_lock(&q->lock);
        rc = pump(q, &err);
        if (!rc)
            rc = read_quorate(q, &quorate, &err);
        now = rm_now_ns();
        if (rc) {
            /* corosync is gone: nothing vouches for this side any more. */
            snprintf(why, len, "corosync failed while this side held the "
                     "VM: %s", rm_error_str(&err));
        } else if (quorate || !q->holds) {
            nonquorate_since = 0;
        } else if (!nonquorate_since) {
            nonquorate_since = now;
            LOG_WARN("this partition lost quorum while it runs the VM: "
                     "stopping it in %" PRIu64 " ms unless quorum returns",
                     limit / 1000000);
        } else if (now - nonquorate_since >= limit) {
            describe_votes(q, votes, sizeof(votes));
            snprintf(why, len, "this partition lost quorum (%s) while it "
                     "ran the VM: the other side may take it over", votes);
            rc = -ENOLCK;
        }
        if (rc)
            q->holds = false;
        pthread_mutex_unlock(&q->lock);
        if (rc) {
            stop_vm(opaque);      /* the caller says why */
            return -ENOLCK;
        }
    }
}
