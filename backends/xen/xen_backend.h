/* SPDX-License-Identifier: MIT */
/*
 * Xen as a backend (backends/backend.h), run in dom0: the VM is a domain
 * that lives on its own (not in this process).  The backend chooses the
 * save and restore ops by the guest's type (backends/xen/xen_sr.h).
 */
#ifndef REMUS_BACKENDS_XEN_XEN_BACKEND_H
#define REMUS_BACKENDS_XEN_XEN_BACKEND_H

#include <stdbool.h>

#include "backends/backend.h"

struct rm_xen_protect_opts {
    bool no_netbuf;               /* -n: output is not held */
    bool no_disk;                 /* -d: disks (VBDs) may go unreplicated */
    unsigned suspend_timeout_ms;  /* per checkpoint's suspend (0: 30 s) */
    uint64_t disk_buffer_bytes;   /* cap on disk data logged and not
                                     acknowledged (0: default) */
};

/*
 * The running domain @domain (a name or a number) to protect.  The output
 * of every VIF goes through its own plug qdisc (netbuf/netbuf_plug.h), all
 * of them held and released at the same checkpoints (netbuf/netbuf_set.h),
 * unless o->no_netbuf; a VIF whose plug cannot be set up refuses the
 * protection, naming it.  Refused too: a PV guest (its checkpoints need PV
 * log-dirty, which needs shadow paging), a domain with a device model (its
 * state is not checkpointed) and one with disks (VBDs, not replicated)
 * unless o->no_disk (then a warning names them): xen_devices.h.  0 or
 * -errno with the reason in @err.
 */
int rm_xen_backend_protect(const char *domain,
                           const struct rm_xen_protect_opts *o,
                           struct rm_backend **out, struct rm_error *err);

/*
 * The replica of the guest NAME: the domain @replica_name (NULL:
 * NAME--replica) created paused from the guest's own xl config @config.
 * On takeover it is unpaused and renamed NAME once that name is free; if
 * it never takes over it is destroyed at close.  Its disks: the images
 * @disk_paths[0..nr_disks) receive the primary's served disks' epochs
 * (xen_disks.h: in the order of their VBD names); the replica's own VBDs
 * are the config's, e.g. phy:/dev/nbdM served from the same image by
 * `remus disk serve`.  0 or -errno.
 */
int rm_xen_backend_replica(const char *config, const char *name,
                           const char *replica_name,
                           const char *const *disk_paths, unsigned nr_disks,
                           bool disk_sync, struct rm_backend **out,
                           struct rm_error *err);

#endif
