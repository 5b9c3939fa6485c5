/* SPDX-License-Identifier: MIT */
/*
 * The disks in the handshake and the initial sync's hash exchange
 * (proto/disks.h).
 */
#define RM_LOG_PREFIX "disks"
#include "proto/disks.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io.h"
#include "common/log.h"

static const struct rm_hello_disk *find(const struct rm_hello *h,
                                        uint32_t id)
{
    uint32_t i;

    for (i = 0; i < h->nr_disks; i++)
        if (h->disks[i].id == id)
            return &h->disks[i];
    return NULL;
}

const char *rm_disks_disagree(const struct rm_hello *primary,
                              const struct rm_hello *secondary, char *why,
                              size_t len)
{
    uint32_t i;

    for (i = 0; i < primary->nr_disks; i++) {
        const struct rm_hello_disk *p = &primary->disks[i];
        const struct rm_hello_disk *s = find(secondary, p->id);

        if (p->unreplicated)
            continue;       /* -F -d: this side's image, if any, is stale */
        if (!s) {
            snprintf(why, len, "the primary replicates disk %u (%" PRIu64
                     " bytes) and this secondary has no replica image for "
                     "it (--disk PATH)", p->id, p->size);
            return why;
        }
        if (s->size != p->size) {
            snprintf(why, len, "disk %u: the primary's image is %" PRIu64
                     " bytes, this secondary's replica image is %" PRIu64
                     " bytes (they must be the same size)", p->id, p->size,
                     s->size);
            return why;
        }
    }
    for (i = 0; i < secondary->nr_disks; i++)
        if (!find(primary, secondary->disks[i].id)) {
            snprintf(why, len, "this secondary has a replica image for disk "
                     "%u (--disk) and the primary replicates no such disk",
                     secondary->disks[i].id);
            return why;
        }
    return NULL;
}

int rm_disk_hashes_send(struct rm_chan *ch, struct rm_disk_replica *r,
                        const struct rm_hello *primary, uint32_t chunk,
                        struct rm_error *err)
{
    const struct rm_hello *hello = primary;
    struct rm_ctl_msg *m = NULL;
    uint8_t *hashes = NULL;
    uint64_t size, nr, first;
    uint32_t i;
    int rc = 0;

    m = calloc(1, sizeof(*m));
    if (!m)
        return rm_error_set(err, -ENOMEM, "out of memory");
    for (i = 0; !rc && i < hello->nr_disks; i++) {
        uint32_t id = hello->disks[i].id;
        uint64_t t0 = rm_now_ns();

        if (hello->disks[i].unreplicated) {
            LOG_WARN("UNSAFE: the primary does NOT replicate disk %u (-F "
                     "-d): this side's image of it stays as it is and falls "
                     "behind the guest's memory", id);
            continue;
        }

        size = hello->disks[i].size;
        nr = (size + chunk - 1) / chunk;
        free(hashes);
        hashes = malloc(nr * RM_DISK_HASH_BYTES);
        if (!hashes) {
            rc = rm_error_set(err, -ENOMEM, "out of memory for the hashes "
                              "of disk %u", id);
            break;
        }
        rc = rm_disk_replica_hash(r, id, chunk, hashes, err);
        if (rc)
            break;
        LOG_INFO("disk %u: %" PRIu64 " chunks of %u bytes hashed in %"
                 PRIu64 " ms", id, nr, chunk,
                 (rm_now_ns() - t0) / 1000000);
        for (first = 0; !rc && first < nr; first += m->u.disk_hashes.count) {
            uint64_t n = nr - first;

            if (n > RM_CTL_HASHES_MAX)
                n = RM_CTL_HASHES_MAX;
            memset(m, 0, sizeof(*m));
            m->kind = RM_CTL_DISK_HASHES;
            m->u.disk_hashes.disk = id;
            m->u.disk_hashes.chunk_bytes = chunk;
            m->u.disk_hashes.first = first;
            m->u.disk_hashes.total = nr;
            m->u.disk_hashes.count = (uint32_t)n;
            memcpy(m->u.disk_hashes.hashes,
                   hashes + first * RM_DISK_HASH_BYTES,
                   n * RM_DISK_HASH_BYTES);
            rc = rm_chan_send(ch, m);
            if (rc)
                rm_error_set(err, rc, "sending the hashes of disk %u: %s",
                             id, strerror(-rc));
        }
    }
    free(hashes);
    free(m);
    return rc;
}

/* One disk's hashes, in order, whole. */
static int recv_disk(struct rm_chan *ch, struct rm_ctl_msg *m,
                     const struct rm_hello_disk *d, uint64_t deadline,
                     uint8_t **out, uint64_t *nr, uint32_t *chunk,
                     struct rm_error *err)
{
    uint64_t got = 0, total = 0;
    int rc;

    *out = NULL;
    do {
        int left = (int)((deadline - rm_now_ns()) / 1000000);

        if (rm_now_ns() >= deadline)
            return rm_error_set(err, -ETIMEDOUT, "the secondary sent no "
                                "hashes of disk %u in time", d->id);
        rc = rm_chan_recv(ch, left > 0 ? left : 1, m);
        if (rc)
            return rm_error_set(err, rc, "waiting for the hashes of disk %u:"
                                " %s", d->id, rm_error_str(&ch->err));
        if (m->kind != RM_CTL_DISK_HASHES)
            return rm_error_set(err, -EPROTO, "the secondary sent a %s where"
                                " the hashes of disk %u belong",
                                rm_ctl_kind_name(m->kind), d->id);
        if (!got) {
            *chunk = m->u.disk_hashes.chunk_bytes;
            total = m->u.disk_hashes.total;
            if (total != (d->size + *chunk - 1) / *chunk)
                return rm_error_set(err, -EPROTO, "the secondary hashes disk"
                                    " %u in %" PRIu64 " chunks of %u bytes: "
                                    "they do not cover its %" PRIu64
                                    " bytes", d->id, total, *chunk, d->size);
            *out = malloc(total * RM_DISK_HASH_BYTES);
            if (!*out)
                return rm_error_set(err, -ENOMEM, "out of memory");
        }
        if (m->u.disk_hashes.disk != d->id ||
            m->u.disk_hashes.chunk_bytes != *chunk ||
            m->u.disk_hashes.total != total ||
            m->u.disk_hashes.first != got)
            return rm_error_set(err, -EPROTO, "the secondary's hashes are out"
                                " of order: disk %u chunks %" PRIu64 "..+%u "
                                "where disk %u chunk %" PRIu64 " was due",
                                m->u.disk_hashes.disk,
                                m->u.disk_hashes.first,
                                m->u.disk_hashes.count, d->id, got);
        memcpy(*out + got * RM_DISK_HASH_BYTES, m->u.disk_hashes.hashes,
               (size_t)m->u.disk_hashes.count * RM_DISK_HASH_BYTES);
        got += m->u.disk_hashes.count;
    } while (got < total);
    *nr = total;
    return 0;
}

/*
 * The primary's own hashes, computed in a thread while the secondary
 * hashes its images and sends theirs: the two sides hash at the same time.
 */
struct own_hashes {
    struct rm_disklog *log;
    const struct rm_hello *hello;
    uint8_t *h[RM_DISK_MAX];        /* by index in hello->disks */
    atomic_bool stop;
    int rc;
    struct rm_error err;
};

static void *own_hashes_main(void *arg)
{
    struct own_hashes *o = arg;
    uint32_t i;

    for (i = 0; !o->rc && i < o->hello->nr_disks; i++) {
        const struct rm_hello_disk *d = &o->hello->disks[i];
        uint64_t nr = (d->size + RM_DISK_CHUNK_DEFAULT - 1) /
                      RM_DISK_CHUNK_DEFAULT;

        if (d->unreplicated)
            continue;
        o->h[i] = malloc(nr * RM_DISK_HASH_BYTES);
        o->rc = o->h[i] ? rm_disklog_hash(o->log, d->id,
                                          RM_DISK_CHUNK_DEFAULT, o->h[i],
                                          &o->stop, &o->err)
                        : rm_error_set(&o->err, -ENOMEM, "out of memory for"
                                       " the hashes of disk %u", d->id);
    }
    return NULL;
}

int rm_disk_hashes_recv(struct rm_chan *ch, struct rm_disklog *log,
                        const struct rm_hello *hello, int timeout_ms,
                        uint64_t *nr_differ, uint64_t *nr_chunks,
                        struct rm_error *err)
{
    uint64_t deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    uint64_t differ = 0, chunks = 0, nr[RM_DISK_MAX] = { 0 };
    uint8_t *theirs[RM_DISK_MAX] = { NULL };
    uint32_t chunk[RM_DISK_MAX] = { 0 };
    struct rm_ctl_msg *m = calloc(1, sizeof(*m));
    struct own_hashes *own = calloc(1, sizeof(*own));
    bool hashing = false;
    pthread_t th;
    uint32_t i;
    int rc = m && own ? 0 : rm_error_set(err, -ENOMEM, "out of memory");

    if (!rc && hello->nr_disks > RM_DISK_MAX)
        rc = rm_error_set(err, -EINVAL, "%u disks: at most %u",
                          hello->nr_disks, RM_DISK_MAX);
    if (!rc) {
        own->log = log;
        own->hello = hello;
        atomic_init(&own->stop, false);
        rc = -pthread_create(&th, NULL, own_hashes_main, own);
        if (rc)
            rm_error_set(err, rc, "starting the hashing of the primary's "
                         "images: %s", strerror(-rc));
        hashing = !rc;
    }
    for (i = 0; !rc && i < hello->nr_disks; i++)
        if (!hello->disks[i].unreplicated)
            rc = recv_disk(ch, m, &hello->disks[i], deadline, &theirs[i],
                           &nr[i], &chunk[i], err);
    if (hashing) {
        if (rc)
            atomic_store(&own->stop, true);
        pthread_join(th, NULL);
        if (!rc && own->rc) {
            rc = own->rc;
            *err = own->err;
        }
    }
    for (i = 0; !rc && i < hello->nr_disks; i++) {
        uint64_t d = 0;

        if (hello->disks[i].unreplicated)
            continue;
        /* a secondary that hashed in other chunks: hash again in those */
        if (chunk[i] == RM_DISK_CHUNK_DEFAULT)
            rc = rm_disklog_resync_hashed(log, hello->disks[i].id, chunk[i],
                                          theirs[i], own->h[i], nr[i], &d,
                                          err);
        else
            rc = rm_disklog_resync(log, hello->disks[i].id, chunk[i],
                                   theirs[i], nr[i], &d, err);
        differ += d;
        chunks += nr[i];
    }
    for (i = 0; i < RM_DISK_MAX; i++) {
        free(theirs[i]);
        if (own)
            free(own->h[i]);
    }
    free(own);
    free(m);
    if (nr_differ)
        *nr_differ = differ;
    if (nr_chunks)
        *nr_chunks = chunks;
    return rc;
}
