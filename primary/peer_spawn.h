/* SPDX-License-Identifier: MIT */
/*
 * Start the secondary's `remus receive` from the primary, as `xl remus
 * DOMAIN HOST` does (issue #17): one command, no second terminal.
 *
 * The receiver runs as
 *     sh -c 'exec CMD HOST REMUS receive [--xen] --listen ADDR:0 --announce
 *            --key-file - | --insecure  --name NAME --heartbeat MS
 *            [--heartbeat-timeout MS] [--config FILE] [--quorum corosync
 *            --quorum-settle MS] [EXTRA...]'
 * (CMD: the -s command, "ssh" by default, given to sh as is, like xl's -s;
 * REMUS: the receiver's binary, "remus" by default).  It listens on a free
 * port and prints "remus-receive: listening ADDR:PORT" on stdout
 * (RM_PEER_ANNOUNCE); the primary connects there: to ADDR, or to HOST
 * (without any USER@) when ADDR is a wildcard.  A receiver that does not
 * announce within the deadline is an error naming the command, how it
 * ended, and the end of its stderr.
 *
 * What is forwarded: what both sides must agree on (the heartbeat, a
 * given heartbeat timeout, --quorum and its settle time) and what the
 * secondary cannot learn from the primary (the VM's name, for its status,
 * --quorum's group and --fence-cmd's REMUS_NAME; its own copy of the VM's
 * description).  Not forwarded: -u (a receiver takes either), what is the
 * secondary host's own business (its TAP, console, fencing): EXTRA.
 *
 * The key never appears on a command line (ps shows those to every user
 * of the host): the receiver gets `--key-file -` and reads the key from
 * its stdin, written there in the key file format; through ssh it crosses
 * the encrypted session.  Every word given to the remote side must be
 * made of [A-Za-z0-9_./:,=@%+-]: it is parsed by sh here and, through
 * ssh, again by the remote shell; anything else is refused rather than
 * quoted twice.
 *
 * The receiver runs in its own process group (a terminal's Ctrl-C reaches
 * the primary only, which ends protection cleanly); its stderr is relayed
 * to @relay_fd.  It outlives the primary on purpose: `receive --announce`
 * ignores SIGHUP and write errors, so a primary that dies ends in a
 * failover.  The caller needs SIGPIPE ignored (cli/main.c does).
 */
#ifndef REMUS_PRIMARY_PEER_SPAWN_H
#define REMUS_PRIMARY_PEER_SPAWN_H

#include <stdbool.h>

#include "common/err.h"
#include "common/net.h"

#define RM_PEER_ANNOUNCE "remus-receive: listening "
#define RM_PEER_ANNOUNCE_TIMEOUT_MS 30000u

struct rm_auth_key;

struct rm_peer_spawn_cfg {
    const char *shell_cmd;       /* -s CMD; NULL: "ssh" */
    const char *host;            /* HOST, as CMD takes it (USER@HOST) */
    /* Where the receiver listens and the primary connects; NULL: every
     * address there, and the primary connects to HOST. */
    const char *peer_addr;
    const char *remote_remus;    /* NULL: "remus" */
    bool xen;                    /* receive --xen */
    const char *name;            /* the VM's name (--name); required */
    const char *config;          /* the secondary's --config, or NULL */
    unsigned hb_interval_ms;     /* required */
    unsigned hb_timeout_ms;      /* 0: not forwarded (derived there) */
    bool quorum;                 /* --quorum corosync */
    unsigned quorum_settle_ms;   /* with quorum; 0: the receiver's default */
    const char *const *extra;    /* more receive options, NULL-ended */
    const struct rm_auth_key *key;   /* NULL: --insecure */
    unsigned announce_timeout_ms;    /* 0: RM_PEER_ANNOUNCE_TIMEOUT_MS */
    int relay_fd;                /* the receiver's stderr goes here; -1:
                                    kept only for error messages */
};

struct rm_peer_spawn;

/*
 * Start the receiver and wait for its announcement.  0 with *@out and
 * @peer (where to connect), or -errno with the reason in @err (nothing
 * left running).
 */
int rm_peer_spawn_start(const struct rm_peer_spawn_cfg *cfg,
                        struct rm_peer_spawn **out, struct rm_hostport *peer,
                        struct rm_error *err);

/* The receiver's local process (the -s command's), for logs and tests. */
int rm_peer_spawn_pid(const struct rm_peer_spawn *ps);

enum rm_peer_end {
    /* Protection ended cleanly (END): the receiver exits by itself; wait
     * @wait_ms for it, then end it (SIGTERM, SIGKILL). */
    RM_PEER_WAIT,
    /* Protection never started: end it now. */
    RM_PEER_KILL,
    /* The receiver may be taking over or running the VM (secondary lost,
     * handover): leave it running, reaped in the background. */
    RM_PEER_LEAVE,
};

/*
 * End our side and free @ps (NULL: nothing).  Returns the receiver's exit
 * status (0..255, 128+N for signal N) for WAIT and KILL, 0 for LEAVE, or
 * -errno with the reason in @err (WAIT: it did not exit in time and was
 * killed).
 */
int rm_peer_spawn_end(struct rm_peer_spawn *ps, enum rm_peer_end how,
                      unsigned wait_ms, struct rm_error *err);

#endif
