/* SPDX-License-Identifier: MIT */
/*
 * The "protect" request of a VM's control socket (primary/control.h): how
 * `remus reprotect` asks the process that runs or holds a VM to protect it
 * again, written and read here so that both sides agree.  One line:
 *
 *   protect HOST:PORT INTERVAL_MS HB_MS HB_TIMEOUT_MS BUFFER(0|1)
 *           keyed|insecure [FLAG ...]
 *
 * FLAG, each at most once:
 *   colo                    COLO mode (needs BUFFER 1)
 *   nodisk                  disks not replicated (-F -d; not with colo)
 *   nocompress              no checkpoint compression (-u)
 *   netbuf-max=BYTES        bound on held output (>= 4096; 0 never sent)
 *   compare-timeout=MS      COLO only, as the protect options of the
 *   colo-max-interval=MS      same names
 *   colo-fallback=N
 *   colo-fallback-hold=MS
 * An option not given takes `remus protect`'s default.
 */
#ifndef REMUS_PRIMARY_PROTECT_REQUEST_H
#define REMUS_PRIMARY_PROTECT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/backend.h"
#include "common/err.h"

struct rm_protect_cfg;

struct rm_protect_request {
    char peer[64];                /* HOST:PORT, as given */
    unsigned interval_ms;         /* >= 1 */
    unsigned hb_ms;               /* >= 1 */
    unsigned hb_timeout_ms;       /* > hb_ms */
    bool insecure;                /* without a key (else keyed) */
    /* For the backend's protect_again: output (BUFFER 0: direct; colo:
     * COLO), no_disk, netbuf_max_bytes, compare_timeout_ms. */
    struct rm_again_opts again;
    bool no_compress;
    unsigned colo_max_interval_ms;   /* 0: COLO's default */
    bool colo_fallback_set;          /* else 1000 / interval (as protect) */
    unsigned colo_fallback_rate;
    unsigned colo_fallback_hold_ms;  /* 0: COLO's default */
};

/* The defaults: interval 200, heartbeat 100 and its default timeout,
 * buffered output, keyed, nothing else set (peer empty). */
void rm_protect_request_init(struct rm_protect_request *r);

/* 0 when @r can be asked; -EINVAL naming what is wrong in @err (a
 * heartbeat timeout not above the heartbeat, a COLO option without colo,
 * colo without buffering or with nodisk, a value out of its range, a peer
 * with a space...). */
int rm_protect_request_check(const struct rm_protect_request *r,
                             struct rm_error *err);

/* The request line for @r (checked first) into @buf.  0, -EINVAL (as
 * check) or -ENOSPC, the reason in @err. */
int rm_protect_request_format(const struct rm_protect_request *r, char *buf,
                              size_t len, struct rm_error *err);

/* Read @line into @r.  0, or -EINVAL naming the first word that is wrong
 * (unknown, repeated, out of range, or the whole failing check). */
int rm_protect_request_parse(const char *line, struct rm_protect_request *r,
                             struct rm_error *err);

/* The protection's settings from @r, into @pc (initialised by the
 * caller): interval, heartbeat and its timeout, compression, COLO and its
 * options (as `remus protect --colo`: no compression, the fallback rate
 * 1000 / interval unless given).  The peer, key and backend are the
 * caller's. */
void rm_protect_request_apply(const struct rm_protect_request *r,
                              struct rm_protect_cfg *pc);

#endif
