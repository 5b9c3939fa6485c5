/* SPDX-License-Identifier: MIT */
#include "backends/kvm/console.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"

void rm_console_init(struct rm_console *c, int fd, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    if (fd == STDERR_FILENO)
        snprintf(c->prefix, sizeof(c->prefix), "[%.64s] ", name);
    pthread_mutex_init(&c->lock, NULL);
    c->tokens = RM_CONSOLE_BURST;
}

/* The note saying how much was dropped since the last one ("" if none). */
static void drop_note(struct rm_console *c, char *note, size_t len)
{
    note[0] = '\0';
    if (c->dropped)
        snprintf(note, len, "%s[console: %llu bytes of guest output dropped "
                 "(over %u bytes/s)]\n", c->prefix,
                 (unsigned long long)c->dropped, RM_CONSOLE_RATE);
    c->dropped = 0;
}

void rm_console_destroy(struct rm_console *c)
{
    char note[192];

    drop_note(c, note, sizeof(note));
    if (note[0] && write(c->fd, note, strlen(note)) < 0)
        (void)0;
    pthread_mutex_destroy(&c->lock);
}

/* Refill at RM_CONSOLE_RATE up to RM_CONSOLE_BURST. */
static void refill(struct rm_console *c, uint64_t now_ns)
{
    uint64_t add;

    if (now_ns <= c->last_ns)
        return;
    add = (now_ns - c->last_ns) / (1000000000ull / RM_CONSOLE_RATE);
    if (!add)
        return;
    c->tokens = c->tokens + add > RM_CONSOLE_BURST ? RM_CONSOLE_BURST
                                                   : c->tokens + add;
    c->last_ns = now_ns;
}

void rm_console_write(struct rm_console *c, const void *data, size_t len,
                      uint64_t now_ns)
{
    char text[4 * 4096 + 1], note[192];
    struct iovec iov[3];
    size_t n;

    /* Up to 4096 input bytes per call (the hypercall's bound). */
    if (len > 4096)
        len = 4096;
    pthread_mutex_lock(&c->lock);
    if (!c->last_ns)
        c->last_ns = now_ns;
    refill(c, now_ns);
    if (len > c->tokens) {
        c->dropped += len;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->tokens -= len;
    n = rm_log_escape(text, sizeof(text), data, len, true);
    drop_note(c, note, sizeof(note));
    iov[0].iov_base = note;
    iov[0].iov_len = strlen(note);
    iov[1].iov_base = c->prefix;
    iov[1].iov_len = strlen(c->prefix);
    iov[2].iov_base = text;
    iov[2].iov_len = n;
    if (writev(c->fd, iov, 3) < 0)
        (void)0;
    pthread_mutex_unlock(&c->lock);
}
