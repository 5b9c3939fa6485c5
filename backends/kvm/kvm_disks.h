/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's disk in a protection (common/disklog.h): the protected
 * VM's disk device (backends/kvm/disk.c) logs each guest write into the
 * epoch log through its observer; a replica keeps its own image, on which
 * it runs once it takes over.
 */
#ifndef REMUS_BACKENDS_KVM_KVM_DISKS_H
#define REMUS_BACKENDS_KVM_KVM_DISKS_H

#include <stdbool.h>

#include "backends/backend.h"
#include "backends/kvm/vmm.h"
#include "common/disklog.h"

/*
 * Log @vm's disk, if it has one: b->disklog gets the log (NULL: no disk,
 * or @unreplicated, -F -d: then a warning says the disk is left behind and
 * b->unreplicated names it for the handshake).  @max_unacked_bytes caps
 * the data logged and not acknowledged (0: the log's default).  0 or
 * -errno with the reason.
 */
int rm_kvm_disks_protect(struct rm_vm *vm, bool unreplicated,
                         uint64_t max_unacked_bytes, struct rm_backend *b,
                         struct rm_error *err);
/* A save of @vm into a file (vmctl's "save"): *out gets a log of its
 * disk, observed from now on (NULL: no disk); the save engine starts the
 * logging and queues the full copy.  Free it with
 * rm_kvm_disks_unprotect().  0 or -errno with the reason. */
int rm_kvm_disks_save(struct rm_vm *vm, struct rm_disklog **out,
                      struct rm_error *err);
/* Stop logging @vm's disk into @log and free it (NULL: nothing).  A guest
 * write waiting for room goes on, unlogged. */
void rm_kvm_disks_unprotect(struct rm_vm *vm, struct rm_disklog *log);

#endif
