/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen-migrate"
#include "backends/xen/xen_migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenguest.h>

#include "backends/xen/xen_sr.h"
#include "common/log.h"

struct save_job {
    struct rm_xen_save_arg arg;
    struct rm_save_ctx ctx;
    struct rm_error err;
    struct rm_sink sink;
    int fd;
    int rc;
};

static void *save_main(void *opaque)
{
    struct save_job *j = opaque;

    j->rc = rm_save(&j->ctx, &j->sink);
    /* The receiver must see the end of the stream in every case. */
    shutdown(j->fd, SHUT_WR);
    return NULL;
}

int rm_xen_migrate_local(struct rm_xen_host *h, uint32_t domid,
                         const char *config,
                         struct rm_xen_migrate_result *res,
                         struct rm_error *err)
{
    struct rm_xen_dominfo di;
    struct rm_xen_restore_arg rarg;
    struct rm_restore_ctx rctx;
    struct save_job job;
    struct rm_src src;
    pthread_t saver;
    char name[64], tmpname[96];
    int sv[2] = { -1, -1 }, rc;
    bool created = false, started = false;

    memset(res, 0, sizeof(*res));
    memset(&job, 0, sizeof(job));
    rc = rm_xen_dominfo(h, domid, &di, err);
    if (rc)
        return rc;
    snprintf(name, sizeof(name), "%s", di.name);
    snprintf(tmpname, sizeof(tmpname), "%s--migrating", name);
    rc = rm_xen_replica_create(h, config, tmpname, &res->new_domid, err);
    if (rc)
        return rc;
    created = true;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        rc = rm_error_set(err, -errno, "socketpair: %s", strerror(errno));
        goto out;
    }
    job.arg.host = h;
    job.arg.domid = domid;
    job.ctx.ops = &rm_xen_save_ops;
    job.ctx.backend_arg = &job.arg;
    job.ctx.err = &job.err;
    rm_save_params_default(&job.ctx.params, RM_SAVE_LIVE);
    job.ctx.params.resume_after = false;   /* the old domain stays down */
    job.fd = sv[0];
    rm_sink_init_fd(&job.sink, sv[0]);
    if (pthread_create(&saver, NULL, save_main, &job)) {
        rc = rm_error_set(err, -EAGAIN, "cannot start the sending thread");
        goto out;
    }
    started = true;

    memset(&rarg, 0, sizeof(rarg));
    rarg.host = h;
    rarg.domid = res->new_domid;
    memset(&rctx, 0, sizeof(rctx));
    rctx.ops = &rm_xen_restore_ops;
    rctx.backend_arg = &rarg;
    rctx.err = err;
    rm_src_init_fd(&src, sv[1]);
    rc = rm_restore(&rctx, &src);
    if (!rc && rctx.result != RM_RESTORE_COMPLETE)
        rc = rm_error_set(err, -EPIPE, "the stream ended before it was "
                          "complete");
    if (rc)
        shutdown(sv[1], SHUT_RDWR);   /* unblock the sender */
    pthread_join(saver, NULL);
    started = false;
    /* Which side failed first names the cause: a restore that failed
     * cut the stream, so the sender's broken pipe is only its echo; a
     * sender that failed left the restore with a short stream. */
    if (job.rc && !(rc && job.rc == -EPIPE)) {
        rm_error_clear(err);
        rc = rm_error_set(err, job.rc, "sending: %s", rm_error_str(&job.err));
    } else if (rc) {
        char why[sizeof(err->msg)];

        snprintf(why, sizeof(why), "%s", rm_error_str(err));
        rm_error_clear(err);
        rc = rm_error_set(err, rc, "the new domain refused the guest: %s",
                          why);
    }
    if (rc)
        goto out;
    res->pages = job.ctx.pages_sent;
    res->iterations = job.ctx.iterations;
    res->bytes = job.sink.offset;

    /* The new domain holds the guest: the old one goes (its pages are
     * freed: Xen offlines the pending one), the new one runs. */
    rc = rm_xen_destroy(h, domid, err);
    if (rc) {
        LOG_WARN("destroying the old domain %u failed: %s", domid,
                 rm_error_str(err));
        rm_error_clear(err);
        rc = 0;
    }
    created = false;
    rc = rm_xen_unpause(h, res->new_domid, err);
    if (rc)
        goto out;
    {
        const char *args[] = { "rename", tmpname, name, NULL };
        struct rm_error e2 = { 0 };

        if (rm_xen_xl(args, 30000, &e2))
            LOG_WARN("renaming domain %u: %s", res->new_domid,
                     rm_error_str(&e2));
    }
    LOG_INFO("domain %u moved to domain %u: %" PRIu64 " pages in %u "
             "pre-copy iterations", domid, res->new_domid, res->pages,
             res->iterations);
out:
    if (started) {
        shutdown(sv[1], SHUT_RDWR);
        pthread_join(saver, NULL);
    }
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc && created) {
        struct rm_error e2 = { 0 };
        struct rm_xen_dominfo old;

        if (rm_xen_destroy(h, res->new_domid, &e2))
            LOG_WARN("%s", rm_error_str(&e2));
        /* Undo: the guest runs on in its old domain. */
        if (!rm_xen_dominfo(h, domid, &old, &e2) && old.shutdown &&
            old.shutdown_reason == SHUTDOWN_suspend &&
            rm_xen_resume_for_good(h, domid, &e2))
            LOG_WARN("%s", rm_error_str(&e2));
    }
    return rc;
}

int rm_xen_pv_owner(struct rm_xen_host *h, uint64_t mfn, int *owner,
                    struct rm_error *err)
{
    xc_interface *xch = rm_xen_xch(h);
    xc_domaininfo_t info[64];
    uint32_t next = 0;
    int n, i;

    *owner = -1;
    for (;;) {
        n = xc_domain_getinfolist(xch, next, 64, info);
        if (n < 0)
            return rm_error_set(err, errno ? -errno : -EIO, "cannot list "
                                "the domains: %s", strerror(errno));
        for (i = 0; i < n; i++) {
            struct xen_domctl d;
            xen_pfn_t *arr;
            DECLARE_HYPERCALL_BUFFER(xen_pfn_t, hbuf);

            if (info[i].flags & XEN_DOMINF_hvm_guest)
                continue;
            hbuf = xc_hypercall_buffer_alloc(xch, hbuf, sizeof(*arr));
            if (!hbuf)
                return rm_error_set(err, -ENOMEM, "out of hypercall "
                                    "memory");
            arr = hbuf;
            arr[0] = (xen_pfn_t)mfn;
            memset(&d, 0, sizeof(d));
            /* For a PV domain the "gfn" is the machine frame: its type
             * comes back only if the domain owns it, else XTAB. */
            d.cmd = XEN_DOMCTL_getpageframeinfo3;
            d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
            d.domain = (domid_t)info[i].domain;
            d.u.getpageframeinfo3.num = 1;
            set_xen_guest_handle(d.u.getpageframeinfo3.array, hbuf);
            if (xc_domctl(xch, &d) == 0 &&
                (arr[0] & XEN_DOMCTL_PFINFO_LTAB_MASK) !=
                XEN_DOMCTL_PFINFO_XTAB)
                *owner = (int)info[i].domain;
            xc_hypercall_buffer_free(xch, hbuf);
            if (*owner >= 0)
                return 0;
        }
        if (n < 64)
            return 0;
        next = info[n - 1].domain + 1;
    }
}

int rm_xen_page_mark_offline(struct rm_xen_host *h, uint64_t mfn,
                             uint32_t *status, int *owner,
                             struct rm_error *err)
{
    *status = 0;
    *owner = -1;
    if (xc_mark_page_offline(rm_xen_xch(h), (unsigned long)mfn,
                             (unsigned long)mfn, status) &&
        !(*status & (PG_OFFLINE_PENDING | PG_OFFLINE_OFFLINED)))
        return rm_error_set(err, errno ? -errno : -EIO, "Xen would not "
                            "offline machine frame %#" PRIx64 ": %s (status "
                            "%#x%s)", mfn, strerror(errno), *status,
                            (*status & PG_OFFLINE_XENPAGE) ?
                            ", a page of Xen itself" : "");
    if (*status & PG_OFFLINE_OWNED)
        *owner = (int)(*status >> PG_OFFLINE_OWNER_SHIFT);
    return 0;
}

int rm_xen_page_mark_online(struct rm_xen_host *h, uint64_t mfn,
                            struct rm_error *err)
{
    uint32_t status = 0;

    if (xc_mark_page_online(rm_xen_xch(h), (unsigned long)mfn,
                            (unsigned long)mfn, &status))
        return rm_error_set(err, errno ? -errno : -EIO, "cannot put "
                            "machine frame %#" PRIx64 " back online: %s",
                            mfn, strerror(errno));
    return 0;
}

int rm_xen_page_status(struct rm_xen_host *h, uint64_t mfn,
                       uint32_t *status, struct rm_error *err)
{
    *status = 0;
    if (xc_query_page_offline_status(rm_xen_xch(h), (unsigned long)mfn,
                                     (unsigned long)mfn, status))
        return rm_error_set(err, errno ? -errno : -EIO, "cannot query "
                            "machine frame %#" PRIx64 ": %s", mfn,
                            strerror(errno));
    return 0;
}
