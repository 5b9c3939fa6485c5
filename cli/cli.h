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

/* The usage lines of --key-file and --insecure (for protect/receive). */
#define CLI_KEY_HELP \
    "  --key-file FILE  the pre-shared key both sides hold (`remus\n" \
    "              keygen FILE`): authenticates and encrypts the control\n" \
    "              channel and the stream.  Default: $REMUS_KEY_FILE,\n" \
    "              else /etc/remus/remus.key; without one: refused\n" \
    "  --insecure  run without a key: any host that reaches the port can\n" \
    "              pose as the peer; warned about at every session\n"

#endif
