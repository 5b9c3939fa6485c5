/* SPDX-License-Identifier: MIT */
/*
 * The control socket of a running KVM VM: $REMUS_RUN_DIR/NAME.sock.
 * `remus save NAME FILE` connects, sends one request line and the output
 * file descriptor (SCM_RIGHTS); the VM's process runs the save engine on
 * its own VM and answers one line: "ok BYTES PAGES ITERATIONS" or
 * "error REASON".  The save is synced to disk (fsync) before the answer
 * and before the VM stops.
 *
 * Access: the socket is 0600 in the 0700 run directory
 * (rm_run_dir_prepare()), and a client whose peer credentials
 * (SO_PEERCRED) are neither root nor our uid gets "error permission
 * denied".  A client has RM_VMCTL_CLIENT_MS (2 s) to send its request;
 * a silent one is dropped and cannot hold the control thread.
 *
 * Requests: "save nonlive" | "save live" (+ " continue" to keep the VM
 * running afterwards; without it the VM stops after a successful save, as
 * with `xl save`).
 *
 * "protect HOST:PORT INTERVAL_MS HB_MS HB_TIMEOUT_MS BUFFER(0|1)": protect
 * this VM (again: after a failover, the replica that took over) to the
 * `remus receive` at HOST:PORT, in this process, with output buffering
 * when BUFFER; the answer comes once the first checkpoint (a full resync)
 * is acknowledged: "ok EPOCH PAUSE_US DIRTY_PAGES BYTES SEND_US ACK_US".
 * "unprotect": end it cleanly ("ok N checkpoints to PEER: how it ended").
 * A save is refused while such a protection runs.
 */
#ifndef REMUS_BACKENDS_KVM_VMCTL_H
#define REMUS_BACKENDS_KVM_VMCTL_H

#include <stdbool.h>

#include "backends/kvm/vmm.h"
#include "common/err.h"

struct rm_vmctl;

/* Serve the control socket of @vm (a thread).  NULL on failure. */
struct rm_vmctl *rm_vmctl_start(struct rm_vm *vm, const char *name,
                                struct rm_error *err);
void rm_vmctl_stop(struct rm_vmctl *c);
/* The pre-shared key a reprotection of this VM authenticates with (the
 * one the VM's process ran with; NULL: none, the process ran --insecure).
 * Not owned: it must outlive rm_vmctl_stop(). */
struct rm_auth_key;
void rm_vmctl_set_key(struct rm_vmctl *c, const struct rm_auth_key *key);
/* A reprotection of this VM decides a lost secondary with corosync, as its
 * process ran (--quorum): with @q, this process's handle in the group
 * remus:NAME (which holds the VM's token), as the next pair's primary; it
 * refuses to start without quorum.  Not owned: it must outlive
 * rm_vmctl_stop(). */
struct rm_quorum;
void rm_vmctl_set_quorum(struct rm_vmctl *c, struct rm_quorum *q);

/*
 * Client: send @req (and @fd when >= 0) to VM @name's control socket and
 * read its one-line answer into @reply.  0 when it starts with "ok ";
 * otherwise -errno with the VM's reason.
 */
int rm_vmctl_request(const char *name, const char *req, int fd,
                     char *reply, size_t reply_len, struct rm_error *err);

/* Client: ask VM @name to save into @fd.  0 or -errno with the reason. */
int rm_vmctl_save(const char *name, bool live, bool keep_running, int fd,
                  char *reply, size_t reply_len, struct rm_error *err);

#endif
