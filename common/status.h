/* SPDX-License-Identifier: MIT */
/*
 * Run-time status of a protection (primary) or replica (secondary), kept
 * in a small JSON file that `remus status` reads:
 *   $REMUS_RUN_DIR (default /run/remus)/NAME.ROLE.status.json
 * Written atomically (temp file + rename) by the owning process, at most
 * a few times a second, so a reader never sees a half-written file.
 */
#ifndef REMUS_COMMON_STATUS_H
#define REMUS_COMMON_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"

#define RM_STATUS_NAME_MAX 64
#define RM_STATUS_TEXT_MAX 256

struct rm_status;

/*
 * Told of every publication, in a list (common/notify.h: sd_notify;
 * common/metrics.h: the metrics endpoint).  seen() is called by
 * rm_status_publish() on every call, before its rate limit, and by
 * rm_status_tick(), in the publishing thread (the checkpoint loop, the
 * receive loop), with @st complete; it must not block.
 */
struct rm_status_observer {
    void (*seen)(void *opaque, const struct rm_status *st);
    void *opaque;
    const struct rm_status_observer *next;
};

struct rm_status {
    char name[RM_STATUS_NAME_MAX];     /* VM / protection name */
    char role[16];                     /* "primary" or "secondary" */
    char state[32];                    /* e.g. "protecting", "replica",
                                          "failed-over", "unprotected",
                                          "stopped" */
    char backend[16];                  /* "kvm", "xen" */
    char peer[RM_STATUS_TEXT_MAX];     /* HOST:PORT of the other end */
    char detail[RM_STATUS_TEXT_MAX];   /* last notable event */
    int pid;
    uint64_t pid_start;                /* the process's start time (clock
                                          ticks after boot, /proc/PID/stat
                                          field 22): with pid, names the
                                          writer even after pid reuse;
                                          filled by rm_status_write() */
    uint64_t epoch;                    /* last checkpoint taken/committed */
    uint64_t acked_epoch;              /* primary: last acknowledged */
    uint64_t last_pause_us;
    uint64_t last_dirty_pages;
    uint64_t last_bytes;
    uint64_t total_bytes;
    uint64_t interval_ms;
    uint64_t updated_unix_ms;
    uint64_t failover_unix_ms;         /* 0 unless failed over */
    /* COLO (written only when colo_mode is set): */
    char colo_mode[16];                /* "comparing", "buffered" or "" */
    uint64_t colo_checkpoints[4];      /* primary: asked by a mismatch, a
                                          timeout, a full queue, the
                                          interval (while comparing) */
    uint64_t colo_buffered_checkpoints;  /* taken/committed while buffered */
    uint64_t colo_fallbacks;           /* primary: to buffered mode */
    uint64_t colo_held_primary;        /* primary: the comparator's queues */
    uint64_t colo_held_replica;
    uint64_t colo_replica_sectors;     /* secondary, comparing: the disk
                                          sectors its replica wrote since
                                          it ran from its checkpoint
                                          (sampled every heartbeat) */

    /* For the observers only (not in the file): */
    bool ready;                        /* doing its job: the primary once
                                          its first checkpoint was
                                          acknowledged, the secondary once
                                          it listens */
    bool looping;                      /* in the loop that publishes or
                                          ticks at least every second (the
                                          watchdog's feeder); false once
                                          that loop ended */
    bool quorum;                       /* decides with --quorum */
    bool quorate_known;                /* quorate below was sampled (at
                                          most once a second, by the loop
                                          while it runs) */
    bool quorate;                      /* this host's partition, then */
    uint64_t last_ack_us;              /* primary: checkpoint sent .. acked */
    uint64_t held_bytes;               /* primary: output held (netbuf) */
    const struct rm_status_observer *observers;   /* NULL: none */
};

/* The run directory ($REMUS_RUN_DIR or /run/remus). */
const char *rm_run_dir(void);
/*
 * Create the run directory (mode 0700) or check the one there: it must be
 * ours (our effective uid); any group/other access is removed.  The VM
 * control sockets and status files live there.  0 or -errno.
 */
int rm_run_dir_prepare(struct rm_error *err);

/* Write atomically; creates the run directory.  0 or -errno. */
int rm_status_write(const struct rm_status *st, struct rm_error *err);
/* Remove NAME's status file for ROLE (on a clean exit).  */
void rm_status_remove(const char *name, const char *role);
/* Read and parse one status file.  0, -ENOENT, or -EBADMSG. */
int rm_status_read(const char *path, struct rm_status *st,
                   struct rm_error *err);
/*
 * Is process st->pid still the one that wrote @st: alive, running the
 * same executable as we do, and started at st->pid_start?  0, or -ESRCH
 * (gone or another process now: a stale status file) / -EPERM with the
 * reason.  Check before signalling a pid found in a status file.
 */
int rm_status_check_writer(const struct rm_status *st, struct rm_error *err);

/* Wall-clock milliseconds since the epoch (for status timestamps). */
uint64_t rm_unix_ms(void);

/* COLO compares the VM's and the replica's outputs (not buffered, not
 * Remus): its rare commits are each published (rm_status_publish force). */
static inline bool rm_status_colo_comparing(const struct rm_status *st)
{
    return !strcmp(st->colo_mode, "comparing");
}

/*
 * Set @state, tell the observers, then set the update time and write the
 * file, at most every 200 ms unless @force (*last_ns remembers the last
 * write).  Failures only log: a status file never stops protection.
 */
void rm_status_publish(struct rm_status *st, const char *state,
                       uint64_t *last_ns, bool force);

/* Call the observers only (no file): for a loop that waits between
 * publications, to show it is alive. */
void rm_status_tick(const struct rm_status *st);

/* Render as JSON into @buf (NUL-terminated).  Returns the length. */
int rm_status_to_json(const struct rm_status *st, char *buf, int len);

#endif
