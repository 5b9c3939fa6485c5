/* SPDX-License-Identifier: MIT */
/*
 * Split-brain protection on an existing cluster engine: corosync.
 *
 * A protection pair runs on two corosync nodes (the primary's host and the
 * secondary's) whose votequorum has a third vote from corosync-qdevice,
 * arbitrated by corosync-qnetd on a third host (algorithm ffsplit).  Each
 * side of the pair joins the CPG group "remus:NAME" (NAME: the protected
 * VM), so each sees whether the other's process is alive in its own
 * partition, and reads its partition's quorum from the quorum service.
 *
 * When one side loses the other (broken stream, heartbeat silence), it
 * asks rm_quorum_decide() what to do, once.  The decision waits until the
 * peer's process has left this side's CPG view (the peer died, or the
 * membership changed so that it is in another partition), or until
 * settle_ms pass with the peer still visible; then until this partition's
 * quorate state has been stable for stable_ms (the qdevice's vote is only
 * counted again once qnetd has decided for the new membership).  Then:
 *
 *   secondary  takes over only if the primary's process is gone from its
 *              view AND this partition is quorate.  A visible primary means
 *              it is alive and runs on; no quorum means the other side
 *              holds it, or no side does.  Either way it stands down.
 *   primary    runs on only if this partition is quorate; otherwise the
 *              secondary may take over: it must stop the VM without
 *              releasing anything held.
 *
 * Only one side may act, even when the two decide at different moments
 * (a primary frozen and resumed, a partition that heals while one side
 * decides): the VM's token.  The primary holds it from the start.  A side
 * that may act by the rules above claims it with a message to the group
 * (corosync delivers the group's messages in one agreed order to every
 * member of a partition) and acts only if corosync delivers its claim
 * while the peer is not in its view, or the peer answers YIELD.  A side
 * that sees the peer's claim before its own delivered one answers YIELD
 * and never acts; a side that holds the token (the primary before it
 * decides anything, a secondary that took over) answers HELD; a peer that
 * stays in the view without answering (frozen) may hold it, so the
 * claimant does not act.  The holder stays in the group for as long as it
 * runs the VM (rm_quorum_hold), answering claims; if its partition loses
 * quorum for stable_ms/2 it stops the VM, before another partition's
 * claimant (which waits stable_ms of stable quorum) can act.
 *
 * Two partitions cannot both be quorate at once (votequorum counts a
 * qdevice vote only for the ring it was cast for), a side whose peer is
 * visible never acts without the peer's YIELD, and a holder that loses
 * quorum stops, so at most one side runs the VM; with the arbiter down
 * and the link cut neither partition is quorate, neither runs, and both
 * say so.  The decision is made once: a side that stood down never acts
 * later (the primary may have run on and the replica is stale).
 *
 * Everything here talks to the local corosync through libquorum,
 * libvotequorum and libcpg; nothing is global.  A handle may be used from
 * two threads (it locks itself).  Functions return 0 or
 * -errno with the reason in @err; none exits.
 */
#ifndef REMUS_CLUSTER_QUORUM_H
#define REMUS_CLUSTER_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct rm_quorum;   /* opaque: the corosync handles and what they said */

enum rm_quorum_role {
    RM_QUORUM_PRIMARY,
    RM_QUORUM_SECONDARY,
};

struct rm_quorum_cfg {
    const char *vm_name;          /* names the CPG group "remus:NAME" */
    enum rm_quorum_role role;
    unsigned settle_ms;           /* wait for the lost peer to leave the
                                     view (0: 10000) */
    unsigned stable_ms;           /* quorate state unchanged this long
                                     before deciding (0: 1500) */
};

struct rm_quorum_verdict {
    bool act;                     /* take over / run on */
    bool quorate;                 /* this partition, when decided */
    bool peer_visible;            /* the peer's process in our CPG view */
    bool peer_seen;               /* the peer ever joined the group */
    char why[320];                /* the reason, for the log and status */
};

/*
 * Connect to the local corosync (quorum, votequorum, cpg) and join the
 * group.  Fails (-ENOTCONN) when corosync is not running here, naming
 * what was tried.  *out is freed with rm_quorum_close().
 */
int rm_quorum_open(const struct rm_quorum_cfg *cfg, struct rm_quorum **out,
                   struct rm_error *err);

/*
 * rm_quorum_open(), then read this partition's state (logged); with
 * @require_quorate, a partition without quorum is refused (-ENOLCK, "this
 * host's partition is not quorate (...)"): a primary never starts a VM
 * the other side may run.  *out is NULL on failure.
 */
int rm_quorum_open_checked(const struct rm_quorum_cfg *cfg,
                           bool require_quorate, struct rm_quorum **out,
                           struct rm_error *err);

/* This process's identity in the group: what its hello tells the peer. */
void rm_quorum_self(const struct rm_quorum *q, uint32_t *node,
                    uint32_t *pid);

/*
 * The peer is the process the (authenticated) handshake named: from now
 * on only its presence in the group counts.  Another process in the group
 * (a stray, a second instance in a Pacemaker bring-up) is never taken for
 * the peer once bound.
 */
void rm_quorum_bind_peer(struct rm_quorum *q, uint32_t node, uint32_t pid);

/* Leave the group and disconnect.  NULL is allowed. */
void rm_quorum_close(struct rm_quorum *q);

/*
 * Process what corosync has sent (non-blocking) and describe this
 * partition: *quorate, and "quorate: yes (3 of 3 votes, quorum 2,
 * qdevice voting); peer: node 2 pid 1234" in @desc.  0 or -errno.
 */
int rm_quorum_status(struct rm_quorum *q, bool *quorate, char *desc,
                     size_t len, struct rm_error *err);

/*
 * For the status observers (a live remus_quorum_quorate): at most once a
 * second (*@last_ns, monotonic, kept by the caller), rm_quorum_status()
 * into *@known and *@quorate (*@known false when corosync could not
 * say).  Called from a protection's loop; non-blocking but for one
 * corosync query.
 */
void rm_quorum_sample(struct rm_quorum *q, uint64_t *last_ns, bool *known,
                      bool *quorate);

/*
 * Wait up to @ms for the peer's process to appear in the group (after
 * the handshake, so that a later decision can rely on seeing it).  1 when
 * it is visible, 0 on timeout, -errno on a corosync error.
 */
int rm_quorum_wait_peer(struct rm_quorum *q, unsigned ms,
                        struct rm_error *err);

/*
 * The peer is lost: decide as described above, the claim for the token
 * included (blocks for seconds; bounded by 7 * settle_ms).  0 with @v
 * filled, or -errno when corosync itself failed (then @v says not to act).
 * After it, this process holds the token exactly when @v->act.
 */
int rm_quorum_decide(struct rm_quorum *q, struct rm_quorum_verdict *v,
                     struct rm_error *err);

/*
 * While this process runs the VM after deciding (a primary that ran on, a
 * secondary that took over): call @wait_vm(@opaque, ms), which returns 0
 * once the VM has ended, every 200 ms; meanwhile answer the peer's claims
 * (HELD) and watch quorum.  Returns 0 when the VM ended by itself; when
 * this partition lost quorum for stable_ms/2 (or corosync failed) calls
 * @stop_vm(@opaque), says why in @why and returns -ENOLCK.
 */
int rm_quorum_hold(struct rm_quorum *q, int (*wait_vm)(void *opaque, int ms),
                   void (*stop_vm)(void *opaque), void *opaque,
                   char *why, size_t len);

/* A secondary that took over protects the VM again: it is the primary of
 * the next pair (holding the token); its next peer is bound by the next
 * handshake. */
void rm_quorum_become_primary(struct rm_quorum *q);

/* The VM was handed over: this process no longer holds the token (a claim
 * of the secondary's is answered YIELD). */
void rm_quorum_release(struct rm_quorum *q);

#endif
