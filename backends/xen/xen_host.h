/* SPDX-License-Identifier: MIT */
/*
 * The Xen host, as the Xen backend sees it: the handles to the hypervisor
 * (libxenctrl, libxenforeignmemory, libxenevtchn, libxenstore) and the
 * domain operations the save/restore ops and the CLI need.  Runs in dom0
 * (or a domain with the same privileges).
 *
 * Replica domains.  A secondary restores into a domain it prepares itself:
 * `xl create -p CONFIG name=NAME` with the protected guest's own config
 * file.  libxl then builds a paused domain with the same memory layout,
 * vCPUs and special pages (xenstore and console rings at the same pfns,
 * its own event channels to xenstored/xenconsoled), and its own devices
 * (a VIF per vif= line, its backends waiting for the frontend).  The
 * restore ops overwrite its memory, CPU policy, TSC, HVM params and HVM
 * context from the stream; the guest, suspended cooperatively at every
 * checkpoint, wakes up in the replica as after a migration: it reconnects
 * its frontends to the replica's backends.  The replica never ran, so its
 * CPU policy may still be replaced.  On failover it is unpaused and, once
 * the primary's name is free, renamed to it (`xl rename`).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_HOST_H
#define REMUS_BACKENDS_XEN_XEN_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct rm_xen_host;   /* opaque: the handles */

/* Open the handles.  0 or -errno (not dom0, no privcmd, no xenstored). */
int rm_xen_host_open(struct rm_xen_host **out, struct rm_error *err);
void rm_xen_host_close(struct rm_xen_host *h);

/* The raw handles, for backends/xen/xen_sr.c only. */
struct xc_interface_core;
struct xenforeignmemory_handle;
struct xs_handle;
struct xenevtchn_handle;
struct xc_interface_core *rm_xen_xch(struct rm_xen_host *h);
/* A second libxenctrl handle with the host's logger, for a thread of its
 * own (a handle is used by one thread at a time; the caller closes it,
 * xc_interface_close).  NULL on failure, errno set. */
struct xc_interface_core *rm_xen_xch_open_another(struct rm_xen_host *h);
struct xenforeignmemory_handle *rm_xen_fmem(struct rm_xen_host *h);
struct xs_handle *rm_xen_xsh(struct rm_xen_host *h);
struct xenevtchn_handle *rm_xen_xce(struct rm_xen_host *h);

struct rm_xen_dominfo {
    uint32_t domid;
    bool hvm;              /* HVM or PVH (Xen's "hvm container") */
    bool hap;
    bool paused, shutdown, dying, crashed;
    unsigned shutdown_reason;  /* SHUTDOWN_* when shutdown */
    uint64_t nr_pages;
    unsigned nr_vcpus;     /* max_vcpu_id + 1 */
    char name[64];
};

/*
 * Find a domain by name or by number.  0, or -ENOENT with a message
 * naming @what.
 */
int rm_xen_domid(struct rm_xen_host *h, const char *what, uint32_t *domid,
                 struct rm_error *err);

/* Information on @domid.  0 or -ENOENT (no such domain) / -errno. */
int rm_xen_dominfo(struct rm_xen_host *h, uint32_t domid,
                   struct rm_xen_dominfo *out, struct rm_error *err);

/*
 * Suspend the guest cooperatively: through its suspend event channel when
 * it published one (device/suspend/event-channel), else by writing
 * "suspend" to its control/shutdown node; then wait (at most @timeout_ms)
 * until Xen reports it shut down for suspend (its state polled by
 * hypercall: a Linux guest publishes no suspend event channel, so Xen
 * has nothing to signal us on).  A guest that does not
 * suspend in time gets its request withdrawn and -ETIMEDOUT; a guest that
 * crashed or shut down for another reason gets -ESRCH naming the reason.
 */
int rm_xen_suspend(struct rm_xen_host *h, uint32_t domid,
                   unsigned timeout_ms, struct rm_error *err);

/* rm_xen_suspend() in its two steps, for a caller that polls its own way:
 * the request (0 or -EIO naming the node it could not write), then the
 * wait, as above. */
int rm_xen_suspend_ask(struct rm_xen_host *h, uint32_t domid,
                       struct rm_error *err);
struct rm_xen_suspend_wait;
struct rm_xen_suspend_poll {
    /* When to poll (xen_suspend_wait.h), told every sleep and the freeze
     * seen; NULL: its defaults, which never spin past the first polls. */
    struct rm_xen_suspend_wait *wait;
    /* The domain's XEN_DOMINF_* flags (a cheaper call than libxenctrl's
     * domain info); NULL: that.  0 or -errno. */
    int (*flags)(void *opaque, uint32_t *flags);
    void *opaque;
};
int rm_xen_suspend_wait(struct rm_xen_host *h, uint32_t domid,
                        unsigned timeout_ms,
                        const struct rm_xen_suspend_poll *poll,
                        struct rm_error *err);

/*
 * Resume a guest suspended by rm_xen_suspend() in the same domain (the
 * suspend is cancelled: the guest's suspend call returns 1 and it keeps
 * its devices), as after every checkpoint.  0 or -errno.
 *
 * xenstored is not told here (rm_xen_told_running): a checkpoint loop
 * tells it once, when it ends; a single suspend and resume (an aborted
 * save, page offlining) uses rm_xen_resume_for_good.
 */
int rm_xen_resume_cancelled(struct rm_xen_host *h, uint32_t domid,
                            struct rm_error *err);

/*
 * Tell xenstored that @domid runs again after suspends (XS_RESUME, as
 * libxl does).  xenstored fires @releaseDomain once per shutdown until it
 * is told, and Xen's own toolstack sees a suspend only through that
 * watch: without it `xl save`, `xl migrate` or `xl remus` of the guest
 * would wait 60 s for a suspend it cannot see and give up.  0 or -errno.
 */
int rm_xen_told_running(struct rm_xen_host *h, uint32_t domid,
                        struct rm_error *err);
/* The same, for a cleanup: a failure is logged, not returned. */
void rm_xen_told_running_or_warn(struct rm_xen_host *h, uint32_t domid);
/* rm_xen_resume_cancelled, then rm_xen_told_running: the guest's last
 * suspend for now.  0 or -errno. */
int rm_xen_resume_for_good(struct rm_xen_host *h, uint32_t domid,
                           struct rm_error *err);

/*
 * The dom0 network interfaces of the domain's VIFs (from the vif backend
 * nodes in xenstore: vifname, else "vif<domid>.<devid>"), up to @max,
 * each at most 16 bytes with the NUL.  Returns the number the domain has
 * (only @max are filled when it exceeds @max) or -errno.
 */
int rm_xen_vifs(struct rm_xen_host *h, uint32_t domid, char (*names)[16],
                int max, struct rm_error *err);

/*
 * Run the toolstack: `xl ARGS...` (NULL-terminated), its output to our
 * stderr, at most @timeout_ms.  0 when it exits 0; otherwise -EIO with
 * "xl ARG0 ARG1 ... failed (exit N)".
 */
int rm_xen_xl(const char *const *args, unsigned timeout_ms,
              struct rm_error *err);

/*
 * Create the replica domain @name from @config, paused (see above), and
 * return its domid.  Refuses when a domain @name exists.  0 or -errno.
 */
int rm_xen_replica_create(struct rm_xen_host *h, const char *config,
                          const char *name, uint32_t *domid,
                          struct rm_error *err);

/* Destroy a domain through the toolstack (`xl destroy`: devices and
 * xenstore cleaned up too).  0 or -errno. */
int rm_xen_destroy(struct rm_xen_host *h, uint32_t domid,
                   struct rm_error *err);

/* Pause (a VM that must not run on: it stays paused for good).  0 or
 * -errno. */
int rm_xen_pause(struct rm_xen_host *h, uint32_t domid, struct rm_error *err);

/* Unpause (a replica that takes over).  0 or -errno. */
int rm_xen_unpause(struct rm_xen_host *h, uint32_t domid,
                   struct rm_error *err);

#endif
