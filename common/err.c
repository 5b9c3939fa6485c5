/* SPDX-License-Identifier: MIT */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int normalise_code(int code)
{
    if (code > 0)
        return -code;
    if (code == 0)
        return -EIO;
    return code;
}

static int set_va(struct rm_error *err, int code, int force,
                  const char *fmt, va_list ap)
{
    code = normalise_code(code);
    if (!err)
        return code;
    if (err->code && !force)
        return code;
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

int rm_error_set(struct rm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = set_va(err, code, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int rm_error_force(struct rm_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = set_va(err, code, 1, fmt, ap);
    va_end(ap);
    return rc;
}

void rm_error_prefix(struct rm_error *err, const char *fmt, ...)
{
    char prefix[RM_ERROR_MSG_MAX];
    char old[RM_ERROR_MSG_MAX];
    va_list ap;

    if (!err || !err->code)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    {
        size_t plen = strnlen(prefix, sizeof(prefix));
        size_t room = sizeof(err->msg) - 1;

        if (plen > room)
            plen = room;
        memcpy(err->msg, prefix, plen);
        strncpy(err->msg + plen, old, room - plen);
        err->msg[room] = '\0';
    }
}

void rm_error_clear(struct rm_error *err)
{
    if (!err)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *rm_error_str(const struct rm_error *err)
{
    if (!err || !err->code)
        return "no error";
    if (err->msg[0])
        return err->msg;
    return strerror(-err->code);
}
