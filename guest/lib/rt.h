/* SPDX-License-Identifier: MIT */
/* The guest's tiny runtime over the remus hypercalls (no libc). */
#ifndef REMUS_GUEST_RT_H
#define REMUS_GUEST_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/kvm/guest_abi.h"

extern struct rm_guest_bootinfo *rt_bootinfo;

void rt_init(struct rm_guest_bootinfo *bi);
void hc(unsigned call, void *arg);

void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_puts(const char *s, size_t len);

uint64_t rt_now_ns(void);
/* Block until a frame is pending or @deadline_ns; returns 1 if a frame. */
int rt_poll(uint64_t deadline_ns);
void rt_halt(int code) __attribute__((noreturn));

/* "key=value" from the command line; returns @def when absent. */
uint64_t rt_cmdline_u64(const char *key, uint64_t def);

/* Parse an unsigned decimal at *p, advancing it; returns 0 on none. */
int rt_parse_u64(const char **p, uint64_t *out);

#ifdef RM_GUEST_MULTIBOOT
extern uint64_t rt_tsc_khz;
uint64_t rt_calibrate_tsc(void);
#endif
/* The time stamp counter: host time, never the same on two VMs (NOISE). */
uint64_t rt_rdtsc(void);

static inline void cpu_relax(void)
{
    __asm__ volatile("pause");
}

#endif
