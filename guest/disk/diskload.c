/* SPDX-License-Identifier: MIT */
/* The guest's disk workload (diskload.h). */
#include "guest/disk/diskload.h"
#include "guest/lib/rt.h"

#define SECTORS_PER_IO (DISKLOAD_IO / 512u)

int diskload_area(uint64_t disk_size, uint64_t *first, uint64_t *len)
{
    uint64_t start = (disk_size - disk_size / 4 + DISKLOAD_IO - 1) &
                     ~(uint64_t)(DISKLOAD_IO - 1);
    uint64_t end = disk_size & ~(uint64_t)(DISKLOAD_IO - 1);

    if (!disk_size || end <= start || end - start < DISKLOAD_MIN_AREA)
        return -1;
    *first = start;
    *len = end - start;
    return 0;
}

uint64_t diskload_set(struct diskload *d, uint64_t first, uint64_t len,
                      uint64_t rate, int fua)
{
    if (!d->started) {
        blk_init(&d->blk);
        d->started = 1;
    }
    if (rate > DISKLOAD_MAX_RATE)
        rate = DISKLOAD_MAX_RATE;
    d->rate = 0;                 /* the workload stops before the change */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    d->first = first;
    d->len = len;
    d->fua = fua;
    d->gen++;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    d->rate = rate;
    return rate;
}

/* Writes due since the pacing started, minus those done. */
static uint64_t due(struct diskload *d, uint64_t rate, uint64_t now)
{
    uint64_t want = (now - d->t0) / 1000 * rate / 1000000 / SECTORS_PER_IO;

    return want > d->done ? want - d->done : 0;
}

uint64_t diskload_step(struct diskload *d, uint64_t max)
{
    uint64_t rate = d->rate, n, i;

    if (!rate || !d->blk.present)
        return 0;
    if (d->seen_gen != d->gen) {
        d->seen_gen = d->gen;
        d->t0 = rt_now_ns();
        d->done = 0;
        d->cursor = 0;
    }
    n = due(d, rate, rt_now_ns());
    if (n > max)
        n = max;
    for (i = 0; i < n; i++) {
        uint64_t t0, dt, off = d->first + d->cursor;
        int rc;

        d->done++;               /* also the block's tag: never zero */
        memcpy(d->buf, &d->done, sizeof(d->done));
        t0 = rt_now_ns();
        rc = blk_write(&d->blk, off, d->buf, DISKLOAD_IO, d->fua);
        dt = rt_now_ns() - t0;
        d->cursor += DISKLOAD_IO;
        if (d->cursor >= d->len)
            d->cursor = 0;
        if (rc) {
            d->errors++;
            continue;
        }
        d->writes++;
        d->write_ns += dt;
        if (dt > d->max_ns)
            d->max_ns = dt;
    }
    return n;
}
