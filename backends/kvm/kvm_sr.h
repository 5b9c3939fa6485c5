/* SPDX-License-Identifier: MIT */
/*
 * The KVM backend's ops for the generic save and restore engines.
 *
 * Save: backend_arg is the struct rm_vm * to save (running or paused).
 * Restore: backend_arg is a struct rm_kvm_restore_arg; the VM is created
 * when the stream's KVM_VM_INFO record is applied (memory, vCPUs, the
 * stream's MAC and IP, the caller's TAP/console/name), filled as records
 * arrive, and its vCPU and device state applied at stream_complete (END,
 * or the engine's failover to the last committed checkpoint).  It is then
 * handed to the caller in arg->vm, paused; if the restore failed, the
 * backend destroys it (no VM is left behind).
 */
#ifndef REMUS_BACKENDS_KVM_KVM_SR_H
#define REMUS_BACKENDS_KVM_KVM_SR_H

#include <pthread.h>

#include "backends/kvm/vmm.h"
#include "common/sr.h"

extern const struct rm_save_ops rm_kvm_save_ops;
extern const struct rm_restore_ops rm_kvm_restore_ops;

struct rm_kvm_restore_arg {
    struct rm_vm_config cfg;   /* name, tap, console, net_out: the rest
                                  comes from the stream */
    uint64_t max_mem_bytes;    /* refuse larger guests (0: 4 GiB) */
    const struct rm_vm_config *expect;  /* the VM this side knows (receive
                                  --config), or NULL: a stream whose VM_INFO
                                  has another MAC, IP, netmask, memory size
                                  or vCPU count is refused on arrival */
    struct rm_vm *vm;          /* out: the restored VM (caller destroys) */
    struct rm_vm *replica;     /* the VM being restored (read-only view,
                                  valid while rm_restore runs) */
    pthread_mutex_t *replica_lock;  /* optional (NULL: none): held while
                                  replica is set or cleared and vm handed
                                  over or destroyed, so that a reader in
                                  another thread that holds it sees a
                                  live VM or none */
    /* COLO: the replica has run since a checkpoint was applied, so a
     * failover keeps its current state (stream_complete applies no state
     * kept aside: it is older than the replica's memory). */
    bool colo_ran;
    struct kvm_restore *state; /* the restore's own (rm_kvm_restore_apply_
                                  state), valid while rm_restore runs */
};

/* COLO: apply the vCPU and device state of the checkpoint just committed
 * to the paused replica, so that it can run from it.  0 or -errno with the
 * reason in @err. */
int rm_kvm_restore_apply_state(struct rm_kvm_restore_arg *arg,
                               struct rm_error *err);

/* Hash of a VM's whole memory (tests and drills). */
uint64_t rm_kvm_mem_digest(struct rm_vm *vm);

#endif
