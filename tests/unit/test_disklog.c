/* SPDX-License-Identifier: MIT */
/*
 * The disk-epoch log (common/disklog.h) on memfd images: the primary's log,
 * the replica's checks and apply, and both engines carrying disks over the
 * memory-only backend.  One case per invariant of issue #18 that shows at
 * this level (P1, P2, P4, P5, P6, P7, P9, P10).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/disklog.h"
#include "tests/support/testutil.h"

#define DSIZE (256u << 10)        /* a small disk: 512 sectors */
#define MAXEP 64

/* ------------------------------------------------------------ helpers */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int image(uint64_t size, uint64_t seed)
{
    int fd = memfd_create("disk", MFD_CLOEXEC);
    uint8_t *b = malloc(size);
    uint64_t s = seed | 1;

    assert_true(fd >= 0);
    assert_non_null(b);
    for (uint64_t i = 0; i < size; i++)
        b[i] = seed ? (uint8_t)rnd(&s) : 0;
    assert_int_equal(pwrite(fd, b, size, 0), (ssize_t)size);
    free(b);
    return fd;
}

static uint8_t *read_image(int fd, uint64_t size)
{
    uint8_t *b = malloc(size);

    assert_non_null(b);
    assert_int_equal(pread(fd, b, size, 0), (ssize_t)size);
    return b;
}

static void assert_image(int fd, const uint8_t *want, uint64_t size)
{
    uint8_t *b = read_image(fd, size);
    uint64_t i;

    for (i = 0; i < size && b[i] == want[i]; i++)
        ;
    free(b);
    if (i < size)
        fail_msg("image differs at byte %llu", (unsigned long long)i);
}

static char statedir[64];

static void fresh_statedir(void)
{
    char cmd[128];

    if (statedir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", statedir);
        assert_int_equal(system(cmd), 0);
    }
    strcpy(statedir, "/tmp/test_disklog.XXXXXX");
    assert_non_null(mkdtemp(statedir));
}

static struct rm_disk_replica *replica(int fd, bool sync_every,
                                       struct rm_error *err)
{
    struct rm_disk_replica_params rp = { .state_dir = statedir,
                                         .sync_every_epoch = sync_every };
    struct rm_disk_replica *r;
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    assert_int_equal(rm_disk_replica_open(&r, &rp, err), 0);
    if (rm_disk_replica_add(r, 0, path, false, err))
        fail_msg("add: %s", rm_error_str(err));
    return r;
}

static struct rm_disklog *primary_log(int fd, uint64_t cap)
{
    struct rm_disklog_params pp = { .max_unacked_bytes = cap };
    struct rm_error err = { 0 };
    struct rm_disklog *log;

    assert_int_equal(rm_disklog_open(&log, &pp, &err), 0);
    assert_int_equal(rm_disklog_add_disk(log, 0, fd, DSIZE, &err), 0);
    return log;
}

/* A remus stream's headers into @out, with a writer on it. */
static void stream_start(struct rm_buf *out, struct rm_sink *sink,
                         struct rm_stream_writer *w, struct rm_error *err)
{
    rm_sink_init_buf(sink, out);
    rm_stream_writer_init(w, sink, err);
    assert_int_equal(rm_stream_write_headers(w, RM_DHDR_TYPE_REMUS_KVM, 0,
                                             0), 0);
}

/*
 * Read a stream written by stream_start and feed its disk records to @r:
 * DISK_INFO, then each DISK_WRITES checked for @epoch and, when @apply,
 * applied inside one begin/end.  Returns the first error; *@entries gets
 * the write entries seen.
 */
struct pump_count {
    uint64_t entries;
};

static int count_entry(void *o, const struct rm_disk_writes_hdr *h,
                       const struct rm_disk_write_entry *e, const void *d)
{
    (void)h;
    (void)e;
    (void)d;
    ((struct pump_count *)o)->entries++;
    return 0;
}

static int pump(const struct rm_buf *in, struct rm_disk_replica *r,
                uint64_t epoch, bool apply, uint64_t *entries,
                struct rm_error *err)
{
    struct rm_stream_reader rd;
    struct rm_src src;
    struct rm_record rec;
    struct pump_count pc = { 0 };
    bool begun = false;
    int rc;

    rm_src_init_mem(&src, in->data, in->len);
    rm_stream_reader_init(&rd, &src, err);
    rc = rm_stream_read_headers(&rd);
    while (!rc && (rc = rm_stream_read_record(&rd, &rec)) == 0) {
        if (rec.type == RM_REC_DISK_INFO) {
            rc = rm_disk_replica_info(r, &rec, err);
        } else if (rec.type == RM_REC_DISK_WRITES) {
            struct rm_disk_writes_hdr h;

            rc = rm_disk_replica_check(r, epoch, &rec, err);
            if (!rc)
                rc = rm_disk_writes_walk(&rec, &h, count_entry, &pc, err);
            if (!rc && apply && !begun) {
                rc = rm_disk_replica_begin_apply(r, epoch, err);
                begun = !rc;
            }
            if (!rc && apply)
                rc = rm_disk_replica_apply(r, &rec, err);
        }
        rm_record_free(&rec);
    }
    if (rc == -ENODATA) {   /* the end of what was written */
        rm_error_clear(err);
        rc = 0;
    }
    if (!rc && begun)
        rc = rm_disk_replica_end_apply(r, epoch, err);
    if (entries)
        *entries = pc.entries;
    return rc;
}

/* ------------------------------------------------------------ engines */

/* A guest with a disk: between checkpoints it dirties pages and does
 * random (overlapping) writes, discards and flushes on its image. */
struct dguest {
    struct mem_guest *g;
    struct rm_disklog *log;
    int pfd;
    uint64_t rng;
    unsigned ops_per_run;
    unsigned flush_pct;         /* % of ops that are a flush */
    unsigned epochs;
    uint8_t *snap[MAXEP + 1];   /* the primary's image at cut(n) */
    unsigned flushes_in[MAXEP + 2];
    unsigned cur_epoch;         /* epoch the next writes belong to */
    bool compress;              /* compressed page records */
    uint64_t max_buffer;        /* the restore's buffer (0: default) */
    uint32_t dtype;             /* the stream's type (0: remus KVM) */
    bool late_write;            /* a write completes after each cut,
                                   while the VM is suspended */
    uint64_t late_sum;          /* the checkpoints' disk_late, summed */
    unsigned late_epochs;       /* checkpoints counted in it */
};

static void disk_op(struct dguest *d)
{
    struct rm_error err = { 0 };
    unsigned sectors = DSIZE / RM_DISK_SECTOR;
    uint64_t r = rnd(&d->rng);
    uint64_t sec = r % sectors;
    uint32_t n = 1 + (uint32_t)((r >> 20) % 24);
    unsigned kind = (unsigned)((r >> 40) % 100);
    uint8_t buf[24 * RM_DISK_SECTOR];

    if (sec + n > sectors)
        n = (uint32_t)(sectors - sec);
    if (kind < d->flush_pct) {
        assert_int_equal(rm_disklog_flush(d->log, 0, &err), 0);
        if (d->cur_epoch <= MAXEP)
            d->flushes_in[d->cur_epoch]++;
        return;
    }
    if (kind < d->flush_pct + 10) {
        assert_int_equal(fallocate(d->pfd, FALLOC_FL_PUNCH_HOLE |
                                   FALLOC_FL_KEEP_SIZE,
                                   (off_t)(sec * RM_DISK_SECTOR),
                                   (off_t)n * RM_DISK_SECTOR), 0);
        assert_int_equal(rm_disklog_discard(d->log, 0, sec * RM_DISK_SECTOR,
                                            (uint64_t)n * RM_DISK_SECTOR,
                                            &err), 0);
        return;
    }
    for (uint32_t i = 0; i < n * RM_DISK_SECTOR; i++)
        buf[i] = (uint8_t)rnd(&d->rng);
    assert_int_equal(pwrite(d->pfd, buf, n * RM_DISK_SECTOR,
                            (off_t)(sec * RM_DISK_SECTOR)),
                     (ssize_t)(n * RM_DISK_SECTOR));
    assert_int_equal(rm_disklog_write(d->log, 0, sec * RM_DISK_SECTOR, buf,
                                      n * RM_DISK_SECTOR, false, &err), 0);
}

static void dworkload(struct mem_guest *g, void *opaque)
{
    struct dguest *d = opaque;

    mem_guest_scribble(g, 3);
    for (unsigned i = 0; i < d->ops_per_run; i++)
        disk_op(d);
}

static int d_suspended(void *opaque, uint64_t epoch)
{
    struct dguest *d = opaque;

    if (epoch > MAXEP)
        return -E2BIG;
    d->snap[epoch] = read_image(d->pfd, DSIZE);
    d->cur_epoch = (unsigned)epoch + 1;
    if (d->late_write && epoch >= 2) {
        /* a request that was in flight at the cut completes now: it is
         * in the image after cut(epoch), so in the next epoch's log */
        struct rm_error err = { 0 };
        uint8_t b[RM_DISK_SECTOR];
        uint64_t off = (rnd(&d->rng) % (DSIZE / RM_DISK_SECTOR)) *
                       RM_DISK_SECTOR;

        memset(b, (int)epoch, sizeof(b));
        if (pwrite(d->pfd, b, sizeof(b), (off_t)off) != sizeof(b) ||
            rm_disklog_write(d->log, 0, off, b, sizeof(b), false, &err))
            return -EIO;
    }
    return 0;
}

static int d_checkpoint(void *opaque, const struct rm_epoch_stats *st)
{
    struct dguest *d = opaque;

    if (st->epoch >= 2) {
        d->late_sum += st->disk_late;
        d->late_epochs++;
    }

    return st->epoch < d->epochs ? 1 : 0;
}

static void dguest_init(struct dguest *d, unsigned epochs, uint64_t seed)
{
    uint32_t dtype = d->dtype ? d->dtype : RM_DHDR_TYPE_REMUS_KVM;

    memset(d, 0, sizeof(*d));
    d->dtype = dtype;
    d->g = mem_guest_new(32, dtype, seed);
    d->pfd = image(DSIZE, seed);
    d->log = primary_log(d->pfd, 0);
    d->rng = seed * 7919 + 1;
    d->ops_per_run = 12;
    d->epochs = epochs;
    d->cur_epoch = 1;
    d->g->workload = dworkload;
    d->g->workload_opaque = d;
}

static void dguest_free(struct dguest *d)
{
    for (unsigned i = 0; i <= MAXEP; i++)
        free(d->snap[i]);
    rm_disklog_close(d->log);
    close(d->pfd);
    mem_guest_free(d->g);
}

static int dsave_rc(struct dguest *d, enum rm_save_mode mode,
                    struct rm_buf *out, struct rm_error *err)
{
    struct rm_save_ctx ctx;
    struct rm_sink sink;

    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &mem_save_ops;
    ctx.backend_arg = d->g;
    ctx.err = err;
    ctx.disks = d->log;
    rm_save_params_default(&ctx.params, mode);
    ctx.params.compress = d->compress;
    ctx.cb.opaque = d;
    ctx.cb.suspended = d_suspended;
    ctx.cb.checkpoint = d_checkpoint;
    rm_sink_init_buf(&sink, out);
    return rm_save(&ctx, &sink);
}

static void dsave(struct dguest *d, enum rm_save_mode mode,
                  struct rm_buf *out)
{
    struct rm_error err = { 0 };

    if (dsave_rc(d, mode, out, &err))
        fail_msg("save: %s", rm_error_str(&err));
}

struct dcommit {
    struct dguest *d;
    int rfd;
    unsigned commits, mismatched;
    uint64_t last;
};

static int d_committed(void *opaque, uint64_t epoch, uint64_t digest,
                       uint64_t pages)
{
    struct dcommit *c = opaque;
    uint8_t *b = read_image(c->rfd, DSIZE);

    (void)digest;
    (void)pages;
    c->commits++;
    c->last = epoch;
    if (epoch > MAXEP || !c->d->snap[epoch] ||
        memcmp(b, c->d->snap[epoch], DSIZE))
        c->mismatched++;
    free(b);
    return 0;
}

static int drestore(const struct rm_buf *in, size_t len,
                    struct rm_disk_replica *dr, struct dcommit *c,
                    struct rm_restore_ctx *out, struct rm_error *err)
{
    struct mem_replica *m = mem_replica_new();
    struct rm_restore_ctx ctx;
    struct rm_src src;
    int rc;

    /* HVM: the domain exists beforehand, with the guest's size */
    if (c && c->d->dtype == RM_DHDR_TYPE_X86_HVM)
        m->nr_pfns = c->d->g->nr_pfns;

    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &mem_restore_ops;
    ctx.backend_arg = m;
    ctx.err = err;
    ctx.disks = dr;
    ctx.params.checkpointed_hint = true;
    ctx.params.allow_compressed = c && c->d->compress;
    ctx.params.max_buffer_bytes = c ? c->d->max_buffer : 0;
    ctx.cb.opaque = c;
    ctx.cb.checkpoint_committed = c ? d_committed : NULL;
    rm_src_init_mem(&src, in->data, len);
    rc = rm_restore(&ctx, &src);
    *out = ctx;
    mem_replica_free(m);
    return rc;
}

/* The offset of the @n-th record of @type (from 1), or 0. */
static size_t nth_record(const struct rm_buf *b, uint32_t type, unsigned n,
                         uint32_t *len)
{
    size_t off = RM_IHDR_SIZE + RM_DHDR_SIZE;

    while (off + RM_RHDR_SIZE <= b->len) {
        struct rm_rhdr h;

        memcpy(&h, b->data + off, sizeof(h));
        if (h.type == type && --n == 0) {
            *len = h.length;
            return off;
        }
        off += RM_RHDR_SIZE + ((h.length + 7u) & ~7u);
    }
    return 0;
}

/* A checkpointed save of @epochs epochs after a full initial resync (the
 * replica image starts as zeros, the primary's as random bytes); keeps
 * d->compress and d->late_write. */
static void checkpointed(struct dguest *d, unsigned epochs, uint64_t seed,
                         struct rm_buf *out)
{
    struct rm_error err = { 0 };
    bool compress = d->compress, late = d->late_write;

    dguest_init(d, epochs, seed);    /* keeps d->dtype */
    d->compress = compress;
    d->late_write = late;
    rm_disklog_start(d->log);
    assert_int_equal(rm_disklog_resync(d->log, 0, RM_DISK_CHUNK_DEFAULT,
                                       NULL, 0, NULL, &err), 0);
    dsave(d, RM_SAVE_CHECKPOINTED, out);
}

/* P1: after each commit the replica equals the primary's image at that
 * epoch's cut, byte for byte, over many epochs of random overlapping
 * writes and discards. */
static void p1_run(bool compress, uint64_t max_buffer, uint32_t dtype,
                   bool late)
{
    struct dguest d = { .compress = compress, .dtype = dtype,
                        .late_write = late };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    struct rm_restore_ctx rctx;
    struct dcommit c = { .d = &d };
    struct rm_disk_replica *dr;

    fresh_statedir();
    checkpointed(&d, 40, 11, &out);
    d.max_buffer = max_buffer;
    assert_int_equal(nth_record(&out, RM_REC_PAGE_DATA_COMPRESSED, 1,
                                &(uint32_t){ 0 }) != 0, compress);
    c.rfd = image(DSIZE, 0);
    dr = replica(c.rfd, false, &err);
    if (drestore(&out, out.len, dr, &c, &rctx, &err))
        fail_msg("restore: %s", rm_error_str(&err));
    assert_int_equal(rctx.result, RM_RESTORE_COMPLETE);
    assert_int_equal(c.commits, 40);
    assert_int_equal(c.mismatched, 0);
    assert_image(c.rfd, d.snap[40], DSIZE);
    assert_false(rm_disk_replica_dirty(dr, 0));
    /* the late writes are counted, one a checkpoint (none without) */
    assert_int_equal(d.late_epochs, 39);
    assert_int_equal(d.late_sum, late ? 39 : 0);
    rm_disk_replica_close(dr);
    close(c.rfd);
    rm_buf_free(&out);
    dguest_free(&d);
}

static void test_p1_replica_equals_cut(void **state)
{
    (void)state;
    p1_run(false, 0, 0, false);
}

/* Writes in flight at the cut (on Xen, blkback's requests complete while
 * the domain is suspended): they are in the next epoch, P1 holds, and
 * each checkpoint counts them (disk_late). */
static void test_p3_late_writes_next_epoch(void **state)
{
    (void)state;
    p1_run(false, 0, RM_DHDR_TYPE_X86_HVM, true);
}

/* The same with a restore buffer so small that every checkpoint's records
 * are staged on disk and read back at commit. */
static void test_p1_spilled(void **state)
{
    (void)state;
    p1_run(false, 4096, 0, false);
}

/* The same with compressed page records (the staged checkpoint is
 * re-encoded after the resume: the disk records must survive it). */
static void test_p1_compressed(void **state)
{
    (void)state;
    p1_run(true, 0, 0, false);
}

/* The same in a Xen HVM/PVH protection's stream (a domain's served
 * disks, #19): the disk records travel in the libxc layout too. */
static void test_p1_xen_hvm_stream(void **state)
{
    (void)state;
    p1_run(false, 0, RM_DHDR_TYPE_X86_HVM, false);
}

/* ... but never in a plain save of one (a file Xen's tools may read). */
static void test_xen_plain_save_refuses_disks(void **state)
{
    struct dguest d = { .dtype = RM_DHDR_TYPE_X86_HVM };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };

    (void)state;
    fresh_statedir();
    dguest_init(&d, 1, 5);
    assert_int_equal(dsave_rc(&d, RM_SAVE_NONLIVE, &out, &err), -EINVAL);
    assert_non_null(strstr(rm_error_str(&err), "not a plain save"));
    rm_buf_free(&out);
    dguest_free(&d);
}

/* P2: a stream cut anywhere inside a later checkpoint leaves the replica's
 * disk at the last committed epoch, byte for byte. */
static void test_p2_cut_midstream(void **state)
{
    struct dguest d = { 0 };
    struct rm_buf out = { 0 };
    uint32_t len;
    size_t cp3, cp4, cuts[5];

    (void)state;
    fresh_statedir();
    checkpointed(&d, 6, 12, &out);
    cp3 = nth_record(&out, RM_REC_CHECKPOINT, 3, &len);
    cp4 = nth_record(&out, RM_REC_CHECKPOINT, 4, &len);
    assert_true(cp3 && cp4 > cp3);
    /* inside checkpoint 4: its first record, a disk record, just before
     * its CHECKPOINT, and a byte before it */
    cuts[0] = cp3 + 8 + 3;
    cuts[1] = nth_record(&out, RM_REC_DISK_WRITES, 5, &len) + 40;
    cuts[2] = cp4 - 1;
    cuts[3] = cp4;
    cuts[4] = (cp3 + cp4) / 2;
    for (unsigned i = 0; i < 5; i++) {
        struct rm_error err = { 0 };
        struct rm_restore_ctx rctx;
        struct dcommit c = { .d = &d };
        struct rm_disk_replica *dr;

        assert_true(cuts[i] > cp3 && cuts[i] <= cp4);
        c.rfd = image(DSIZE, 0);
        dr = replica(c.rfd, false, &err);
        assert_int_equal(drestore(&out, cuts[i], dr, &c, &rctx, &err), 0);
        assert_int_equal(rctx.result, RM_RESTORE_FAILOVER);
        assert_int_equal(rctx.committed_epoch, 3);
        assert_int_equal(c.mismatched, 0);
        assert_image(c.rfd, d.snap[3], DSIZE);
        assert_false(rm_disk_replica_dirty(dr, 0));
        rm_disk_replica_close(dr);
        close(c.rfd);
    }
    rm_buf_free(&out);
    dguest_free(&d);
}

static int first_write(void *o, const struct rm_disk_writes_hdr *h,
                       const struct rm_disk_write_entry *e, const void *d)
{
    const uint8_t **out = o;

    (void)h;
    if (e->op == RM_DISK_OP_WRITE && !*out)
        *out = d;
    return 0;
}

/* P4: a disk byte changed in transit is caught by the epoch's state
 * digest: the checkpoint is refused whole, the disk stays at the last
 * commit. */
static void test_p4_digest_covers_disk(void **state)
{
    struct dguest d = { 0 };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    struct rm_restore_ctx rctx;
    struct dcommit c = { .d = &d };
    struct rm_disk_replica *dr;
    uint32_t len = 0;
    size_t cp2, off;
    unsigned k = 1;

    (void)state;
    fresh_statedir();
    checkpointed(&d, 4, 13, &out);
    cp2 = nth_record(&out, RM_REC_CHECKPOINT, 2, &len);
    /* the first DISK_WRITES record after checkpoint 2, with a write */
    do {
        off = nth_record(&out, RM_REC_DISK_WRITES, k++, &len);
    } while (off && off < cp2);
    assert_true(off > cp2);
    {
        struct rm_record rec = { .type = RM_REC_DISK_WRITES, .length = len,
                                 .data = out.data + off + 8 };
        struct rm_disk_writes_hdr h;
        const uint8_t *data = NULL;

        assert_int_equal(rm_disk_writes_walk(&rec, &h, first_write, &data,
                                             &err), 0);
        assert_non_null(data);
        ((uint8_t *)data)[7] ^= 0x40;   /* a data byte of a write */
    }
    c.rfd = image(DSIZE, 0);
    dr = replica(c.rfd, false, &err);
    assert_int_equal(drestore(&out, out.len, dr, &c, &rctx, &err), 0);
    assert_int_equal(rctx.result, RM_RESTORE_FAILOVER);
    assert_int_equal(rctx.committed_epoch, 2);
    if (!strstr(rctx.failover_reason.msg, "state digest"))
        fail_msg("reason: %s", rctx.failover_reason.msg);
    assert_image(c.rfd, d.snap[2], DSIZE);
    rm_disk_replica_close(dr);
    close(c.rfd);
    rm_buf_free(&out);
    dguest_free(&d);
}

/* P4: overlapping writes in one epoch apply in completion order (last
 * writer wins); a discard in between reads as zeros; epochs apply in
 * sequence (an epoch's records inside another checkpoint are refused). */
static void test_p4_last_writer_wins(void **state)
{
    int pfd = image(DSIZE, 0), rfd = image(DSIZE, 0);
    struct rm_disklog *log = primary_log(pfd, 0);
    struct rm_error err = { 0 };
    struct rm_buf out = { 0 };
    struct rm_sink sink;
    struct rm_stream_writer w;
    struct rm_disk_replica *dr;
    uint8_t a[4096], b[1024], want[DSIZE] = { 0 };

    (void)state;
    fresh_statedir();
    memset(a, 0xaa, sizeof(a));
    memset(b, 0xbb, sizeof(b));
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_write(log, 0, 0, a, 4096, false, &err), 0);
    assert_int_equal(rm_disklog_write(log, 0, 1024, b, 1024, false, &err),
                     0);
    assert_int_equal(rm_disklog_discard(log, 0, 3072, 512, &err), 0);
    assert_int_equal(rm_disklog_write(log, 0, 512, a, 1024, false, &err),
                     0);
    memset(want, 0xaa, 4096);
    memset(want + 1536, 0xbb, 512);
    memset(want + 3072, 0, 512);
    assert_int_equal(rm_disklog_cut(log, 1, &err), 0);
    stream_start(&out, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit_info(log, &w), 0);
    assert_int_equal(rm_disklog_emit(log, 1, &w, NULL), 0);
    dr = replica(rfd, false, &err);
    if (pump(&out, dr, 1, true, NULL, &err))
        fail_msg("pump: %s", rm_error_str(&err));
    assert_image(rfd, want, DSIZE);
    /* The same records inside checkpoint 2: refused, nothing written. */
    memset(a, 0x11, sizeof(a));
    assert_int_equal(pwrite(rfd, a, 4096, 0), 4096);
    memcpy(want, a, 4096);
    assert_int_equal(pump(&out, dr, 2, true, NULL, &err), -EBADMSG);
    assert_non_null(strstr(rm_error_str(&err), "epoch 1 inside checkpoint 2"));
    assert_image(rfd, want, DSIZE);
    rm_disk_replica_close(dr);
    rm_disklog_close(log);
    rm_buf_free(&out);
    close(pfd);
    close(rfd);
}

/* P5: the replica fdatasyncs exactly the epochs that hold a FLUSH/FUA,
 * and every epoch with --disk-sync. */
static void test_p5_sync_epochs(void **state)
{
    for (int every = 0; every < 2; every++) {
        struct dguest d = { 0 };
        struct rm_buf out = { 0 };
        struct rm_error err = { 0 };
        struct rm_restore_ctx rctx;
        struct dcommit c = { .d = &d };
        struct rm_disk_replica *dr;
        struct rm_disk_replica_stats st;
        struct rm_disklog_stats ps;
        unsigned sync_epochs = 0;

        (void)state;
        fresh_statedir();
        dguest_init(&d, 12, 14);
        d.ops_per_run = 3;
        d.flush_pct = 12;
        rm_disklog_start(d.log);
        dsave(&d, RM_SAVE_CHECKPOINTED, &out);
        for (unsigned e = 1; e <= 12; e++)
            sync_epochs += d.flushes_in[e] > 0;
        rm_disklog_get_stats(d.log, &ps);
        assert_int_equal(ps.sync_epochs, sync_epochs);
        assert_true(sync_epochs > 0 && sync_epochs < 12);
        /* no resync here: this case counts syncs, not bytes */
        c.rfd = image(DSIZE, 0);
        dr = replica(c.rfd, every, &err);
        if (drestore(&out, out.len, dr, NULL, &rctx, &err))
            fail_msg("restore: %s", rm_error_str(&err));
        rm_disk_replica_get_stats(dr, &st);
        if (every)
            assert_int_equal(st.syncs, st.epochs);
        else
            assert_int_equal(st.syncs, sync_epochs);
        assert_true(st.epochs >= sync_epochs);
        rm_disk_replica_close(dr);
        close(c.rfd);
        rm_buf_free(&out);
        dguest_free(&d);
    }
}

/* P6: a writer past the cap blocks until an ack makes room, then its
 * write is logged (nothing dropped); shutdown wakes a blocked writer with
 * -ECANCELED. */
struct blocked {
    struct rm_disklog *log;
    uint64_t offset;
    int rc;
    volatile int done;
};

static void *blocked_writer(void *arg)
{
    struct blocked *b = arg;
    struct rm_error err = { 0 };
    uint8_t buf[4096];

    memset(buf, 0x5a, sizeof(buf));
    b->rc = rm_disklog_write(b->log, 0, b->offset, buf, sizeof(buf), false,
                             &err);
    __atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Until the writer waits on the cap, or finished without waiting (then
 * the caller's checks fail instead of hanging). */
static void wait_for_waits(struct rm_disklog *log, uint64_t n,
                           struct blocked *b)
{
    struct rm_disklog_stats st;

    do {
        sched_yield();
        rm_disklog_get_stats(log, &st);
    } while (st.waits < n && !__atomic_load_n(&b->done, __ATOMIC_SEQ_CST));
}

static void test_p6_cap_blocks_and_resumes(void **state)
{
    int pfd = image(DSIZE, 0);
    /* room for two 4 KiB writes with their entries, not three */
    struct rm_disklog *log = primary_log(pfd, 2 * (4096 + 16) + 100);
    struct rm_error err = { 0 };
    struct rm_disklog_stats st;
    struct blocked b = { .log = log, .offset = 8192 };
    struct rm_buf out = { 0 };
    struct rm_sink sink;
    struct rm_stream_writer w;
    uint8_t buf[4096] = { 0 };
    uint64_t bytes;
    pthread_t t;

    (void)state;
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_write(log, 0, 0, buf, 4096, false, &err), 0);
    assert_int_equal(rm_disklog_cut(log, 1, &err), 0);
    assert_int_equal(rm_disklog_write(log, 0, 4096, buf, 4096, false, &err),
                     0);
    assert_int_equal(pthread_create(&t, NULL, blocked_writer, &b), 0);
    wait_for_waits(log, 1, &b);
    assert_int_equal(__atomic_load_n(&b.done, __ATOMIC_SEQ_CST), 0);
    rm_disklog_get_stats(log, &st);
    assert_int_equal(st.waits, 1);
    assert_true(st.unacked_bytes <= 2 * (4096 + 16) + 100);
    rm_disklog_acked(log, 1);               /* room for one more */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(b.rc, 0);
    /* epoch 2 holds both writes: nothing was dropped */
    assert_int_equal(rm_disklog_cut(log, 2, &err), 0);
    stream_start(&out, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit(log, 2, &w, &bytes), 0);
    assert_int_equal(bytes, 8192);
    /* the current epoch alone over the cap: no ack could make room, so
     * the write passes (waiting would keep its vCPU from ever parking) */
    rm_disklog_acked(log, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rm_disklog_write(log, 0, 0, buf, 4096, false, &err),
                         0);
    rm_disklog_get_stats(log, &st);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.unacked_bytes, 3 * (4096 + 16));
    /* shutdown: a blocked writer is woken with -ECANCELED */
    assert_int_equal(rm_disklog_cut(log, 3, &err), 0);
    b.done = 0;
    b.offset = 12288;
    assert_int_equal(pthread_create(&t, NULL, blocked_writer, &b), 0);
    wait_for_waits(log, 2, &b);
    assert_int_equal(__atomic_load_n(&b.done, __ATOMIC_SEQ_CST), 0);
    rm_disklog_shutdown(log);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(b.rc, -ECANCELED);
    assert_int_equal(rm_disklog_write(log, 0, 0, buf, 512, false, &err),
                     -ECANCELED);
    rm_disklog_close(log);
    rm_buf_free(&out);
    close(pfd);
}

/* P7: the resync sends only the chunks whose hashes differ, and the
 * replica's image equals the primary's after it. */
static void test_p7_resync_sends_differing_chunks(void **state)
{
    int pfd = image(DSIZE, 21), rfd = image(DSIZE, 21);
    struct rm_disklog *log = primary_log(pfd, 0);
    struct rm_error err = { 0 };
    struct rm_buf out = { 0 };
    struct rm_sink sink;
    struct rm_stream_writer w;
    struct rm_disk_replica *dr;
    uint32_t chunk = 16384;
    uint64_t nr = DSIZE / chunk, differ = 0, entries = 0;
    uint8_t *hashes = malloc(nr * RM_DISK_HASH_BYTES), *want;
    uint8_t junk[700];

    (void)state;
    fresh_statedir();
    memset(junk, 0x77, sizeof(junk));
    /* chunks 0, 5 (twice), 15 (the last byte) differ on the replica */
    assert_int_equal(pwrite(rfd, junk, 1, 0), 1);
    assert_int_equal(pwrite(rfd, junk, 700, 5 * chunk + 9), 700);
    assert_int_equal(pwrite(rfd, junk, 1, 5 * chunk + 9000), 1);
    assert_int_equal(pwrite(rfd, junk, 1, DSIZE - 1), 1);
    assert_int_equal(rm_disk_hash_chunks(rfd, DSIZE, chunk, hashes, &err),
                     0);
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_resync(log, 0, chunk, hashes, nr, &differ,
                                       &err), 0);
    assert_int_equal(differ, 3);
    stream_start(&out, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit_info(log, &w), 0);
    assert_int_equal(rm_disklog_emit(log, 0, &w, NULL), 0);
    dr = replica(rfd, false, &err);
    if (pump(&out, dr, 1, true, &entries, &err))
        fail_msg("pump: %s", rm_error_str(&err));
    assert_int_equal(entries, 3);
    want = read_image(pfd, DSIZE);
    assert_image(rfd, want, DSIZE);
    /* a wrong number of hashes (the images differ in size) is refused */
    assert_int_equal(rm_disklog_resync(log, 0, chunk, hashes, nr - 1, NULL,
                                       &err), -EINVAL);
    free(want);
    free(hashes);
    rm_disk_replica_close(dr);
    rm_disklog_close(log);
    rm_buf_free(&out);
    close(pfd);
    close(rfd);
}

/* P7's hashes of a sparse image: a chunk wholly in a hole is not read
 * (SEEK_DATA) and hashes as the zeros it reads as; a tail chunk, a chunk
 * with some data and an image shorter than its size are read as before. */
static void test_p7_hash_sparse(void **state)
{
    const uint32_t chunk = 65536;
    const uint64_t size = 16 * 65536 + 512;     /* a short tail chunk */
    const uint64_t nr = (size + chunk - 1) / chunk;
    int sparse = memfd_create("sparse", MFD_CLOEXEC);
    int dense = image(size, 0);                 /* zeros, all written */
    int shorter = memfd_create("short", MFD_CLOEXEC);
    uint8_t *hs = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t *hd = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t data[300];
    struct rm_error err = { 0 };
    atomic_bool stop;
    off_t at;

    (void)state;
    assert_true(sparse >= 0 && shorter >= 0);
    assert_non_null(hs);
    assert_non_null(hd);
    assert_int_equal(ftruncate(sparse, (off_t)size), 0);
    /* is there a hole to skip at all? (tmpfs has SEEK_DATA) */
    at = lseek(sparse, 0, SEEK_DATA);
    assert_true(at < 0 && errno == ENXIO);
    memset(data, 0x5a, sizeof(data));
    /* data in chunks 3 and 9, and one byte at the end of chunk 12 */
    assert_int_equal(pwrite(sparse, data, 300, 3 * chunk + 100), 300);
    assert_int_equal(pwrite(dense, data, 300, 3 * chunk + 100), 300);
    assert_int_equal(pwrite(sparse, data, 300, 9 * chunk), 300);
    assert_int_equal(pwrite(dense, data, 300, 9 * chunk), 300);
    assert_int_equal(pwrite(sparse, data, 1, 13 * chunk - 1), 1);
    assert_int_equal(pwrite(dense, data, 1, 13 * chunk - 1), 1);
    assert_int_equal(rm_disk_hash_chunks(sparse, size, chunk, hs, &err), 0);
    assert_int_equal(rm_disk_hash_chunks(dense, size, chunk, hd, &err), 0);
    assert_memory_equal(hs, hd, nr * RM_DISK_HASH_BYTES);
    /* and the chunks with data do not hash as zeros */
    assert_memory_not_equal(hs + 3 * RM_DISK_HASH_BYTES, hs,
                            RM_DISK_HASH_BYTES);
    assert_memory_not_equal(hs + 12 * RM_DISK_HASH_BYTES, hs,
                            RM_DISK_HASH_BYTES);
    /* an image shorter than its size (a hole after it would read as
     * zeros) fails, naming where */
    assert_int_equal(ftruncate(shorter, (off_t)(size - chunk)), 0);
    assert_int_equal(rm_disk_hash_chunks(shorter, size, chunk, hs, &err),
                     -EIO);
    assert_non_null(strstr(rm_error_str(&err), "shorter than its size"));
    /* a stop asked for ends the hashing */
    atomic_init(&stop, true);
    assert_int_equal(rm_disk_hash_chunks_stop(sparse, size, chunk, hs, &stop,
                                              &err), -ECANCELED);
    free(hs);
    free(hd);
    close(sparse);
    close(dense);
    close(shorter);
}

/* The primary's own hashes, taken apart (rm_disklog_hash, as the session
 * does while the secondary hashes), queue the same chunks as a resync that
 * hashes itself; the secondary's hashes without the primary's are refused. */
static void test_p7_resync_hashed(void **state)
{
    int pfd = image(DSIZE, 31), rfd = image(DSIZE, 31);
    struct rm_disklog *log = primary_log(pfd, 0);
    struct rm_error err = { 0 };
    uint32_t chunk = 16384;
    uint64_t nr = DSIZE / chunk, d1 = 0, d2 = 0;
    uint8_t *theirs = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t *mine = malloc(nr * RM_DISK_HASH_BYTES);
    uint8_t junk = 0x11;

    (void)state;
    assert_int_equal(pwrite(rfd, &junk, 1, 2 * chunk + 7), 1);
    assert_int_equal(pwrite(rfd, &junk, 1, 6 * chunk), 1);
    assert_int_equal(rm_disk_hash_chunks(rfd, DSIZE, chunk, theirs, &err),
                     0);
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_hash(log, 0, chunk, mine, NULL, &err), 0);
    assert_int_equal(rm_disklog_resync_hashed(log, 0, chunk, theirs, mine,
                                              nr, &d1, &err), 0);
    assert_int_equal(rm_disklog_resync(log, 0, chunk, theirs, nr, &d2, &err),
                     0);
    assert_int_equal(d1, 2);
    assert_int_equal(d2, 2);
    assert_int_equal(rm_disklog_resync_hashed(log, 0, chunk, theirs, NULL,
                                              nr, NULL, &err), -EINVAL);
    assert_int_equal(rm_disklog_hash(log, 3, chunk, mine, NULL, &err),
                     -EINVAL);
    free(theirs);
    free(mine);
    rm_disklog_close(log);
    close(pfd);
    close(rfd);
}

/* An epoch (and a resync) larger than a record is cut into parts 0, 1, ...
 * each within RM_REC_LENGTH_MAX, the last flagged; the replica takes them
 * in sequence and ends equal to the primary. */
static void test_parts_bounded(void **state)
{
    const uint64_t big = 24u << 20;
    int pfd = image(big, 51), rfd = image(big, 0);
    struct rm_disklog_params pp = { 0 };
    struct rm_disk_replica_params rp = { .state_dir = NULL };
    struct rm_disklog *log;
    struct rm_disk_replica *dr;
    struct rm_error err = { 0 };
    struct rm_buf out = { 0 };
    struct rm_sink sink;
    struct rm_stream_writer w;
    uint8_t *buf = malloc(RM_DISK_IO_MAX), *want;
    uint64_t bytes, entries = 0;
    uint32_t len;
    unsigned parts = 0;
    char path[64];

    (void)state;
    fresh_statedir();
    rp.state_dir = statedir;
    assert_non_null(buf);
    assert_int_equal(rm_disklog_open(&log, &pp, &err), 0);
    assert_int_equal(rm_disklog_add_disk(log, 0, pfd, big, &err), 0);
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_resync_all(log, &err), 0);
    /* 20 writes of 1 MiB in one epoch, over the resync */
    for (unsigned i = 0; i < 20; i++) {
        memset(buf, (int)(i + 1), RM_DISK_IO_MAX);
        assert_int_equal(pwrite(pfd, buf, RM_DISK_IO_MAX,
                                (off_t)i * RM_DISK_IO_MAX + 4096),
                         RM_DISK_IO_MAX);
        assert_int_equal(rm_disklog_write(log, 0, (uint64_t)i *
                                          RM_DISK_IO_MAX + 4096, buf,
                                          RM_DISK_IO_MAX, false, &err), 0);
    }
    assert_int_equal(rm_disklog_cut(log, 1, &err), 0);
    stream_start(&out, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit_info(log, &w), 0);
    assert_int_equal(rm_disklog_emit(log, 0, &w, &bytes), 0);
    assert_int_equal(bytes, big);
    assert_int_equal(rm_disklog_emit(log, 1, &w, &bytes), 0);
    assert_int_equal(bytes, 20u * RM_DISK_IO_MAX);
    while (nth_record(&out, RM_REC_DISK_WRITES, parts + 1, &len)) {
        assert_true(len <= RM_REC_LENGTH_MAX);
        parts++;
    }
    assert_true(parts >= 3 + 3);   /* 24 MiB + 20 MiB in 8 MiB records */
    assert_int_equal(rm_disk_replica_open(&dr, &rp, &err), 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, false, &err), 0);
    if (pump(&out, dr, 1, true, &entries, &err))
        fail_msg("pump: %s", rm_error_str(&err));
    assert_int_equal(entries, big / RM_DISK_CHUNK_DEFAULT + 20);
    want = read_image(pfd, big);
    assert_image(rfd, want, big);
    free(want);
    free(buf);
    rm_disk_replica_close(dr);
    rm_disklog_close(log);
    rm_buf_free(&out);
    close(pfd);
    close(rfd);
}

/* ------------------------------------------------------------ P9 */

struct wr {
    struct rm_disk_writes_hdr h;
    struct rm_disk_write_entry e;
    uint8_t data[1024];
};

static void good_record(struct wr *x)
{
    memset(x, 0, sizeof(*x));
    x->h.epoch = 1;
    x->h.disk = 0;
    x->h.count = 1;
    x->h.part = 0;
    x->h.flags = RM_DISK_WR_LAST;
    x->e.offset = 4096;
    x->e.length = 1024;
    x->e.op = RM_DISK_OP_WRITE;
    memset(x->data, 0xcd, sizeof(x->data));
}

static void test_p9_bad_fields_refused(void **state)
{
    int rfd = image(DSIZE, 31);
    uint8_t *before = read_image(rfd, DSIZE);
    struct rm_error err = { 0 };
    struct rm_disk_replica *dr;
    struct rm_disk_info_hdr ih = { .count = 1 };
    struct rm_disk_info_entry ie = { .id = 0, .sector = RM_DISK_SECTOR,
                                     .size = DSIZE };
    uint8_t info[sizeof(ih) + sizeof(ie)];
    struct rm_record irec = { .type = RM_REC_DISK_INFO,
                              .length = sizeof(info), .data = info };
    struct wr x;
    struct rm_record rec = { .type = RM_REC_DISK_WRITES,
                             .length = sizeof(x), .data = &x };
    enum { N = 14 };
    const char *what[N] = { "disk id", "beyond the disk", "offset align",
                            "length align", "length 0", "length > max",
                            "epoch", "part first", "op", "reserved",
                            "count", "flags", "hdr short", "wraps" };

    (void)state;
    fresh_statedir();
    memcpy(info, &ih, sizeof(ih));
    memcpy(info + sizeof(ih), &ie, sizeof(ie));
    dr = replica(rfd, false, &err);
    /* writes before DISK_INFO are refused */
    good_record(&x);
    assert_int_equal(rm_disk_replica_check(dr, 1, &rec, &err), -EBADMSG);
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_info(dr, &irec, &err), 0);
    for (int i = 0; i < N; i++) {
        int rc;

        good_record(&x);
        rec.length = sizeof(x);
        switch (i) {
        case 0: x.h.disk = 1; break;
        case 1: x.e.offset = DSIZE - 512; break;
        case 2: x.e.offset = 4096 + 8; break;
        case 3: x.e.length = 1000; rec.length = sizeof(x) - 24; break;
        case 4: x.e.length = 0; rec.length = sizeof(x) - 1024; break;
        case 5: x.e.length = RM_DISK_IO_MAX + 512; break;
        case 6: x.h.epoch = 2; break;
        case 7: x.h.part = 1; break;
        case 8: x.e.op = 3; break;
        case 9: x.e.reserved = 1; break;
        case 10: x.h.count = 2; break;
        case 11: x.h.flags |= 0x100; break;
        case 12: rec.length = sizeof(x.h) - 4; break;
        case 13: x.e.offset = UINT64_MAX - 511; break;
        }
        rm_error_clear(&err);
        rc = rm_disk_replica_check(dr, 1, &rec, &err);
        if (rc != -EBADMSG)
            fail_msg("%s: accepted (%d)", what[i], rc);
        /* the stream layer refuses the shape errors too (not the ones that
         * need the replica: disk size, epoch, part, id in DISK_INFO) */
        if (i != 0 && i != 1 && i != 6 && i != 7) {
            rm_error_clear(&err);
            if (rm_record_validate(RM_DHDR_TYPE_REMUS_KVM, 3, &rec, &err) !=
                -EBADMSG)
                fail_msg("%s: the stream validator accepted it", what[i]);
        }
    }
    /* the good record passes both, and nothing above wrote the image */
    good_record(&x);
    rec.length = sizeof(x);
    rm_error_clear(&err);
    assert_int_equal(rm_record_validate(RM_DHDR_TYPE_REMUS_KVM, 3, &rec,
                                        &err), 0);
    assert_int_equal(rm_disk_replica_check(dr, 1, &rec, &err), 0);
    assert_image(rfd, before, DSIZE);
    /* a second part 0, and a part after the last, are out of sequence */
    assert_int_equal(rm_disk_replica_check(dr, 1, &rec, &err), -EBADMSG);
    x.h.part = 1;
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_check(dr, 1, &rec, &err), -EBADMSG);
    /* DISK_INFO: wrong size, an unknown disk */
    ie.size = DSIZE * 2;
    memcpy(info + sizeof(ih), &ie, sizeof(ie));
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_info(dr, &irec, &err), -EINVAL);
    assert_non_null(strstr(rm_error_str(&err), "bytes"));
    ie.size = DSIZE;
    ie.id = 3;
    memcpy(info + sizeof(ih), &ie, sizeof(ie));
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_info(dr, &irec, &err), -EINVAL);
    assert_non_null(strstr(rm_error_str(&err), "carries disk 3"));
    assert_image(rfd, before, DSIZE);
    free(before);
    rm_disk_replica_close(dr);
    close(rfd);
}

/* P9 through the engine: a record beyond the disk injected in checkpoint 3
 * refuses that checkpoint whole; the disk stays at checkpoint 2. */
static void test_p9_engine_refuses_checkpoint(void **state)
{
    struct dguest d = { 0 };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    struct rm_restore_ctx rctx;
    struct dcommit c = { .d = &d };
    struct rm_disk_replica *dr;
    uint32_t len = 0;
    size_t cp2, off;
    unsigned k = 1;
    uint64_t bad = DSIZE;

    (void)state;
    fresh_statedir();
    checkpointed(&d, 4, 15, &out);
    cp2 = nth_record(&out, RM_REC_CHECKPOINT, 2, &len);
    do {
        off = nth_record(&out, RM_REC_DISK_WRITES, k++, &len);
    } while (off && off < cp2);
    assert_true(off > cp2);
    /* the first entry's offset: at the disk's end */
    memcpy(out.data + off + 8 + sizeof(struct rm_disk_writes_hdr), &bad, 8);
    c.rfd = image(DSIZE, 0);
    dr = replica(c.rfd, false, &err);
    assert_int_equal(drestore(&out, out.len, dr, &c, &rctx, &err), 0);
    assert_int_equal(rctx.result, RM_RESTORE_FAILOVER);
    assert_int_equal(rctx.committed_epoch, 2);
    if (!strstr(rctx.failover_reason.msg, "beyond the disk"))
        fail_msg("reason: %s", rctx.failover_reason.msg);
    assert_image(c.rfd, d.snap[2], DSIZE);
    assert_false(rm_disk_replica_dirty(dr, 0));
    rm_disk_replica_close(dr);
    close(c.rfd);
    /* a receiver without --disk refuses the stream, saying why */
    rm_error_clear(&err);
    assert_true(drestore(&out, out.len, NULL, NULL, &rctx, &err) < 0);
    if (!strstr(rm_error_str(&err), "carries disk 0 but this receiver has "
                "no --disk"))
        fail_msg("reason: %s", rm_error_str(&err));
    rm_buf_free(&out);
    dguest_free(&d);
}

/* P10: an apply that dies half way leaves the dirty mark; open refuses
 * the image without allow_dirty and names the mark; a normal epoch does not
 * lift it, only a resync's last part does. */
static void test_p10_dirty_mark(void **state)
{
    int pfd = image(DSIZE, 41), rfd = image(DSIZE, 0);
    struct rm_disklog *log = primary_log(pfd, 0);
    struct rm_error err = { 0 };
    struct rm_buf out = { 0 }, ep1 = { 0 };
    struct rm_sink sink;
    struct rm_stream_writer w;
    struct rm_disk_replica *dr;
    struct rm_disk_replica_params rp = { .state_dir = NULL };
    struct rm_stream_reader rd;
    struct rm_src src;
    struct rm_record rec;
    uint8_t buf[512];
    char path[64];
    int rc;

    (void)state;
    fresh_statedir();
    rp.state_dir = statedir;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
    memset(buf, 0x3c, sizeof(buf));
    rm_disklog_start(log);
    assert_int_equal(rm_disklog_write(log, 0, 512, buf, 512, false, &err),
                     0);
    assert_int_equal(rm_disklog_cut(log, 1, &err), 0);
    stream_start(&ep1, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit_info(log, &w), 0);
    assert_int_equal(rm_disklog_emit(log, 1, &w, NULL), 0);

    /* begin, apply, and "die" before end_apply */
    dr = replica(rfd, false, &err);
    rm_src_init_mem(&src, ep1.data, ep1.len);
    rm_stream_reader_init(&rd, &src, &err);
    assert_int_equal(rm_stream_read_headers(&rd), 0);
    assert_int_equal(rm_stream_read_record(&rd, &rec), 0);
    assert_int_equal(rm_disk_replica_info(dr, &rec, &err), 0);
    rm_record_free(&rec);
    assert_int_equal(rm_stream_read_record(&rd, &rec), 0);
    assert_int_equal(rm_disk_replica_check(dr, 1, &rec, &err), 0);
    assert_int_equal(rm_disk_replica_begin_apply(dr, 1, &err), 0);
    assert_int_equal(rm_disk_replica_apply(dr, &rec, &err), 0);
    rm_record_free(&rec);
    rm_disk_replica_close(dr);

    assert_int_equal(rm_disk_replica_open(&dr, &rp, &err), 0);
    rc = rm_disk_replica_add(dr, 0, path, false, &err);
    assert_int_equal(rc, -EBUSY);
    if (!strstr(rm_error_str(&err), statedir) ||
        !strstr(rm_error_str(&err), ".remus-dirty"))
        fail_msg("reason does not name the mark: %s", rm_error_str(&err));
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, true, &err), 0);
    assert_true(rm_disk_replica_dirty(dr, 0));
    /* an ordinary epoch applied whole does not make it clean */
    if (pump(&ep1, dr, 1, true, NULL, &err))
        fail_msg("pump: %s", rm_error_str(&err));
    assert_true(rm_disk_replica_dirty(dr, 0));
    /* a resync's last part does */
    assert_int_equal(rm_disklog_resync_all(log, &err), 0);
    stream_start(&out, &sink, &w, &err);
    assert_int_equal(rm_disklog_emit_info(log, &w), 0);
    assert_int_equal(rm_disklog_emit(log, 0, &w, NULL), 0);
    if (pump(&out, dr, 1, true, NULL, &err))
        fail_msg("pump: %s", rm_error_str(&err));
    assert_false(rm_disk_replica_dirty(dr, 0));
    rm_disk_replica_close(dr);
    assert_int_equal(rm_disk_replica_open(&dr, &rp, &err), 0);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, false, &err), 0);
    rm_disk_replica_close(dr);
    rm_disklog_close(log);
    rm_buf_free(&out);
    rm_buf_free(&ep1);
    close(pfd);
    close(rfd);
}

/* Open checks: missing, not a file or block device, given twice. */
static void test_replica_open_checks(void **state)
{
    struct rm_disk_replica_params rp = { 0 };
    struct rm_disk_replica *dr;
    struct rm_error err = { 0 };
    int rfd = image(DSIZE, 0);
    char path[128];
    uint64_t size;

    (void)state;
    fresh_statedir();
    rp.state_dir = statedir;
    assert_int_equal(rm_disk_replica_open(&dr, &rp, &err), 0);
    assert_int_equal(rm_disk_replica_add(dr, 0, "/nonexistent/disk.img",
                                         false, &err), -ENOENT);
    assert_non_null(strstr(rm_error_str(&err), "missing"));
    rm_error_clear(&err);
    assert_int_equal(rm_disk_replica_add(dr, 0, statedir, false, &err),
                     -EISDIR);
    rm_error_clear(&err);
    snprintf(path, sizeof(path), "%s/fifo", statedir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, false, &err), -EINVAL);
    assert_non_null(strstr(rm_error_str(&err), "not a regular file or a "
                           "block device"));
    rm_error_clear(&err);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, false, &err), 0);
    assert_int_equal(rm_disk_replica_add(dr, 0, path, false, &err), -EEXIST);
    assert_int_equal(rm_disk_replica_size(dr, 0, &size, &err), 0);
    assert_int_equal(size, DSIZE);
    rm_disk_replica_close(dr);
    close(rfd);
}

/* A plain save and restore with a disk: full copy, then the final epoch. */
static void test_plain_save_restore(void **state)
{
    struct dguest d = { 0 };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    struct rm_restore_ctx rctx;
    struct rm_disk_replica *dr;
    int rfd = image(DSIZE, 0);
    uint8_t *want;

    (void)state;
    fresh_statedir();
    dguest_init(&d, 1, 16);
    dsave(&d, RM_SAVE_LIVE, &out);
    want = read_image(d.pfd, DSIZE);
    dr = replica(rfd, false, &err);
    if (drestore(&out, out.len, dr, NULL, &rctx, &err))
        fail_msg("restore: %s", rm_error_str(&err));
    assert_int_equal(rctx.result, RM_RESTORE_COMPLETE);
    assert_image(rfd, want, DSIZE);
    assert_false(rm_disk_replica_dirty(dr, 0));
    free(want);
    rm_disk_replica_close(dr);
    close(rfd);
    rm_buf_free(&out);
    dguest_free(&d);
}

/* The stream layer knows both records: names, state, description. */
static void test_stream_layer(void **state)
{
    struct wr x;
    struct rm_record rec = { .type = RM_REC_DISK_WRITES,
                             .length = sizeof(x), .data = &x };
    struct rm_error err = { 0 };
    char buf[128];

    (void)state;
    assert_true(rm_rec_type_known(RM_REC_DISK_INFO));
    assert_true(rm_rec_type_known(RM_REC_DISK_WRITES));
    assert_string_equal(rm_rec_type_name(RM_REC_DISK_WRITES),
                        "REMUS_DISK_WRITES");
    assert_true(rm_rec_is_state(RM_REC_DISK_WRITES));
    assert_false(rm_rec_is_state(RM_REC_DISK_INFO));
    good_record(&x);
    rm_record_describe(&rec, buf, sizeof(buf));
    assert_string_equal(buf, "  disk 0, epoch 1, part 0, 1 entries, last");
    /* a Xen HVM/PVH protection's stream may carry it (its served disks);
     * a PV stream may not */
    assert_int_equal(rm_record_validate(RM_DHDR_TYPE_X86_HVM, 3, &rec, &err),
                     0);
    assert_int_equal(rm_record_validate(RM_DHDR_TYPE_X86_PV, 3, &rec, &err),
                     -EBADMSG);
    /* other remus records stay out of a Xen stream */
    {
        struct rm_epoch_info ei = { .epoch = 1 };
        struct rm_record r2 = { .type = RM_REC_EPOCH_INFO,
                                .length = sizeof(ei), .data = &ei };

        assert_int_equal(rm_record_validate(RM_DHDR_TYPE_X86_HVM, 3, &r2,
                                            &err), -EBADMSG);
    }
}

/*
 * Not a test: TEST_DISKLOG_WRITE_SEED=FILE writes a small checkpointed
 * stream with a disk (3 pages, 3 epochs, no resync) to FILE, the seed of
 * tests/fuzz/corpus/fuzz_restore/checkpointed-kvm-disk.bin.
 */
static int write_seed(const char *path)
{
    struct dguest d = { 0 };
    struct rm_buf out = { 0 };
    FILE *f;
    size_t n;

    dguest_init(&d, 3, 61);
    mem_guest_free(d.g);
    d.g = mem_guest_new(3, RM_DHDR_TYPE_REMUS_KVM, 61);
    d.g->workload = dworkload;
    d.g->workload_opaque = &d;
    d.ops_per_run = 1;
    d.flush_pct = 20;
    rm_disklog_start(d.log);
    dsave(&d, RM_SAVE_CHECKPOINTED, &out);
    f = fopen(path, "wb");
    n = f ? fwrite(out.data, 1, out.len, f) : 0;
    if (!f || n != out.len || fclose(f))
        return 1;
    printf("%s: %zu bytes\n", path, out.len);
    rm_buf_free(&out);
    dguest_free(&d);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p1_replica_equals_cut),
        cmocka_unit_test(test_p1_compressed),
        cmocka_unit_test(test_p1_xen_hvm_stream),
        cmocka_unit_test(test_p3_late_writes_next_epoch),
        cmocka_unit_test(test_xen_plain_save_refuses_disks),
        cmocka_unit_test(test_p1_spilled),
        cmocka_unit_test(test_p2_cut_midstream),
        cmocka_unit_test(test_p4_digest_covers_disk),
        cmocka_unit_test(test_p4_last_writer_wins),
        cmocka_unit_test(test_p5_sync_epochs),
        cmocka_unit_test(test_p6_cap_blocks_and_resumes),
        cmocka_unit_test(test_p7_resync_sends_differing_chunks),
        cmocka_unit_test(test_parts_bounded),
        cmocka_unit_test(test_p9_bad_fields_refused),
        cmocka_unit_test(test_p9_engine_refuses_checkpoint),
        cmocka_unit_test(test_p7_hash_sparse),
        cmocka_unit_test(test_p7_resync_hashed),
        cmocka_unit_test(test_p10_dirty_mark),
        cmocka_unit_test(test_replica_open_checks),
        cmocka_unit_test(test_plain_save_restore),
        cmocka_unit_test(test_stream_layer),
    };
    int rc;

    if (getenv("TEST_DISKLOG_WRITE_SEED"))
        return write_seed(getenv("TEST_DISKLOG_WRITE_SEED"));
    tu_case_filter();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (statedir[0]) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", statedir);
        if (system(cmd))
            rc = rc ? rc : 1;
    }
    return rc;
}
