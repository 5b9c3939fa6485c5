/* SPDX-License-Identifier: MIT */
/*
 * remus keygen FILE: write a fresh pre-shared key for --key-file (64 hex
 * digits, mode 0600).  An existing file is never overwritten.
 */
#define RM_LOG_PREFIX "keygen"
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/auth.h"
#include "common/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus keygen FILE\n"
            "\n"
            "Write a new random 32-byte pre-shared key to FILE as 64 hex\n"
            "digits, mode 0600.  Copy it to the secondary over a trusted\n"
            "channel; give both `remus protect` and `remus receive`\n"
            "--key-file FILE.  An existing FILE is never overwritten.\n"
            "\n"
            "Exit status: 0 when the key was written; 1 on an error; 2 for\n"
            "a usage error.\n");
}

int cmd_keygen(int argc, char **argv)
{
    struct rm_error err = { 0 };

    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return RM_EXIT_OK;
    }
    if (argc != 2)
        return cli_usage_error("keygen", "expected one argument: the key "
                               "file to create");
    if (argv[1][0] == '-' && argv[1][1])
        return cli_usage_error("keygen", "unknown option '%s'", argv[1]);
    if (rm_auth_key_generate(argv[1], &err))
        return cli_fail("keygen", "%s", rm_error_str(&err));
    LOG_INFO("wrote a new key to '%s' (mode 0600)", argv[1]);
    return RM_EXIT_OK;
}
