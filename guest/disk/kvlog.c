/* SPDX-License-Identifier: MIT */
/* The key-value service's append-only log on the disk (kvlog.h). */
#include "guest/disk/kvlog.h"
#include "guest/lib/rt.h"

#define HDR_MAGIC "RMKVLOG1"
#define HDR_VERSION 1u
#define REC_MAGIC 0x3152564bu   /* "KVR1" */
#define REC_SET 1u
#define FIRST_SECTOR 1u
#define SECTOR 512u

struct kvlog_hdr {
    char magic[8];
    uint32_t version;
    uint32_t sector;
    uint64_t size;
    uint64_t gen;
    uint64_t first;
    uint64_t csum;     /* FNV-1a-64 of the bytes before it */
};

struct kvlog_rec {
    uint32_t magic;
    uint32_t kind;
    uint64_t gen;
    uint64_t seq;
    uint64_t value;
    char key[KV_KEYLEN];
    uint64_t csum;     /* FNV-1a-64 of the bytes before it */
};

static uint64_t fnv1a(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;

    while (len--) {
        h ^= *b++;
        h *= 0x100000001b3ull;
    }
    return h;
}

static int all_zero(const uint8_t *p, size_t len)
{
    while (len--)
        if (*p++)
            return 0;
    return 1;
}

static void set_bad(struct kvlog *l, const char *why, int rc)
{
    l->state = KVLOG_BAD;
    rt_snprintf(l->why, sizeof(l->why), "%s (%d)", why, rc);
}

/* Is @r the record @seq of this log?  Copies it out of the sector. */
static int rec_valid(const struct kvlog *l, const uint8_t *sec,
                     uint64_t seq, struct kvlog_rec *r)
{
    memcpy(r, sec, sizeof(*r));
    return r->magic == REC_MAGIC && r->kind == REC_SET && r->gen == l->gen &&
           r->seq == seq && r->key[0] && !r->key[KV_KEYLEN - 1] &&
           r->csum == fnv1a(r, offsetof(struct kvlog_rec, csum));
}

/* Read the records from the disk in order, giving each to @apply, up to
 * the first invalid one.  Their count, or a negative RM_HC_DISK_E*. */
static int64_t scan(struct kvlog *l, kvlog_apply_fn apply, void *ctx)
{
    uint64_t n = 0, chunk = sizeof(l->buf);

    if (chunk > l->blk.max_io)
        chunk = l->blk.max_io;
    while (n < l->capacity) {
        uint64_t want = (l->capacity - n) * SECTOR, i;
        int rc;

        if (want > chunk)
            want = chunk;
        rc = blk_read(&l->blk, (FIRST_SECTOR + n) * SECTOR, l->buf, want);
        if (rc)
            return rc;
        for (i = 0; i < want / SECTOR; i++) {
            struct kvlog_rec r;

            if (!rec_valid(l, l->buf + i * SECTOR, n + 1, &r))
                return (int64_t)n;
            apply(ctx, r.key, r.value);
            n++;
        }
    }
    return (int64_t)n;
}

static void format(struct kvlog *l, uint64_t gen_seed)
{
    struct kvlog_hdr *h = (struct kvlog_hdr *)l->buf;
    int rc;

    l->gen = fnv1a(&gen_seed, sizeof(gen_seed)) | 1;
    l->capacity = l->blk.size / SECTOR - FIRST_SECTOR;
    /* Old records read as zeros (an older generation's are refused by
     * their generation anyway). */
    rc = blk_discard(&l->blk, FIRST_SECTOR * SECTOR, l->capacity * SECTOR);
    if (!rc)
        rc = blk_flush(&l->blk);
    if (rc)
        rt_printf("remus-guest: disk: discard before format failed (%d)\n",
                  rc);
    memset(l->buf, 0, SECTOR);
    memcpy(h->magic, HDR_MAGIC, 8);
    h->version = HDR_VERSION;
    h->sector = SECTOR;
    h->size = l->blk.size;
    h->gen = l->gen;
    h->first = FIRST_SECTOR;
    h->csum = fnv1a(h, offsetof(struct kvlog_hdr, csum));
    rc = blk_write(&l->blk, 0, l->buf, SECTOR, 1);
    if (rc) {
        set_bad(l, "cannot write the header", rc);
        return;
    }
    l->records = 0;
    l->formatted = 1;
    l->state = KVLOG_OK;
}

void kvlog_open(struct kvlog *l, int fmt, uint64_t gen_seed,
                kvlog_apply_fn apply, void *ctx)
{
    struct kvlog_hdr h;
    int64_t n;
    int rc;

    memset(l, 0, offsetof(struct kvlog, buf));
    blk_init(&l->blk);
    if (!l->blk.present)
        return;
    if (l->blk.sector != SECTOR || l->blk.size < 2 * SECTOR) {
        set_bad(l, "disk geometry unsupported", (int)l->blk.sector);
        return;
    }
    rc = blk_read(&l->blk, 0, l->buf, SECTOR);
    if (rc) {
        set_bad(l, "cannot read the header", rc);
        return;
    }
    memcpy(&h, l->buf, sizeof(h));
    if (fmt || all_zero(l->buf, SECTOR)) {
        format(l, gen_seed);
        return;
    }
    if (memcmp(h.magic, HDR_MAGIC, 8) || h.version != HDR_VERSION ||
        h.sector != SECTOR || h.first != FIRST_SECTOR ||
        h.size > l->blk.size || h.size < 2 * SECTOR || h.size % SECTOR ||
        h.csum != fnv1a(&h, offsetof(struct kvlog_hdr, csum))) {
        set_bad(l, "no valid header (disk_format=1 formats it)", 0);
        return;
    }
    l->gen = h.gen;
    l->capacity = h.size / SECTOR - FIRST_SECTOR;
    n = scan(l, apply, ctx);
    if (n < 0) {
        set_bad(l, "cannot read the records", (int)n);
        return;
    }
    l->records = (uint64_t)n;
    l->state = KVLOG_OK;
}

int kvlog_append(struct kvlog *l, const char *key, size_t klen,
                 uint64_t value)
{
    struct kvlog_rec r;
    int rc;

    if (l->records >= l->capacity) {
        l->full_refusals++;
        return KVLOG_EFULL;
    }
    memset(&r, 0, sizeof(r));
    r.magic = REC_MAGIC;
    r.kind = REC_SET;
    r.gen = l->gen;
    r.seq = l->records + 1;
    r.value = value;
    memcpy(r.key, key, klen < KV_KEYLEN - 1 ? klen : KV_KEYLEN - 1);
    r.csum = fnv1a(&r, offsetof(struct kvlog_rec, csum));
    memset(l->buf, 0, SECTOR);
    memcpy(l->buf, &r, sizeof(r));
    rc = blk_write(&l->blk, (FIRST_SECTOR + l->records) * SECTOR, l->buf,
                   SECTOR, 1);
    if (rc) {
        l->io_errors++;
        return rc;
    }
    l->records++;
    return 0;
}

/* scan()'s @apply for kvlog_check: the last value of each key. */
static void index_apply(void *ctx, const char *key, uint64_t value)
{
    struct kvlog *l = ctx;
    int i, free_i = -1;

    for (i = 0; i < KV_NKEYS; i++) {
        if (l->idx[i].key[0] && !strncmp(l->idx[i].key, key, KV_KEYLEN)) {
            l->idx[i].value = value;
            return;
        }
        if (!l->idx[i].key[0] && free_i < 0)
            free_i = i;
    }
    if (free_i < 0) {
        /* More keys than the service holds: cannot be ours. */
        rt_snprintf(l->why, sizeof(l->why), "more than %d keys on disk",
                    KV_NKEYS);
        return;
    }
    memcpy(l->idx[free_i].key, key, KV_KEYLEN);
    l->idx[free_i].value = value;
}

int kvlog_check(struct kvlog *l, kvlog_lookup_fn lookup, void *ctx,
                uint64_t mem_keys, uint64_t *disk_records)
{
    uint64_t keys = 0, v;
    int64_t n;
    int i;

    *disk_records = 0;
    l->why[0] = '\0';
    memset(l->idx, 0, sizeof(l->idx));
    n = scan(l, index_apply, l);
    if (n < 0) {
        rt_snprintf(l->why, sizeof(l->why), "read-error=%d", (int)n);
        return -1;
    }
    *disk_records = (uint64_t)n;
    if (l->why[0])
        return -1;
    if ((uint64_t)n != l->records) {
        rt_snprintf(l->why, sizeof(l->why), "expected=%lu", l->records);
        return -1;
    }
    for (i = 0; i < KV_NKEYS; i++) {
        if (!l->idx[i].key[0])
            continue;
        keys++;
        if (!lookup(ctx, l->idx[i].key, &v) || v != l->idx[i].value) {
            rt_snprintf(l->why, sizeof(l->why), "key=%s disk=%lu",
                        l->idx[i].key, l->idx[i].value);
            return -1;
        }
    }
    if (keys != mem_keys) {
        rt_snprintf(l->why, sizeof(l->why), "keys disk=%lu memory=%lu", keys,
                    mem_keys);
        return -1;
    }
    return 0;
}

int kvlog_reserve_tail(struct kvlog *l, uint64_t end)
{
    uint64_t cap = end / SECTOR;

    if (l->state != KVLOG_OK || cap <= FIRST_SECTOR)
        return -1;
    cap -= FIRST_SECTOR;
    if (l->records > cap)
        return -1;
    if (cap < l->capacity)
        l->capacity = cap;
    return 0;
}
