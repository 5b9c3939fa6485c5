/* SPDX-License-Identifier: MIT */
#include "guest/lib/rt.h"

struct rm_guest_bootinfo *rt_bootinfo;

void rt_init(struct rm_guest_bootinfo *bi)
{
    rt_bootinfo = bi;
}

void hc(unsigned call, void *arg)
{
    volatile uint32_t *door =
        (volatile uint32_t *)(uintptr_t)(RM_HC_MMIO_BASE + 8ull * call);
    uint32_t gpa = (uint32_t)(uintptr_t)arg;

    __asm__ volatile("" ::: "memory");
    *door = gpa;
    __asm__ volatile("" ::: "memory");
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *dd = d;
    const uint8_t *ss = s;

    while (n >= 8) {
        uint64_t v;

        __builtin_memcpy(&v, ss, 8);
        __builtin_memcpy(dd, &v, 8);
        dd += 8;
        ss += 8;
        n -= 8;
    }
    while (n--)
        *dd++ = *ss++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    uint8_t *dd = d;

    while (n--)
        *dd++ = (uint8_t)c;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;

    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

static void out_c(char *buf, size_t len, size_t *o, char c)
{
    if (*o + 1 < len)
        buf[*o] = c;
    (*o)++;
}

static void out_u(char *buf, size_t len, size_t *o, uint64_t v, unsigned base,
                  int width, char pad)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (width-- > n)
        out_c(buf, len, o, pad);
    while (n)
        out_c(buf, len, o, tmp[--n]);
}

int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
    size_t o = 0;

    for (; *fmt; fmt++) {
        int lng = 0, width = 0;
        char pad = ' ';

        if (*fmt != '%') {
            out_c(buf, len, &o, *fmt);
            continue;
        }
        fmt++;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

            if (v < 0) {
                out_c(buf, len, &o, '-');
                v = -v;
            }
            out_u(buf, len, &o, (uint64_t)v, 10, width, pad);
            break;
        }
        case 'u':
            out_u(buf, len, &o, lng ? va_arg(ap, uint64_t)
                                    : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            out_u(buf, len, &o, lng ? va_arg(ap, uint64_t)
                                    : va_arg(ap, unsigned), 16, width, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);

            while (s && *s)
                out_c(buf, len, &o, *s++);
            break;
        }
        case 'c':
            out_c(buf, len, &o, (char)va_arg(ap, int));
            break;
        case '%':
            out_c(buf, len, &o, '%');
            break;
        default:
            out_c(buf, len, &o, '?');
            break;
        }
    }
    if (len)
        buf[o < len ? o : len - 1] = '\0';
    return (int)o;
}

int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = rt_vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n;
}

void rt_puts(const char *s, size_t len)
{
    struct rm_hc_puts a;

    a.data = (uint64_t)(uintptr_t)s;
    a.len = len;
    hc(RM_HC_PUTS, &a);
}

void rt_printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = rt_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    rt_puts(buf, (size_t)n);
}

uint64_t rt_now_ns(void)
{
    struct rm_hc_clock c;

    hc(RM_HC_CLOCK, &c);
    return c.monotonic_ns;
}

int rt_poll(uint64_t deadline_ns)
{
    struct rm_hc_poll p = { .deadline_ns = deadline_ns };

    hc(RM_HC_POLL, &p);
    return (int)p.ready;
}

void rt_halt(int code)
{
    struct rm_hc_halt h = { .exit_code = code };

    for (;;)
        hc(RM_HC_HALT, &h);
}

int rt_parse_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    int n = 0;

    while (*p >= '0' && *p <= '9' && n < 19) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        n++;
    }
    if (!n)
        return 0;
    *pp = p;
    *out = v;
    return 1;
}

uint64_t rt_cmdline_u64(const char *key, uint64_t def)
{
    const char *c = rt_bootinfo->cmdline;
    size_t klen = strlen(key), i;

    for (i = 0; i < sizeof(rt_bootinfo->cmdline) && c[i]; i++) {
        if ((i == 0 || c[i - 1] == ' ') && !strncmp(c + i, key, klen) &&
            c[i + klen] == '=') {
            const char *p = c + i + klen + 1;
            uint64_t v;

            if (rt_parse_u64(&p, &v))
                return v;
        }
    }
    return def;
}
