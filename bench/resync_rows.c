/* SPDX-License-Identifier: MIT */
/*
 * kvm_bench's resync rows (see kvm_bench.h): a 1 GiB image (64 MiB in a
 * smoke run) with 1% of its chunks changed resynced through the real code
 * (the secondary's hashing in a thread, the primary's, the differing
 * chunks streamed and applied), dense and sparse, against a full copy.
 */
#include "bench/kvm_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/disklog.h"
#include "common/io.h"

/* The secondary's end of a resync: read the stream from @fd, check each
 * DISK_WRITES record and apply it (the restore engine's calls). */
struct pump {
    int fd;
    struct rm_disk_replica *r;
    struct rm_error err;
    int rc;
};

static void *pump_main(void *o)
{
    struct pump *p = o;
    struct rm_stream_reader rd;
    struct rm_src src;
    struct rm_record rec;
    bool begun = false;
    int rc;

    rm_src_init_fd(&src, p->fd);
    rm_stream_reader_init(&rd, &src, &p->err);
    rc = rm_stream_read_headers(&rd);
    while (!rc && (rc = rm_stream_read_record(&rd, &rec)) == 0) {
        if (rec.type == RM_REC_DISK_INFO) {
            rc = rm_disk_replica_info(p->r, &rec, &p->err);
        } else if (rec.type == RM_REC_DISK_WRITES) {
            rc = rm_disk_replica_check(p->r, 1, &rec, &p->err);
            if (!rc && !begun) {
                rc = rm_disk_replica_begin_apply(p->r, 1, &p->err);
                begun = !rc;
            }
            if (!rc)
                rc = rm_disk_replica_apply(p->r, &rec, &p->err);
        }
        rm_record_free(&rec);
    }
    if (rc == -ENODATA) {           /* the writer closed: all read */
        rm_error_clear(&p->err);
        rc = 0;
    }
    if (!rc && begun)
        rc = rm_disk_replica_end_apply(p->r, 1, &p->err);
    p->rc = rc;
    return NULL;
}

/* The secondary's hashing, in its own thread as on its own host. */
struct replica_hashing {
    struct rm_disk_replica *r;
    uint32_t chunk;
    uint8_t *h;
    struct rm_error err;
    int rc;
};

static void *replica_hashing_main(void *o)
{
    struct replica_hashing *rh = o;

    rh->rc = rm_disk_replica_hash(rh->r, 0, rh->chunk, rh->h, &rh->err);
    return NULL;
}

/*
 * One resync of the replica image @rpath from the primary's @pfd (@size
 * bytes) through the real code: the secondary hashes its image
 * (rm_disk_replica_hash, in a thread) while the primary hashes its own
 * (rm_disklog_hash), as the two hosts do, then the primary queues the
 * differing chunks (rm_disklog_resync_hashed; @hashed false: every chunk,
 * a full copy) and
 * emits them into a pipe, the secondary checks and applies them (its
 * final fdatasync included).  Then, not timed, the two images must hash
 * the same.  0 with *ms (all), *hash_ms (both hashes, until the chunks
 * are queued), *chunks and *bytes set, or -errno with @why.
 */
static int resync_once(int pfd, uint64_t size, const char *rpath,
                       const char *statedir, bool hashed, double *ms,
                       double *hash_ms, uint64_t *chunks, uint64_t *bytes,
                       char *why, size_t whylen)
{
    const uint32_t chunk = RM_DISK_CHUNK_DEFAULT;
    uint64_t nr = (size + chunk - 1) / chunk, t0;
    uint8_t *h = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t *hp = malloc(nr * RM_DISK_HASH_BYTES);
    struct rm_disk_replica_params rp = { .state_dir = statedir };
    struct rm_disk_replica *r = NULL;
    struct rm_disklog *log = NULL;
    struct rm_error err = { 0 };
    struct rm_stream_writer w;
    struct rm_sink sink;
    struct pump p;
    pthread_t th;
    int fds[2] = { -1, -1 }, rc;

    memset(&p, 0, sizeof(p));
    rc = !h || !hp ? -ENOMEM : 0;
    if (!rc)
        rc = rm_disk_replica_open(&r, &rp, &err);
    if (!rc)
        rc = rm_disk_replica_add(r, 0, rpath, true, &err);
    if (!rc)
        rc = rm_disklog_open(&log, NULL, &err);
    if (!rc)
        rc = rm_disklog_add_disk(log, 0, pfd, size, &err);
    if (rc)
        goto out;
    t0 = rm_now_ns();
    rm_disklog_start(log);
    if (hashed) {
        struct replica_hashing rh = { .r = r, .chunk = chunk, .h = h };
        pthread_t ht;

        rc = -pthread_create(&ht, NULL, replica_hashing_main, &rh);
        if (!rc) {
            rc = rm_disklog_hash(log, 0, chunk, hp, NULL, &err);
            pthread_join(ht, NULL);
            if (!rc && rh.rc) {
                rc = rh.rc;
                err = rh.err;
            }
        }
    }
    if (!rc)
        rc = rm_disklog_resync_hashed(log, 0, chunk, hashed ? h : NULL,
                                      hashed ? hp : NULL, nr, chunks, &err);
    *hash_ms = (double)(rm_now_ns() - t0) / 1e6;
    if (!rc && pipe(fds))
        rc = -errno;
    if (rc)
        goto out;
    p.fd = fds[0];
    p.r = r;
    if ((rc = -pthread_create(&th, NULL, pump_main, &p)))
        goto out;
    rm_sink_init_fd(&sink, fds[1]);
    rm_stream_writer_init(&w, &sink, &err);
    rc = rm_stream_write_headers(&w, RM_DHDR_TYPE_REMUS_KVM, 0, 0);
    if (!rc)
        rc = rm_disklog_emit_info(log, &w);
    if (!rc)
        rc = rm_disklog_emit(log, 0, &w, bytes);
    close(fds[1]);
    fds[1] = -1;
    pthread_join(th, NULL);
    *ms = (double)(rm_now_ns() - t0) / 1e6;
    if (!rc && p.rc) {
        rc = p.rc;
        err = p.err;
    }
    if (!rc)
        rc = rm_disk_replica_hash(r, 0, chunk, h, &err);
    if (!rc)
        rc = rm_disk_hash_chunks(pfd, size, chunk, hp, &err);
    if (!rc && memcmp(h, hp, nr * RM_DISK_HASH_BYTES))
        rc = rm_error_set(&err, -EIO, "the replica differs from the "
                          "primary after the resync");
out:
    if (rc)
        snprintf(why, whylen, "%s", err.msg[0] ? rm_error_str(&err) :
                 strerror(-rc));
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    rm_disklog_close(log);
    rm_disk_replica_close(r);
    free(h);
    free(hp);
    return rc;
}

/* Resync of a 1 GiB image with 1% of its chunks changed, against a full
 * copy, over two sparse files in @dir. */
/*
 * The two 1 GiB images of a resync row: dense (both full of the same
 * pseudo-random data, as a used disk is) or sparse (both empty, as a fresh
 * thin image is); then 1% of the chunks (every 100th) get 4 KiB of other
 * data on the primary.  *pfd is the primary's, open; 0 or -1.
 */
static int resync_images(const char *ppath, const char *rpath, uint64_t size,
                         bool dense, int *pfd, uint64_t *changed)
{
    const uint64_t chunk = RM_DISK_CHUNK_DEFAULT, nr = size / chunk;
    const size_t mib = 1u << 20;
    uint64_t i, x = 0x9e3779b97f4a7c15ull;
    uint8_t *buf = malloc(mib);
    int rfd, rc = 0;

    *pfd = open(ppath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    rfd = open(rpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (!buf || *pfd < 0 || rfd < 0 || ftruncate(*pfd, (off_t)size) ||
        ftruncate(rfd, (off_t)size))
        rc = -1;
    for (i = 0; dense && !rc && i < size / mib; i++) {
        for (size_t k = 0; k < mib; k += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(buf + k, &x, 8);
        }
        if (pwrite(*pfd, buf, mib, (off_t)(i * mib)) != (ssize_t)mib ||
            pwrite(rfd, buf, mib, (off_t)(i * mib)) != (ssize_t)mib)
            rc = -1;
    }
    srand(1);
    *changed = 0;
    for (i = 0; !rc && i < nr; i += 100, (*changed)++) {
        for (size_t k = 0; k < 4096; k++)
            buf[k] = (uint8_t)rand();
        if (pwrite(*pfd, buf, 4096, (off_t)(i * chunk)) != 4096)
            rc = -1;
    }
    if (rfd >= 0)
        close(rfd);
    free(buf);
    return rc;
}

/* One row: @name, a resync of @rpath from @pfd; "full" with @hashed false. */
static void resync_row(struct bench_run *run, const char *name, int pfd,
                       uint64_t size, const char *rpath, const char *dir,
                       bool hashed,
                       double *ms)
{
    double hash_ms = 0;
    uint64_t chunks = 0, bytes = 0;
    char why[300] = "";

    *ms = 0;
    if (resync_once(pfd, size, rpath, dir, hashed, ms, &hash_ms, &chunks,
                    &bytes, why, sizeof(why))) {
        bench_not_measured(run, name, why);
        *ms = 0;
        return;
    }
    if (hashed)
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %.0f | %.0f |\n", name,
               chunks, bytes, *ms, hash_ms);
    else
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %.0f | - |\n", name,
               chunks, bytes, *ms);
    fflush(stdout);
}

void bench_resync_rows(struct bench_run *run, const char *dir)
{
    const uint64_t size = run->resync_bytes;
    const uint64_t nr = size / RM_DISK_CHUNK_DEFAULT;
    char ppath[PATH_MAX], rpath[PATH_MAX];
    double ms_dense = 0, ms_full = 0, ms_sparse = 0;
    uint64_t changed = 0;
    int pfd = -1;

    snprintf(ppath, sizeof(ppath), "%s/primary.img", dir);
    snprintf(rpath, sizeof(rpath), "%s/replica.img", dir);
    /* "1 GiB" as before (a report's table ids keep their words) */
    printf("\nResync of a %" PRIu64 " %s image (raw files in /var/tmp, 64 "
           "KiB chunks, 1%% of the %" PRIu64 " chunks changed on the "
           "primary: every "
           "100th gets 4 KiB of other data) through the real code in this "
           "process: the secondary hashes its image (BLAKE2b, in a thread) "
           "while the primary hashes its own, the primary emits the "
           "differing chunks as DISK_WRITES records into a pipe, the "
           "secondary checks and applies them and fdatasyncs; a full copy "
           "sends every chunk.  Dense: both images full of the same data "
           "(a used disk); sparse: both empty but the changes (a fresh thin "
           "image: holes are hashed without reading them).  Each ends with "
           "the images compared (not timed):\n\n"
           "| resync | chunks sent | bytes sent | time (ms) | of which "
           "hashing (ms) |\n|---|---|---|---|---|\n",
           size % (1ull << 30) ? size >> 20 : size >> 30,
           size % (1ull << 30) ? "MiB" : "GiB", nr);
    if (resync_images(ppath, rpath, size, true, &pfd, &changed)) {
        bench_not_measured(run, "resync of a dense image",
                           "cannot create the images in /var/tmp");
    } else {
        resync_row(run, "hash-based, dense, 1% changed", pfd, size, rpath, dir,
                   true, &ms_dense);
        if (truncate(rpath, 0) || truncate(rpath, (off_t)size))
            bench_not_measured(run, "full copy", "cannot reset the replica");
        else
            resync_row(run, "full copy", pfd, size, rpath, dir, false,
                       &ms_full);
    }
    if (pfd >= 0)
        close(pfd);
    if (resync_images(ppath, rpath, size, false, &pfd, &changed))
        bench_not_measured(run, "resync of a sparse image",
                           "cannot create the images in /var/tmp");
    else
        resync_row(run, "hash-based, sparse, 1% changed", pfd, size, rpath,
                   dir, true, &ms_sparse);
    if (ms_dense > 0 && ms_full > 0 && ms_sparse > 0)
        printf("\nHash-based / full copy, time: dense %.2f, sparse %.3f.  "
               "Here the link is a pipe in one process; over a 1 Gbit/s link"
               " the full copy's bytes alone take %.0f ms on the wire, the "
               "hash-based one's %.0f ms (plus its hashing).\n",
               ms_dense / ms_full, ms_sparse / ms_full,
               (double)size * 8 / 1e6,
               (double)changed * RM_DISK_CHUNK_DEFAULT * 8 / 1e6);
    fflush(stdout);
    if (pfd >= 0)
        close(pfd);
    unlink(ppath);
    unlink(rpath);
}
