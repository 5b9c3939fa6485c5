/* SPDX-License-Identifier: MIT */
/*
 * Error reporting for library code.
 *
 * Library code never prints errors and never exits: it returns 0 or a
 * negative errno, and records a human-readable reason in the caller's
 * struct rm_error.  The command-line layer prints that reason.
 *
 * The first error recorded wins (rm_error_set() does not overwrite an
 * existing message), so the reason the user sees is the root cause, not
 * the last cleanup step that also failed.
 */
#ifndef REMUS_COMMON_ERR_H
#define REMUS_COMMON_ERR_H

#include <stddef.h>

#define RM_ERROR_MSG_MAX 512

struct rm_error {
    int code;                      /* negative errno, 0 when no error */
    char msg[RM_ERROR_MSG_MAX];    /* NUL-terminated reason */
};

/*
 * Record an error.  @code is a negative errno (a positive one is negated).
 * Returns @code as a negative errno so callers can write
 * `return rm_error_set(err, -EINVAL, "...")`.  @err may be NULL.
 */
int rm_error_set(struct rm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like rm_error_set() but always overwrites a previous message. */
int rm_error_force(struct rm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with more context ("restore: " + msg). */
void rm_error_prefix(struct rm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void rm_error_clear(struct rm_error *err);

/* The message, or strerror(-code) when no message was recorded. */
const char *rm_error_str(const struct rm_error *err);

#endif
