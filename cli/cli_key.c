/* SPDX-License-Identifier: MIT */
/* --key-file / --insecure for protect and receive (cli.h). */
#include "cli/cli.h"

#include "common/key_resolve.h"

int cli_key(const char *cmd, const char *path, bool insecure,
            struct rm_auth_key *key, const struct rm_auth_key **out)
{
    struct rm_error err = { 0 };
    bool have = false;

    *out = NULL;
    if (insecure && path)
        return cli_usage_error(cmd, "--insecure and --key-file contradict "
                               "each other: choose one");
    if (rm_key_resolve(path, insecure, key, &have, &err))
        return cli_fail(cmd, "%s", rm_error_str(&err));
    if (have)
        *out = key;
    else
        rm_key_warn_insecure(cmd, NULL);
    return 0;
}
