/* SPDX-License-Identifier: MIT */
/* The control socket of a VM this process holds (see control.h). */
#define RM_LOG_PREFIX "control"
#include "primary/control.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/quorum.h"
#include "common/auth.h"
#include "common/ctlsock.h"
#include "common/io.h"
#include "common/key_resolve.h"
#include "common/log.h"
#include "common/net.h"
#include "primary/protect_request.h"
#include "primary/session.h"

/* How long "handover" waits for the protection to end. */
#define HANDOVER_WAIT_MS 60000u
/* How long "protect" waits for the full resync's acknowledgement. */
#define PROTECT_WAIT_MS 600000u

/* A protection started by "protect": a primary session in its own thread
 * on a backend that borrows the VM (protect_again).  Its per-ack stats
 * lines come through a non-blocking pipe: the first one answers the
 * request (the full resync is acknowledged); later ones are drained by
 * the control thread and the last one kept. */
struct reprotect {
    pthread_t thread;
    volatile sig_atomic_t stop;
    int done;                      /* atomic: the thread has finished */
    int stats_pipe[2];
    struct rm_backend *pbe;        /* borrows the VM; closed at the end */
    struct rm_primary_cfg cfg;
    struct rm_primary_result res;
    char peer[64];
    char last[160];                /* last stats line */
    struct rm_auth_key own_key;    /* resolved here when the process has
                                      none */
};

struct rm_vm_control {
    struct rm_ctlsock *sock;
    struct rm_backend *be;          /* the VM (not owned) */
    const struct rm_auth_key *key;  /* not owned */
    volatile sig_atomic_t *process_stop;  /* not owned; or NULL */
    struct rm_quorum *quorum;       /* not owned */
    struct reprotect *rp;           /* NULL: none started */

    /* The session protecting the VM now (this process's own, or rp's). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool protecting;
    volatile sig_atomic_t handover;
    char peer[RM_HOST_MAX + 8];
    uint64_t ended;                 /* sessions ended so far */
    struct rm_primary_result last;  /* the last one's result */
    int stopping;                   /* atomic: rm_vm_control_stop began:
                                       a waiting request gives up */
};

static bool stopping(const struct rm_vm_control *c)
{
    return __atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE);
}

volatile sig_atomic_t *rm_vm_control_session_begin(struct rm_vm_control *c,
                                                   const char *peer)
{
    pthread_mutex_lock(&c->lock);
    c->protecting = true;
    c->handover = 0;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    pthread_mutex_unlock(&c->lock);
    return &c->handover;
}

void rm_vm_control_session_end(struct rm_vm_control *c,
                               const struct rm_primary_result *res)
{
    pthread_mutex_lock(&c->lock);
    c->protecting = false;
    c->last = *res;
    c->ended++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static bool reprotect_running(const struct rm_vm_control *c)
{
    return c->rp && !__atomic_load_n(&c->rp->done, __ATOMIC_ACQUIRE);
}

static void *reprotect_main(void *arg)
{
    struct reprotect *rp = arg;

    rm_primary_protect(rp->pbe, &rp->cfg, &rp->res);
    __atomic_store_n(&rp->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void reprotect_free(struct reprotect *rp)
{
    rm_backend_close(rp->pbe);     /* the VM's output goes out directly */
    close(rp->stats_pipe[0]);
    close(rp->stats_pipe[1]);
    rm_auth_wipe(&rp->own_key, sizeof(rp->own_key));
    free(rp);
}

/* Stop (if running), join and free the protection started by "protect". */
static void reprotect_end(struct rm_vm_control *c)
{
    struct reprotect *rp = c->rp;

    if (!rp)
        return;
    rp->stop = 1;
    pthread_join(rp->thread, NULL);
    reprotect_free(rp);
    c->rp = NULL;
}

/* Read what the stats pipe holds; keep the last whole line.  Returns the
 * number of lines seen. */
static int reprotect_drain(struct reprotect *rp)
{
    char buf[4096];
    ssize_t n;
    int lines = 0;

    while ((n = read(rp->stats_pipe[0], buf, sizeof(buf) - 1)) > 0) {
        char *end, *start;

        buf[n] = '\0';
        end = strrchr(buf, '\n');
        if (!end)
            continue;
        *end = '\0';
        start = strrchr(buf, '\n');
        snprintf(rp->last, sizeof(rp->last), "%.159s",
                 start ? start + 1 : buf);
        for (start = buf; (start = strchr(start, '\n')); start++)
            lines++;
        lines++;
    }
    return lines;
}

static const char *end_reason(const struct rm_primary_result *r)
{
    if (r->outcome == RM_OUTCOME_FAILED ||
        r->outcome == RM_OUTCOME_HELD_BACK)
        return rm_error_str(&r->why);
    return rm_error_str(&r->protect.why);
}

/* "protect ..." (primary/protect_request.h) */
static void serve_protect(struct rm_vm_control *c, const char *line,
                          char *reply, size_t len)
{
    struct rm_protect_cfg *pc;
    struct reprotect *rp;
    struct rm_error err = { 0 };
    struct rm_protect_request req;
    unsigned waited;
    bool have_key = false;

    if (rm_protect_request_parse(line, &req, &err)) {
        snprintf(reply, len, "error bad protect request: %s",
                 rm_error_str(&err));
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->protecting) {
        snprintf(reply, len, "error this VM is already protected (to %s)",
                 c->peer);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pthread_mutex_unlock(&c->lock);
    if (!c->be->ops->protect_again) {
        snprintf(reply, len, "error the %s backend cannot protect this VM "
                 "from its process", c->be->kind);
        return;
    }
    reprotect_end(c);
    rp = calloc(1, sizeof(*rp));
    if (!rp || pipe2(rp->stats_pipe, O_CLOEXEC | O_NONBLOCK)) {
        free(rp);
        snprintf(reply, len, "error out of resources");
        return;
    }
    snprintf(rp->peer, sizeof(rp->peer), "%s", req.peer);
    pc = &rp->cfg.protect;
    rm_protect_cfg_init(pc);
    if (rm_parse_hostport(req.peer, &pc->peer, &err))
        goto fail;
    rm_protect_request_apply(&req, pc);
    pc->stats_fd = rp->stats_pipe[1];
    /* The key this VM's process ran with; else the host's default key
     * ($REMUS_KEY_FILE, /etc/remus/remus.key); none only when asked. */
    if (req.insecure) {
        rm_key_warn_insecure("reprotection", req.peer);
    } else if (c->key) {
        pc->key = c->key;
    } else if (rm_key_resolve(NULL, false, &rp->own_key, &have_key,
                              &err) == 0) {
        pc->key = &rp->own_key;
    } else {
        goto fail;
    }
    if (c->quorum) {   /* as the VM's process ran: --quorum corosync */
        char desc[320];
        bool quorate = false;

        /* The next pair's primary: it holds the VM's token already. */
        rm_quorum_become_primary(c->quorum);
        if (rm_quorum_status(c->quorum, &quorate, desc, sizeof(desc), &err))
            goto fail;
        if (!quorate) {
            rm_error_set(&err, -ENOLCK, "this host's partition is not "
                         "quorate (%s): not protecting a VM the other side "
                         "may run", desc);
            goto fail;
        }
        rp->cfg.quorum = c->quorum;
    }
    if (c->be->ops->protect_again(c->be, &req.again, &rp->pbe, &err))
        goto fail;
    rp->cfg.stop_requested = &rp->stop;
    /* The process's first signal from now on ends this protection (one
     * that came before ended an earlier one). */
    rp->cfg.protect.process_stop = c->process_stop;
    if (c->process_stop)
        *c->process_stop = 0;
    rp->cfg.control = c;
    if (pthread_create(&rp->thread, NULL, reprotect_main, rp)) {
        rm_error_set(&err, -EAGAIN, "cannot start the protection thread");
        goto fail;
    }
    c->rp = rp;
    LOG_INFO("protecting '%s' again, to %s (full resync first%s%s)",
             c->be->vm_name, req.peer,
             req.again.output == RM_AGAIN_COLO ? "; COLO" : "",
             req.again.no_disk ? "; disks NOT replicated (-F -d)" : "");
    /* Answer when the full resync is acknowledged, or protection ended. */
    for (waited = 0; waited < PROTECT_WAIT_MS; waited += 100) {
        struct pollfd pfd = { rp->stats_pipe[0], POLLIN, 0 };

        poll(&pfd, 1, 100);
        if (reprotect_drain(rp) > 0) {
            snprintf(reply, len, "ok %s", rp->last);
            return;
        }
        if (__atomic_load_n(&rp->done, __ATOMIC_ACQUIRE)) {
            snprintf(reply, len, "error %s", end_reason(&rp->res));
            reprotect_end(c);
            return;
        }
        if (stopping(c)) {
            snprintf(reply, len, "error the VM's process is ending: the "
                     "protection to %s is stopped", req.peer);
            reprotect_end(c);
            return;
        }
    }
    snprintf(reply, len, "error no checkpoint acknowledged by %s in %u s; "
             "protection goes on trying", req.peer, PROTECT_WAIT_MS / 1000);
    return;
fail:
    snprintf(reply, len, "error %s", rm_error_str(&err));
    reprotect_free(rp);
}

/* "handover [MS]": ask the session protecting the VM; answer once it
 * ended (or after MS, default HANDOVER_WAIT_MS). */
static void serve_handover(struct rm_vm_control *c, const char *req,
                           char *reply, size_t len)
{
    unsigned wait_ms = HANDOVER_WAIT_MS;
    uint64_t ended;
    struct timespec until;
    int rc = 0;

    if (sscanf(req, "handover %u", &wait_ms) == 1 && !wait_ms)
        wait_ms = HANDOVER_WAIT_MS;

    pthread_mutex_lock(&c->lock);
    if (!c->protecting) {
        pthread_mutex_unlock(&c->lock);
        snprintf(reply, len, "error '%s' is not being protected here "
                 "(nothing to hand over to)", c->be->vm_name);
        return;
    }
    ended = c->ended;
    c->handover = 1;
    until = rm_deadline_ts((uint64_t)wait_ms * 1000000);
    /* Not cut short by stopping(): a handed-over VM stops, and this
     * process may begin to end before the session reports it. */
    while (c->ended == ended && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, &until);
    if (c->ended == ended) {
        snprintf(reply, len, "error no handover within %u ms (asked; it "
                 "may still happen): the protection to %s goes on", wait_ms,
                 c->peer);
    } else if (c->last.outcome == RM_OUTCOME_OK &&
               c->last.protect.end == RM_PROTECT_HANDED_OVER) {
        snprintf(reply, len, "ok %s to %s",
                 rm_error_str(&c->last.protect.why), c->peer);
    } else {
        snprintf(reply, len, "error the handover did not happen: %s",
                 end_reason(&c->last));
    }
    pthread_mutex_unlock(&c->lock);
    /* A protection started by "protect" is over: free it here. */
    if (c->rp && !reprotect_running(c))
        reprotect_end(c);
}

/* "unprotect": end a protection started by "protect" cleanly. */
static void serve_unprotect(struct rm_vm_control *c, char *reply,
                            size_t len)
{
    struct reprotect *rp = c->rp;

    if (!rp) {
        snprintf(reply, len, "error '%s' was not protected with `remus "
                 "reprotect`", c->be->vm_name);
        return;
    }
    rp->stop = 1;
    pthread_join(rp->thread, NULL);
    snprintf(reply, len, "ok %" PRIu64 " checkpoints to %s: %s",
             rp->res.protect.epochs, rp->peer,
             rp->res.outcome == RM_OUTCOME_FAILED ?
             rm_error_str(&rp->res.why) :
             rp->res.protect.end == RM_PROTECT_PEER_LOST ?
             rm_error_str(&rp->res.protect.why) : "stopped");
    reprotect_free(rp);
    c->rp = NULL;
}

static void serve(void *opaque, const char *req, int fd, char *reply,
                  size_t len)
{
    struct rm_vm_control *c = opaque;
    bool protecting;

    pthread_mutex_lock(&c->lock);
    protecting = c->protecting;
    pthread_mutex_unlock(&c->lock);
    if (!strncmp(req, "protect ", 8)) {
        serve_protect(c, req, reply, len);
    } else if (!strcmp(req, "unprotect")) {
        serve_unprotect(c, reply, len);
    } else if (!strcmp(req, "handover") || !strncmp(req, "handover ", 9)) {
        serve_handover(c, req, reply, len);
    } else if (!strcmp(req, "status")) {
        pthread_mutex_lock(&c->lock);
        if (c->protecting)
            snprintf(reply, len, "ok protected %s", c->peer);
        else
            snprintf(reply, len, "ok unprotected");
        pthread_mutex_unlock(&c->lock);
    } else if (!c->be->ops->control ||
               !c->be->ops->control(c->be, req, fd, protecting, reply,
                                    len)) {
        snprintf(reply, len, "error bad request '%.40s' (this VM's "
                 "process serves 'handover', 'protect ...', 'unprotect', "
                 "'status'%s)", req, c->be->ops->control ?
                 " and its backend's requests" : "");
    }
}

static int watch_fd(void *opaque)
{
    struct rm_vm_control *c = opaque;

    return c->rp ? c->rp->stats_pipe[0] : -1;
}

static void on_watch(void *opaque)
{
    struct rm_vm_control *c = opaque;

    if (c->rp)
        reprotect_drain(c->rp);
}

static const struct rm_ctlsock_ops control_ops = {
    .serve = serve,
    .watch_fd = watch_fd,
    .on_watch = on_watch,
};

struct rm_vm_control *rm_vm_control_start(struct rm_backend *be,
                                          const struct rm_auth_key *key,
                                          struct rm_quorum *quorum,
                                          volatile sig_atomic_t *process_stop,
                                          struct rm_error *err)
{
    struct rm_vm_control *c = calloc(1, sizeof(*c));

    if (!c) {
        rm_error_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    c->be = be;
    c->key = key;
    c->quorum = quorum;
    c->process_stop = process_stop;
    pthread_mutex_init(&c->lock, NULL);
    if (rm_cond_init_monotonic(&c->cond)) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        rm_error_set(err, -EAGAIN, "cannot make a condition variable");
        return NULL;
    }
    c->sock = rm_ctlsock_start(be->vm_name, &control_ops, c, err);
    if (!c->sock) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
        return NULL;
    }
    return c;
}

void rm_vm_control_stop(struct rm_vm_control *c)
{
    if (!c)
        return;
    /* A request waiting for a reprotection's first ack gives up first. */
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    rm_ctlsock_stop(c->sock);     /* no request is served after this */
    reprotect_end(c);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
