/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen-domctl"
#include "backends/xen/xen_pause_domctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xencall.h>

struct rm_xen_pause_domctl {
    uint32_t domid;
    xencall_handle *xcall;
    struct xen_domctl *op;            /* one page of hypercall memory */
    vcpu_guest_context_any_t *ctx;    /* pages of hypercall memory */
    size_t ctx_pages;
};

#define PAGE 4096u

/* Issue the domctl being built in d->op.  0 or -errno. */
static int issue(struct rm_xen_pause_domctl *d)
{
    d->op->interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    d->op->domain = (domid_t)d->domid;
    if (xencall1(d->xcall, __HYPERVISOR_domctl,
                 (uint64_t)(uintptr_t)d->op) < 0)
        return errno ? -errno : -EIO;
    return 0;
}

static int vcpu_op(struct rm_xen_pause_domctl *d, uint32_t cmd, uint32_t vcpu)
{
    memset(d->op, 0, sizeof(*d->op));
    d->op->cmd = cmd;
    d->op->u.vcpucontext.vcpu = vcpu;
    d->op->u.vcpucontext.ctxt.p = &d->ctx->c;
    return issue(d);
}

vcpu_guest_context_any_t *rm_xen_pause_domctl_get(struct rm_xen_pause_domctl *d,
                                                 uint32_t vcpu)
{
    int rc = vcpu_op(d, XEN_DOMCTL_getvcpucontext, vcpu);

    if (rc) {
        errno = -rc;
        return NULL;
    }
    return d->ctx;
}

int rm_xen_pause_domctl_set(struct rm_xen_pause_domctl *d, uint32_t vcpu)
{
    return vcpu_op(d, XEN_DOMCTL_setvcpucontext, vcpu);
}

int rm_xen_pause_domctl_resume(struct rm_xen_pause_domctl *d)
{
    memset(d->op, 0, sizeof(*d->op));
    d->op->cmd = XEN_DOMCTL_resumedomain;
    return issue(d);
}

int rm_xen_pause_domctl_flags(struct rm_xen_pause_domctl *d, uint32_t *flags)
{
    int rc;

    memset(d->op, 0, sizeof(*d->op));
    d->op->cmd = XEN_DOMCTL_getdomaininfo;
    rc = issue(d);
    if (rc)
        return rc;
    /* Xen answers with the first domain from this id on: ours is gone */
    if (d->op->domain != d->domid ||
        d->op->u.getdomaininfo.domain != d->domid)
        return -ESRCH;
    *flags = d->op->u.getdomaininfo.flags;
    return 0;
}

void rm_xen_pause_domctl_close(struct rm_xen_pause_domctl *d)
{
    if (!d)
        return;
    if (d->ctx)
        xencall_free_buffer_pages(d->xcall, d->ctx, d->ctx_pages);
    if (d->op)
        xencall_free_buffer_pages(d->xcall, d->op, 1);
    if (d->xcall)
        xencall_close(d->xcall);
    free(d);
}

struct rm_xen_pause_domctl *rm_xen_pause_domctl_open(uint32_t domid)
{
    struct rm_xen_pause_domctl *d = calloc(1, sizeof(*d));
    int saved;

    if (!d)
        return NULL;
    d->domid = domid;
    d->ctx_pages = (sizeof(*d->ctx) + PAGE - 1) / PAGE;
    d->xcall = xencall_open(NULL, 0);
    if (d->xcall)
        d->op = xencall_alloc_buffer_pages(d->xcall, 1);
    if (d->op)
        d->ctx = xencall_alloc_buffer_pages(d->xcall, d->ctx_pages);
    if (d->ctx && rm_xen_pause_domctl_get(d, 0))
        return d;
    saved = errno ? errno : EIO;
    rm_xen_pause_domctl_close(d);
    errno = saved;
    return NULL;
}
