/* SPDX-License-Identifier: MIT */
/* Xen as a backend (see xen_backend.h). */
#define RM_LOG_PREFIX "xen"
#include "backends/xen/xen_backend.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenctrl.h>

#include "backends/xen/xen_devices.h"
#include "backends/xen/xen_disks.h"
#include "backends/xen/xen_host.h"
#include "backends/xen/xen_sr.h"
#include "common/io.h"
#include "common/log.h"
#include "netbuf/netbuf.h"
#include "netbuf/netbuf_plug.h"
#include "netbuf/netbuf_set.h"

struct xen_backend {
    struct rm_backend b;
    struct rm_xen_host *host;
    uint32_t domid;               /* the VM, or the replica */
    bool replica, active;         /* a replica; it took over */
    bool stopped;                 /* we paused and destroyed it */
    char replica_name[96];
    struct rm_xen_save_arg sarg;
    struct rm_xen_restore_arg rarg;
    const struct rm_restore_ops *rops;
    volatile sig_atomic_t stop;   /* request_stop() */
    struct xen_backend *owner;    /* protect_again: the backend that holds
                                     the domain (its wait() stops it) */
    struct rm_xen_disks *disks;   /* protected: its served disks, or NULL */
    uint64_t disk_buffer_bytes;   /* protected: as asked (protect_again) */
};

static struct xen_backend *xb(struct rm_backend *b)
{
    return (struct xen_backend *)b;
}

static const struct rm_save_ops *xen_save_ops(struct rm_backend *b,
                                              void **arg)
{
    *arg = &xb(b)->sarg;
    return &rm_xen_save_ops;
}

static int xen_pause(struct rm_backend *b)
{
    struct rm_error err = { 0 };
    int rc = rm_xen_pause(xb(b)->host, xb(b)->domid, &err);

    if (rc)
        LOG_ERR("%s", rm_error_str(&err));
    return rc;
}

static const struct rm_restore_ops *xen_restore_ops(struct rm_backend *b,
                                                    void **arg)
{
    *arg = &xb(b)->rarg;
    return xb(b)->rops;
}

static int xen_activate(struct rm_backend *b, struct rm_error *err)
{
    struct xen_backend *x = xb(b);
    struct rm_error e2 = { 0 };
    const char *args[] = { "rename", x->replica_name, b->vm_name, NULL };
    uint32_t other;
    int rc, tries;

    rc = rm_disk_replica_usable(b->disk_replica, b->nr_replica_disks, err);
    if (rc)
        return rc;
    rc = rm_xen_unpause(x->host, x->domid, err);
    if (rc)
        return rc;
    x->active = true;     /* it is the guest now */
    /* On one host (a drill, the lab) the dead primary's domain may still
     * be going away: give it a moment to free the name. */
    for (tries = 0; tries < 75 &&
         rm_xen_domid(x->host, b->vm_name, &other, &e2) == 0; tries++)
        rm_sleep_ms(200);
    rm_error_clear(&e2);
    if (rm_xen_domid(x->host, b->vm_name, &other, &e2) == 0)
        LOG_WARN("a domain named '%s' (domain %u) still exists on this "
                 "host: the replica keeps the name '%s'", b->vm_name, other,
                 x->replica_name);
    else if (rm_xen_xl(args, 30000, &e2))
        LOG_WARN("renaming the replica: %s", rm_error_str(&e2));
    else
        LOG_INFO("domain %u is now '%s'", x->domid, b->vm_name);
    return 0;
}

/* Is the domain still the VM (not gone, dying or shut down)? */
static bool domain_runs(struct xen_backend *x)
{
    struct rm_xen_dominfo di;
    struct rm_error err = { 0 };

    if (rm_xen_dominfo(x->host, x->domid, &di, &err))
        return false;
    return !di.dying && !(di.shutdown && di.shutdown_reason != SHUTDOWN_suspend);
}

static int xen_wait(struct rm_backend *b, int ms)
{
    struct xen_backend *x = xb(b);
    int waited = 0;

    for (;;) {
        if (x->stop && !x->stopped) {
            struct rm_error err = { 0 };

            /* Stopping a domain that must not run: paused at once (no
             * output leaves it), then destroyed. */
            rm_xen_pause(x->host, x->domid, &err);
            if (rm_xen_destroy(x->host, x->domid, &err))
                LOG_WARN("%s", rm_error_str(&err));
            x->stopped = true;
        }
        if (x->stopped || !domain_runs(x))
            return 0;
        if (ms >= 0 && waited >= ms)
            return -ETIMEDOUT;
        rm_sleep_ms(100);
        waited += 100;
    }
}

static void xen_request_stop(struct rm_backend *b)
{
    xb(b)->stop = 1;
    if (xb(b)->owner)             /* the holder's wait() stops it */
        xb(b)->owner->stop = 1;
}

static enum rm_backend_end xen_end(struct rm_backend *b, int64_t *code,
                                   char *why, size_t len)
{
    struct xen_backend *x = xb(b);
    struct rm_xen_dominfo di;
    struct rm_error err = { 0 };

    *code = 0;
    if (x->stopped) {
        snprintf(why, len, "domain %u stopped on request", x->domid);
        return RM_BACKEND_STOPPED;
    }
    if (rm_xen_dominfo(x->host, x->domid, &di, &err)) {
        snprintf(why, len, "domain %u is gone", x->domid);
        return RM_BACKEND_HALTED;
    }
    if (di.crashed) {
        snprintf(why, len, "domain %u crashed", x->domid);
        return RM_BACKEND_FAILED;
    }
    if (di.shutdown || di.dying) {
        snprintf(why, len, "domain %u shut down (reason %u)", x->domid,
                 di.shutdown_reason);
        return RM_BACKEND_HALTED;
    }
    snprintf(why, len, "domain %u runs", x->domid);
    return RM_BACKEND_RUNNING;
}

static void xen_close(struct rm_backend *b)
{
    struct xen_backend *x = xb(b);

    if (x->replica && !x->active && x->domid) {
        struct rm_error err = { 0 };

        if (rm_xen_destroy(x->host, x->domid, &err))
            LOG_WARN("%s", rm_error_str(&err));
    }
    rm_netbuf_free(x->b.netbuf);
    rm_xen_disks_close(x->disks);
    rm_disk_replica_close(x->b.disk_replica);
    rm_xen_host_close(x->host);
    free(x);
}

/* The domain this backend holds, protected again (see backend.h): a
 * protected-role backend of its own whose stop goes through @b. */
static int xen_protect_again(struct rm_backend *b,
                             const struct rm_again_opts *ao,
                             struct rm_backend **out, struct rm_error *err)
{
    struct xen_backend *x = xb(b);
    struct rm_xen_protect_opts o;
    char dom[16];
    int rc;

    if (ao->output == RM_AGAIN_COLO)
        return rm_error_set(err, -EOPNOTSUPP, "COLO (--colo) runs on the "
                            "KVM backend only");
    if (ao->netbuf_max_bytes)
        return rm_error_set(err, -EOPNOTSUPP, "--netbuf-max-bytes bounds "
                            "the micro-VMM's output queue: a Xen domain's "
                            "output is held by its VIFs' plug qdiscs");
    /* The protection that used this backend's plugs and disk log has
     * ended (the VM's control socket serves "protect" only then): they
     * go, so that the new protection can hold the same VIFs (an IFB of
     * the same name) and attach the same served disks (a disk server
     * takes one log at a time). */
    rm_netbuf_free(x->b.netbuf);
    x->b.netbuf = NULL;
    x->b.disklog = NULL;
    rm_xen_disks_close(x->disks);
    x->disks = NULL;
    memset(&o, 0, sizeof(o));
    o.no_netbuf = ao->output == RM_AGAIN_DIRECT;
    o.no_disk = ao->no_disk;
    o.suspend_timeout_ms = x->sarg.suspend_timeout_ms;
    o.disk_buffer_bytes = x->disk_buffer_bytes;
    snprintf(dom, sizeof(dom), "%u", x->domid);
    rc = rm_xen_backend_protect(dom, &o, out, err);
    if (rc == 0)
        xb(*out)->owner = x;
    return rc;
}

static const struct rm_backend_ops xen_ops = {
    .save_ops = xen_save_ops,
    .pause = xen_pause,
    .restore_ops = xen_restore_ops,
    .activate = xen_activate,
    .wait = xen_wait,
    .request_stop = xen_request_stop,
    .end = xen_end,
    .protect_again = xen_protect_again,
    .close = xen_close,
};

static int xen_new(struct xen_backend **out, struct rm_error *err)
{
    struct xen_backend *x = calloc(1, sizeof(*x));
    int rc;

    *out = NULL;
    if (!x)
        return rm_error_set(err, -ENOMEM, "out of memory");
    x->b.ops = &xen_ops;
    x->b.kind = "xen";
    x->b.in_process = false;
    x->b.plain_stream = true;
    rc = rm_xen_host_open(&x->host, err);
    if (rc) {
        free(x);
        return rc;
    }
    *out = x;
    return 0;
}

/* The most VIFs one guest's output is held on. */
#define MAX_VIFS 16

/*
 * Hold the output of every VIF of the domain: one plug per VIF, the plugs
 * in one set when there are several.  A VIF whose plug cannot be set up
 * fails the whole (naming it); the plugs already set up are torn down.
 * @out NULL when the domain has no VIF.  0 or -errno.
 */
static int hold_vifs(struct xen_backend *x, struct rm_netbuf **out,
                     struct rm_error *err)
{
    char vifs[MAX_VIFS][16];
    struct rm_netbuf *plugs[MAX_VIFS];
    struct rm_netbuf_plug_cfg cfg;
    struct rm_error e = { 0 };
    int n, i;

    *out = NULL;
    n = rm_xen_vifs(x->host, x->domid, vifs, MAX_VIFS, err);
    if (n < 0)
        return n;
    if (n > MAX_VIFS)
        return rm_error_set(err, -EOPNOTSUPP, "domain %u has %d VIFs: "
                            "remus holds the output of at most %d (or use "
                            "-F -n)", x->domid, n, MAX_VIFS);
    if (n == 0) {
        LOG_INFO("domain %u has no VIF: no network output to hold",
                 x->domid);
        return 0;
    }
    for (i = 0; i < n; i++) {
        memset(&cfg, 0, sizeof(cfg));
        cfg.vif = vifs[i];
        plugs[i] = rm_netbuf_plug_new(&cfg, &e);
        if (!plugs[i]) {
            int rc = e.code ? e.code : -EIO;

            rc = rm_error_set(err, rc, "cannot hold the output of VIF %s of "
                              "domain %u (its other VIFs' plugs are removed): "
                              "%s", vifs[i], x->domid, e.msg);
            while (i-- > 0)
                rm_netbuf_free(plugs[i]);
            return rc;
        }
        LOG_INFO("output of %s held by a plug qdisc on %s", vifs[i],
                 rm_netbuf_plug_ifb(plugs[i]));
    }
    if (n == 1) {
        *out = plugs[0];
        return 0;
    }
    *out = rm_netbuf_set_new(plugs, (size_t)n, err);   /* frees on failure */
    if (!*out)
        return err->code ? err->code : -EIO;
    LOG_INFO("the output of domain %u's %d VIFs is held and released at "
             "the same checkpoints", x->domid, n);
    return 0;
}

int rm_xen_backend_protect(const char *domain,
                           const struct rm_xen_protect_opts *o,
                           struct rm_backend **out, struct rm_error *err)
{
    struct xen_backend *x;
    struct rm_xen_dominfo di;
    int rc;

    *out = NULL;
    rc = xen_new(&x, err);
    if (rc)
        return rc;
    rc = rm_xen_domid(x->host, domain, &x->domid, err);
    if (!rc)
        rc = rm_xen_dominfo(x->host, x->domid, &di, err);
    if (!rc && !di.hvm)
        rc = rm_error_set(err, -EOPNOTSUPP, "domain %u is a PV guest: "
                          "protecting it needs PV log-dirty, which needs "
                          "shadow paging (this Xen lacks it); PVH guests "
                          "can be protected", x->domid);
    if (!rc)
        rc = rm_xen_check_device_model(x->host, x->domid, err);
    if (!rc)
        rc = rm_xen_disks_protect(x->host, x->domid, o->no_disk,
                                  o->disk_buffer_bytes, &x->disks,
                                  x->b.unreplicated, &x->b.nr_unreplicated,
                                  err);
    if (rc)
        goto fail;
    x->b.disklog = rm_xen_disks_log(x->disks);
    snprintf(x->b.vm_name, sizeof(x->b.vm_name), "%s", di.name);
    x->b.guest_bytes = di.nr_pages * 4096;
    x->b.nr_vcpus = di.nr_vcpus;
    x->sarg.host = x->host;
    x->sarg.domid = x->domid;
    x->sarg.suspend_timeout_ms = o->suspend_timeout_ms;
    x->disk_buffer_bytes = o->disk_buffer_bytes;
    if (!o->no_netbuf) {
        rc = hold_vifs(x, &x->b.netbuf, err);
        if (rc)
            goto fail;
    }
    *out = &x->b;
    return 0;
fail:
    xen_close(&x->b);
    return rc;
}

int rm_xen_backend_replica(const char *config, const char *name,
                           const char *replica_name,
                           const char *const *disk_paths, unsigned nr_disks,
                           bool disk_sync, struct rm_backend **out,
                           struct rm_error *err)
{
    struct xen_backend *x;
    struct rm_xen_dominfo di;
    int rc;

    *out = NULL;
    rc = xen_new(&x, err);
    if (rc)
        return rc;
    x->replica = true;
    rc = rm_disk_replica_open_images(disk_paths, nr_disks, disk_sync,
                                     &x->b.disk_replica, err);
    if (rc)
        goto fail;
    x->b.nr_replica_disks = nr_disks;
    snprintf(x->b.vm_name, sizeof(x->b.vm_name), "%s", name);
    if (replica_name)
        snprintf(x->replica_name, sizeof(x->replica_name), "%s",
                 replica_name);
    else
        snprintf(x->replica_name, sizeof(x->replica_name), "%s--replica",
                 name);
    rc = rm_xen_replica_create(x->host, config, x->replica_name, &x->domid,
                               err);
    if (rc)
        goto fail;
    x->rarg.host = x->host;
    x->rarg.domid = x->domid;
    /* The config's type decides: a PV domain takes a PV stream. */
    x->rops = &rm_xen_restore_ops;
    if (rm_xen_dominfo(x->host, x->domid, &di, err) == 0 && !di.hvm)
        x->rops = &rm_xen_pv_restore_ops;
    *out = &x->b;
    return 0;
fail:
    xen_close(&x->b);
    return rc;
}
