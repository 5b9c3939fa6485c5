/* SPDX-License-Identifier: MIT */
#include "guest/lib/rt.h"

#ifdef RM_GUEST_MULTIBOOT
#include "guest/arch/mb_e1000.h"
#endif

struct rm_guest_bootinfo *rt_bootinfo;

void rt_init(struct rm_guest_bootinfo *bi)
{
    rt_bootinfo = bi;
}

#ifdef RM_GUEST_MULTIBOOT
/*
 * Booted by a multiboot loader (QEMU): no remus VMM behind us.  The
 * console is COM1, the clock the TSC (calibrated with the PIT by
 * mb_main), the network an e1000 when the command line has ip=
 * (guest/arch/mb_e1000.h), and halting writes QEMU's isa-debug-exit
 * port.  We run at CPL3 with IOPL 3: TCG allows the port I/O, PVM-based
 * KVM faults it and the #GP handler of guest/arch/multiboot.S does it.
 */
uint64_t rt_tsc_khz = 1000000;

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;

    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

uint64_t rt_calibrate_tsc(void)
{
    uint64_t t0, t1;

    outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01)); /* gate on */
    outb(0x43, 0xb0);               /* channel 2, lo/hi, mode 0 */
    outb(0x42, 11932 & 0xff);       /* 10 ms at 1.193182 MHz */
    outb(0x42, 11932 >> 8);
    t0 = rdtsc();
    while (!(inb(0x61) & 0x20))
        ;
    t1 = rdtsc();
    rt_tsc_khz = (t1 - t0) / 10 ? (t1 - t0) / 10 : 1;
    return rt_tsc_khz;
}

void hc(unsigned call, void *arg)
{
    switch (call) {
    case RM_HC_PUTS: {
        struct rm_hc_puts *a = arg;
        const char *p = (const char *)(uintptr_t)a->data;
        uint64_t i;

        for (i = 0; i < a->len; i++) {
            while (!(inb(0x3fd) & 0x20))
                ;
            outb(0x3f8, (uint8_t)p[i]);
        }
        break;
    }
    case RM_HC_CLOCK: {
        struct rm_hc_clock *c = arg;
        uint64_t t = rdtsc();

        c->monotonic_ns = t / rt_tsc_khz * 1000000 +
                          t % rt_tsc_khz * 1000000 / rt_tsc_khz;
        break;
    }
    case RM_HC_NET_INFO:
        /* The NIC comes up with the first NET_INFO (net_init); without
         * ip= on the command line or an e1000, no network, as before. */
        if (mb_e1000_init() || mb_e1000_info(arg))
            memset(arg, 0, sizeof(struct rm_hc_net_info));
        break;
    case RM_HC_NET_READ: {
        struct rm_hc_net_io *io = arg;
        size_t n = 0;
        int rc = mb_e1000_read((void *)(uintptr_t)io->data, io->len, &n);

        io->ret = rc < 0 ? -1 : rc;
        if (rc == 0)
            io->len = n;
        break;
    }
    case RM_HC_NET_WRITE: {
        struct rm_hc_net_io *io = arg;

        io->ret = mb_e1000_write((const void *)(uintptr_t)io->data,
                                 io->len) ? -1 : 0;
        break;
    }
    case RM_HC_POLL: {
        /* Spin on the receive ring (guest memory: no exit per check). */
        struct rm_hc_poll *p = arg;

        p->ready = (uint32_t)mb_e1000_rx_pending();
        while (!p->ready && rt_now_ns() < p->deadline_ns) {
            cpu_relax();
            p->ready = (uint32_t)mb_e1000_rx_pending();
        }
        break;
    }
    case RM_HC_HALT:
        outb(0xf4, (uint8_t)((struct rm_hc_halt *)arg)->exit_code);
        for (;;)
            cpu_relax();
    default:
        break;
    }
}
#else
void hc(unsigned call, void *arg)
{
    volatile uint32_t *door =
        (volatile uint32_t *)(uintptr_t)(RM_HC_MMIO_BASE + 8ull * call);
    uint32_t gpa = (uint32_t)(uintptr_t)arg;

    __asm__ volatile("" ::: "memory");
    *door = gpa;
    __asm__ volatile("" ::: "memory");
}
#endif

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

uint64_t rt_rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}
