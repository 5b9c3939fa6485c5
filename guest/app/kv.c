/* SPDX-License-Identifier: MIT */
/* The key-value index and its log on the disk (kv.h). */
#include "guest/app/kv.h"
#include "guest/lib/rt.h"

struct kv_entry {
    char key[KV_KEYLEN];
    uint64_t value;
    int used;
};

static struct {
    struct kv_entry kv[KV_NKEYS];
    uint64_t used;
    struct kvlog log;
} s;

static struct kv_entry *kv_find(const char *key, size_t len, int create)
{
    struct kv_entry *free_e = 0;
    int i;

    for (i = 0; i < KV_NKEYS; i++) {
        struct kv_entry *e = &s.kv[i];

        if (e->used && strlen(e->key) == len && !memcmp(e->key, key, len))
            return e;
        if (!e->used && !free_e)
            free_e = e;
    }
    if (!create || !free_e)
        return 0;
    memset(free_e, 0, sizeof(*free_e));
    memcpy(free_e->key, key, len);
    free_e->used = 1;
    s.used++;
    return free_e;
}

static void replay_apply(void *ctx, const char *key, uint64_t value)
{
    struct kv_entry *e = kv_find(key, strlen(key), 1);

    (void)ctx;
    if (e)
        e->value = value;
}

static int lookup(void *ctx, const char *key, uint64_t *value)
{
    struct kv_entry *e = kv_find(key, strlen(key), 0);

    (void)ctx;
    if (!e)
        return 0;
    *value = e->value;
    return 1;
}

void kv_boot(int format, uint64_t seed)
{
    kvlog_open(&s.log, format, seed, replay_apply, 0);
    if (s.log.state == KVLOG_OK)
        rt_printf("remus-guest: disk: %lu KiB, %s, %lu records replayed "
                  "(%lu keys), room for %lu more\n", s.log.blk.size >> 10,
                  s.log.formatted ? "formatted" : "log found",
                  s.log.records, s.used, s.log.capacity - s.log.records);
    else if (s.log.state == KVLOG_BAD)
        rt_printf("remus-guest: disk unusable: %s\n", s.log.why);
}

uint64_t kv_get(const char *key, size_t len)
{
    struct kv_entry *e = kv_find(key, len, 0);

    return e ? e->value : 0;
}

const char *kv_set(const char *key, size_t len, uint64_t v)
{
    struct kv_entry *e = kv_find(key, len, 0);
    int rc;

    if (!e && s.used >= KV_NKEYS)
        return "full";
    if (s.log.state == KVLOG_BAD)
        return "disk-bad";
    if (s.log.state == KVLOG_OK) {
        rc = kvlog_append(&s.log, key, len, v);
        if (rc == KVLOG_EFULL)
            return "disk-full";
        if (rc)
            return "disk-io";
    }
    if (!e)
        e = kv_find(key, len, 1);
    e->value = v;
    return 0;
}

const struct kvlog *kv_log(void)
{
    return &s.log;
}

int kv_diskcheck(uint64_t *records)
{
    return kvlog_check(&s.log, lookup, 0, s.used, records);
}

int kv_reserve_disk_tail(uint64_t end)
{
    return kvlog_reserve_tail(&s.log, end);
}
