/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "quorum"
#include "cluster/quorum.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
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

static void on_deliver(cpg_handle_t h, const struct cpg_name *group,
                       uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
    (void)h; (void)group; (void)nodeid; (void)pid; (void)msg; (void)len;
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
                     q->group.value, q->cfg.role == RM_QUORUM_PRIMARY ?
                     "secondary" : "primary", m->pid, m->nodeid);
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
    if (q->peer_seen && (q->peer_node != node || q->peer_pid != pid))
        LOG_WARN("group %s: process %u on node %u is not the %s the "
                 "handshake named (process %u on node %u): ignored",
                 q->group.value, q->peer_pid, q->peer_node,
                 q->cfg.role == RM_QUORUM_PRIMARY ? "secondary" : "primary",
                 pid, node);
    q->peer_bound = q->peer_seen = true;
    q->peer_node = node;
    q->peer_pid = pid;
    LOG_INFO("group %s: the %s is process %u on node %u (named in the "
             "handshake)", q->group.value, q->cfg.role == RM_QUORUM_PRIMARY
             ? "secondary" : "primary", pid, node);
}

/* Wait for corosync to say something, up to @ms. */
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
    (void)poll(pfd, 2, ms);
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
    free(q);
}

int rm_quorum_status(struct rm_quorum *q, bool *quorate, char *desc,
                     size_t len, struct rm_error *err)
{
    char votes[160];
    bool vis;
    int rc;

    rc = pump(q, err);
    if (rc)
        return rc;
    rc = read_quorate(q, quorate, err);
    if (rc)
        return rc;
    vis = peer_visible(q);
    describe_votes(q, votes, sizeof(votes));
    if (q->peer_seen)
        snprintf(desc, len, "quorate: %s (%s); peer: process %u on node %u, "
                 "%s", *quorate ? "yes" : "NO", votes, q->peer_pid,
                 q->peer_node, vis ? "visible" : "not visible");
    else
        snprintf(desc, len, "quorate: %s (%s); peer: not seen yet",
                 *quorate ? "yes" : "NO", votes);
    return 0;
}

int rm_quorum_wait_peer(struct rm_quorum *q, unsigned ms,
                        struct rm_error *err)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)ms * 1000000;
    int rc;

    for (;;) {
        rc = pump(q, err);
        if (rc)
            return rc;
        if (peer_visible(q))
            return 1;
        if (rm_now_ns() >= deadline)
            return 0;
        wait_fds(q, 50);
    }
}

int rm_quorum_decide(struct rm_quorum *q, struct rm_quorum_verdict *v,
                     struct rm_error *err)
{
    uint64_t t0 = rm_now_ns(), settle_end, stable_since, hard_end, now;
    char votes[160];
    bool quorate = false, last;
    int rc;

    memset(v, 0, sizeof(*v));
    settle_end = t0 + (uint64_t)q->cfg.settle_ms * 1000000;
    /* 1. Until the peer has left our view, or settle_ms. */
    for (;;) {
        rc = pump(q, err);
        if (rc)
            goto out;
        v->peer_visible = peer_visible(q);
        if (!v->peer_visible || rm_now_ns() >= settle_end)
            break;
        wait_fds(q, 50);
    }
    /* 2. Until the quorate state has been stable for stable_ms (bounded:
     * another settle_ms). */
    rc = read_quorate(q, &last, err);
    if (rc)
        goto out;
    stable_since = rm_now_ns();
    hard_end = stable_since + (uint64_t)q->cfg.settle_ms * 1000000;
    for (;;) {
        wait_fds(q, 50);
        rc = pump(q, err);
        if (rc)
            goto out;
        rc = read_quorate(q, &quorate, err);
        if (rc)
            goto out;
        now = rm_now_ns();
        if (quorate != last || peer_visible(q) != v->peer_visible) {
            last = quorate;
            v->peer_visible = peer_visible(q);
            stable_since = now;
        }
        if (now - stable_since >= (uint64_t)q->cfg.stable_ms * 1000000 ||
            now >= hard_end)
            break;
    }
    v->quorate = quorate;
    v->peer_seen = q->peer_seen;
    describe_votes(q, votes, sizeof(votes));

    if (q->cfg.role == RM_QUORUM_SECONDARY) {
        if (v->peer_visible) {
            snprintf(v->why, sizeof(v->why), "the primary's process (%u on "
                     "node %u) is still alive in this partition after %u ms:"
                     " it runs on, so the replica must not",
                     q->peer_pid, q->peer_node, q->cfg.settle_ms);
        } else if (!quorate) {
            snprintf(v->why, sizeof(v->why), "this partition has no quorum "
                     "(%s): the primary's side holds it, or no side does",
                     votes);
        } else {
            v->act = true;
            snprintf(v->why, sizeof(v->why), "the primary is gone from this "
                     "partition, which holds quorum (%s)", votes);
        }
    } else {
        if (!quorate) {
            snprintf(v->why, sizeof(v->why), "this partition has no quorum "
                     "(%s): the secondary's side may take over, so the VM "
                     "must stop here", votes);
        } else {
            v->act = true;
            snprintf(v->why, sizeof(v->why), "this partition holds quorum "
                     "(%s)%s", votes, v->peer_visible ? "; the secondary is "
                     "still visible and will not take over" : "");
        }
    }
    if (!q->peer_seen)
        LOG_WARN("the %s never joined group %s (does it run with --quorum?):"
                 " deciding on quorum alone",
                 q->cfg.role == RM_QUORUM_PRIMARY ? "secondary" : "primary",
                 q->group.value);
    LOG_INFO("decided in %" PRIu64 " ms: %s: %s",
             (rm_now_ns() - t0) / 1000000, v->act ?
             (q->cfg.role == RM_QUORUM_PRIMARY ? "run on" : "take over") :
             (q->cfg.role == RM_QUORUM_PRIMARY ? "stop the VM" :
              "stand down"), v->why);
out:
    if (rc) {
        v->act = false;
        snprintf(v->why, sizeof(v->why), "corosync failed: %s",
                 rm_error_str(err));
    }
    return rc;
}

/* ------------------------------------------------------------- fencing */

/* A name for the fence command's environment: [A-Za-z0-9._-], 1..64. */
static bool fence_name_ok(const char *name)
{
    size_t i;

    for (i = 0; name[i]; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || name[i] == '.' ||
              name[i] == '_' || name[i] == '-'))
            return false;
    return i > 0 && i <= 64;
}

/*
 * The fence command's environment: ours, with REMUS_NAME, REMUS_PEER and
 * REMUS_EPOCH replaced by @vars ("KEY=value").  Built before the
 * fork (the child of a threaded process may not allocate).  NULL when out
 * of memory.
 */
static char **fence_env(char *const vars[3])
{
    extern char **environ;
    size_t n = 0, o = 0, i;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 4, sizeof(*env));
    if (!env)
        return NULL;
    for (i = 0; i < n; i++) {
        size_t k;

        for (k = 0; k < 3; k++)
            if (!strncmp(environ[i], vars[k],
                         (size_t)(strchr(vars[k], '=') - vars[k]) + 1))
                break;
        if (k == 3)
            env[o++] = environ[i];
    }
    for (i = 0; i < 3; i++)
        env[o++] = vars[i];
    return env;
}

/* In the fence command's child: default dispositions, nothing blocked
 * (an ignored SIGTERM or a blocked SIGCHLD must not reach the command). */
static void fence_child_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    int sig;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, &sa, NULL) && errno == EINVAL) {
            /* glibc keeps two real-time signals for itself and refuses
             * them; an ignored one would still reach the command: reset
             * it with the kernel's own call. */
            struct { void (*handler)(int); unsigned long flags;
                     void (*restorer)(void); unsigned long mask; } k = {
                SIG_DFL, 0, NULL, 0 };

            syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof(k.mask));
        }
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int rm_fence_run(const char *cmd, const char *name, const char *peer,
                 uint64_t epoch, unsigned timeout_ms, struct rm_error *err)
{
    char name_v[80], peer_v[300], epoch_v[48];
    char *vars[3] = { name_v, peer_v, epoch_v };
    char **env;
    uint64_t deadline;
    pid_t pid, w;
    int status = 0;

    if (!name || !fence_name_ok(name))
        return rm_error_set(err, -EINVAL, "not running the fence command: "
                            "the VM name '%s' is not 1 to 64 of "
                            "[A-Za-z0-9._-]", name ? name : "");
    snprintf(name_v, sizeof(name_v), "REMUS_NAME=%s", name);
    snprintf(peer_v, sizeof(peer_v), "REMUS_PEER=%s", peer ? peer : "");
    snprintf(epoch_v, sizeof(epoch_v), "REMUS_EPOCH=%" PRIu64, epoch);
    env = fence_env(vars);
    if (!env)
        return rm_error_set(err, -ENOMEM, "cannot run the fence command: "
                            "out of memory");
    LOG_INFO("fencing the primary: %s", cmd);
    pid = fork();
    if (pid < 0) {
        free(env);
        return rm_error_set(err, -errno, "cannot run the fence command: %s",
                            strerror(errno));
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, 0);
            close(fd);
        }
        dup2(2, 1);      /* its output goes to our log (stderr) */
        setpgid(0, 0);
        fence_child_signals();
        execve("/bin/sh", (char *const[]){ "sh", "-c", (char *)cmd, NULL },
               env);
        _exit(127);
    }
    free(env);
    deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    for (;;) {
        w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return rm_error_set(err, -errno, "waiting for the fence command:"
                                " %s", strerror(errno));
        if (rm_now_ns() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return rm_error_set(err, -ETIMEDOUT, "the fence command did not "
                                "finish within %u ms (killed): the primary "
                                "is not known to be fenced", timeout_ms);
        }
        usleep(20000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        LOG_INFO("fence command succeeded: the primary is fenced");
        return 0;
    }
    if (WIFEXITED(status))
        return rm_error_set(err, -ECANCELED, "the fence command failed "
                            "(exit %d): the primary is not known to be "
                            "fenced", WEXITSTATUS(status));
    return rm_error_set(err, -ECANCELED, "the fence command was killed by "
                        "signal %d: the primary is not known to be fenced",
                        WTERMSIG(status));
}
