/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend's ops for the generic save and restore engines: HVM and
 * PVH guests (Xen's x86 HVM stream type, libxc migration stream v3, the
 * records Xen's own save writes, so Xen's verify-stream-v2 and `xl
 * restore` accept what `remus save --xen` writes).
 *
 * Save (backend_arg: struct rm_xen_save_arg): log-dirty through shadow
 * control (HAP), pages through batched foreign mappings, the guest
 * suspended cooperatively at each checkpoint (backends/xen/xen_host.h) and
 * resumed "cancelled"; static data: the domain's CPUID and MSR policy;
 * per checkpoint: X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS.
 *
 * Restore (backend_arg: struct rm_xen_restore_arg): into an existing,
 * paused domain the caller prepared (rm_xen_replica_create).  Pages are
 * written through foreign mappings (populating what is missing) when a
 * checkpoint is whole; the CPU policy is set at the end of static data;
 * TSC info, HVM params and the HVM context are kept aside and applied at
 * stream_complete (END, or failover to the last whole checkpoint).  The
 * domain stays paused: the caller unpauses it.
 */
#ifndef REMUS_BACKENDS_XEN_XEN_SR_H
#define REMUS_BACKENDS_XEN_XEN_SR_H

#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/sr.h"

extern const struct rm_save_ops rm_xen_save_ops;
/* 64-bit PV guests, non-live only (backends/xen/xen_sr_pv_save.c,
 * xen_sr_pv_restore.c). */
extern const struct rm_save_ops rm_xen_pv_save_ops;
/* ... and their restore, into a domain `xl create -p` built from a
 * type = "pv" config (backend_arg: struct rm_xen_restore_arg). */
extern const struct rm_restore_ops rm_xen_pv_restore_ops;
extern const struct rm_restore_ops rm_xen_restore_ops;

struct rm_xen_save_arg {
    struct rm_xen_host *host;       /* not owned */
    uint32_t domid;
    unsigned suspend_timeout_ms;    /* per suspend (0: 30 s) */
    /* Out: statistics of the dirty log (for logs and benchmarks). */
    uint64_t harvests;
};

struct rm_xen_restore_arg {
    struct rm_xen_host *host;       /* not owned */
    uint32_t domid;                 /* the prepared, paused domain */
    /* Out */
    uint64_t pages_populated;       /* pfns the replica lacked */
};

/* X86_CPUID_POLICY and X86_MSR_POLICY of @domid (static data). */
typedef struct xc_interface_core xc_interface;
int rm_xen_write_cpu_policy(struct rm_save_ctx *ctx, xc_interface *xch,
                            uint32_t domid);

/* Set a restored domain's CPU policy from the stream's X86_CPUID_POLICY
 * and X86_MSR_POLICY bodies (none: keep the domain's); not const: Xen's
 * call takes them writable.  0 or -errno. */
int rm_xen_set_cpu_policy(struct rm_restore_ctx *ctx, xc_interface *xch,
                          uint32_t domid, void *cpuid,
                          uint32_t cpuid_len, void *msr,
                          uint32_t msr_len);

/* A record body kept aside until a checkpoint is applied (restores). */
struct rm_xen_blob {
    void *data;     /* owned; free() */
    uint32_t len;
};

/* Replace @b's contents with a copy of @len bytes of @data.  0 or
 * -ENOMEM (@b unchanged). */
int rm_xen_blob_keep(struct rm_xen_blob *b, const void *data, uint32_t len);

/*
 * The checks both restores make of the records they share with Xen's
 * own stream: X86_CPUID_POLICY and X86_MSR_POLICY (whole entries) and
 * X86_TSC_INFO (its exact size).  0 when @rec passes, -EBADMSG naming
 * what is wrong, 1 when @rec is none of them.
 */
int rm_xen_check_cpu_record(struct rm_restore_ctx *ctx,
                            const struct rm_record *rec);

/* The domain header's Xen version fields for this host. */
int rm_xen_version(struct rm_xen_host *h, uint32_t *major, uint32_t *minor);

#endif
