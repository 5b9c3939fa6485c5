/* SPDX-License-Identifier: MIT */
/* Which pre-shared key a command runs with (see key_resolve.h). */
#define RM_LOG_PREFIX "auth"
#include "common/key_resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

int rm_key_resolve(const char *path, bool insecure, struct rm_auth_key *key,
                   bool *have_key, struct rm_error *err)
{
    const char *env = getenv(RM_KEY_ENV);
    const char *from = NULL;
    int rc;

    *have_key = false;
    if (insecure) {
        if (path)
            return rm_error_set(err, -EINVAL, "--insecure and --key-file "
                                "contradict each other: choose one");
        return 0;
    }
    if (path && *path)
        from = path;
    else if (env && *env)
        from = env;
    else if (access(RM_KEY_DEFAULT_PATH, F_OK) == 0)
        from = RM_KEY_DEFAULT_PATH;
    if (!from)
        return rm_error_set(err, -ENOKEY, "no pre-shared key: the peers "
                            "authenticate each other with one (create it "
                            "with `remus keygen %s` and copy it to the "
                            "peer, or give --key-file FILE or $%s); "
                            "--insecure runs without one, and then anyone "
                            "who reaches the port can replace the VM",
                            RM_KEY_DEFAULT_PATH, RM_KEY_ENV);
    rc = rm_auth_key_load(from, key, err);
    if (rc)
        return rc;
    *have_key = true;
    return 0;
}

void rm_key_warn_insecure(const char *who, const char *peer)
{
    LOG_WARN("INSECURE (--insecure): %s%s%s is not authenticated and not "
             "encrypted: any host that reaches it can act as the peer and "
             "replace or take over the VM", who, peer ? " with " : "",
             peer ? peer : "");
}
