/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "vmctl"
#include "backends/kvm/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/offline.h"
#include "cluster/quorum.h"
#include "common/io.h"
#include "common/key_resolve.h"
#include "common/log.h"
#include "common/net.h"
#include "common/status.h"
#include "netbuf/netbuf.h"
#include "primary/protect.h"

/* A protection started from the control socket ("protect ..."): after a
 * failover, the VM that took over is protected again to a new secondary.
 * Runs rm_protect_run() in its own thread; its per-ack stats lines come
 * through a non-blocking pipe (the first one answers the request: the
 * full resync is acknowledged; later ones are drained by the control
 * thread and the last one kept). */
struct reprotect {
    pthread_t thread;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t handover;
    int done;                      /* atomic: the thread has finished */
    int stats_pipe[2];
    struct rm_netbuf *nb;
    struct rm_protect_cfg pc;
    struct rm_protect_result res;
    struct rm_error err;
    int rc;
    char peer[64];
    char last[160];                /* last stats line */
    struct rm_auth_key own_key;    /* resolved here when the VM's process
                                      has none (rm_vmctl_set_key) */
};

/* How long a client has to send its request. */
#define RM_VMCTL_CLIENT_MS 2000u

struct rm_vmctl {
    struct rm_vm *vm;
    int lfd, stop_pipe[2];
    pthread_t thread;
    char path[108];
    char name[64];
    struct reprotect *rp;          /* NULL: none started */
    const struct rm_auth_key *key; /* for reprotection (not owned) */
    struct rm_quorum *quorum;      /* reprotections run --quorum with
                                      this process's handle (not owned) */
};

static int sock_path(const char *name, char *out, size_t len,
                     struct rm_error *err)
{
    size_t i;

    if (!*name || strlen(name) > 48)
        return rm_error_set(err, -EINVAL, "VM name '%s' is empty or too "
                            "long", name);
    for (i = 0; name[i]; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
              name[i] == '_'))
            return rm_error_set(err, -EINVAL, "VM name '%s': use letters, "
                                "digits, - and _", name);
    if ((size_t)snprintf(out, len, "%s/%s.sock", rm_run_dir(), name) >= len)
        return rm_error_set(err, -ENAMETOOLONG, "run directory path too "
                            "long");
    return 0;
}

static int netbuf_out(void *nb, const void *frame, size_t len)
{
    return rm_netbuf_output(nb, frame, len);
}

static int pause_vm(void *vm)
{
    return rm_vm_pause(vm);
}

static void *reprotect_main(void *arg)
{
    struct reprotect *rp = arg;

    rp->rc = rm_protect_run(&rp->pc, &rp->res, &rp->err);
    __atomic_store_n(&rp->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* After the protection thread ended: free it; the VM's output goes to
 * its TAP directly again. */
static void reprotect_release(struct rm_vmctl *c)
{
    struct reprotect *rp = c->rp;

    rm_vm_set_net_out(c->vm, rm_vm_tap_write, c->vm);
    rm_netbuf_free(rp->nb);
    close(rp->stats_pipe[0]);
    close(rp->stats_pipe[1]);
    rm_auth_wipe(&rp->own_key, sizeof(rp->own_key));
    free(rp);
    c->rp = NULL;
}

/* Stop (if running) and free the protection. */
static void reprotect_end(struct rm_vmctl *c)
{
    struct reprotect *rp = c->rp;

    if (!rp)
        return;
    rp->stop = 1;
    pthread_join(rp->thread, NULL);
    reprotect_release(c);
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
        snprintf(rp->last, sizeof(rp->last), "%.159s", start ? start + 1 : buf);
        for (start = buf; (start = strchr(start, '\n')); start++)
            lines++;
        lines++;
    }
    return lines;
}

static bool reprotect_running(const struct rm_vmctl *c)
{
    return c->rp && !__atomic_load_n(&c->rp->done, __ATOMIC_ACQUIRE);
}

/*
 * "protect HOST:PORT INTERVAL_MS HB_MS HB_TIMEOUT_MS BUFFER": start
 * protecting this VM; answer once the first checkpoint (the full resync)
 * is acknowledged: "ok EPOCH PAUSE_US DIRTY BYTES SEND_US ACK_US".
 */
static void serve_protect(struct rm_vmctl *c, const char *req, char *reply,
                          size_t len)
{
    struct rm_netbuf_queue_cfg nq;
    struct reprotect *rp;
    struct rm_error err = { 0 };
    char peer[64], mode[16] = "keyed";
    unsigned iv, hb, hbto, buffer, waited;
    bool have_key = false;

    if (sscanf(req, "protect %63s %u %u %u %u %15s", peer, &iv, &hb, &hbto,
               &buffer, mode) < 5 || !iv || !hb || hbto <= hb ||
        (strcmp(mode, "keyed") && strcmp(mode, "insecure"))) {
        snprintf(reply, len, "error bad protect request\n");
        return;
    }
    if (reprotect_running(c)) {
        snprintf(reply, len, "error this VM is already protected (to %s)\n",
                 c->rp->peer);
        return;
    }
    reprotect_end(c);
    rp = calloc(1, sizeof(*rp));
    if (!rp || pipe2(rp->stats_pipe, O_CLOEXEC | O_NONBLOCK)) {
        free(rp);
        snprintf(reply, len, "error out of resources\n");
        return;
    }
    snprintf(rp->peer, sizeof(rp->peer), "%s", peer);
    if (rm_parse_hostport(peer, &rp->pc.peer, &err))
        goto fail;
    if (buffer) {
        memset(&nq, 0, sizeof(nq));
        nq.sink = rm_vm_tap_write;
        nq.sink_opaque = c->vm;
        rp->nb = rm_netbuf_queue_new(&nq, &err);
        if (!rp->nb)
            goto fail;
    }
    rp->pc.name = c->name;
    rp->pc.backend_name = "kvm";
    rp->pc.interval_ms = iv;
    rp->pc.compress = true;
    rp->pc.hb_interval_ms = hb;
    rp->pc.hb_timeout_ms = hbto;
    rp->pc.connect_timeout_ms = 5000;
    rp->pc.guest_bytes = rm_vm_mem_bytes(c->vm);
    rp->pc.nr_vcpus = rm_vm_nr_vcpus(c->vm);
    rp->pc.ops = &rm_kvm_save_ops;
    rp->pc.backend_arg = c->vm;
    rp->pc.netbuf = rp->nb;
    rp->pc.stop_requested = &rp->stop;
    rp->pc.handover_requested = &rp->handover;
    rp->pc.pause_vm = pause_vm;
    rp->pc.stats_fd = rp->stats_pipe[1];
    rp->pc.digest_fd = -1;
    /* The key this VM's process ran with; else the host's default key
     * ($REMUS_KEY_FILE, /etc/remus/remus.key); none only when asked. */
    if (!strcmp(mode, "insecure")) {
        rm_key_warn_insecure("reprotection", peer);
    } else if (c->key) {
        rp->pc.key = c->key;
    } else if (rm_key_resolve(NULL, false, &rp->own_key, &have_key,
                              &err) == 0) {
        rp->pc.key = &rp->own_key;
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
        rp->pc.quorum = c->quorum;   /* pause_vm stops it without quorum */
    }
    if (rp->nb)
        rm_vm_set_net_out(c->vm, netbuf_out, rp->nb);
    if (pthread_create(&rp->thread, NULL, reprotect_main, rp)) {
        rm_vm_set_net_out(c->vm, rm_vm_tap_write, c->vm);
        rm_error_set(&err, -EAGAIN, "cannot start the protection thread");
        goto fail;
    }
    c->rp = rp;
    LOG_INFO("protecting '%s' again, to %s (full resync first)", c->name,
             peer);
    /* Answer when the full resync is acknowledged, or protection failed. */
    for (waited = 0; waited < 600000; waited += 100) {
        struct pollfd pfd = { rp->stats_pipe[0], POLLIN, 0 };

        poll(&pfd, 1, 100);
        if (reprotect_drain(rp) > 0) {
            snprintf(reply, len, "ok %s\n", rp->last);
            return;
        }
        if (__atomic_load_n(&rp->done, __ATOMIC_ACQUIRE)) {
            snprintf(reply, len, "error %s\n", rp->rc ?
                     rm_error_str(&rp->err) : rm_error_str(&rp->res.why));
            reprotect_end(c);
            return;
        }
    }
    snprintf(reply, len, "error no checkpoint acknowledged by %s in 600 s; "
             "protection goes on trying\n", peer);
    return;
fail:
    snprintf(reply, len, "error %s\n", rm_error_str(&err));
    rm_netbuf_free(rp->nb);
    close(rp->stats_pipe[0]);
    close(rp->stats_pipe[1]);
    rm_auth_wipe(&rp->own_key, sizeof(rp->own_key));
    free(rp);
}

/*
 * "handover": a planned move of the VM to the secondary of the protection
 * started by "protect": the VM is paused for good, the secondary told to
 * take over; answered once that is done ("ok handed over ...").  The VM
 * then ends (the caller of the VM sees it stop on request).
 */
static void serve_handover(struct rm_vmctl *c, char *reply, size_t len)
{
    struct reprotect *rp = c->rp;

    if (!reprotect_running(c)) {
        snprintf(reply, len, "error this VM is not protected from its "
                 "control socket (nothing to hand over to)\n");
        return;
    }
    rp->handover = 1;
    pthread_join(rp->thread, NULL);
    if (rp->rc == 0 && rp->res.end == RM_PROTECT_HANDED_OVER) {
        snprintf(reply, len, "ok %s to %s\n", rm_error_str(&rp->res.why),
                 rp->peer);
        rm_vm_request_stop(c->vm);
    } else {
        snprintf(reply, len, "error the handover did not happen: %s\n",
                 rp->rc ? rm_error_str(&rp->err) :
                 rm_error_str(&rp->res.why));
    }
    reprotect_release(c);
}

/* "unprotect": end a protection started by "protect" cleanly. */
static void serve_unprotect(struct rm_vmctl *c, char *reply, size_t len)
{
    struct reprotect *rp = c->rp;

    if (!rp) {
        snprintf(reply, len, "error this VM was not protected from its "
                 "control socket\n");
        return;
    }
    rp->stop = 1;
    pthread_join(rp->thread, NULL);
    snprintf(reply, len, "ok %" PRIu64 " checkpoints to %s: %s\n",
             rp->res.epochs, rp->peer, rp->rc ? rm_error_str(&rp->err) :
             rp->res.end == RM_PROTECT_PEER_LOST ?
             rm_error_str(&rp->res.why) : "stopped");
    reprotect_release(c);
}

/*
 * "frame gfn G" / "frame pfn P": where guest frame G lives on the host, or
 * which guest frames host frame P backs: "ok GFN PFN" per frame.
 * "offline-page gfn G [fault-map|fault-verify]" / "offline-page pfn P
 * [...]": move those guest frames off their host page: "ok GFN OLD NEW"
 * per frame moved.  (The fault words are test hooks for the undo path.)
 */
static void serve_frames(struct rm_vmctl *c, const char *req, char *reply,
                         size_t len)
{
    enum rm_kvm_offline_fault fault = RM_OFFLINE_FAULT_NONE;
    struct rm_error err = { 0 };
    char verb[16], kind[8], extra[16] = "";
    unsigned long long v;
    uint64_t gfns[16];
    size_t off;
    int n, i, rc;

    if (sscanf(req, "%15s %7s %lli %15s", verb, kind, &v, extra) < 3 ||
        (strcmp(kind, "gfn") && strcmp(kind, "pfn"))) {
        snprintf(reply, len, "error bad request\n");
        return;
    }
    if (!strcmp(extra, "fault-map"))
        fault = RM_OFFLINE_FAULT_MAP;
    else if (!strcmp(extra, "fault-verify"))
        fault = RM_OFFLINE_FAULT_VERIFY;
    if (!strcmp(kind, "gfn")) {
        uint64_t pfn;

        gfns[0] = v;
        rc = rm_kvm_gfn_to_host_pfn(c->vm, v, &pfn, &err);
        n = rc ? rc : 1;
    } else {
        n = rm_kvm_host_pfn_to_gfns(c->vm, v, gfns, 16, &err);
        if (n == 0)
            n = rm_error_set(&err, -ENOENT, "host frame %#llx backs no "
                             "frame of this guest", v);
    }
    if (n < 0) {
        snprintf(reply, len, "error %s\n", rm_error_str(&err));
        return;
    }
    off = (size_t)snprintf(reply, len, "ok");
    for (i = 0; i < n && off < len; i++) {
        uint64_t pfn = 0;

        if (!strcmp(verb, "frame")) {
            rm_kvm_gfn_to_host_pfn(c->vm, gfns[i], &pfn, &err);
            off += (size_t)snprintf(reply + off, len - off, " %#" PRIx64
                                    " %#" PRIx64, gfns[i], pfn);
        } else {
            struct rm_kvm_offline_result r;

            rc = rm_kvm_offline_gfn(c->vm, gfns[i], fault, &r, &err);
            if (rc) {
                snprintf(reply, len, "error %s (%d of %d frames moved "
                         "before it)\n", rm_error_str(&err), i, n);
                return;
            }
            off += (size_t)snprintf(reply + off, len - off, " %#" PRIx64
                                    " %#" PRIx64 " %#" PRIx64, r.gfn,
                                    r.old_pfn, r.new_pfn);
        }
    }
    if (off < len)
        snprintf(reply + off, len - off, "\n");
}

/*
 * Only root and the uid this VM runs as may use its control socket (it
 * can dump the guest's memory): the socket file is 0600 in a 0700
 * directory, and the peer's credentials are checked as well.
 */
static bool client_allowed(int cfd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);

    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len) ||
        len != sizeof(cr)) {
        LOG_WARN("control socket: cannot read the client's credentials "
                 "(%s): refused", strerror(errno));
        return false;
    }
    if (cr.uid == 0 || cr.uid == geteuid())
        return true;
    LOG_WARN("control socket: refused a client of uid %u (pid %d): only "
             "root and uid %u may use it", (unsigned)cr.uid, (int)cr.pid,
             (unsigned)geteuid());
    return false;
}

/* The client's request (a non-blocking socket): it has RM_VMCTL_CLIENT_MS
 * to send it, so a silent client cannot hold the control thread. */
static ssize_t recv_request(int cfd, struct msghdr *mh)
{
    uint64_t deadline = rm_now_ns() + RM_VMCTL_CLIENT_MS * 1000000ull;

    for (;;) {
        struct pollfd p = { cfd, POLLIN, 0 };
        uint64_t now = rm_now_ns();
        ssize_t n = recvmsg(cfd, mh, MSG_CMSG_CLOEXEC);

        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            return n;
        if (now >= deadline)
            break;
        poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
    }
    LOG_WARN("control socket: a client sent no request within %u ms: "
             "dropped", RM_VMCTL_CLIENT_MS);
    return -1;
}

static void serve_one(struct rm_vmctl *c, int cfd)
{
    char req[256] = { 0 }, reply[600];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { req, sizeof(req) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm;
    int fd = -1;
    ssize_t n;

    if (!client_allowed(cfd)) {
        snprintf(reply, sizeof(reply), "error permission denied: only root "
                 "and uid %u may use this VM's control socket\n",
                 (unsigned)geteuid());
        if (send(cfd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            (void)0;
        return;
    }
    n = recv_request(cfd, &mh);
    if (n <= 0)
        return;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    if (!strncmp(req, "frame ", 6)) {
        serve_frames(c, req, reply, sizeof(reply));
    } else if (!strncmp(req, "offline-page ", 13)) {
        if (reprotect_running(c))
            snprintf(reply, sizeof(reply), "error the VM is being "
                     "protected: `remus reprotect --stop` first\n");
        else
            serve_frames(c, req, reply, sizeof(reply));
    } else if (!strncmp(req, "protect ", 8)) {
        serve_protect(c, req, reply, sizeof(reply));
    } else if (!strcmp(req, "unprotect")) {
        serve_unprotect(c, reply, sizeof(reply));
    } else if (!strcmp(req, "handover")) {
        serve_handover(c, reply, sizeof(reply));
    } else if (fd < 0 || strncmp(req, "save ", 5)) {
        snprintf(reply, sizeof(reply), "error bad request (expected 'save "
                 "live|nonlive' and a file descriptor, 'protect ...', "
                 "'unprotect' or 'handover')\n");
    } else if (reprotect_running(c)) {
        snprintf(reply, sizeof(reply), "error the VM is being protected: "
                 "`remus reprotect --stop` first\n");
    } else {
        struct rm_save_ctx sctx;
        struct rm_error err = { 0 };
        struct rm_sink sink;
        bool live = strstr(req, "save live") != NULL;
        bool keep = strstr(req, "continue") != NULL;
        int rc;

        memset(&sctx, 0, sizeof(sctx));
        sctx.ops = &rm_kvm_save_ops;
        sctx.backend_arg = c->vm;
        sctx.err = &err;
        rm_save_params_default(&sctx.params,
                               live ? RM_SAVE_LIVE : RM_SAVE_NONLIVE);
        sctx.params.resume_after = keep;
        rm_sink_init_fd(&sink, fd);
        rc = rm_save(&sctx, &sink);
        /* On disk before the VM may stop (a pipe or tty has nothing to
         * sync). */
        if (!rc && fsync(fd) && errno != EINVAL && errno != EROFS)
            rc = rm_error_set(&err, -errno, "the save file could not be "
                              "synced to disk: %s", strerror(errno));
        if (rc) {
            snprintf(reply, sizeof(reply), "error %s\n", rm_error_str(&err));
        } else {
            snprintf(reply, sizeof(reply), "ok %" PRIu64 " %" PRIu64 " %u\n",
                     sink.offset, sctx.pages_sent, sctx.iterations);
            LOG_INFO("saved (%s): %" PRIu64 " bytes, %" PRIu64 " pages, %u "
                     "iterations", live ? "live" : "non-live", sink.offset,
                     sctx.pages_sent, sctx.iterations);
            if (!keep)
                rm_vm_request_stop(c->vm);
        }
    }
    if (fd >= 0)
        close(fd);
    if (send(cfd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        (void)0;
}

static void *ctl_main(void *arg)
{
    struct rm_vmctl *c = arg;

    for (;;) {
        struct pollfd p[3] = { { c->lfd, POLLIN, 0 },
                               { c->stop_pipe[0], POLLIN, 0 },
                               { c->rp ? c->rp->stats_pipe[0] : -1,
                                 POLLIN, 0 } };
        int cfd;

        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (c->rp && p[2].revents)
            reprotect_drain(c->rp);
        if (!(p[0].revents & POLLIN))
            continue;
        cfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
            continue;
        serve_one(c, cfd);
        close(cfd);
    }
    return NULL;
}

void rm_vmctl_set_quorum(struct rm_vmctl *c, struct rm_quorum *q)
{
    if (c)
        c->quorum = q;
}

void rm_vmctl_set_key(struct rm_vmctl *c, const struct rm_auth_key *key)
{
    if (c)
        c->key = key;
}

struct rm_vmctl *rm_vmctl_start(struct rm_vm *vm, const char *name,
                                struct rm_error *err)
{
    struct rm_vmctl *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (!c)
        return NULL;
    c->vm = vm;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->lfd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
    if (sock_path(name, c->path, sizeof(c->path), err))
        goto fail;
    if (rm_run_dir_prepare(err))
        goto fail;
    unlink(c->path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* 0600 whatever the umask, before anyone can connect (listen). */
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
        chmod(c->path, 0600) || listen(c->lfd, 4) ||
        pipe2(c->stop_pipe, O_CLOEXEC)) {
        rm_error_set(err, -errno, "control socket %s: %s", c->path,
                     strerror(errno));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, ctl_main, c)) {
        rm_error_set(err, -EAGAIN, "cannot start the control thread");
        goto fail;
    }
    return c;
fail:
    if (c->lfd >= 0)
        close(c->lfd);
    if (c->stop_pipe[0] >= 0) {
        close(c->stop_pipe[0]);
        close(c->stop_pipe[1]);
    }
    free(c);
    return NULL;
}

void rm_vmctl_stop(struct rm_vmctl *c)
{
    if (!c)
        return;
    if (write(c->stop_pipe[1], "x", 1) < 0)
        (void)0;
    pthread_join(c->thread, NULL);
    reprotect_end(c);
    close(c->lfd);
    close(c->stop_pipe[0]);
    close(c->stop_pipe[1]);
    unlink(c->path);
    free(c);
}

int rm_vmctl_request(const char *name, const char *req, int fd,
                     char *reply, size_t reply_len, struct rm_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char path[108];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov;
    struct msghdr mh;
    struct cmsghdr *cm;
    ssize_t n;
    size_t got = 0;
    int s, rc;

    rc = sock_path(name, path, sizeof(path), err);
    if (rc)
        return rc;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
        rc = rm_error_set(err, -errno, "no VM named '%s' runs here (%s: "
                          "%s)", name, path, strerror(errno));
        if (s >= 0)
            close(s);
        return rc;
    }
    iov.iov_base = (void *)req;
    iov.iov_len = strlen(req) + 1;
    memset(&mh, 0, sizeof(mh));
    memset(cbuf, 0, sizeof(cbuf));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(s, &mh, 0) < 0) {
        rc = rm_error_set(err, -errno, "sending the request: %s",
                          strerror(errno));
        close(s);
        return rc;
    }
    while (got + 1 < reply_len &&
           (n = read(s, reply + got, reply_len - 1 - got)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(s);
    if (got && reply[got - 1] == '\n')
        reply[got - 1] = '\0';
    if (strncmp(reply, "ok ", 3))
        return rm_error_set(err, -EIO, "%s", strncmp(reply, "error ", 6)
                            ? "the VM process gave no answer" : reply + 6);
    return 0;
}

int rm_vmctl_save(const char *name, bool live, bool keep_running, int fd,
                  char *reply, size_t reply_len, struct rm_error *err)
{
    char req[64];

    snprintf(req, sizeof(req), "save %s%s", live ? "live" : "nonlive",
             keep_running ? " continue" : "");
    return rm_vmctl_request(name, req, fd, reply, reply_len, err);
}
