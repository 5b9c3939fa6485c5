/* SPDX-License-Identifier: MIT */
/*
 * The secondary: receive a protected VM's checkpoints, keep a paused
 * replica at the last complete one, acknowledge each, and fail over when
 * the primary is lost.
 *
 * rm_receive_run() accepts the primary's control connection (handshake),
 * then its stream connection (which must present the session token the
 * handshake issued), and runs the restore engine over the stream.  Every
 * committed checkpoint is acknowledged with its epoch and digest.  A
 * control thread exchanges heartbeats; after hb_timeout_ms without a word
 * from the primary (or on an explicit failover request) it shuts the
 * stream down, which makes the engine fail over: the open checkpoint is
 * discarded and the replica stays at the last committed one.
 *
 * Only the control channel declares the primary dead (no split brain
 * without a partition): a stream silent for hb_timeout_ms while the
 * primary's heartbeats arrive is waited on (a slow checkpoint), and a
 * stream that fails (closed, cut, corrupt, unauthentic) while the control
 * channel stays alive for another heartbeat timeout means the primary and
 * its VM live on: the replica is discarded, never resumed, the primary is
 * told (STOP with the reason) and the run fails with -ECONNABORTED naming
 * the stream's failure.  A dead primary closes or silences both
 * connections, and the replica takes over as above.
 *
 * Authentication (cfg->key, common/auth.h): the handshake must prove the
 * primary holds the same pre-shared key, control frames are sealed, the
 * stream connection must also present the session token as its first
 * sealed chunk, and the checkpoint stream is read through the sealed
 * chunk layer.  Every refused connection is logged with the peer's
 * address and the reason.  No peer that fails the handshake (a stranger,
 * an HTTP probe, a wrong key, an unkeyed or incompatible primary) ends the
 * secondary, keyed or not: it logs the refusal and goes on waiting for its
 * primary (within accept_timeout_ms).  Connections that have not
 * authenticated yet are served together (common/net.h, rm_preauth), a
 * handshake step only once its message is whole: each has 5 s in all for
 * its handshake messages, so idle or trickling peers neither hold up the
 * primary nor stay.  A stream connection without
 * this session's token (or, with a key, its sealed confirmation) is
 * refused and the next one is awaited for up to 10 s.  A stream chunk
 * that fails authentication ends the stream like a corrupt one: the open
 * checkpoint is discarded; the replica stays at the last committed
 * checkpoint and takes over only if the primary is dead (see above;
 * before the first commit there is no replica and the run fails).
 *
 * The caller then decides what to do with the replica: on FAILOVER it
 * resumes the VM (the backend's job: same MAC, gratuitous ARP); on a clean
 * STOP from the primary it discards it.
 */
#ifndef REMUS_SECONDARY_RECEIVE_H
#define REMUS_SECONDARY_RECEIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/disklog.h"
#include "common/err.h"
#include "common/net.h"
#include "colo/replica.h"
#include "common/sr.h"

struct rm_auth_key;

enum rm_receive_end {
    RM_RECEIVE_STOPPED = 0,   /* the primary ended protection cleanly */
    RM_RECEIVE_FAILOVER,      /* the replica must take over */
};

struct rm_receive_cfg {
    const char *name;             /* for status; "" uses the primary's */
    const char *backend_name;     /* must match the primary's */
    struct rm_hostport listen;
    int listen_fd;                /* >= 0: use this listening socket */
    unsigned hb_interval_ms;
    /* The primary is lost after this much silence; 0: derived from the
     * primary's interval and heartbeat in the handshake (proto/timing.h).
     * A value that cannot work with the primary's is refused. */
    unsigned hb_timeout_ms;
    unsigned accept_timeout_ms;   /* 0: wait forever for the primary */
    bool allow_compression;
    /* Pre-shared key, or NULL: no authentication.  Not owned; must
     * outlive rm_receive_run(). */
    const struct rm_auth_key *key;
    /* This side decides a lost primary with a quorum service (--quorum):
     * said in the hello; a primary that does otherwise is refused. */
    bool quorum;
    /* ... and with it (not owned): the hello names this process in the
     * group; the primary its hello names is bound as the peer. */
    struct rm_quorum *cluster;
    /* Limits a handshake must satisfy (0: any). */
    uint64_t max_guest_bytes;
    /* Memory for one buffered checkpoint (0: RM_RESTORE_BUFFER_DEFAULT),
     * announced to the primary in the handshake; a bigger checkpoint is
     * staged on disk (common/restore.c) and the primary shortens its
     * epochs to stay below it. */
    uint64_t buffer_bytes;

    const struct rm_restore_ops *ops;
    void *backend_arg;

    /* COLO (--colo, colo/replica.h): the replica runs between checkpoints,
     * through these (the backend's colo_run and colo_pause).  The primary
     * must run --colo too (the handshake says so). */
    bool colo;
    struct rm_colo_replica_ops colo_ops;
    bool test_colo_drop_dirty;    /* TESTS ONLY: rm_colo_replica_test_
                                     drop_dirty (REMUS_TEST_COLO_DROP_DIRTY) */
    bool test_colo_no_ask;        /* TESTS ONLY: rm_colo_replica_test_
                                     no_ask (REMUS_TEST_COLO_NO_ASK) */

    /* The replica's disk images (common/disklog.h), or NULL: none (a
     * primary that replicates a disk is then refused at the handshake).
     * Not owned.  Their ids and sizes go into the hello; right after the
     * handshake their chunk hashes go to the primary (the initial sync);
     * disk writes are applied with the checkpoint they belong to. */
    struct rm_disk_replica *disks;
    uint32_t nr_disks;
    uint32_t disk_ids[RM_DISK_MAX];
    uint32_t disk_chunk;          /* hash chunk (0: RM_DISK_CHUNK_DEFAULT) */
    bool test_disk_on_arrival;    /* TESTS ONLY: see rm_restore_params */

    volatile sig_atomic_t *stop_requested;
    unsigned progress_ms;

    /* Test and drill instrumentation, optional: every digest_every-th
     * checkpoint, write "epoch digest" of the whole guest memory (as the
     * checkpoint captured it / as the replica holds it) to digest_fd. */
    uint64_t (*mem_digest)(void *opaque);
    void *mem_digest_opaque;
    unsigned digest_every;
    int digest_fd;
    /* Audit, optional (-1: off): "commit MONOTONIC_NS EPOCH" for every
     * committed checkpoint, written before its acknowledgement is sent. */
    int commit_log_fd;

    /* Optional: told of every status publication and tick (sd_notify,
     * metrics: common/status.h), in the receive loop's thread.  Not
     * owned.  Ready once listening; the loop ticks every 200 ms while it
     * waits for the primary and publishes every committed checkpoint. */
    const struct rm_status_observer *observers;
};

struct rm_receive_result {
    enum rm_receive_end end;
    uint64_t committed_epoch;
    uint64_t lost_at_ns;          /* monotonic time the primary was lost */
    struct rm_error why;          /* FAILOVER: why the primary is
                                     considered lost */
    char name[64];                /* the VM's name from the handshake */
    char peer_addr[64];           /* the primary's control address */
    bool handover;                /* FAILOVER because the primary asked
                                     (it paused its VM: a planned move) */
    bool stop_asked;              /* STOPPED because a stop was asked
                                     here (cfg->stop_requested), not by
                                     the primary */
    bool colo_at_checkpoint;      /* COLO, at the end: the replica's state
                                     is the last checkpoint's (buffered
                                     mode, or it had not run from it): it
                                     resumes from the checkpoint */
};

/*
 * Every field of @cfg to its default: no fd (listen_fd, digest_fd,
 * commit_log_fd: -1), a heartbeat every 100 ms, the timeout derived in
 * the handshake (0), wait forever for the primary, compression allowed,
 * no limit on the guest's size, the default checkpoint buffer, no
 * progress line; every pointer NULL (the caller sets listen, ops, ...).
 */
void rm_receive_cfg_init(struct rm_receive_cfg *cfg);

/*
 * 0 with @res filled (FAILOVER: the backend holds the replica at
 * res->committed_epoch, ready to be resumed), or -errno when there is no
 * consistent replica (refused handshake, stream broken before its first
 * checkpoint, ...).
 */
int rm_receive_run(const struct rm_receive_cfg *cfg,
                   struct rm_receive_result *res, struct rm_error *err);

#endif
