/* SPDX-License-Identifier: MIT */
/*
 * The guest's console output (the PUTS hypercall) on its way to the
 * console log or to our stderr.  The guest is not trusted with either:
 *  - control characters other than newline and tab are shown as \xNN
 *    (no terminal escape sequences, no forged log lines);
 *  - the volume is bounded: a burst of RM_CONSOLE_BURST bytes, then
 *    RM_CONSOLE_RATE bytes a second; what exceeds it is dropped, and the
 *    next line that gets through says how many bytes were.
 */
#ifndef REMUS_BACKENDS_KVM_CONSOLE_H
#define REMUS_BACKENDS_KVM_CONSOLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define RM_CONSOLE_BURST (256u * 1024)
#define RM_CONSOLE_RATE (16u * 1024)

struct rm_console {
    int fd;
    char prefix[80];         /* "[NAME] " before each write to stderr */
    pthread_mutex_t lock;    /* vCPUs write concurrently */
    uint64_t tokens;         /* bytes that may still be written now */
    uint64_t last_ns;        /* when tokens were last refilled */
    uint64_t dropped;        /* bytes dropped since the last notice */
};

/* To @fd (not owned); @name prefixes writes when @fd is stderr. */
void rm_console_init(struct rm_console *c, int fd, const char *name);
void rm_console_destroy(struct rm_console *c);
/* Write @len bytes of guest output at time @now_ns (monotonic). */
void rm_console_write(struct rm_console *c, const void *data, size_t len,
                      uint64_t now_ns);

#endif
