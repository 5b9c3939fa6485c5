/* SPDX-License-Identifier: MIT */
/*
 * The guest's service: a key-value store over UDP (guest/PROTOCOL.md), a
 * memory-dirtying workload and a disk-writing one (guest/disk/diskload.h).  All state lives in guest memory, so a
 * checkpoint of memory + vCPU registers captures it whole; with a disk,
 * the keys are also kept on it (kv.h) and survive a cold boot.
 *
 * vCPU 0 serves the network; with two or more vCPUs, vCPU 1 runs the
 * workloads, otherwise vCPU 0 interleaves them with the network loop.
 */
#include "guest/app/kv.h"
#include "guest/disk/blk.h"
#include "guest/disk/diskload.h"
#include "guest/lib/rt.h"
#include "guest/net/net.h"

#define KEYLEN KV_KEYLEN
#define NCLIENTS 32
#define REPLY_MAX 200

extern char __image_end[];

struct client_slot {
    uint32_t id;
    int used;
    uint64_t last_req;
    char reply[REPLY_MAX];
    uint32_t reply_len;
    uint64_t last_use;
};

/*
 * Page-writes done by the memory workload.  A global symbol of its own:
 * the QEMU side-by-side benchmark (bench/qemu_bench.py) reads it from
 * guest memory at the address `nm` gives for the multiboot image.
 */
volatile uint64_t guest_page_writes;

static struct {
    struct client_slot clients[NCLIENTS];
    uint64_t seq;                       /* ops applied */
    uint64_t use_clock;
    /* workload knobs and counters (shared with vCPU 1) */
    volatile uint64_t dirty_rate;       /* page-writes/s, 0 = flat out */
    volatile uint64_t dirty_wss;        /* pages, 0 = off */
    volatile int ready;
    uint8_t *wss_base;
    uint64_t wss_max;
    uint16_t port;
    struct diskload dl;                 /* DISKLOAD */
} g;

static struct client_slot *client_slot(uint32_t id)
{
    struct client_slot *lru = &g.clients[0];
    int i;

    for (i = 0; i < NCLIENTS; i++) {
        if (g.clients[i].used && g.clients[i].id == id)
            return &g.clients[i];
        if (!g.clients[i].used ||
            (lru->used && g.clients[i].last_use < lru->last_use))
            lru = &g.clients[i];
    }
    memset(lru, 0, sizeof(*lru));
    lru->used = 1;
    lru->id = id;
    return lru;
}

static const char *skip_sp(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

static const char *word(const char *p, const char *end, size_t *len)
{
    const char *s = p;

    while (p < end && *p != ' ' && *p != '\n' && *p != '\r')
        p++;
    *len = (size_t)(p - s);
    return s;
}

static int parse_num(const char **pp, const char *end, uint64_t *v)
{
    const char *p = *pp;
    uint64_t x = 0;
    int n = 0;

    while (p < end && *p >= '0' && *p <= '9' && n < 19) {
        x = x * 10 + (uint64_t)(*p++ - '0');
        n++;
    }
    if (!n || (p < end && *p != ' ' && *p != '\n' && *p != '\r'))
        return 0;
    *pp = p;
    *v = x;
    return 1;
}

static int valid_key(const char *k, size_t len)
{
    size_t i;

    if (!len || len >= KEYLEN)
        return 0;
    for (i = 0; i < len; i++) {
        char c = k[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* DISKLOAD rate [fua]: start, change or stop the disk workload. */
static int diskload_cmd(uint64_t req, const char *p, const char *end,
                        char *out)
{
    const struct kvlog *l = kv_log();
    uint64_t rate, first, len;
    const char *w;
    size_t wlen;
    int fua = 0;

    if (!parse_num(&p, end, &rate))
        goto bad;
    p = skip_sp(p, end);
    w = word(p, end, &wlen);
    if (wlen == 3 && !memcmp(w, "fua", 3))
        fua = 1;
    else if (wlen)
        goto bad;
    if (l->state == KVLOG_NODISK)
        return rt_snprintf(out, REPLY_MAX, "%lu ERR no-disk seq=%lu", req,
                           g.seq);
    if (l->state == KVLOG_BAD)
        return rt_snprintf(out, REPLY_MAX, "%lu ERR disk-bad seq=%lu", req,
                           g.seq);
    if (diskload_area(l->blk.size, &first, &len))
        return rt_snprintf(out, REPLY_MAX, "%lu ERR disk-small seq=%lu", req,
                           g.seq);
    if (kv_reserve_disk_tail(first))
        return rt_snprintf(out, REPLY_MAX, "%lu ERR disk-busy seq=%lu", req,
                           g.seq);
    rate = diskload_set(&g.dl, first, len, rate, fua);
    g.seq++;
    return rt_snprintf(out, REPLY_MAX, "%lu OK rate=%lu fua=%d area=%lu+%lu "
                       "seq=%lu", req, rate, fua, first, len, g.seq);
bad:
    return rt_snprintf(out, REPLY_MAX, "%lu ERR bad-request seq=%lu", req,
                       g.seq);
}

/* Apply one request; write the reply.  Returns the reply length. */
static int apply(uint64_t req, const char *p, const char *end, char *out)
{
    size_t clen, klen;
    const char *cmd, *key;
    uint64_t v = 0;
    const char *err;

    p = skip_sp(p, end);
    cmd = word(p, end, &clen);
    p = skip_sp(cmd + clen, end);

#define IS(s) (clen == sizeof(s) - 1 && !memcmp(cmd, s, clen))
    if (IS("STATS")) {
        const struct kvlog *l = kv_log();
        int n;

        g.seq++;
        n = rt_snprintf(out, REPLY_MAX, "%lu OK writes=%lu ops=%lu now=%lu "
                        "seq=%lu", req, guest_page_writes, g.seq,
                        rt_now_ns(), g.seq);
        if (l->state == KVLOG_NODISK || n >= REPLY_MAX)
            return n;
        n += rt_snprintf(out + n, (size_t)(REPLY_MAX - n), " disk_recs="
                         "%lu disk_free=%lu disk_err=%lu",
                         l->records, l->capacity - l->records, l->blk.errors);
        if (!g.dl.started || n >= REPLY_MAX)
            return n;
        return n + rt_snprintf(out + n, (size_t)(REPLY_MAX - n), " disk_w=%lu"
                               " disk_w_ns=%lu disk_w_err=%lu", g.dl.writes,
                               g.dl.write_ns, g.dl.errors);
    }
    if (IS("DISKLOAD"))
        return diskload_cmd(req, p, end, out);
    if (IS("DISKCHECK")) {
        uint64_t recs;

        if (kv_log()->state == KVLOG_NODISK)
            return rt_snprintf(out, REPLY_MAX, "%lu ERR no-disk seq=%lu",
                               req, g.seq);
        if (kv_log()->state == KVLOG_BAD)
            return rt_snprintf(out, REPLY_MAX, "%lu ERR disk-bad seq=%lu",
                               req, g.seq);
        g.seq++;
        if (kv_diskcheck(&recs))
            return rt_snprintf(out, REPLY_MAX, "%lu ERR disk-mismatch %s "
                               "records=%lu seq=%lu", req, kv_log()->why,
                               recs, g.seq);
        return rt_snprintf(out, REPLY_MAX, "%lu OK disk=ok records=%lu "
                           "seq=%lu", req, recs, g.seq);
    }
    if (IS("NOISE")) {
        /* Write N pages of the workload area chosen by the time stamp
         * counter: what two copies of this VM never do alike (COLO's
         * replica: only its dirty pages sent back undo it).  The reply
         * is the same on both. */
        uint64_t n, i;

        if (!parse_num(&p, end, &n) || n > 4096 || !g.wss_max)
            goto bad;
        for (i = 0; i < n; i++) {
            uint64_t t = rt_rdtsc();
            uint64_t page = (t ^ (t >> 17) ^ (i * 0x9e3779b97f4a7c15ull)) %
                            g.wss_max;

            *(volatile uint64_t *)(g.wss_base + page * 4096 + 64) = t;
        }
        g.seq++;
        return rt_snprintf(out, REPLY_MAX, "%lu OK noise=%lu seq=%lu", req,
                           n, g.seq);
    }
    if (IS("DIRTY")) {
        uint64_t rate, wss;

        if (!parse_num(&p, end, &rate))
            goto bad;
        p = skip_sp(p, end);
        if (!parse_num(&p, end, &wss))
            goto bad;
        if (wss > g.wss_max)
            wss = g.wss_max;
        g.dirty_rate = rate;
        g.dirty_wss = wss;
        g.seq++;
        return rt_snprintf(out, REPLY_MAX, "%lu OK rate=%lu wss=%lu seq=%lu",
                           req, rate, wss, g.seq);
    }
    key = word(p, end, &klen);
    p = skip_sp(key + klen, end);
    if (!valid_key(key, klen))
        goto bad;
    if (IS("GET")) {
        v = kv_get(key, klen);
    } else if (IS("SET") || IS("INCR")) {
        if (IS("SET") && !parse_num(&p, end, &v))
            goto bad;
        if (IS("INCR"))
            v = kv_get(key, klen) + 1;
        err = kv_set(key, klen, v);
        if (err)
            return rt_snprintf(out, REPLY_MAX, "%lu ERR %s seq=%lu", req,
                               err, g.seq);
    } else {
        goto bad;
    }
#undef IS
    g.seq++;
    return rt_snprintf(out, REPLY_MAX, "%lu OK %lu seq=%lu", req, v, g.seq);
bad:
    return rt_snprintf(out, REPLY_MAX, "%lu ERR bad-request seq=%lu", req,
                       g.seq);
}

static void on_udp(const struct udp_peer *from, const uint8_t *data,
                   size_t len)
{
    const char *p = (const char *)data, *end = p + len;
    struct client_slot *c;
    uint64_t client, req;
    char reply[REPLY_MAX];
    int n;

    if (len == 0 || len > 200)
        return;
    p = skip_sp(p, end);
    if (!parse_num(&p, end, &client) || client > 0xffffffffu)
        goto malformed;
    p = skip_sp(p, end);
    if (!parse_num(&p, end, &req) || req == 0)
        goto malformed;
    c = client_slot((uint32_t)client);
    c->last_use = ++g.use_clock;
    if (req == c->last_req) {
        /* A retransmission: answer again, apply nothing. */
        net_udp_send(from, g.port, c->reply, c->reply_len);
        return;
    }
    if (req < c->last_req) {
        n = rt_snprintf(reply, sizeof(reply), "%lu ERR stale-request "
                        "seq=%lu", req, g.seq);
        net_udp_send(from, g.port, reply, (size_t)n);
        return;
    }
    n = apply(req, p, end, reply);
    if (n > REPLY_MAX - 1)
        n = REPLY_MAX - 1;
    c->last_req = req;
    memcpy(c->reply, reply, (size_t)n);
    c->reply_len = (uint32_t)n;
    net_udp_send(from, g.port, reply, (size_t)n);
    return;
malformed:
    n = rt_snprintf(reply, sizeof(reply), "0 ERR malformed seq=%lu", g.seq);
    net_udp_send(from, g.port, reply, (size_t)n);
}

/* Dirty up to @budget pages of the working set; returns pages written. */
static uint64_t dirty_some(uint64_t budget, uint64_t *cursor)
{
    uint64_t wss = g.dirty_wss, i;

    if (!wss)
        return 0;
    for (i = 0; i < budget; i++) {
        volatile uint64_t *q;

        if (*cursor >= wss)
            *cursor = 0;
        q = (volatile uint64_t *)(g.wss_base + *cursor * 4096);
        *q = *q + 1;
        (*cursor)++;
    }
    __atomic_add_fetch(&guest_page_writes, budget, __ATOMIC_RELAXED);
    return budget;
}

static void publish_stats(void)
{
    struct rm_hc_stats s = { .page_writes = guest_page_writes, .kv_ops = g.seq,
                             .kv_seq = g.seq };

    hc(RM_HC_STATS, &s);
}

/* Paced workload step: how many writes are due since @t0 at the rate. */
static uint64_t due(uint64_t t0, uint64_t done)
{
    uint64_t rate = g.dirty_rate, want;

    if (!rate)
        return 4096;
    want = (rt_now_ns() - t0) / 1000 * rate / 1000000;
    return want > done ? (want - done > 65536 ? 65536 : want - done) : 0;
}

static void workload_vcpu(void)
{
    uint64_t cursor = 0, t0 = rt_now_ns(), done = 0, last_rate = 0;

    for (;;) {
        uint64_t n, disk = diskload_step(&g.dl, 64);

        if (!g.dirty_wss) {
            if (!disk)
                rt_poll(rt_now_ns() + (g.dl.rate ? 200000 : 5000000));
            t0 = rt_now_ns();
            done = 0;
            continue;
        }
        if (g.dirty_rate != last_rate) {
            last_rate = g.dirty_rate;
            t0 = rt_now_ns();
            done = 0;
        }
        n = due(t0, done);
        if (n == 0) {
            if (!disk)
                rt_poll(rt_now_ns() + 200000);
            continue;
        }
        done += dirty_some(n, &cursor);
    }
}

static void workload_report_loop(void)
{
    uint64_t cursor = 0, t0 = rt_now_ns(), done = 0, last = 0;
    uint64_t next = t0 + 1000000000ull;

    for (;;) {
        uint64_t n = due(t0, done), now;

        if (n)
            done += dirty_some(n > 65536 ? 65536 : n, &cursor);
        else
            cpu_relax();
        now = rt_now_ns();
        if (now >= next) {
            rt_printf("remus-guest: page-writes/s %lu total %lu\n",
                      guest_page_writes - last, guest_page_writes);
            last = guest_page_writes;
            next += 1000000000ull;
        }
    }
}

static void network_loop(int interleave)
{
    uint64_t next_stats = 0, cursor = 0, t0 = rt_now_ns(), done = 0;
    uint64_t last_rate = g.dirty_rate;

    for (;;) {
        uint64_t now = rt_now_ns();

        net_poll();
        if (now >= next_stats) {
            publish_stats();
            next_stats = now + 10000000;
        }
        if (interleave && diskload_step(&g.dl, 16))
            continue;
        if (interleave && g.dirty_wss) {
            uint64_t n;

            if (g.dirty_rate != last_rate) {
                last_rate = g.dirty_rate;
                t0 = now;
                done = 0;
            }
            n = due(t0, done);
            if (n) {
                done += dirty_some(n > 1024 ? 1024 : n, &cursor);
                continue;
            }
            /* From a fresh clock: this loop's own hypercalls can take
             * longer than the wait, and a deadline already past would
             * not sleep at all (the paced guest spun at 100% of a core). */
            rt_poll(rt_now_ns() + 200000);
        } else if (interleave && g.dl.rate) {
            rt_poll(rt_now_ns() + 200000);
        } else {
            rt_poll(next_stats);
        }
    }
}

int guest_main(struct rm_guest_bootinfo *bi, uint64_t vcpu);

int guest_main(struct rm_guest_bootinfo *bi, uint64_t vcpu)
{
    if (vcpu != 0) {
        while (!__atomic_load_n(&g.ready, __ATOMIC_ACQUIRE))
            rt_poll(rt_now_ns() + 1000000);
        if (vcpu == 1)
            workload_vcpu();
        for (;;)
            rt_poll(rt_now_ns() + 1000000000ull);
    }
    rt_init(bi);
    if (bi->abi_version != RM_GUEST_ABI_VERSION)
        rt_halt(2);
    {
        uint64_t base = ((uint64_t)(uintptr_t)__image_end + 0x1fffff) &
                        ~0x1fffffull;

        g.wss_base = (uint8_t *)(uintptr_t)base;
        g.wss_max = base < bi->mem_bytes ? (bi->mem_bytes - base) / 4096 : 0;
    }
    kv_boot((int)rt_cmdline_u64("disk_format", 0), rt_now_ns());
    if (rt_cmdline_u64("disk_probe", 0))
        blk_probe(bi->mem_bytes);
    g.port = (uint16_t)rt_cmdline_u64("kv_port", 7000);
    g.dirty_rate = rt_cmdline_u64("dirty_rate", 0);
    g.dirty_wss = rt_cmdline_u64("dirty_wss", 0);
    if (g.dirty_wss > g.wss_max)
        g.dirty_wss = g.wss_max;
    if (net_init(g.port, on_udp)) {
        /* No network (e.g. booted by QEMU): run the workload alone and
         * report its rate every second on the console. */
        rt_printf("remus-guest: up without network: %lu MiB, workload %lu "
                  "pages at %lu/s (max %lu)\n", bi->mem_bytes >> 20,
                  g.dirty_wss, g.dirty_rate, g.wss_max);
        workload_report_loop();
    }
    {
        uint32_t ip = net_ip();

        rt_printf("remus-guest: up: %u vcpus, %lu MiB, kv on "
                  "%u.%u.%u.%u:%u, workload %lu pages at %lu/s (max %lu)\n",
                  bi->nr_vcpus, bi->mem_bytes >> 20, ip & 0xff,
                  (ip >> 8) & 0xff, (ip >> 16) & 0xff, ip >> 24, g.port,
                  g.dirty_wss, g.dirty_rate, g.wss_max);
    }
    net_announce();
    __atomic_store_n(&g.ready, 1, __ATOMIC_RELEASE);
    network_loop(bi->nr_vcpus < 2);
    return 0;
}
