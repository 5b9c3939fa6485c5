/* SPDX-License-Identifier: MIT */
/*
 * The embedded KVM micro-VMM as a backend (backends/backend.h): the VM
 * runs in this process.
 */
#ifndef REMUS_BACKENDS_KVM_KVM_BACKEND_H
#define REMUS_BACKENDS_KVM_KVM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/kvm/vmm.h"

struct rm_kvm_protect_opts {
    bool no_netbuf;               /* -n: output is not held */
    uint64_t netbuf_max_bytes;    /* bound on held output (0: default) */
    int release_log_fd;           /* (audit) a line per released frame;
                                     -1: none.  Not owned */
    bool no_disk;                 /* -F -d: the VM's disk is left behind */
    uint64_t disk_buffer_bytes;   /* cap on disk data logged and not
                                     acknowledged (0: default) */
    bool colo;                    /* --colo: output through COLO's
                                     comparator (netbuf/netbuf_colo.h) */
    unsigned compare_timeout_ms;  /* --compare-timeout (0: default) */
};

/*
 * The VM described by @cfg, created and started here, its output going
 * through an epoch queue (netbuf/) unless o->no_netbuf, its disk's writes
 * through an epoch log (kvm_disks.h) unless o->no_disk.  0 or -errno with
 * the reason in @err; *out is closed with rm_backend_close().
 */
int rm_kvm_backend_protect(const struct rm_vm_config *cfg,
                           const struct rm_kvm_protect_opts *o,
                           struct rm_backend **out, struct rm_error *err);

struct rm_kvm_replica_opts {
    struct rm_vm_config cfg;      /* name, tap, tap_netns, console: the
                                     rest comes from the stream */
    uint64_t max_mem_bytes;       /* refuse larger guests */
    const struct rm_vm_config *expect;  /* the VM this side knows, or NULL
                                     (see rm_kvm_restore_arg) */
    const char *const *disk_paths;  /* the replica's disk image (at most
                                     one: the micro-VMM's disk 0) */
    unsigned nr_disks;
    bool disk_sync;               /* fdatasync before every ack */
    uint64_t colo_overlay_bytes;  /* COLO: the replica's disk overlay
                                     (0: 256 MiB); a checkpoint is asked
                                     at half of it */
    bool test_colo_no_fold;       /* TESTS ONLY: a COLO takeover drops
                                     what the replica wrote since its
                                     checkpoint instead of keeping it */
};

/* An empty replica, filled by the restore engine (the VM is created when
 * the stream's VM_INFO arrives).  0 or -errno. */
int rm_kvm_backend_replica(const struct rm_kvm_replica_opts *o,
                           struct rm_backend **out, struct rm_error *err);

/* The VM (protected; a replica once restored), or NULL: for the VM's
 * control socket (backends/kvm/vmctl.h). */
struct rm_vm *rm_kvm_backend_vm(struct rm_backend *b);

#endif
