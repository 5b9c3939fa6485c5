/* SPDX-License-Identifier: MIT */
/* The guest's block driver (blk.h). */
#include "guest/disk/blk.h"
#include "guest/lib/rt.h"

void blk_init(struct blk *b)
{
    struct rm_hc_disk_info in;

    memset(b, 0, sizeof(*b));
    memset(&in, 0, sizeof(in));
    hc(RM_HC_DISK_INFO, &in);
    if (!(in.flags & RM_HC_DISK_PRESENT) || !in.sector || !in.max_io ||
        in.max_io % in.sector || in.size % in.sector)
        return;
    b->present = 1;
    b->size = in.size;
    b->sector = in.sector;
    b->max_io = in.max_io;
}

int blk_raw(unsigned call, uint32_t disk, uint32_t flags, uint64_t off,
            uint64_t data, uint64_t len)
{
    struct rm_hc_disk_io io;

    memset(&io, 0, sizeof(io));
    io.disk = disk;
    io.flags = flags;
    io.offset = off;
    io.len = len;
    io.data = data;
    io.ret = RM_HC_DISK_ENODEV;   /* what a VMM without the call leaves */
    hc(call, &io);
    return io.ret;
}

/* Split [off, off + len) into max_io pieces of @call. */
static int split(struct blk *b, unsigned call, uint32_t flags, uint64_t off,
                 uint64_t data, uint64_t len)
{
    if (!b->present)
        return RM_HC_DISK_ENODEV;
    while (len) {
        uint64_t n = len > b->max_io ? b->max_io : len;
        int rc;

        do    /* EAGAIN: nothing done, call again */
            rc = blk_raw(call, 0, flags, off, data, n);
        while (rc == RM_HC_DISK_EAGAIN);

        if (rc) {
            b->errors++;
            return rc;
        }
        off += n;
        len -= n;
        if (call != RM_HC_DISK_DISCARD)
            data += n;
    }
    return 0;
}

int blk_read(struct blk *b, uint64_t off, void *buf, uint64_t len)
{
    int rc = split(b, RM_HC_DISK_READ, 0, off, (uint64_t)(uintptr_t)buf,
                   len);

    b->reads += !rc;
    return rc;
}

int blk_write(struct blk *b, uint64_t off, const void *buf, uint64_t len,
              int fua)
{
    int rc = split(b, RM_HC_DISK_WRITE, fua ? RM_HC_DISK_FUA : 0, off,
                   (uint64_t)(uintptr_t)buf, len);

    b->writes += !rc;
    return rc;
}

int blk_flush(struct blk *b)
{
    int rc;

    if (!b->present)
        return RM_HC_DISK_ENODEV;
    rc = blk_raw(RM_HC_DISK_FLUSH, 0, 0, 0, 0, 0);
    if (rc)
        b->errors++;
    b->flushes += !rc;
    return rc;
}

int blk_discard(struct blk *b, uint64_t off, uint64_t len)
{
    int rc = split(b, RM_HC_DISK_DISCARD, 0, off, 0, len);

    b->discards += !rc;
    return rc;
}

void blk_probe(uint64_t mem_bytes)
{
    static uint8_t buf[1024];
    uint64_t ok = (uint64_t)(uintptr_t)buf;
    struct blk b;

    blk_init(&b);
    if (!b.present) {
        rt_printf("remus-guest: disk probe: no disk\n");
        return;
    }
    rt_printf("remus-guest: disk probe: badbuf=%d misaligned=%d beyond=%d "
              "toolong=%d nodisk=%d badflags=%d good=%d\n",
              blk_raw(RM_HC_DISK_READ, 0, 0, 0, mem_bytes - 512, 1024),
              blk_raw(RM_HC_DISK_READ, 0, 0, 1, ok, 512),
              blk_raw(RM_HC_DISK_READ, 0, 0, b.size, ok, 512),
              blk_raw(RM_HC_DISK_WRITE, 0, 0, 0, ok, b.max_io + 512),
              blk_raw(RM_HC_DISK_READ, 1, 0, 0, ok, 512),
              blk_raw(RM_HC_DISK_READ, 0, RM_HC_DISK_FUA, 0, ok, 512),
              blk_raw(RM_HC_DISK_READ, 0, 0, 0, ok, 1024));
}
