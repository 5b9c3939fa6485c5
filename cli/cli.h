/* SPDX-License-Identifier: MIT */
/*
 * The remus command line: one binary, one subcommand per file
 * (cli/cmd_NAME.c defines `int cmd_NAME(int argc, char **argv)`), all
 * listed in the table in cli/main.c.
 *
 * Exit codes shared by every subcommand:
 *   0   success
 *   1   the operation failed (the reason is on stderr)
 *   2   bad usage (a wrong flag or argument; the message names it)
 *   3   failover happened (receive, drill: the replica took over)
 *   4   split-brain protection held back (--quorum, --fence-cmd): the
 *       secondary did not take over, or the primary stopped its VM
 * Never above 125.
 */
#ifndef REMUS_CLI_H
#define REMUS_CLI_H

#include <stdbool.h>

#define RM_EXIT_OK 0
#define RM_EXIT_FAIL 1
#define RM_EXIT_USAGE 2
#define RM_EXIT_FAILOVER 3
#define RM_EXIT_HELD_BACK 4

struct rm_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    int (*run_xen)(int argc, char **argv); /* with --xen (NULL: none) */
};

/* Subcommands (keep in step with the table in cli/main.c). */
int cmd_stream_info(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_protect(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_receive(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_netbuf(int argc, char **argv);
int cmd_disk(int argc, char **argv);
int cmd_reprotect(int argc, char **argv);
int cmd_offline_page(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_handover(int argc, char **argv);
/* With --xen among the options: the Xen backend's versions. */
int cmd_save_xen(int argc, char **argv);
int cmd_restore_xen(int argc, char **argv);
int cmd_offline_page_xen(int argc, char **argv);

/* Helpers for subcommands */
/* Print "remus NAME: error: MSG" to stderr; returns RM_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print "remus NAME: error: MSG" to stderr; returns RM_EXIT_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* True if argv has -h or --help before "--". */
int cli_wants_help(int argc, char **argv);
/* True if argv has --xen before "--" (the Xen backend's command). */
int cli_wants_xen(int argc, char **argv);
/*
 * The one number parser of the command line.  cli_uint: @arg (the value of
 * option @opt) as a decimal number from @min to @max (digits only: no sign,
 * no blanks, no overflow); 0 with *@out set, or RM_EXIT_USAGE after the
 * usage error "OPT ARG: a number from MIN to MAX" (max ULLONG_MAX: "a
 * number of at least MIN").  cli_uint32: the same into an unsigned
 * (@max <= UINT_MAX).  cli_frame: a frame number @what (e.g. "MFN"),
 * decimal or 0x-hex, any 64-bit value ("WHAT 'ARG' is not a number").
 */
#define CLI_MS_MAX 3600000u   /* the longest time option: an hour, in ms */
int cli_uint(const char *cmd, const char *opt, const char *arg,
             unsigned long long min, unsigned long long max,
             unsigned long long *out);
int cli_uint32(const char *cmd, const char *opt, const char *arg,
               unsigned min, unsigned max, unsigned *out);
int cli_frame(const char *cmd, const char *what, const char *arg,
              unsigned long long *out);
/* Open FILE for reading/writing; "-" is stdin/stdout.  fd or -errno. */
int cli_open_in(const char *path);
int cli_open_out(const char *path);
/* A log or audit file @path for writing (truncated; @append: O_APPEND),
 * into *@fd.  0, or the status of the printed failure ("cannot write"). */
int cli_open_log(const char *cmd, const char *path, bool append, int *fd);

/*
 * The pre-shared key of protect/receive (KVM and Xen): --key-file PATH or
 * its defaults, or none with --insecure (then warned about).  Returns 0
 * with *@out = @key or NULL (insecure), or the exit status of a refusal
 * (printed).  The caller wipes @key.
 */
struct rm_auth_key;
int cli_key(const char *cmd, const char *path, bool insecure,
            struct rm_auth_key *key, const struct rm_auth_key **out);
/*
 * --quorum SERVICE: 0 for corosync (the one supported), else the status of
 * the printed usage error.
 */
int cli_quorum_service(const char *cmd, const char *arg);
/*
 * This process's handle in the group of the VM @name (cluster/quorum.h);
 * a @primary refuses a partition without quorum (it never starts a VM the
 * other side may run).  0, or the status of the printed failure.
 */
struct rm_quorum;
int cli_quorum_open(const char *cmd, const char *name, bool primary,
                    unsigned settle_ms, struct rm_quorum **out);

/* The help of protect and receive (cli/help_sessions.c). */
#include <stdio.h>
void cli_protect_usage(FILE *out);
void cli_receive_usage(FILE *out);

/*
 * SIGINT/SIGTERM while a session runs the VM of @be: the first raises the
 * returned flag (the session's stop_requested); a second asks the backend
 * to stop the VM, and so does the first when @first_stops (a secondary
 * whose VM cannot run on without this process).  cli_release_stop()
 * before @be is closed.
 */
#include <signal.h>
struct rm_backend;
volatile sig_atomic_t *cli_catch_stop(struct rm_backend *be,
                                      bool first_stops);
void cli_release_stop(void);

/*
 * receive --announce (KVM and Xen): listen on @rc->listen now (port 0: a
 * free one) into @rc->listen_fd (the caller closes it), print
 * RM_PEER_ANNOUNCE "ADDR:PORT" on stdout, and outlive the session that
 * started us: SIGHUP ignored (SIGPIPE is, in main.c), and a primary that
 * does not pair within CLI_ANNOUNCE_ACCEPT_MS ends the receiver.  A
 * receiver started by `remus protect VM HOST` (primary/peer_spawn.h).
 * 0, or the status of the printed failure.
 */
#define CLI_ANNOUNCE_ACCEPT_MS 60000u
struct rm_receive_cfg;
int cli_receive_announce(const char *cmd, struct rm_receive_cfg *rc);

/*
 * protect VM HOST (KVM and Xen): start the receiver through -s CMD
 * (primary/peer_spawn.h).  The options: -s CMD (getopt "s:"), and the
 * long ones of CLI_SPAWN_OPTS.
 */
#define CLI_SPAWN_MAX_OPTS 16
struct cli_spawn {
    const char *shell_cmd, *remote_remus, *peer_addr, *peer_config;
    unsigned timeout_ms;          /* --peer-timeout; 0: the default */
    const char *extra[CLI_SPAWN_MAX_OPTS + 1];
    unsigned nr_extra;
    bool given;                   /* one of them was given */
    struct rm_peer_spawn *ps;     /* started */
};
#define CLI_SPAWN_OPTS \
    { "remote-remus", required_argument, NULL, 0x380 }, \
    { "peer-addr", required_argument, NULL, 0x381 }, \
    { "peer-config", required_argument, NULL, 0x382 }, \
    { "peer-opt", required_argument, NULL, 0x383 }, \
    { "peer-timeout", required_argument, NULL, 0x384 }
#define CLI_SPAWN_HELP \
    "HOST without :PORT: start the secondary's `remus receive` there\n" \
    "through -s CMD (as `xl remus`), with this side's heartbeat, VM name,\n" \
    "--quorum and key (sent on its stdin, never on a command line):\n" \
    "  -s CMD      run `exec CMD HOST remus receive ...` with sh (default\n" \
    "              ssh; it must log in without a prompt)\n" \
    "  --remote-remus PATH   the receiver's binary there (default remus)\n" \
    "  --peer-addr ADDR      the receiver listens on ADDR and this side\n" \
    "              connects there (default: it listens on every address\n" \
    "              and this side connects to HOST)\n" \
    "  --peer-opt OPT        one more receive option (repeat; e.g.\n" \
    "              --peer-opt=--tap=tap0); words of [A-Za-z0-9_./:,=@%%+-]\n" \
    "  --peer-timeout MS     it must say it listens within MS (default\n" \
    "              30000), else it is ended and its stderr shown\n" \
    "  --peer-config FILE    its --config (the VM's description there)\n"
/* 1 when @c was one of ours (-s or CLI_SPAWN_OPTS), 0 if not, or
 * -RM_EXIT_USAGE after a printed usage error. */
int cli_spawn_opt(const char *cmd, struct cli_spawn *s, int c,
                  const char *arg);
/* Start it (@cfg: the settings to forward; shell_cmd etc. come from @s).
 * 0 with @peer, or the status of the printed failure. */
struct rm_peer_spawn_cfg;
struct rm_hostport;
int cli_spawn_start(const char *cmd, struct cli_spawn *s,
                    struct rm_peer_spawn_cfg *cfg, struct rm_hostport *peer);
/* After protection: wait for a receiver that was told END, leave one that
 * may be taking over, end one that never paired (@started, @clean_end).
 * Logs how it ended. */
void cli_spawn_end(const char *cmd, struct cli_spawn *s, bool started,
                   bool clean_end);

/* The usage lines of --key-file and --insecure (for protect/receive). */
#define CLI_KEY_HELP \
    "  --key-file FILE  the pre-shared key both sides hold (`remus\n" \
    "              keygen FILE`): authenticates and encrypts the control\n" \
    "              channel and the stream.  Default: $REMUS_KEY_FILE,\n" \
    "              else /etc/remus/remus.key; without one: refused\n" \
    "  --insecure  run without a key: any host that reaches the port can\n" \
    "              pose as the peer; warned about at every session\n"

#endif
