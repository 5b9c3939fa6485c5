/* SPDX-License-Identifier: MIT */
/*
 * The primary: continuous protection of a running VM.
 *
 * rm_protect_run() connects to the secondary (a control connection, then a
 * stream connection: primary/connect.h), runs the save engine in checkpointed mode and, per
 * epoch, with the engine's callbacks:
 *   suspended  -> netbuf: output from now on belongs to the new epoch
 *   checkpoint -> wait for the secondary's ack of this epoch (and check its
 *                 digest against what was sent), release the epoch's held
 *                 output, publish progress, sleep until the next epoch
 * A thread on the control connection receives acks and heartbeats and
 * sends heartbeats.  When the secondary is lost (no message for the
 * heartbeat timeout, a broken connection, an ack that does not match),
 * protection ends: held output is released and the VM goes on running
 * unprotected.  Every write to the secondary has a deadline: one that makes
 * no progress for hb_timeout_ms (a secondary that stopped reading) loses
 * it too, and losing it shuts both connections down, so the checkpoint in
 * flight ends at once.  The timing is agreed in the handshake
 * (proto/timing.h); the secondary announces its checkpoint buffer, and
 * epochs are shortened while checkpoints come near it.  A stop request (SIGINT/SIGTERM in the CLI) ends the stream
 * cleanly with END and a STOP message; the VM goes on running.
 *
 * Authentication (cfg->key): the stream connection first presents the
 * session token in clear (as without a key), then the same token as the
 * first sealed chunk, which only the holder of this session's keys can
 * produce; everything after it is the checkpoint stream, sealed
 * (common/auth.h).
 */
#ifndef REMUS_PRIMARY_PROTECT_H
#define REMUS_PRIMARY_PROTECT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/disklog.h"
#include "common/err.h"
#include "common/net.h"
#include "common/sr.h"

struct rm_auth_key;
struct rm_status_observer;
struct rm_netbuf;

enum rm_protect_end {
    RM_PROTECT_STOPPED = 0,     /* stop requested, stream ended cleanly */
    RM_PROTECT_PEER_LOST,       /* secondary lost: VM runs unprotected */
    RM_PROTECT_HANDED_OVER,     /* handover: the VM was paused, held
                                   output discarded, and the secondary told
                                   to take over from its last committed
                                   checkpoint; the caller stops the VM */
    RM_PROTECT_MUST_STOP,       /* secondary lost and peer_lost_gate said
                                   the VM must not run on: nothing held was
                                   released; the caller stops the VM */
};

struct rm_protect_cfg {
    const char *name;             /* for status and logs */
    const char *backend_name;     /* "kvm", "xen" */
    struct rm_hostport peer;
    unsigned interval_ms;         /* checkpoint interval (>= 1) */
    bool compress;                /* ask for compression (-u clears) */
    bool blackhole;               /* -b: checkpoints go nowhere */
    unsigned hb_interval_ms;      /* heartbeat period */
    unsigned hb_timeout_ms;       /* peer lost after this much silence */
    unsigned connect_timeout_ms;
    /* Pre-shared key (common/auth.h), or NULL: no authentication.  Not
     * owned; must outlive rm_protect_run().  With a key the handshake
     * proves both sides hold it, every control frame is sealed, and the
     * checkpoint stream goes through the sealed chunk layer
     * (rm_auth_sink); a secondary without the key, or with another one,
     * is refused (-EACCES, the reason in @err). */
    const struct rm_auth_key *key;
    uint64_t guest_bytes;         /* for the handshake */
    uint32_t nr_vcpus;

    /* The VM: save ops and their argument (the backend's VM handle). */
    const struct rm_save_ops *ops;
    void *backend_arg;

    /* Output commit; NULL with -n (no buffering). */
    struct rm_netbuf *netbuf;

    /* COLO (--colo, colo/primary.h): netbuf is COLO's comparator; the
     * replica runs on the secondary, the VM's input is mirrored to it
     * (colo_mirror: the backend's, called with the VM suspended to start
     * and, with NULL, to stop), and a checkpoint is taken when the
     * comparator asks or every colo_max_interval_ms, not every interval.
     * The secondary must run --colo too (the handshake says so).
     * colo_fallback_rate checkpoints asked by a divergence within a second
     * switch to buffered (Remus) mode, checkpoints every interval_ms, for
     * colo_fallback_hold_ms (colo/primary.h); rate 0: never. */
    bool colo;
    unsigned colo_max_interval_ms;
    unsigned colo_fallback_rate;
    unsigned colo_fallback_hold_ms;
    int (*colo_mirror)(void *opaque, void (*fn)(void *, const void *, size_t),
                       void *fn_opaque);
    void *colo_mirror_opaque;

    /* The VM's replicated disks (common/disklog.h), or NULL: none.  Not
     * owned.  The hello names them (the secondary must have the same
     * images, size for size); the secondary's chunk hashes then queue the
     * chunks that differ, and logging starts before the first pass:
     * every checkpoint carries its epoch's writes. */
    struct rm_disklog *disks;
    /* -F -d: the disks left unreplicated, named in the hello (not owned;
     * NULL: none). */
    const struct rm_unreplicated_disk *unreplicated;
    uint32_t nr_unreplicated;

    /* Set asynchronously (signal handler) to end protection cleanly. */
    volatile sig_atomic_t *stop_requested;
    /* Optional (NULL: none): a second flag that ends it as stop_requested
     * does: for a protection started from a VM's control socket, the
     * process's own (its SIGINT/SIGTERM), primary/control.h. */
    volatile sig_atomic_t *process_stop;

    /* Optional planned switchover (Pacemaker moving the pair): when
     * *handover_requested becomes non-zero, the next epoch boundary pauses
     * the VM with pause_vm(pause_opaque) (it never runs here again),
     * discards the output held since the last acknowledged checkpoint, and
     * tells the secondary to take over from its last committed checkpoint,
     * which every released output came from: RM_PROTECT_HANDED_OVER.
     * pause_vm NULL: handover is not offered (a request is logged and
     * ignored). */
    volatile sig_atomic_t *handover_requested;
    int (*pause_vm)(void *pause_opaque);
    void *pause_opaque;           /* NULL: backend_arg */

    /* Optional progress line per epoch on stderr (every N ms; 0: off). */
    unsigned progress_ms;

    /* Test and drill instrumentation, optional: every digest_every-th
     * checkpoint, write "epoch digest" of the whole guest memory (as the
     * checkpoint captured it / as the replica holds it) to digest_fd. */
    uint64_t (*mem_digest)(void *opaque);
    void *mem_digest_opaque;
    unsigned digest_every;
    int digest_fd;

    /* Optional split-brain gate (cluster/quorum.h): called once when the
     * secondary is lost, after the save loop ended and before anything
     * held is released, with no lock held; may block (it waits for the
     * cluster membership to settle) while the VM runs with its output
     * held.  Returns 1 when the VM may run on unprotected (held output is
     * released), 0 when it must not (held output is discarded, output
     * stays held, the run ends with RM_PROTECT_MUST_STOP: the gate pauses
     * the VM itself before returning 0).  @why receives the reason. */
    int (*peer_lost_gate)(void *opaque, struct rm_error *why);
    void *peer_lost_gate_opaque;
    /* The cluster membership the gate decides with (--quorum), or NULL;
     * not owned.  The hello says this side runs --quorum and which
     * process it is in the group; the secondary the reply names is bound
     * as the peer (rm_quorum_bind_peer).  Without a peer_lost_gate of the
     * caller's, a built-in one decides with it (and pauses the VM through
     * pause_vm when it must not run on). */
    struct rm_quorum *quorum;

    /* Optional: one line per acknowledged epoch, "epoch pause_us
     * dirty_pages bytes send_us ack_us", for drills and benchmarks. */
    int stats_fd;                 /* -1: none */

    /* Optional: told of every status publication and tick (sd_notify,
     * metrics: common/status.h), in the checkpoint loop's thread.  Not
     * owned.  The loop ticks at least every 20 ms between checkpoints, so
     * a stalled loop (an ack that does not come, a VM that does not
     * suspend) goes silent. */
    const struct rm_status_observer *observers;
};

struct rm_protect_result {
    enum rm_protect_end end;
    uint64_t epochs;              /* checkpoints acknowledged */
    uint64_t bytes;               /* stream bytes sent */
    struct rm_error why;          /* for PEER_LOST: the reason */
};

/*
 * Every field of @cfg to its default: no fd (stats_fd, digest_fd: -1),
 * a checkpoint every 200 ms, a heartbeat every 100 ms, the peer lost
 * after rm_timing_default_timeout(200, 100) ms of silence (proto/timing.h),
 * 5000 ms to connect, compression asked for, no progress line; every
 * pointer NULL (the caller sets peer, ops, backend_arg, ...).
 */
void rm_protect_cfg_init(struct rm_protect_cfg *cfg);

/*
 * Run protection until stopped or the peer is lost.  Returns 0 with
 * @res filled, or -errno (with the reason in @err) when protection could
 * not start (connection refused, handshake refused) or the VM failed.
 * In every case the VM is left running.
 */
int rm_protect_run(const struct rm_protect_cfg *cfg,
                   struct rm_protect_result *res, struct rm_error *err);

#endif
