/* SPDX-License-Identifier: MIT */
/*
 * Logging with a per-file prefix.
 *
 * Each .c file defines RM_LOG_PREFIX before including this header:
 *
 *     #define RM_LOG_PREFIX "stream"
 *     #include "common/log.h"
 *
 * and logs with LOG_ERR / LOG_WARN / LOG_INFO / LOG_DBG.  Lines look like
 * "remus[1234] stream: message".  The level and the sink are the one piece
 * of process-wide state in the project (set once by the CLI with
 * rm_log_init()); everything else travels in context structs.
 *
 * Library code uses LOG_* for progress and diagnostics only: errors are
 * returned (see common/err.h), never just logged.
 */
#ifndef REMUS_COMMON_LOG_H
#define REMUS_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum rm_log_level {
    RM_LOG_ERROR = 0,
    RM_LOG_WARN = 1,
    RM_LOG_INFO = 2,
    RM_LOG_DEBUG = 3,
};

/*
 * Set the level and the sink (NULL: stderr).  Not thread-safe; call once.
 * When the sink is the journal's stream (rm_log_is_journal()), every line
 * starts with its syslog priority, "<3>" (error), "<4>" (warning), "<6>"
 * (info) or "<7>" (debug), which journald strips and keeps: `journalctl
 * -p err` then shows the errors only.
 */
void rm_log_init(enum rm_log_level level, FILE *sink);
enum rm_log_level rm_log_level(void);

/*
 * Is @fd the stream that systemd connected to the journal: $JOURNAL_STREAM
 * ("DEVICE:INODE", set by systemd for a service's stdout/stderr) names
 * @fd's device and inode?  False without it, with a value that does not
 * parse, or for another file (stderr redirected by a shell below the
 * unit).
 */
bool rm_log_is_journal(int fd);

/*
 * Copy @in (@in_len bytes, any content) into @out as printable text: a
 * control character or DEL becomes \xNN and a backslash \\ (with
 * @keep_lines, newlines and tabs stay as they are).  Always NUL-terminates
 * (when @out_len > 0); stops before an escape that would not fit.
 * Returns the length written.  Every log line goes through it.
 */
size_t rm_log_escape(char *out, size_t out_len, const void *in,
                     size_t in_len, bool keep_lines);

void rm_log_msg(enum rm_log_level level, const char *prefix,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifndef RM_LOG_PREFIX
#define RM_LOG_PREFIX "remus"
#endif

#define LOG_ERR(...)  rm_log_msg(RM_LOG_ERROR, RM_LOG_PREFIX, __VA_ARGS__)
#define LOG_WARN(...) rm_log_msg(RM_LOG_WARN, RM_LOG_PREFIX, __VA_ARGS__)
#define LOG_INFO(...) rm_log_msg(RM_LOG_INFO, RM_LOG_PREFIX, __VA_ARGS__)
#define LOG_DBG(...)                                                    \
    do {                                                                \
        if (rm_log_level() >= RM_LOG_DEBUG)                             \
            rm_log_msg(RM_LOG_DEBUG, RM_LOG_PREFIX, __VA_ARGS__);       \
    } while (0)

#endif
