/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's own requests on a VM's control socket (common/ctlsock.h:
 * $REMUS_RUN_DIR/NAME.sock):
 *   "save nonlive" | "save live" (+ " continue" to keep the VM running
 *       afterwards; without it the VM stops after a good save, as with
 *       `xl save`), with the output file descriptor (SCM_RIGHTS): the
 *       save engine runs on the VM in its own process and answers "ok
 *       BYTES PAGES ITERATIONS"; the file is synced (fsync) before the
 *       answer and before the VM stops.
 *   "frame gfn G" / "frame pfn P": where guest frame G lives on the host,
 *       or which guest frames host frame P backs: "ok GFN PFN" per frame.
 *   "offline-page gfn G [fault-map|fault-verify]" / "offline-page pfn P
 *       [...] [again]": move those guest frames off their host page: "ok
 *       GFN OLD NEW" per frame moved, at most 16 per request (the fault
 *       words are test hooks).  A host frame may back more (KSM merges
 *       identical pages): ask "... again" until the answer is a bare
 *       "ok" (none left); without "again", a frame that backs nothing is
 *       an error.
 * A save or an offline-page is refused while the VM is protected.
 *
 * A VM that a protection holds gets them through its backend's control op
 * (backends/kvm/kvm_backend.c, behind primary/control.h); a VM that
 * nothing protects (remus run, remus restore) serves them alone here.
 */
#ifndef REMUS_BACKENDS_KVM_VMCTL_H
#define REMUS_BACKENDS_KVM_VMCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/kvm/vmm.h"
#include "common/err.h"

/* Serve one of the requests above for @vm (@fd: the client's descriptor
 * or -1, not closed here).  Returns false if @req is none of them. */
bool rm_vmctl_serve(struct rm_vm *vm, const char *req, int fd,
                    bool protecting, char *reply, size_t len);

/* Serve @vm's control socket alone (a thread).  NULL on failure. */
struct rm_vmctl;
struct rm_vmctl *rm_vmctl_start(struct rm_vm *vm, const char *name,
                                struct rm_error *err);
void rm_vmctl_stop(struct rm_vmctl *c);

/* Client: ask VM @name to save into @fd (rm_ctlsock_request).  0 or
 * -errno with the reason. */
int rm_vmctl_save(const char *name, bool live, bool keep_running, int fd,
                  char *reply, size_t reply_len, struct rm_error *err);

#endif
