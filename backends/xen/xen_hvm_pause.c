/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen-pause"
#include "backends/xen/xen_hvm_pause.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xenguest.h>
#include <xen/hvm/params.h>

#include "backends/xen/xen_pause_domctl.h"
#include "backends/xen/xen_suspend_wait.h"
#include "common/io.h"
#include "common/log.h"

const uint32_t rm_xen_guest_set_params[RM_XEN_NR_GUEST_SET_PARAMS] = {
    HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_X87_FIP_WIDTH,
};

struct rm_xen_hvm_pause {
    struct rm_xen_host *host;
    uint32_t domid;
    xc_interface *own_xch;     /* the thread's; NULL: reads in line */
    pthread_t thread;
    bool have_thread, have_cond;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under lock: begin sets asked; the thread clears it, reads, sets
     * done; close sets quit. */
    bool asked, done, quit;
    /* The pause: begun (reads asked or to be made), collected (reads
     * waited for, rc their result). */
    bool begun, collected;
    /* The reads' results (written by whoever reads, read after done) */
    int rc;                    /* 0 or -errno */
    const char *what;          /* what failed */
    struct rm_xen_hvm_pause_state st;
    uint8_t *hvm;              /* Xen's size for the domain (fixed by its
                                * vCPUs; sized again on -ENOSPC) */
    uint32_t hvm_size;
    /* vCPU 0's context as read: in vd's buffer, or (no vd: libxenctrl's
     * calls) in vcpu0_copy */
    struct rm_xen_pause_domctl *vd;
    vcpu_guest_context_any_t *vcpu0;
    vcpu_guest_context_any_t vcpu0_copy;
    bool rax_set;              /* vCPU 0's rax is 1 in Xen already */
    /* When to poll for the suspend: this domain's recent freezes */
    struct rm_xen_suspend_wait wait;
};

/* The HVM context into p->hvm, sized on first use.  0 or -errno. */
static int read_hvm_context(struct rm_xen_hvm_pause *p, xc_interface *xch)
{
    int tries, size = -1;

    for (tries = 0; tries < 2; tries++) {
        if (!p->hvm) {
            size = xc_domain_hvm_getcontext(xch, p->domid, NULL, 0);
            if (size <= 0)
                return errno ? -errno : -EIO;
            p->hvm = malloc((size_t)size);
            if (!p->hvm)
                return -ENOMEM;
            p->hvm_size = (uint32_t)size;
        }
        size = xc_domain_hvm_getcontext(xch, p->domid, p->hvm, p->hvm_size);
        if (size > 0 || errno != ENOSPC)
            break;
        free(p->hvm);           /* grew: size it again, once */
        p->hvm = NULL;
    }
    if (size <= 0)
        return errno ? -errno : -EIO;
    p->st.hvm = p->hvm;
    p->st.hvm_len = (uint32_t)size;
    return 0;
}

/* Everything the pause reads, on @xch (the thread's own, or the host's in
 * line).  Sets p->rc and p->what. */
static void read_all(struct rm_xen_hvm_pause *p, xc_interface *xch)
{
    struct rm_x86_tsc_info *t = &p->st.tsc;
    size_t i;
    int rc;

    memset(t, 0, sizeof(*t));
    p->what = "TSC info";
    if (xc_domain_get_tsc_info(xch, p->domid, &t->mode, &t->nsec, &t->khz,
                               &t->incarnation)) {
        rc = errno ? -errno : -EIO;
        goto out;
    }
    p->what = "HVM context";
    rc = read_hvm_context(p, xch);
    if (rc)
        goto out;
    p->what = "HVM params";
    for (i = 0; i < RM_XEN_NR_GUEST_SET_PARAMS; i++) {
        p->st.guest_params[i] = 0;
        if (xc_hvm_param_get(xch, p->domid, rm_xen_guest_set_params[i],
                             &p->st.guest_params[i])) {
            rc = errno ? -errno : -EIO;
            goto out;
        }
    }
    /* For the suspend's return value, set in it below (or at the resume) */
    p->what = "vCPU 0's context";
    if (p->vd)
        p->vcpu0 = rm_xen_pause_domctl_get(p->vd, 0);
    else if (xc_vcpu_getcontext(xch, p->domid, 0, &p->vcpu0_copy) == 0)
        p->vcpu0 = &p->vcpu0_copy;
    else
        p->vcpu0 = NULL;
    if (!p->vcpu0) {
        rc = errno ? -errno : -EIO;
        goto out;
    }
    /* The suspend's return value (see rm_xen_hvm_pause_resume), set here,
     * beside the page copy, where the domctl path is had: the HVM context
     * above was read first and keeps rax 0. */
    p->rax_set = false;
    if (p->vd) {
        p->what = "vCPU 0's context (setting the suspend's return value)";
        p->vcpu0->x64.user_regs.rax = 1;
        rc = rm_xen_pause_domctl_set(p->vd, 0);
        if (rc)
            goto out;
        p->rax_set = true;
    }
    p->what = NULL;
out:
    p->rc = rc;
}

static void *reader(void *arg)
{
    struct rm_xen_hvm_pause *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->asked && !p->quit)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->quit)
            break;
        p->asked = false;
        pthread_mutex_unlock(&p->lock);
        read_all(p, p->own_xch);
        pthread_mutex_lock(&p->lock);
        p->done = true;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int rm_xen_hvm_pause_open(struct rm_xen_hvm_pause **out,
                          struct rm_xen_host *h, uint32_t domid,
                          struct rm_error *err)
{
    struct rm_xen_hvm_pause *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (!p)
        return rm_error_set(err, -ENOMEM, "out of memory");
    p->host = h;
    p->domid = domid;
    rm_xen_suspend_wait_init(&p->wait);
    p->vd = rm_xen_pause_domctl_open(domid);
    if (!p->vd)
        LOG_WARN("domain %u: the pause's domctls (suspend polls, vCPU "
                 "context, resume) go through libxenctrl (%s): the pause "
                 "takes longer",
                 domid, strerror(errno));
    pthread_mutex_init(&p->lock, NULL);
    p->have_cond = rm_cond_init_monotonic(&p->cond) == 0;
    p->own_xch = p->have_cond ? rm_xen_xch_open_another(h) : NULL;
    if (p->own_xch && pthread_create(&p->thread, NULL, reader, p) == 0)
        p->have_thread = true;
    if (!p->have_thread) {
        LOG_WARN("domain %u: no thread of its own for the pause's state "
                 "reads (%s): read in line, the pause lasts longer",
                 domid, !p->have_cond ? "no condition variable" :
                 p->own_xch ? "cannot start a thread" :
                 "cannot open a second libxenctrl handle");
        if (p->own_xch)
            xc_interface_close(p->own_xch);
        p->own_xch = NULL;
    }
    *out = p;
    return 0;
}

/* Wait for the reads asked, if any. */
static void settle(struct rm_xen_hvm_pause *p)
{
    if (!p->have_thread || !p->begun)
        return;
    pthread_mutex_lock(&p->lock);
    while (!p->done)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void rm_xen_hvm_pause_close(struct rm_xen_hvm_pause *p)
{
    if (!p)
        return;
    if (p->have_thread) {
        settle(p);
        pthread_mutex_lock(&p->lock);
        p->quit = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    if (p->own_xch)
        xc_interface_close(p->own_xch);
    if (p->have_cond)
        pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    rm_xen_pause_domctl_close(p->vd);
    free(p->hvm);
    free(p);
}

void rm_xen_hvm_pause_begin(struct rm_xen_hvm_pause *p)
{
    settle(p);                 /* an earlier pause's, never collected */
    p->begun = true;
    p->collected = false;
    if (!p->have_thread)
        return;
    pthread_mutex_lock(&p->lock);
    p->done = false;
    p->asked = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static int poll_flags(void *opaque, uint32_t *flags)
{
    struct rm_xen_hvm_pause *p = opaque;

    return rm_xen_pause_domctl_flags(p->vd, flags);
}

int rm_xen_hvm_pause_suspend(struct rm_xen_hvm_pause *p, unsigned timeout_ms,
                             struct rm_error *err)
{
    struct rm_xen_suspend_poll poll = {
        .wait = &p->wait,
        .flags = p->vd ? poll_flags : NULL,
        .opaque = p,
    };
    uint64_t from, to;
    bool spun = rm_xen_suspend_wait_window(&p->wait, &from, &to);
    int rc;

    settle(p);      /* the reader is idle: the domctl buffer is ours */
    rc = rm_xen_suspend_ask(p->host, p->domid, err);
    if (rc == 0)
        rc = rm_xen_suspend_wait(p->host, p->domid, timeout_ms, &poll, err);
    if (rc)
        return rc;
    if (!spun && rm_xen_suspend_wait_window(&p->wait, &from, &to))
        LOG_INFO("domain %u: a sleep of %llu us between suspend polls "
                 "takes %.1f ms here; polling without sleeping from %.1f "
                 "to %.1f ms after each request (the guest's recent "
                 "freezes)", p->domid, RM_XEN_POLL_SLEEP_NS / 1000,
                 (double)p->wait.sleep_avg_ns / 1e6, (double)from / 1e6,
                 (double)to / 1e6);
    rm_xen_hvm_pause_begin(p);
    return 0;
}

int rm_xen_hvm_pause_collect(struct rm_xen_hvm_pause *p,
                             const struct rm_xen_hvm_pause_state **st,
                             struct rm_error *err)
{
    *st = NULL;
    if (p->have_thread && p->begun)
        settle(p);
    else
        read_all(p, rm_xen_xch(p->host));
    p->begun = false;
    p->collected = true;
    if (p->rc)
        return rm_error_set(err, p->rc, "cannot read domain %u's %s: %s",
                            p->domid, p->what ? p->what : "state",
                            strerror(-p->rc));
    *st = &p->st;
    return 0;
}

int rm_xen_hvm_pause_resume(struct rm_xen_hvm_pause *p,
                            uint64_t *released_ns, struct rm_error *err)
{
    xc_interface *xch = rm_xen_xch(p->host);
    bool ours = p->collected && p->rc == 0;
    const char *what = "";     /* the step that failed, if not the last */
    int rc = 0;

    settle(p);
    p->begun = false;
    p->collected = false;
    if (!ours) {
        rc = rm_xen_resume_cancelled(p->host, p->domid, err);
        *released_ns = rm_now_ns();
        return rc;
    }
    /*
     * The suspend hypercall's return value, 1, "cancelled" (HVM guests
     * have the host's address width: 64-bit), as libxenctrl sets it at
     * the resume (the HVM context read keeps rax 0: a replica that
     * resumes from it starts anew).  Through the domctl path the reader
     * set it already, beside the page copy (the lab, 2026-12-05: the
     * resume part 1.2-1.4 -> 0.8-0.9 ms, the pages part no longer; an
     * earlier try judged by suspended p50 alone, within its noise, had
     * seen no gain); through libxenctrl it is set here.
     */
    if (p->rax_set) {
        rc = rm_xen_pause_domctl_resume(p->vd);
    } else {
        p->vcpu0->x64.user_regs.rax = 1;
        if (xc_vcpu_setcontext(xch, p->domid, 0, p->vcpu0)) {
            rc = errno ? -errno : -EIO;
            what = " (setting vCPU 0's context)";
        } else if (xc_domain_resume(xch, p->domid, 0)) {
            rc = errno ? -errno : -EIO;
        }
    }
    if (rc)
        rm_error_set(err, rc, "cannot resume domain %u after its "
                     "checkpoint%s: %s", p->domid, what, strerror(-rc));
    *released_ns = rm_now_ns();
    return rc;
}
