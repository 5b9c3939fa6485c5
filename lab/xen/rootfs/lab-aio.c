/* SPDX-License-Identifier: MIT */
/*
 * lab-aio: the Xen lab guest's asynchronous disk writer (#19: a write in
 * flight at a checkpoint's cut is issued again by blkfront on the replica).
 *
 *   lab-aio DEV BOOT-ID [DEPTH [PAUSE-MS [KIB]]]
 *
 * Keeps DEPTH (default 2) O_DIRECT writes of KIB KiB (default 256) in
 * flight on DEV with Linux AIO (io_submit: the writing task returns to user
 * space at once, so the freezer of a Xen suspend does not wait for the
 * write; it is in blkfront's ring at the suspend).  Write number SEQ goes
 * to slot SEQ % 96 at 40 MiB + slot * KIB KiB (the default KIB fills a
 * 64 MiB disk to its end); each of its 4 KiB blocks
 * holds the line "aio SEQ SLOT BOOT-ID TOKEN" (TOKEN a fresh uuid).
 * On the console (stdout), one line each:
 *   guest: aio submit SEQ SLOT TOKEN         before io_submit
 *   guest: aio done SEQ SLOT TOKEN ok|BAD    once the write completed
 *                                            (ok: all of it written)
 * then PAUSE-MS (default 40) before that write's successor is submitted.
 * No synchronous I/O at all (no read-back: a task blocked in a read
 * cannot be frozen, and a guest that cannot freeze its tasks does not
 * suspend while its disk holds requests); the scenario reads the slots
 * from the image instead.
 * A (SEQ, TOKEN) done on a replica that the replica never submitted was in
 * flight at the cut it resumed from: blkfront issued it again.
 * Built static by build-image.sh (no libaio: raw system calls).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A slot is reused 96 writes later: about 5 s at the guest's pace (2 in
 * flight, 100 ms between a completion and its successor), the time the
 * xeninflight scenario has to copy the replica's image after it saw the
 * writes issued again complete (32 slots, 1.6 s, were too few on a loaded
 * host: slot 813's write was overwritten by 845's before the copy). */
#define LAB_AIO_SLOTS 96
#define LAB_AIO_BASE (40ull << 20)
#define LAB_AIO_BLOCK 4096
#define LAB_AIO_MAX_DEPTH 8

struct lab_write {
    struct iocb cb;
    unsigned char *buf;
    uint64_t seq;
    unsigned slot;
    char token[40];
    char line[128];
};

static void fresh_token(char *tok, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");

    snprintf(tok, len, "none");
    if (f) {
        if (fgets(tok, (int)len, f))
            tok[strcspn(tok, "\n")] = 0;
        fclose(f);
    }
}

static void fill(struct lab_write *w, uint64_t seq, const char *boot,
                 size_t bytes, uint64_t *off)
{
    w->seq = seq;
    w->slot = (unsigned)(seq % LAB_AIO_SLOTS);
    fresh_token(w->token, sizeof(w->token));
    snprintf(w->line, sizeof(w->line), "aio %" PRIu64 " %u %s %s\n", seq,
             w->slot, boot, w->token);
    memset(w->buf, 0, bytes);
    for (size_t b = 0; b < bytes; b += LAB_AIO_BLOCK)
        memcpy(w->buf + b, w->line, strlen(w->line));
    *off = LAB_AIO_BASE + (uint64_t)w->slot * bytes;
}

static int submit(aio_context_t ctx, int fd, struct lab_write *w,
                  uint64_t seq, const char *boot, size_t bytes)
{
    struct iocb *list[1] = { &w->cb };
    uint64_t off;
    long rc;

    fill(w, seq, boot, bytes, &off);
    memset(&w->cb, 0, sizeof(w->cb));
    w->cb.aio_data = (uint64_t)(uintptr_t)w;
    w->cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    w->cb.aio_fildes = (uint32_t)fd;
    w->cb.aio_buf = (uint64_t)(uintptr_t)w->buf;
    w->cb.aio_nbytes = bytes;
    w->cb.aio_offset = (int64_t)off;
    printf("guest: aio submit %" PRIu64 " %u %s\n", seq, w->slot, w->token);
    fflush(stdout);
    do
        rc = syscall(SYS_io_submit, ctx, 1L, list);
    while (rc < 0 && (errno == EINTR || errno == EAGAIN));
    if (rc != 1) {
        perror("lab-aio: io_submit");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct lab_write w[LAB_AIO_MAX_DEPTH];
    struct io_event ev[LAB_AIO_MAX_DEPTH];
    aio_context_t ctx = 0;
    unsigned depth = 2, pause_ms = 40;
    size_t bytes = 256 * 1024;
    uint64_t seq = 0;
    int fd;

    if (argc < 3) {
        fprintf(stderr, "usage: lab-aio DEV BOOT-ID [DEPTH [PAUSE-MS [KIB]]]\n");
        return 2;
    }
    if (argc > 3)
        depth = (unsigned)atoi(argv[3]);
    if (argc > 4)
        pause_ms = (unsigned)atoi(argv[4]);
    if (argc > 5)
        bytes = (size_t)atoi(argv[5]) * 1024;
    if (depth < 1 || depth > LAB_AIO_MAX_DEPTH || bytes < LAB_AIO_BLOCK ||
        bytes % LAB_AIO_BLOCK || bytes > (4u << 20)) {
        fprintf(stderr, "lab-aio: depth 1-%d, KiB a multiple of 4 up to 4096\n",
                LAB_AIO_MAX_DEPTH);
        return 2;
    }
    fd = open(argv[1], O_RDWR | O_DIRECT);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    if (syscall(SYS_io_setup, (long)depth, &ctx)) {
        perror("lab-aio: io_setup");
        return 1;
    }
    for (unsigned i = 0; i < depth; i++) {
        if (posix_memalign((void **)&w[i].buf, LAB_AIO_BLOCK, bytes))
            return 1;
        if (submit(ctx, fd, &w[i], ++seq, argv[2], bytes))
            return 1;
    }
    for (;;) {
        long n = syscall(SYS_io_getevents, ctx, 1L, (long)depth, ev, NULL);

        if (n < 0 && errno == EINTR)
            continue;   /* the freezer of a suspend wakes the task */
        if (n < 0) {
            perror("lab-aio: io_getevents");
            return 1;
        }
        for (long i = 0; i < n; i++) {
            struct lab_write *done = (struct lab_write *)(uintptr_t)ev[i].data;
            int ok = ev[i].res == (int64_t)bytes;
            struct timespec ts = { pause_ms / 1000,
                                   (long)(pause_ms % 1000) * 1000000L };

            printf("guest: aio done %" PRIu64 " %u %s %s\n", done->seq,
                   done->slot, done->token, ok ? "ok" : "BAD");
            fflush(stdout);
            nanosleep(&ts, NULL);
            if (submit(ctx, fd, done, ++seq, argv[2], bytes))
                return 1;
        }
    }
}
