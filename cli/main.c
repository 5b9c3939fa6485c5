/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "cli"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "remus_version.h"

static const struct rm_command commands[] = {
    { "stream-info", "validate a checkpoint stream and print its records",
      cmd_stream_info, NULL },
    { "run", "run a guest on the embedded KVM micro-VMM", cmd_run, NULL },
    { "drill", "rehearse a failover on this machine (KVM)", cmd_drill,
      NULL },
    { "protect", "protect a VM with checkpoints to a secondary",
      cmd_protect, cmd_protect },
    { "receive", "be the secondary of a protected VM", cmd_receive,
      cmd_receive },
    { "reprotect", "protect a running VM again (failback)", cmd_reprotect,
      NULL },
    { "offline-page", "move a VM off a failing host page", cmd_offline_page,
      cmd_offline_page_xen },
    { "keygen", "write a pre-shared key for --key-file", cmd_keygen, NULL },
    { "handover", "move a protected VM to its secondary on purpose",
      cmd_handover, NULL },
    { "save", "save a running VM into a stream", cmd_save, cmd_save_xen },
    { "restore", "restore a VM from a stream and run it", cmd_restore,
      cmd_restore_xen },
    { "status", "show protections and replicas on this host", cmd_status,
      NULL },
    { "netbuf", "check / clean up Xen output buffering (IFB + plug)",
      cmd_netbuf, NULL },
    { "disk", "serve a disk image over NBD (disk serve)", cmd_disk, NULL },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_help(FILE *out)
{
    size_t i;

    fprintf(out,
            "usage: remus [-v|-q] COMMAND [ARGS]\n"
            "       remus --version\n"
            "\n"
            "VM replication that survives a dead host.\n"
            "\n"
            "Commands:\n");
    for (i = 0; i < NR_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "this list");
    fprintf(out, "  %-12s %s\n", "version", "print the version (also --version)");
    fprintf(out,
            "\n"
            "Xen (in dom0): save, restore, protect, receive and\n"
            "offline-page with --xen among their options (e.g. `remus\n"
            "protect --xen --help`).\n"
            "\n"
            "Global options: -v (debug log), -q (errors only).\n"
            "Every command takes --help.\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "remus %s: error: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'remus %s --help')\n", cmd);
    return RM_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "remus %s: error: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return RM_EXIT_FAIL;
}

int cli_wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return 0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
    }
    return 0;
}

int cli_wants_xen(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--xen"))
            return 1;
    }
    return 0;
}

int cli_open_in(const char *path)
{
    int fd;

    if (!strcmp(path, "-"))
        return STDIN_FILENO;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int cli_open_out(const char *path)
{
    int fd;

    if (!strcmp(path, "-"))
        return STDOUT_FILENO;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

int cli_open_log(const char *cmd, const char *path, bool append, int *fd)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
               (append ? O_APPEND : 0), 0644);
    if (*fd < 0)
        return cli_fail(cmd, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    enum rm_log_level level = RM_LOG_INFO;
    size_t i;
    int a = 1;

    signal(SIGPIPE, SIG_IGN);
    while (a < argc && argv[a][0] == '-') {
        if (!strcmp(argv[a], "-v")) {
            level = RM_LOG_DEBUG;
        } else if (!strcmp(argv[a], "-q")) {
            level = RM_LOG_ERROR;
        } else if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            print_help(stdout);
            return RM_EXIT_OK;
        } else if (!strcmp(argv[a], "--version")) {
            printf("remus %s\n", REMUS_VERSION);
            return RM_EXIT_OK;
        } else {
            fprintf(stderr, "remus: error: unknown global option '%s'\n",
                    argv[a]);
            print_help(stderr);
            return RM_EXIT_USAGE;
        }
        a++;
    }
    rm_log_init(level, NULL);

    if (a >= argc) {
        print_help(stderr);
        return RM_EXIT_USAGE;
    }
    if (!strcmp(argv[a], "help")) {
        print_help(stdout);
        return RM_EXIT_OK;
    }
    if (!strcmp(argv[a], "version")) {
        printf("remus %s\n", REMUS_VERSION);
        return RM_EXIT_OK;
    }
    for (i = 0; i < NR_COMMANDS; i++) {
        if (strcmp(argv[a], commands[i].name))
            continue;
        /* `remus save|restore|protect|receive|offline-page ... --xen
         * ...`: the Xen backend's version. */
        if (!cli_wants_xen(argc - a, argv + a))
            return commands[i].run(argc - a, argv + a);
        if (!commands[i].run_xen)
            return cli_usage_error(argv[a], "--xen: not a Xen command "
                                   "(save, restore, protect, receive, "
                                   "offline-page)");
        return commands[i].run_xen(argc - a, argv + a);
    }
    fprintf(stderr, "remus: error: unknown command '%s'\n", argv[a]);
    print_help(stderr);
    return RM_EXIT_USAGE;
}
