/* SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/*
 * The logger is the project's single piece of process-wide state: a level
 * and a sink.  Writes are one fprintf of a pre-formatted line, so lines
 * from different threads do not interleave mid-line.
 */
static struct {
    enum rm_log_level level;
    FILE *sink;
} rm_logger = { RM_LOG_INFO, NULL };

void rm_log_init(enum rm_log_level level, FILE *sink)
{
    rm_logger.level = level;
    rm_logger.sink = sink;
}

enum rm_log_level rm_log_level(void)
{
    return rm_logger.level;
}

void rm_log_msg(enum rm_log_level level, const char *prefix,
                const char *fmt, ...)
{
    static const char *const names[] = { "error: ", "warning: ", "", "" };
    char line[1024];
    int saved_errno = errno;
    va_list ap;
    int n;

    if (level > rm_logger.level)
        return;
    n = snprintf(line, sizeof(line), "remus[%d] %s: %s", (int)getpid(),
                 prefix, names[level]);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(rm_logger.sink ? rm_logger.sink : stderr, "%s\n", line);
    errno = saved_errno;
}
