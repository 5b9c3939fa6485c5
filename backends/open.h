/* SPDX-License-Identifier: MIT */
/*
 * Opening a backend (backends/backend.h) by kind: the one place that
 * knows every backend, so that the command line chooses one by the VM's
 * description (`backend = kvm|xen`) or --xen and calls the same sessions
 * for all.  Each backend's own open functions stay in its folder.
 */
#ifndef REMUS_BACKENDS_OPEN_H
#define REMUS_BACKENDS_OPEN_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/kvm/kvm_backend.h"
#include "backends/kvm/vmm.h"
#include "common/disklog.h"

enum rm_backend_kind {
    RM_BACKEND_KIND_KVM = 0,      /* the embedded micro-VMM (default) */
    RM_BACKEND_KIND_XEN,          /* a Xen domain, from dom0 */
};

/* "kvm", "xen" (for messages). */
const char *rm_backend_kind_name(enum rm_backend_kind kind);
/* The kind a description's `backend = ...` names (NULL: kvm), or -EINVAL
 * with the reason. */
int rm_backend_kind_parse(const char *name, enum rm_backend_kind *kind,
                          struct rm_error *err);

/* The VM a primary protects. */
struct rm_backend_protect_spec {
    enum rm_backend_kind kind;
    const struct rm_vm_config *vm;   /* KVM: the VM, created and started
                                        here */
    const char *domain;              /* Xen: the running domain (name or
                                        id) */
    bool no_netbuf;                  /* -n: its output is not held */
    bool no_disk;                    /* -d: disks may go unreplicated */
    uint64_t netbuf_max_bytes;       /* KVM: bound on held output (0:
                                        default) */
    uint64_t disk_buffer_bytes;      /* cap on disk data logged and
                                        not acknowledged (0: default) */
    int release_log_fd;              /* KVM (audit): a line per released
                                        frame; -1: none.  Not owned */
    unsigned suspend_timeout_ms;     /* Xen: per checkpoint (0: 30 s) */
    bool colo;                       /* KVM, --colo: output through COLO's
                                        comparator */
    unsigned compare_timeout_ms;     /* --compare-timeout (0: default) */
};

/* The backend of @s's VM in the protected role.  0 or -errno with the
 * reason in @err. */
int rm_backend_open_protected(const struct rm_backend_protect_spec *s,
                              struct rm_backend **out, struct rm_error *err);

/* The replica a secondary keeps. */
struct rm_backend_replica_spec {
    enum rm_backend_kind kind;
    struct rm_kvm_replica_opts kvm;  /* KVM: name, TAP, console, limits,
                                        the expected VM */
    const char *xl_config;           /* Xen: the guest's own xl config */
    const char *name;                /* Xen: the guest's name */
    const char *replica_name;        /* Xen: the replica domain's name
                                        until it takes over (NULL:
                                        NAME--replica) */
    /* --disk PATH...: the replica images of disks 0, 1, ... */
    const char *disk_paths[RM_DISK_MAX];
    unsigned nr_disks;
    bool disk_sync;                  /* --disk-sync: fdatasync before every
                                        acknowledgement */
    bool test_colo_no_fold;          /* TESTS ONLY (KVM): see
                                        rm_kvm_replica_opts */
};

int rm_backend_open_replica(const struct rm_backend_replica_spec *s,
                            struct rm_backend **out, struct rm_error *err);

#endif
