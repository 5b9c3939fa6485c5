/* SPDX-License-Identifier: MIT */
/*
 * Page offlining for the KVM micro-VMM: move a guest frame off the host
 * page that backs it (a host page reported as failing: corrected memory
 * errors, as Xen's "offline pending"), while the guest is paused.
 *
 * The guest's memory is one anonymous private mapping registered as a KVM
 * memory slot.  To move guest frame G: pause the vCPUs; move the old page
 * (the same host frame) to a quarantine address with mremap, leaving a
 * hole at G; map a fresh anonymous page at G and copy the contents from
 * the quarantined one; check that G is now backed by another host frame
 * with identical contents; resume.  KVM follows the change through its
 * MMU notifier (the old translation is zapped when the page moves; the
 * guest's next access faults in the new page).  The old page stays
 * mapped, unused, in the VMM until the VM ends, so the host does not hand
 * it to anyone else meanwhile.  If any step fails, the old page is moved
 * back into place (the undo path) and nothing changed for the guest.
 *
 * Host frame numbers come from /proc/self/pagemap (needs CAP_SYS_ADMIN).
 */
#ifndef REMUS_BACKENDS_KVM_OFFLINE_H
#define REMUS_BACKENDS_KVM_OFFLINE_H

#include <stdint.h>

#include "backends/kvm/vmm.h"
#include "common/err.h"

/* The host frame backing guest frame @gfn.  0, -ENOENT (no host page:
 * never touched), -EPERM (no CAP_SYS_ADMIN), -ERANGE (gfn out of range). */
int rm_kvm_gfn_to_host_pfn(struct rm_vm *vm, uint64_t gfn, uint64_t *pfn,
                           struct rm_error *err);

/* The guest frames backed by host frame @pfn (several when KSM merged
 * identical pages), up to @max.  Returns how many, or -errno. */
int rm_kvm_host_pfn_to_gfns(struct rm_vm *vm, uint64_t pfn, uint64_t *gfns,
                            int max, struct rm_error *err);

/* Test hooks: make a step fail (to exercise the undo path). */
enum rm_kvm_offline_fault {
    RM_OFFLINE_FAULT_NONE = 0,
    RM_OFFLINE_FAULT_MAP,        /* mapping the fresh page fails */
    RM_OFFLINE_FAULT_VERIFY,     /* the copy does not verify */
};

struct rm_kvm_offline_result {
    uint64_t gfn;
    uint64_t old_pfn, new_pfn;
    uint64_t hash;               /* of the page's contents (unchanged) */
};

/*
 * Move guest frame @gfn off its host page (see above).  0 with @res
 * filled; or -errno with the reason, the guest frame back on its old
 * page, contents unchanged.  Pauses the VM unless it is paused already.
 */
int rm_kvm_offline_gfn(struct rm_vm *vm, uint64_t gfn,
                       enum rm_kvm_offline_fault fault,
                       struct rm_kvm_offline_result *res,
                       struct rm_error *err);

#endif
