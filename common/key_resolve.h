/* SPDX-License-Identifier: MIT */
/*
 * Which pre-shared key a command runs with.  Secure by default: protect,
 * receive (KVM and Xen) and their peers authenticate with a key unless the
 * operator says --insecure, explicitly and loudly.
 */
#ifndef REMUS_COMMON_KEY_RESOLVE_H
#define REMUS_COMMON_KEY_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/auth.h"
#include "common/err.h"

/* The key file used when neither --key-file nor $REMUS_KEY_FILE names one
 * (`remus keygen /etc/remus/remus.key`, then copy it to the peer). */
#define RM_KEY_DEFAULT_PATH "/etc/remus/remus.key"
#define RM_KEY_ENV "REMUS_KEY_FILE"

/*
 * Resolve and load the key: @path (--key-file) if given ("-": read it
 * from stdin, rm_key_read_fd()), else the file
 * $REMUS_KEY_FILE names, else RM_KEY_DEFAULT_PATH if it exists.  With
 * @insecure (--insecure) no key is used: *@have_key is false, and
 * --insecure together with --key-file is refused.  Without a key and
 * without @insecure the command is refused with what to do.
 * Returns 0 (with *@have_key telling whether @key holds a key) or -errno
 * with @err naming the reason.  @key is the caller's to wipe.
 */
int rm_key_resolve(const char *path, bool insecure, struct rm_auth_key *key,
                   bool *have_key, struct rm_error *err);

/*
 * Read one key in the key file format (auth.h: 64 hex digits and a
 * newline) from @fd, up to its newline (a writer that keeps its end open
 * is not waited for beyond it); an all-zero key is refused.  @what names
 * the source in errors.  0 or -errno with the reason.  For `--key-file -`:
 * a key never on a command line (ps shows those), e.g. the one `remus
 * protect` sends the receiver it starts (primary/peer_spawn.h).
 */
int rm_key_read_fd(int fd, const char *what, struct rm_auth_key *key,
                   struct rm_error *err);

/* The warning an --insecure side logs at start and at every session
 * (@peer: who it talks to, or NULL). */
void rm_key_warn_insecure(const char *who, const char *peer);

#endif
