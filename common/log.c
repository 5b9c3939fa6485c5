/* SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    bool journal;                  /* prefix syslog priorities */
} rm_logger = { RM_LOG_INFO, NULL, false };

bool rm_log_is_journal(int fd)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int n = 0;

    if (!js || sscanf(js, "%llu:%llu%n", &dev, &ino, &n) != 2 ||
        js[n] != '\0' || fstat(fd, &st))
        return false;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void rm_log_init(enum rm_log_level level, FILE *sink)
{
    rm_logger.level = level;
    rm_logger.sink = sink;
    rm_logger.journal = rm_log_is_journal(fileno(sink ? sink : stderr));
}

enum rm_log_level rm_log_level(void)
{
    return rm_logger.level;
}

size_t rm_log_escape(char *out, size_t out_len, const void *in,
                     size_t in_len, bool keep_lines)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    size_t o = 0, i;

    if (!out_len)
        return 0;
    for (i = 0; i < in_len; i++) {
        unsigned char c = p[i];
        char esc[4];
        size_t n = 1;

        esc[0] = (char)c;
        if (c == '\\') {
            esc[1] = '\\';
            n = 2;
        } else if ((c < 0x20 || c == 0x7f) &&
                   !(keep_lines && (c == '\n' || c == '\t'))) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            n = 4;
        }
        if (o + n >= out_len)      /* whole escapes only */
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

void rm_log_msg(enum rm_log_level level, const char *prefix,
                const char *fmt, ...)
{
    static const char *const names[] = { "error: ", "warning: ", "", "" };
    /* syslog's LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
    static const char *const prio[] = { "<3>", "<4>", "<6>", "<7>" };
    char msg[1024], line[1100];
    int saved_errno = errno;
    va_list ap;
    int n, m;

    if (level > rm_logger.level)
        return;
    n = snprintf(line, sizeof(line), "%sremus[%d] %s: %s",
                 rm_logger.journal ? prio[level] : "", (int)getpid(), prefix,
                 names[level]);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    /* Messages carry strings from peers and guests: a control character
     * (an escape sequence, a forged newline) is shown as \xNN. */
    rm_log_escape(line + n, sizeof(line) - (size_t)n, msg,
                  (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1,
                  false);
    fprintf(rm_logger.sink ? rm_logger.sink : stderr, "%s\n", line);
    errno = saved_errno;
}
