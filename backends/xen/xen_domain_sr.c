/* SPDX-License-Identifier: MIT */
/* Save and restore of a whole Xen domain (backends/xen/xen_domain_sr.h). */
#define RM_LOG_PREFIX "xen"
#include "backends/xen/xen_domain_sr.h"

#include <errno.h>
#include <string.h>

#include "backends/xen/xen_sr.h"
#include "common/io.h"
#include "common/log.h"

/* True for a PV domain; one we cannot ask about counts as HVM/PVH (the
 * HVM ops then say what is wrong). */
static bool is_pv(struct rm_xen_host *h, uint32_t domid)
{
    struct rm_xen_dominfo di;

    return rm_xen_dominfo(h, domid, &di, NULL) == 0 && !di.hvm;
}

int rm_xen_save_domain(struct rm_xen_host *h, uint32_t domid, int fd,
                       const struct rm_xen_save_opts *o,
                       struct rm_xen_save_result *res, struct rm_error *err)
{
    struct rm_xen_save_arg arg;
    struct rm_save_ctx ctx;
    struct rm_sink sink;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&arg, 0, sizeof(arg));
    memset(&ctx, 0, sizeof(ctx));
    arg.host = h;
    arg.domid = domid;
    arg.suspend_timeout_ms = o->suspend_timeout_ms;
    ctx.ops = &rm_xen_save_ops;
    if (is_pv(h, domid)) {
        /* A PV guest: non-live, with its page tables in canonical form. */
        if (o->live) {
            res->refused = true;
            return rm_error_set(err, -EINVAL, "domain %u is a PV guest: it "
                                "can be saved non-live only (PV log-dirty "
                                "needs shadow paging, which this Xen "
                                "lacks): drop --live", domid);
        }
        ctx.ops = &rm_xen_pv_save_ops;
    }
    ctx.backend_arg = &arg;
    ctx.err = err;
    rm_save_params_default(&ctx.params, o->live ? RM_SAVE_LIVE
                                                : RM_SAVE_NONLIVE);
    ctx.params.resume_after = o->keep;
    rm_sink_init_fd(&sink, fd);
    rc = rm_save(&ctx, &sink);
    res->suspended = ctx.suspended;
    res->bytes = sink.offset;
    res->pages = ctx.pages_sent;
    res->iterations = ctx.iterations;
    return rc;
}

int rm_xen_save_finish(struct rm_xen_host *h, uint32_t domid,
                       const struct rm_xen_save_opts *o,
                       const struct rm_xen_save_result *res, bool saved,
                       struct rm_error *err)
{
    if (o->keep)
        return 0;
    if (!saved) {
        if (res->suspended)
            rm_xen_resume_for_good(h, domid, NULL);
        return 0;
    }
    return rm_xen_destroy(h, domid, err);
}

int rm_xen_restore_domain(struct rm_xen_host *h, const char *config,
                          const char *name, int fd, bool paused,
                          struct rm_xen_restore_result *res,
                          struct rm_error *err)
{
    struct rm_xen_restore_arg arg;
    struct rm_restore_ctx ctx;
    struct rm_src src;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&arg, 0, sizeof(arg));
    rc = rm_xen_replica_create(h, config, name, &arg.domid, err);
    if (rc)
        return rc;
    arg.host = h;
    memset(&ctx, 0, sizeof(ctx));
    /* The config's type decides: a PV domain takes a PV stream. */
    ctx.ops = is_pv(h, arg.domid) ? &rm_xen_pv_restore_ops
                                  : &rm_xen_restore_ops;
    ctx.backend_arg = &arg;
    ctx.err = err;
    rm_src_init_fd(&src, fd);
    rc = rm_restore(&ctx, &src);
    if (!rc && ctx.result != RM_RESTORE_COMPLETE)
        rc = rm_error_set(err, -EPIPE, "the stream is an incomplete "
                          "checkpointed stream");
    if (!rc && !paused)
        rc = rm_xen_unpause(h, arg.domid, err);
    if (rc) {
        struct rm_error e2 = { 0 };

        if (rm_xen_destroy(h, arg.domid, &e2))
            LOG_WARN("%s", rm_error_str(&e2));
        return rc;
    }
    res->domid = arg.domid;
    res->pages = ctx.pages_applied;
    return 0;
}
