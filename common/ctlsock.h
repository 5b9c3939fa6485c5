/* SPDX-License-Identifier: MIT */
/*
 * The control socket of a VM this process holds: $REMUS_RUN_DIR/NAME.sock,
 * one request line (and optionally one file descriptor, SCM_RIGHTS) per
 * connection, one answer line: "ok ..." or "error REASON".  This is the
 * transport only; what a VM's socket serves is its server's
 * (primary/control.h: protect, unprotect, handover; a backend may add its
 * own requests, as the KVM micro-VMM's save and offline-page).
 *
 * Access: the socket is 0600 in the 0700 run directory
 * (rm_run_dir_prepare()), and a client whose peer credentials
 * (SO_PEERCRED) are neither root nor our uid gets "error permission
 * denied".  A client has RM_CTLSOCK_CLIENT_MS to send its request; a
 * silent one is dropped and cannot hold the serving thread.  Requests are
 * served one at a time, in one thread.
 */
#ifndef REMUS_COMMON_CTLSOCK_H
#define REMUS_COMMON_CTLSOCK_H

#include <stddef.h>

#include "common/err.h"

#define RM_CTLSOCK_CLIENT_MS 2000u
#define RM_CTLSOCK_REQ_MAX 511u   /* bytes in a request line, at most */

struct rm_ctlsock;

struct rm_ctlsock_ops {
    /* Serve one request @req (NUL-terminated, at most RM_CTLSOCK_REQ_MAX
     * bytes: a longer one is refused before) with the
     * descriptor @fd the client sent (-1: none; the server closes it after
     * the call).  Write the answer line into @reply ("ok ..." or "error
     * ...", with or without the newline).  Called in the serving thread. */
    void (*serve)(void *opaque, const char *req, int fd, char *reply,
                  size_t len);
    /* Optional: a descriptor the serving thread also polls (-1: none),
     * asked before each poll, and what to do when it is readable. */
    int (*watch_fd)(void *opaque);
    void (*on_watch)(void *opaque);
};

/*
 * Serve NAME's control socket (a thread) with @ops.  A socket file left
 * by a process that died is replaced.  NULL with the reason in @err.
 */
struct rm_ctlsock *rm_ctlsock_start(const char *name,
                                    const struct rm_ctlsock_ops *ops,
                                    void *opaque, struct rm_error *err);
/* Stop serving (waits for a request being served), remove the socket. */
void rm_ctlsock_stop(struct rm_ctlsock *s);

/*
 * Client: send @req (and @fd when >= 0) to NAME's control socket and read
 * its one-line answer into @reply (without "ok " / the newline kept: the
 * whole line, newline stripped).  0 when it starts with "ok "; -ENOENT
 * (with "no VM named ... here") when nothing serves NAME; otherwise
 * -errno with the server's reason.
 */
int rm_ctlsock_request(const char *name, const char *req, int fd,
                       char *reply, size_t reply_len, struct rm_error *err);

#endif
