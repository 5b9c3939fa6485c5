/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen"
#include "backends/xen/xen_host.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xenstore.h>

#include "backends/xen/xen_suspend_wait.h"
#include "common/io.h"
#include "common/log.h"

struct rm_xen_host {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    xenevtchn_handle *xce;
    struct xs_handle *xsh;
    xentoollog_logger_stdiostream *xtl;
};

struct xc_interface_core *rm_xen_xch(struct rm_xen_host *h) { return h->xch; }

struct xc_interface_core *rm_xen_xch_open_another(struct rm_xen_host *h)
{
    return xc_interface_open((xentoollog_logger *)h->xtl,
                             (xentoollog_logger *)h->xtl, 0);
}
struct xenforeignmemory_handle *rm_xen_fmem(struct rm_xen_host *h)
{
    return h->fmem;
}
struct xs_handle *rm_xen_xsh(struct rm_xen_host *h) { return h->xsh; }
struct xenevtchn_handle *rm_xen_xce(struct rm_xen_host *h) { return h->xce; }

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void rm_xen_host_close(struct rm_xen_host *h)
{
    if (!h)
        return;
    if (h->xsh)
        xs_close(h->xsh);
    if (h->xce)
        xenevtchn_close(h->xce);
    if (h->fmem)
        xenforeignmemory_close(h->fmem);
    if (h->xch)
        xc_interface_close(h->xch);
    if (h->xtl)
        xtl_logger_destroy((xentoollog_logger *)h->xtl);
    free(h);
}

int rm_xen_host_open(struct rm_xen_host **out, struct rm_error *err)
{
    struct rm_xen_host *h = calloc(1, sizeof(*h));
    const char *what = NULL;
    int rc = 0;

    *out = NULL;
    if (!h)
        return rm_error_set(err, -ENOMEM, "out of memory");
    /* Xen's libraries report through xentoollog: errors only, to stderr
     * (ours carry the context). */
    h->xtl = xtl_createlogger_stdiostream(stderr, XTL_ERROR, 0);
    h->xch = xc_interface_open((xentoollog_logger *)h->xtl,
                               (xentoollog_logger *)h->xtl, 0);
    if (!h->xch) {
        what = "the hypervisor (libxenctrl: /dev/xen/privcmd)";
        goto fail;
    }
    h->fmem = xenforeignmemory_open((xentoollog_logger *)h->xtl, 0);
    if (!h->fmem) {
        what = "foreign memory (libxenforeignmemory)";
        goto fail;
    }
    h->xce = xenevtchn_open((xentoollog_logger *)h->xtl, 0);
    if (!h->xce) {
        what = "event channels (libxenevtchn: /dev/xen/evtchn)";
        goto fail;
    }
    h->xsh = xs_open(0);
    if (!h->xsh) {
        what = "xenstore (is xenstored running?)";
        goto fail;
    }
    *out = h;
    return 0;
fail:
    rc = errno ? -errno : -EIO;
    rm_error_set(err, rc, "cannot open %s: %s; remus's Xen backend runs in "
                 "dom0", what, strerror(-rc));
    rm_xen_host_close(h);
    return rc;
}

/* ------------------------------------------------------------ domains */

/* rm_xen_dominfo without the name: hypercalls only, no xenstored round
 * trip (2-4 ms under TCG); what a wait for a state polls. */
static int domain_state(struct rm_xen_host *h, uint32_t domid,
                        struct rm_xen_dominfo *out, struct rm_error *err)
{
    xc_dominfo_t info;
    int n;

    memset(out, 0, sizeof(*out));
    n = xc_domain_getinfo(h->xch, domid, 1, &info);
    if (n < 0)
        return rm_error_set(err, -errno, "cannot query domain %u: %s",
                            domid, strerror(errno));
    if (n != 1 || info.domid != domid)
        return rm_error_set(err, -ENOENT, "there is no domain %u", domid);
    out->domid = domid;
    out->hvm = info.hvm;
    out->hap = info.hap;
    out->paused = info.paused;
    out->shutdown = info.shutdown;
    out->dying = info.dying;
    out->crashed = info.crashed;
    out->shutdown_reason = info.shutdown_reason;
    out->nr_pages = info.nr_pages;
    out->nr_vcpus = info.max_vcpu_id + 1;
    return 0;
}

int rm_xen_dominfo(struct rm_xen_host *h, uint32_t domid,
                   struct rm_xen_dominfo *out, struct rm_error *err)
{
    char path[64], *name;
    unsigned len;
    int rc = domain_state(h, domid, out, err);

    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/local/domain/%u/name", domid);
    name = xs_read(h->xsh, XBT_NULL, path, &len);
    if (name) {
        snprintf(out->name, sizeof(out->name), "%s", name);
        free(name);
    }
    return 0;
}

int rm_xen_domid(struct rm_xen_host *h, const char *what, uint32_t *domid,
                 struct rm_error *err)
{
    char **ents, path[64], *end;
    unsigned n = 0, i, len;
    unsigned long v;
    int rc = -ENOENT;

    v = strtoul(what, &end, 10);
    if (*what && !*end && v < DOMID_FIRST_RESERVED) {
        struct rm_xen_dominfo di;

        rc = rm_xen_dominfo(h, (uint32_t)v, &di, err);
        if (!rc)
            *domid = (uint32_t)v;
        return rc;
    }
    ents = xs_directory(h->xsh, XBT_NULL, "/local/domain", &n);
    if (!ents)
        return rm_error_set(err, errno ? -errno : -EIO, "cannot list the "
                            "domains in xenstore: %s", strerror(errno));
    for (i = 0; i < n && rc == -ENOENT; i++) {
        char *name;

        snprintf(path, sizeof(path), "/local/domain/%s/name", ents[i]);
        name = xs_read(h->xsh, XBT_NULL, path, &len);
        if (name && !strcmp(name, what)) {
            *domid = (uint32_t)strtoul(ents[i], NULL, 10);
            rc = 0;
        }
        free(name);
    }
    free(ents);
    if (rc)
        rm_error_set(err, rc, "there is no domain named '%s'", what);
    return rc;
}

/* ------------------------------------------------------------ suspend */

static const char *shutdown_reason_name(unsigned r)
{
    switch (r) {
    case SHUTDOWN_poweroff: return "poweroff";
    case SHUTDOWN_reboot: return "reboot";
    case SHUTDOWN_suspend: return "suspend";
    case SHUTDOWN_crash: return "crash";
    case SHUTDOWN_watchdog: return "watchdog";
    case SHUTDOWN_soft_reset: return "soft reset";
    default: return "unknown";
    }
}

/* The guest's suspend event channel, when it published one: bound (once)
 * and its local port returned; -ENOENT when there is none. */
static int suspend_evtchn(struct rm_xen_host *h, uint32_t domid)
{
    char path[96], *val;
    unsigned len;
    unsigned long port;
    xenevtchn_port_or_error_t local;

    snprintf(path, sizeof(path), "/local/domain/%u/device/suspend/"
             "event-channel", domid);
    val = xs_read(h->xsh, XBT_NULL, path, &len);
    if (!val)
        return -ENOENT;
    port = strtoul(val, NULL, 10);
    free(val);
    if (!port)
        return -ENOENT;
    local = xenevtchn_bind_interdomain(h->xce, domid, (evtchn_port_t)port);
    if (local < 0)
        return -ENOENT;      /* fall back to xenstore */
    return local;
}

int rm_xen_suspend_ask(struct rm_xen_host *h, uint32_t domid,
                       struct rm_error *err)
{
    char path[64];
    int port, rc;

    port = suspend_evtchn(h, domid);
    if (port >= 0) {
        rc = xenevtchn_notify(h->xce, (evtchn_port_t)port);
        xenevtchn_unbind(h->xce, (evtchn_port_t)port);
        if (rc == 0)
            return 0;
    }
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown",
             domid);
    if (!xs_write(h->xsh, XBT_NULL, path, "suspend", 7))
        return rm_error_set(err, -EIO, "cannot ask domain %u to suspend "
                            "(writing %s): %s", domid, path,
                            strerror(errno));
    return 0;
}

/* @domid's state by @poll's flags call, as rm_xen_dominfo's fields. */
static int polled_state(const struct rm_xen_suspend_poll *poll,
                        uint32_t domid, struct rm_xen_dominfo *di,
                        struct rm_error *err)
{
    uint32_t f = 0;
    int rc = poll->flags(poll->opaque, &f);

    if (rc)
        return rm_error_set(err, rc, "cannot query domain %u: %s", domid,
                            strerror(-rc));
    memset(di, 0, sizeof(*di));
    di->domid = domid;
    di->shutdown = f & XEN_DOMINF_shutdown;
    di->dying = f & XEN_DOMINF_dying;
    di->shutdown_reason = (f >> XEN_DOMINF_shutdownshift) &
                          XEN_DOMINF_shutdownmask;
    di->crashed = di->shutdown && di->shutdown_reason == SHUTDOWN_crash;
    return 0;
}

int rm_xen_suspend_wait(struct rm_xen_host *h, uint32_t domid,
                        unsigned timeout_ms,
                        const struct rm_xen_suspend_poll *poll,
                        struct rm_error *err)
{
    struct rm_xen_suspend_wait defaults, *w = &defaults;
    struct rm_xen_dominfo di;
    uint64_t t0 = rm_now_ns(), now, deadline;
    unsigned polls = 0;
    char path[64];
    int rc;

    deadline = t0 + (uint64_t)timeout_ms * 1000000ull;
    rm_xen_suspend_wait_init(&defaults);
    if (poll && poll->wait)
        w = poll->wait;
    for (;;) {
        rc = poll && poll->flags ? polled_state(poll, domid, &di, err)
                                 : domain_state(h, domid, &di, err);
        if (rc)
            return rc;
        now = rm_now_ns();
        if (di.shutdown && di.shutdown_reason == SHUTDOWN_suspend) {
            rm_xen_suspend_wait_seen(w, now - t0);
            return 0;
        }
        if (di.shutdown || di.crashed || di.dying)
            return rm_error_set(err, -ESRCH, "domain %u %s instead of "
                                "suspending (%s)", domid,
                                di.crashed ? "crashed" : "shut down",
                                shutdown_reason_name(di.shutdown_reason));
        if (now >= deadline) {
            snprintf(path, sizeof(path), "/local/domain/%u/control/"
                     "shutdown", domid);
            xs_write(h->xsh, XBT_NULL, path, "", 0);
            return rm_error_set(err, -ETIMEDOUT, "domain %u did not "
                                "suspend within %u ms (does its kernel "
                                "handle control/shutdown = suspend?)",
                                domid, timeout_ms);
        }
        switch (rm_xen_suspend_wait_step(w, now - t0, ++polls)) {
        case RM_XEN_POLL_NOW:
            sched_yield();
            break;
        case RM_XEN_POLL_SLEEP:
            rm_sleep_ns(RM_XEN_POLL_SLEEP_NS);
            rm_xen_suspend_wait_slept(w, rm_now_ns() - now);
            break;
        case RM_XEN_POLL_SLEEP_LONG:
            rm_sleep_ns(RM_XEN_POLL_LONG_NS);
            break;
        }
    }
}

int rm_xen_suspend(struct rm_xen_host *h, uint32_t domid,
                   unsigned timeout_ms, struct rm_error *err)
{
    int rc = rm_xen_suspend_ask(h, domid, err);

    return rc ? rc : rm_xen_suspend_wait(h, domid, timeout_ms, NULL, err);
}

int rm_xen_resume_cancelled(struct rm_xen_host *h, uint32_t domid,
                            struct rm_error *err)
{
    if (xc_domain_resume(h->xch, domid, 1))
        return rm_error_set(err, errno ? -errno : -EIO, "cannot resume "
                            "domain %u after its checkpoint: %s", domid,
                            strerror(errno));
    return 0;
}

int rm_xen_told_running(struct rm_xen_host *h, uint32_t domid,
                        struct rm_error *err)
{
    if (!xs_resume_domain(h->xsh, domid))
        return rm_error_set(err, errno ? -errno : -EIO, "domain %u runs "
                            "again, but xenstored could not be told so "
                            "(XS_RESUME: %s): Xen's toolstack would not "
                            "see its next suspend", domid, strerror(errno));
    return 0;
}

void rm_xen_told_running_or_warn(struct rm_xen_host *h, uint32_t domid)
{
    struct rm_error e = { 0 };

    if (rm_xen_told_running(h, domid, &e))
        LOG_WARN("%s", rm_error_str(&e));
}

int rm_xen_resume_for_good(struct rm_xen_host *h, uint32_t domid,
                           struct rm_error *err)
{
    int rc = rm_xen_resume_cancelled(h, domid, err);

    return rc ? rc : rm_xen_told_running(h, domid, err);
}

int rm_xen_unpause(struct rm_xen_host *h, uint32_t domid,
                   struct rm_error *err)
{
    if (xc_domain_unpause(h->xch, domid))
        return rm_error_set(err, errno ? -errno : -EIO, "cannot unpause "
                            "domain %u: %s", domid, strerror(errno));
    return 0;
}

int rm_xen_pause(struct rm_xen_host *h, uint32_t domid, struct rm_error *err)
{
    if (xc_domain_pause(h->xch, domid))
        return rm_error_set(err, errno ? -errno : -EIO, "cannot pause "
                            "domain %u: %s", domid, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------ VIFs */

int rm_xen_vifs(struct rm_xen_host *h, uint32_t domid, char (*names)[16],
                int max, struct rm_error *err)
{
    char path[96], **ents, *val;
    unsigned n = 0, i, len;
    int found = 0;

    snprintf(path, sizeof(path), "/local/domain/0/backend/vif/%u", domid);
    ents = xs_directory(h->xsh, XBT_NULL, path, &n);
    if (!ents)
        return errno == ENOENT ? 0 : rm_error_set(err, -errno, "cannot "
                                                  "read %s: %s", path,
                                                  strerror(errno));
    for (i = 0; i < n && found < max; i++) {
        snprintf(path, sizeof(path), "/local/domain/0/backend/vif/%u/%s/"
                 "vifname", domid, ents[i]);
        val = xs_read(h->xsh, XBT_NULL, path, &len);
        if (val && *val)
            snprintf(names[found], 16, "%.15s", val);
        else
            snprintf(names[found], 16, "vif%u.%.4s", domid, ents[i]);
        free(val);
        found++;
    }
    free(ents);
    return (int)n;
}

/* ------------------------------------------------------------ toolstack */

int rm_xen_xl(const char *const *args, unsigned timeout_ms,
              struct rm_error *err)
{
    char cmd[256];
    size_t off = 0;
    uint64_t deadline = now_ms() + timeout_ms;
    pid_t pid, w = 0;
    int status = 0, i;

    off += (size_t)snprintf(cmd, sizeof(cmd), "xl");
    for (i = 0; args[i] && off < sizeof(cmd); i++)
        off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " %s",
                                args[i]);
    pid = fork();
    if (pid < 0)
        return rm_error_set(err, -errno, "cannot run %s: %s", cmd,
                            strerror(errno));
    if (pid == 0) {
        const char *argv[32];
        int k;

        argv[0] = "xl";
        for (k = 0; args[k] && k < 30; k++)
            argv[k + 1] = args[k];
        argv[k + 1] = NULL;
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execvp("xl", (char *const *)argv);
        _exit(127);
    }
    while ((w = waitpid(pid, &status, WNOHANG)) == 0) {
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return rm_error_set(err, -ETIMEDOUT, "%s did not finish within "
                                "%u ms", cmd, timeout_ms);
        }
        rm_sleep_ms(20);
    }
    if (w < 0)
        return rm_error_set(err, -errno, "waiting for %s: %s", cmd,
                            strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return rm_error_set(err, -ENOENT, "%s: xl not found (is Xen's "
                            "toolstack installed?)", cmd);
    return rm_error_set(err, -EIO, "%s failed (%s %d)", cmd,
                        WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status)
                                          : WTERMSIG(status));
}

int rm_xen_replica_create(struct rm_xen_host *h, const char *config,
                          const char *name, uint32_t *domid,
                          struct rm_error *err)
{
    struct rm_error ignore = { 0 };
    struct rm_xen_dominfo di;
    char name_arg[96];
    const char *args[] = { "create", "-p", "-q", config, name_arg, NULL };
    int rc;

    if (strchr(name, '"') || strchr(name, '\n') || !*name ||
        strlen(name) > 63)
        return rm_error_set(err, -EINVAL, "'%s' cannot name a domain",
                            name);
    if (!rm_xen_domid(h, name, domid, &ignore))
        return rm_error_set(err, -EEXIST, "a domain named '%s' exists "
                            "already (domain %u): not creating a replica "
                            "over it", name, *domid);
    snprintf(name_arg, sizeof(name_arg), "name=\"%s\"", name);
    rc = rm_xen_xl(args, 120000, err);
    if (rc)
        return rm_error_set(err, rc, "creating the replica domain '%s' "
                            "from '%s'", name, config);
    rc = rm_xen_domid(h, name, domid, err);
    if (!rc)
        rc = rm_xen_dominfo(h, *domid, &di, err);
    if (!rc && !di.paused) {
        xc_domain_pause(h->xch, *domid);
        LOG_WARN("the replica domain %u was running: paused", *domid);
    }
    if (!rc)
        LOG_INFO("replica domain '%s' is domain %u (paused, from %s)", name,
                 *domid, config);
    return rc;
}

int rm_xen_destroy(struct rm_xen_host *h, uint32_t domid,
                   struct rm_error *err)
{
    char id[16];
    const char *args[] = { "destroy", id, NULL };
    int rc;

    snprintf(id, sizeof(id), "%u", domid);
    rc = rm_xen_xl(args, 60000, err);
    if (rc && xc_domain_destroy(h->xch, domid) == 0) {
        LOG_WARN("xl destroy %u failed; destroyed it through libxenctrl",
                 domid);
        rc = 0;
    }
    return rc;
}
