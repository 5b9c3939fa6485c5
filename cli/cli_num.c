/* SPDX-License-Identifier: MIT */
/* The command line's one number parser (see cli.h). */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* @arg as a whole unsigned number in @base (10, or 0: also 0x-hex): only
 * digits (no sign, no blanks), no overflow.  True when it is one. */
static bool to_ull(const char *arg, int base, unsigned long long *v)
{
    char *end;

    if (!isdigit((unsigned char)arg[0]))
        return false;
    errno = 0;
    *v = strtoull(arg, &end, base);
    return !errno && !*end;
}

int cli_uint(const char *cmd, const char *opt, const char *arg,
             unsigned long long min, unsigned long long max,
             unsigned long long *out)
{
    unsigned long long v;

    if (!to_ull(arg, 10, &v) || v < min || v > max) {
        if (max == ULLONG_MAX)
            return cli_usage_error(cmd, "%s %s: a number of at least %llu",
                                   opt, arg, min);
        return cli_usage_error(cmd, "%s %s: a number from %llu to %llu",
                               opt, arg, min, max);
    }
    *out = v;
    return 0;
}

int cli_uint32(const char *cmd, const char *opt, const char *arg,
               unsigned min, unsigned max, unsigned *out)
{
    unsigned long long v = 0;
    int rc = cli_uint(cmd, opt, arg, min, max, &v);

    if (!rc)
        *out = (unsigned)v;
    return rc;
}

int cli_frame(const char *cmd, const char *what, const char *arg,
              unsigned long long *out)
{
    if (!to_ull(arg, 0, out))
        return cli_usage_error(cmd, "%s '%s' is not a number (decimal or "
                               "0x-hex, below 2^64)", what, arg);
    return 0;
}
