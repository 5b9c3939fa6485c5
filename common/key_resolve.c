/* SPDX-License-Identifier: MIT */
/* Which pre-shared key a command runs with (see key_resolve.h). */
#define RM_LOG_PREFIX "auth"
#include "common/key_resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int rm_key_read_fd(int fd, const char *what, struct rm_auth_key *key,
                   struct rm_error *err)
{
    static const uint8_t zero[RM_AUTH_KEY_LEN];
    /* One byte more than a key file: longer input is seen and refused. */
    char buf[RM_AUTH_KEY_FILE_LEN + 1];
    size_t got = 0;
    int rc;

    /* Up to the key's newline, never to EOF: a writer may keep its end
     * open (the stdin of a receiver started over ssh). */
    while (got < sizeof(buf) && !(got && buf[got - 1] == '\n')) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            rm_auth_wipe(buf, sizeof(buf));
            return rm_error_set(err, rc, "cannot read %s: %s", what,
                                strerror(-rc));
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    rc = rm_auth_key_parse(buf, got, what, key, err);
    rm_auth_wipe(buf, sizeof(buf));
    if (!rc && !memcmp(key->k, zero, sizeof(zero)))
        rc = rm_error_set(err, -EINVAL, "%s: an all-zero key is refused",
                          what);
    return rc;
}

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
    if (path && !strcmp(path, "-")) {
        rc = rm_key_read_fd(STDIN_FILENO, "- (stdin)",
                            key, err);
        if (rc)
            return rc;
        *have_key = true;
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
