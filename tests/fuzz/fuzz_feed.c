/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the protection's end of a served disk's feed (nbd/feed.h) on
 * any bytes from the disk server, into a disk-epoch log of one 1 MiB disk.
 * The first byte chooses how the input becomes the wire: even, as it is;
 * odd, as a list of 8-byte messages to encode (kind 0-4, flags 0-3, a
 * sector offset and length around the disk's and the write limit's edges,
 * and bits that break the magic, the zero field, the alignment or cut the
 * write's data), so that nearly valid messages, the ones a byte-level
 * mutator seldom forms, are tried as often as the rest.
 * Never a crash or a hang, and exactly what the wire format says: the
 * harness decodes the same bytes itself (the header, its checks, the
 * log's range rules) and expects, message by message, the answers 0 for
 * each change logged, then -EINVAL for the first the log refuses (the feed
 * then ends), or nothing more for a malformed or cut message; and the
 * feed's count of changes and the log's logged bytes to agree.  Seeds
 * (tests/fuzz/corpus/fuzz_feed): raw, a write, a discard and a flush; a
 * write beyond the disk; a bad magic; a write cut short; encoded, one
 * message of each kind.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/disklog.h"
#include "common/log.h"
#include "nbd/feed.h"
#include "tests/support/fuzz_peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK_BYTES (1u << 20)
#define MAX_ANSWERS 4096

struct model {
    uint64_t changes;            /* logged */
    uint64_t logged_bytes;       /* writes' lengths (the log's stat) */
    int32_t answers[MAX_ANSWERS];
    size_t n_answers;
};

static uint32_t get32(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *b) { uint64_t v; memcpy(&v, b, 8); return le64toh(v); }

/* What the log says of a range (common/disklog.c's rules). */
static int range_ok(uint64_t off, uint64_t len)
{
    return len && !(off % RM_DISK_SECTOR) && !(len % RM_DISK_SECTOR) &&
           off <= DISK_BYTES && len <= DISK_BYTES - off;
}

/* The wire format, decoded independently of nbd/feed.c. */
static void expect(const uint8_t *d, size_t n, struct model *m)
{
    size_t at = 0;

    while (n - at >= 32 && m->n_answers < MAX_ANSWERS) {
        const uint8_t *h = d + at;
        uint32_t magic = get32(h), kind = get32(h + 4);
        uint64_t off = get64(h + 8), len = get64(h + 16);
        uint32_t flags = get32(h + 24), zero = get32(h + 28);
        int ok;

        if (magic != RM_NBD_FEED_MAGIC || zero || kind < 1 || kind > 3)
            return;
        if (kind == RM_NBD_FEED_WRITE &&
            (!len || len > RM_NBD_FEED_MAX_WRITE || flags > 1))
            return;
        if (kind != RM_NBD_FEED_WRITE && flags)
            return;
        at += 32;
        if (kind == RM_NBD_FEED_WRITE) {
            if (n - at < len)
                return;          /* cut in the middle of its data */
            at += len;
        }
        ok = kind == RM_NBD_FEED_FLUSH || range_ok(off, len);
        m->answers[m->n_answers++] = ok ? 0 : -EINVAL;
        if (!ok)
            return;
        m->changes++;
        if (kind == RM_NBD_FEED_WRITE)
            m->logged_bytes += len;
    }
}


#define WIRE_MAX (4u << 20)

static void put32(uint8_t *b, uint32_t v) { v = htole32(v); memcpy(b, &v, 4); }
static void put64(uint8_t *b, uint64_t v) { v = htole64(v); memcpy(b, &v, 8); }

/*
 * Encode @n bytes of 8-byte messages into @wire (at most WIRE_MAX bytes):
 * byte 0 kind % 5; 1 flags % 4; 2 bits: 1 bad magic, 2 zero field set, 4
 * offset off by one byte, 8 length off by one byte, 16 the write's data
 * cut short (the last message then); 3-4 offset in sectors % 2100; 5-6
 * length in sectors, % 2100 when bit 15 is set, else % 32 (the disk is
 * 2048, a write at most 2048; small ones keep the runs fast).
 * Returns the wire's length.
 */
static size_t encode(const uint8_t *d, size_t n, uint8_t *wire)
{
    size_t at = 0;

    for (; n >= 8; d += 8, n -= 8) {
        uint32_t kind = d[0] % 5, flags = d[1] % 4, bits = d[2];
        uint64_t off = (uint64_t)((d[3] | d[4] << 8) % 2100) * RM_DISK_SECTOR;
        uint64_t len = (uint64_t)((d[5] | (d[6] & 0x7f) << 8) %
                                  ((d[6] & 0x80) ? 2100 : 32)) * RM_DISK_SECTOR;
        size_t data;

        off += (bits & 4) ? 1 : 0;
        len += (bits & 8) ? 1 : 0;
        data = kind == RM_NBD_FEED_WRITE && len <= RM_NBD_FEED_MAX_WRITE ?
               (size_t)len : 0;
        if (bits & 16)
            data /= 2;
        if (at + 32 + data > WIRE_MAX)
            break;
        put32(wire + at, (bits & 1) ? 0x464d4452u : RM_NBD_FEED_MAGIC);
        put32(wire + at + 4, kind);
        put64(wire + at + 8, off);
        put64(wire + at + 16, len);
        put32(wire + at + 24, flags);
        put32(wire + at + 28, (bits & 2) ? 1 : 0);
        memset(wire + at + 32, d[7], data);
        at += 32 + data;
        if (bits & 16)
            break;
    }
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    struct rm_disklog_params params = { .max_unacked_bytes = 1ull << 40 };
    struct rm_disklog *log = NULL;
    struct rm_nbd_feed *feed = NULL;
    struct rm_disklog_stats st;
    struct rm_error err = { 0 };
    struct rm_fuzz_peer server = { 0 };
    static struct model m;
    uint8_t answers[MAX_ANSWERS * 4];
    uint64_t changes;
    int sv[2], image;
    size_t i;

    if (!once) {
        FILE *quiet = fopen("/dev/null", "w");  /* the feed's end is logged */

        if (!quiet)
            abort();
        rm_log_init(RM_LOG_ERROR, quiet);
        signal(SIGPIPE, SIG_IGN);
        once = 1;
    }
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        static uint8_t wire[WIRE_MAX];

        size = encode(data + 1, size - 1, wire);
        data = wire;
    } else {
        data++;
        size--;
    }
    memset(&m, 0, sizeof(m));
    expect(data, size, &m);
    if (m.n_answers >= MAX_ANSWERS)
        return 0;                /* beyond what the harness keeps */
    image = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (image < 0 || rm_disklog_open(&log, &params, &err) ||
        rm_disklog_add_disk(log, 0, image, DISK_BYTES, &err))
        abort();
    rm_disklog_start(log);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    server.fd = sv[0];
    server.in = data;
    server.len = size;
    server.out = answers;
    server.out_cap = sizeof(answers);
    rm_fuzz_peer_start(&server);
    if (rm_nbd_feed_start(&feed, sv[1], log, 0, &err))
        abort();
    rm_fuzz_peer_join(&server);  /* the feed ended: EOF or its error */
    changes = rm_nbd_feed_changes(feed);
    rm_nbd_feed_stop(feed);
    close(sv[1]);
    close(sv[0]);

    if (server.out_len != m.n_answers * 4)
        abort();                 /* answers the wire format does not give */
    for (i = 0; i < m.n_answers; i++)
        if ((int32_t)get32(answers + 4 * i) != m.answers[i])
            abort();
    rm_disklog_get_stats(log, &st);
    if (changes != m.changes ||
        st.logged_bytes != m.logged_bytes)
        abort();
    rm_disklog_close(log);
    close(image);
    return 0;
}
