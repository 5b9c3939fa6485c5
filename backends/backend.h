/* SPDX-License-Identifier: MIT */
/*
 * A backend: what the protection sessions (primary/session.h,
 * secondary/session.h) need of a VM, whatever runs it.  One ops table per
 * backend, as Xen's xg_sr_common.h has one per guest type: the embedded
 * KVM micro-VMM (backends/kvm/kvm_backend.c) and Xen
 * (backends/xen/xen_backend.c).  The sessions own the protocol and the
 * policy (handshake and key, timing, heartbeats, quorum, fencing,
 * handover, status); a backend owns the VM and chooses its own save and
 * restore ops by guest type.
 *
 * A backend is made by the backend's own open function, for one of two
 * roles:
 *   protected  the running VM the primary protects (rm_kvm_backend_protect,
 *              rm_xen_backend_protect): save ops, output commit, pause;
 *   replica    the paused replica the secondary fills
 *              (rm_kvm_backend_replica, rm_xen_backend_replica): restore
 *              ops, activate on takeover.
 * Both roles then run the VM (a replica once it took over): wait,
 * request_stop, end.  Every member is called from the session's thread
 * unless it says otherwise; rm_backend_close() frees it in every role.
 */
#ifndef REMUS_BACKENDS_BACKEND_H
#define REMUS_BACKENDS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/disklog.h"
#include "common/err.h"
#include "common/sr.h"

struct rm_netbuf;
struct rm_backend;

/* How the VM this backend runs ended. */
enum rm_backend_end {
    RM_BACKEND_RUNNING,       /* not ended (or not run by this process) */
    RM_BACKEND_HALTED,        /* the guest halted (or shut down) itself */
    RM_BACKEND_STOPPED,       /* request_stop() */
    RM_BACKEND_FAILED,        /* the guest crashed, or the hypervisor */
};

/* COLO: the replica's network, given by the secondary's session: its
 * input (frames mirrored from the primary; in_fd readable while one
 * waits; in_read copies the next into @buf and returns its length, 0 when
 * none waits) and its output (every frame it sends, for the primary's
 * comparator). */
struct rm_colo_net {
    void *opaque;
    int in_fd;
    ssize_t (*in_read)(void *opaque, void *buf, size_t cap);
    int (*out)(void *opaque, const void *frame, size_t len);
    /* The replica needs a checkpoint soon (@why: its disk overlay is half
     * full; past it its writes wait for one).  Called at most once between
     * two runs, from a replica vCPU's thread; may block on the session's
     * channel.  NULL: never asked. */
    void (*ask)(void *opaque, const char *why);
};

/* How a VM protected again (protect_again) lets its output out. */
enum rm_again_output {
    RM_AGAIN_DIRECT,        /* -F -n: at once (unsafe) */
    RM_AGAIN_BUFFERED,      /* held until its checkpoint is acknowledged */
    RM_AGAIN_COLO,          /* compared with the replica's (COLO; KVM) */
};

/* What `remus reprotect` asks of a protection again. */
struct rm_again_opts {
    enum rm_again_output output;
    bool no_disk;           /* -F -d: disks may go unreplicated (unsafe) */
    uint64_t netbuf_max_bytes;    /* bound on held output (0: default); a
                                     backend without one refuses it */
    unsigned compare_timeout_ms;  /* COLO's (0: default) */
};

/* COLO: called with every frame the protected VM receives, in order. */
typedef void (*rm_colo_mirror_fn)(void *opaque, const void *frame,
                                  size_t len);

struct rm_backend_ops {
    /* ------------------------------------------------ protected VM role */
    /* The save ops for this guest (chosen by its type) and their argument
     * (the backend's, valid until close).  Called once per protection. */
    const struct rm_save_ops *(*save_ops)(struct rm_backend *b, void **arg);
    /* Pause the VM for good (a handover, or the cluster said it must not
     * run on): it never runs here again.  Called from the protection's
     * thread.  0 or -errno. */
    int (*pause)(struct rm_backend *b);
    /* Hash of the whole guest memory (tests, drills), or NULL. */
    uint64_t (*mem_digest)(struct rm_backend *b);

    /* --------------------------------------------------- replica role */
    /* The restore ops for this replica and their argument (valid until
     * close). */
    const struct rm_restore_ops *(*restore_ops)(struct rm_backend *b,
                                                void **arg);
    /* Hash of the replica's memory as committed (tests, drills), or
     * NULL.  Called from the restore engine's thread. */
    uint64_t (*replica_digest)(struct rm_backend *b);
    /* The replica takes over: it becomes the VM (runs from its last
     * committed checkpoint, takes the VM's name, announces its addresses
     * on the network).  0 or -errno with the reason in @err. */
    int (*activate)(struct rm_backend *b, struct rm_error *err);

    /* ------------------------------------ the VM this process watches */
    /* Wait up to @ms (-1: until it ends) for the VM to end: 0 when it
     * ended (or this process stopped watching it), -ETIMEDOUT. */
    int (*wait)(struct rm_backend *b, int ms);
    /* Stop the VM (async-signal-safe; wait() then returns 0). */
    void (*request_stop)(struct rm_backend *b);
    /* How it ended; @code: the guest's halt code, if any; @why: for
     * messages. */
    enum rm_backend_end (*end)(struct rm_backend *b, int64_t *code,
                               char *why, size_t len);
    /* ------------------------- the VM, held by this process: its control
     * socket (primary/control.h) */
    /* A protected-role backend for the VM this one runs (a replica that
     * took over, or a protected VM whose secondary was lost), to protect
     * it again: it borrows the VM (its close ends the output commit,
     * @o->output, and leaves the VM running, still this backend's); its
     * disks replicated unless @o->no_disk, with the disk buffer (and on
     * Xen the suspend timeout) the VM was first protected with (a replica
     * that took over: the defaults); the output bound and COLO's compare
     * timeout as @o says.  NULL: not offered.  0 or -errno with the
     * reason in @err (-EOPNOTSUPP: an output or an option it does not
     * offer). */
    int (*protect_again)(struct rm_backend *b, const struct rm_again_opts *o,
                         struct rm_backend **out, struct rm_error *err);
    /* Optional (NULL: none): serve a control-socket request of the
     * backend's own (the micro-VMM: save, frame, offline-page) with the
     * descriptor @fd the client sent (-1: none; not to be closed);
     * @protecting: a protection of the VM runs.  Writes the answer line
     * into @reply and returns true, or false: not a request it knows. */
    bool (*control)(struct rm_backend *b, const char *req, int fd,
                    bool protecting, char *reply, size_t len);

    /* ------------------------- COLO (#20; optional: NULL, no COLO) */
    /* Protected role: call @fn with every frame the VM receives from now
     * on, in order (NULL: stop).  Only with the VM suspended (the save's
     * suspended callback).  0 or -errno. */
    int (*colo_mirror)(struct rm_backend *b, rm_colo_mirror_fn fn,
                       void *opaque);
    /* Replica role, from the restore engine's thread: a checkpoint was
     * just committed to the paused replica: apply its vCPU and device
     * state and run the replica from it, its network through @net (the
     * first call starts it, with its dirty log on; later ones resume it).
     * Its disk writes go to an overlay over the checkpoint's image, which
     * each call empties.  From then on a takeover goes on from the
     * replica's own state, the overlay written into the image (activate).
     * 0 or -errno with the reason in @err. */
    int (*colo_run)(struct rm_backend *b, const struct rm_colo_net *net,
                    struct rm_error *err);
    /* Replica role, from the session's control thread: pause the replica
     * (if it runs) and point *@dirty at a bitmap of *@nr_pfns bits (the
     * backend's, valid until the next call) of the pages it changed since
     * it last ran from a checkpoint, the pages its VMM wrote included.
     * 0 or -errno with the reason in @err. */
    int (*colo_pause)(struct rm_backend *b, const unsigned long **dirty,
                      uint64_t *nr_pfns, struct rm_error *err);
    /* Replica role, from the restore engine's thread: a checkpoint was
     * just committed to the paused replica, and it stays paused (COLO's
     * buffered mode): from then on a takeover resumes it from the last
     * committed checkpoint's state, as in Remus mode, until colo_run; its
     * disk overlay is emptied. */
    void (*colo_park)(struct rm_backend *b);
    /* Replica role, from the session's control thread, at any time: the
     * disk sectors the replica wrote since it last ran from a checkpoint
     * (its overlay; what a takeover writes into its image), 0 before it
     * ran or without a disk.  Optional (NULL: not told). */
    uint64_t (*colo_written)(struct rm_backend *b);

    /* Free the backend.  A replica that never took over is discarded; a
     * VM this process runs (KVM) ends with it; a Xen domain that is the
     * VM runs on. */
    void (*close)(struct rm_backend *b);
};

struct rm_backend {
    const struct rm_backend_ops *ops;
    const char *kind;             /* "kvm", "xen": sent in the handshake */
    char vm_name[64];             /* the VM's name (status, quorum group);
                                     a replica: set by its open function,
                                     or from the handshake */
    uint64_t guest_bytes;         /* protected: for the handshake */
    uint32_t nr_vcpus;
    /* Protected: output commit for the VM's network output (owned by the
     * backend), or NULL: nothing to hold (-n, or no network device). */
    struct rm_netbuf *netbuf;
    /* Protected: the log of its replicated disks (common/disklog.h),
     * owned by the backend, or NULL: no disk is replicated (it has none,
     * or -F -d left them out). */
    struct rm_disklog *disklog;
    /* Protected, -F -d: disks it has and does not replicate (their ids
     * and sizes, for the handshake: the secondary is told). */
    uint32_t nr_unreplicated;
    struct rm_unreplicated_disk unreplicated[RM_DISK_MAX];
    /* Replica: its disk images (common/disklog.h), owned by the backend,
     * or NULL: none; disk ids 0 .. nr_replica_disks - 1.  The replica
     * runs on them once it takes over. */
    struct rm_disk_replica *disk_replica;
    uint32_t nr_replica_disks;
    /* The VM lives in this process (KVM): a session waits for it to end
     * before it returns.  Otherwise (a Xen domain) it waits only while it
     * must hold the VM's quorum token. */
    bool in_process;
    /* Its checkpoints are never compressed: the sessions neither ask for
     * nor accept compression (Xen: its streams are libxc's, and its
     * restore ops have not been proven with compressed deltas). */
    bool plain_stream;
};

static inline void rm_backend_close(struct rm_backend *b)
{
    if (b)
        b->ops->close(b);
}

#endif
