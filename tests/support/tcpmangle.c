/* SPDX-License-Identifier: MIT */
/*
 * tcpmangle LISTEN-PORT TARGET-PORT MODE AFTER-MS (tests only)
 * A TCP relay on 127.0.0.1 between a remus primary and secondary.  The
 * second connection accepted is the checkpoint stream; AFTER-MS after it
 * opened, MODE applies to it:
 *   corrupt   flip one byte in the next chunk, then keep relaying
 *   truncate  close the stream in the middle of the next chunk, then
 *             relay the control connection on
 *   stall     after relaying the next chunk of the stream (in the middle
 *             of a checkpoint), stop reading and relaying both
 *             connections, in both
 *             directions, without closing anything (a peer or middlebox
 *             that hangs); the relay then sleeps until killed.  Its
 *             sockets get small receive buffers so that the primary's
 *             writes block soon after
 *   ptype     give the first page of the next PAGE_DATA record (after
 *             the first CHECKPOINT) the page type L1TAB (a type the KVM
 *             backend cannot apply; the page digest does not cover
 *             types), then keep relaying (an unkeyed stream: the 16-byte
 *             session token, the headers, then records)
 *   disk-cut  relay the stream up to the end of the next DISK_WRITES
 *             record after the first CHECKPOINT (an unkeyed stream), then
 *             stall both connections as `stall` does: the secondary holds
 *             that checkpoint's disk writes but never its end
 *   stream-stall  as stall, for the stream only: after relaying its next
 *             chunk, stop reading and relaying the stream, without
 *             closing it, and relay the control connection on (the
 *             primary alive, its stream stuck)
 *   ctl-mute  from then on, drop what the primary sends on the control
 *             connection (heartbeats, stop, handover) and relay the rest:
 *             the secondary still gets every checkpoint and the primary
 *             every ack, but the secondary hears nothing from the
 *             primary on the control channel
 * In the other modes the control connection is relayed untouched.  Prints
 * what it did.  AFTER-MS is multiplied by REMUS_TEST_SLOW (a whole number,
 * default 1; tests/lib/wait.sh): on a machine that many times slower the
 * damage still comes after as many of the protection's checkpoints.
 * AFTER-MS may be @FILE instead: MODE applies once FILE exists (the test
 * creates it when the protection has gone as far as it wants, whatever
 * the machine's speed), checked at each chunk relayed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/disklog.h"
#include "common/io.h"
#include "common/stream.h"

/* Follows the record framing of the relayed stream (ptype mode). */
struct recs {
    uint64_t abs;          /* stream offset of the chunk's first byte */
    uint64_t next_hdr;     /* offset of the next record header */
    uint64_t target;       /* offset of the byte to change (0: none) */
    uint8_t hdr[8];
    bool checkpointed;     /* a CHECKPOINT record went by */
};

/* Feed the stream byte at offset @a: true when it completes a record
 * header, whose start, type and length are then in @at, @type, @len (and
 * r->next_hdr moves past the record). */
static bool header_byte(struct recs *r, uint64_t a, char byte, uint64_t *at,
                        uint32_t *type, uint32_t *len)
{
    if (a < r->next_hdr || a >= r->next_hdr + 8)
        return false;
    r->hdr[a - r->next_hdr] = (uint8_t)byte;
    if (a != r->next_hdr + 7)
        return false;
    memcpy(type, r->hdr, 4);
    memcpy(len, r->hdr + 4, 4);
    if (*type == RM_REC_CHECKPOINT)
        r->checkpointed = true;
    *at = r->next_hdr;
    r->next_hdr += 8 + (((uint64_t)*len + 7) & ~7ull);
    return true;
}

/* The type nibble of the first pfn entry of the first PAGE_DATA record
 * that starts once @armed and after a CHECKPOINT (so that the secondary
 * has a committed checkpoint to keep). */
static bool retype(struct recs *r, char *buf, size_t len, bool armed)
{
    bool hit = false;
    size_t k;

    for (k = 0; k < len; k++) {
        uint64_t a = r->abs + k, at;
        uint32_t type, rlen;

        if (r->target && a == r->target) {
            buf[k] = (char)((buf[k] & 0x0f) | (RM_PT_L1TAB << 4));
            r->target = 0;
            hit = true;
        }
        if (header_byte(r, a, buf[k], &at, &type, &rlen) && armed &&
            r->checkpointed && !hit && !r->target &&
            type == RM_REC_PAGE_DATA && rlen >= 16)
            r->target = at + 8 + 8 + 7;
    }
    r->abs += len;
    return hit;
}

/* disk-cut: how many of @len bytes to relay before the stall (the end of
 * the first DISK_WRITES record after a CHECKPOINT once @armed), or
 * (size_t)-1: relay all of it. */
static size_t disk_cut(struct recs *r, const char *buf, size_t len,
                       bool armed)
{
    size_t k;

    for (k = 0; k < len; k++) {
        uint64_t a = r->abs + k, at;
        uint32_t type, rlen;

        if (r->target && a == r->target) {
            r->abs += k;
            return k;
        }
        if (header_byte(r, a, buf[k], &at, &type, &rlen) && armed &&
            r->checkpointed && !r->target && type == RM_REC_DISK_WRITES)
            r->target = r->next_hdr;
    }
    r->abs += len;
    if (r->target && r->abs == r->target)
        return len;      /* the record ends with the chunk: cut here */
    return (size_t)-1;
}

static int dial(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
        return -1;
    return fd;
}

/* When MODE applies: AFTER-MS after the stream opened, or once a file
 * exists. */
struct trigger {
    uint64_t after_ns;
    const char *file;          /* NULL: by time */
};

static bool armed(const struct trigger *t, uint64_t t_stream)
{
    if (!t_stream)
        return false;
    if (t->file)
        return access(t->file, F_OK) == 0;
    return rm_now_ns() - t_stream > t->after_ns;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    struct trigger trig = { 0 };
    int lfd, one = 1, pairs[2][2], n = 0, after_ms;
    uint64_t t_stream = 0;
    bool done = false, truncate_mode, stall_mode, ptype_mode, mute_mode;
    bool cut_mode, sstall_mode, frozen = false;
    struct recs recs = { .next_hdr = 16 + 40 };
    static char buf[1 << 16];

    if (argc != 5)
        return 2;
    truncate_mode = !strcmp(argv[3], "truncate");
    stall_mode = !strcmp(argv[3], "stall");
    ptype_mode = !strcmp(argv[3], "ptype");
    mute_mode = !strcmp(argv[3], "ctl-mute");
    cut_mode = !strcmp(argv[3], "disk-cut");
    sstall_mode = !strcmp(argv[3], "stream-stall");
    if (!truncate_mode && !stall_mode && !ptype_mode && !mute_mode &&
        !cut_mode && !sstall_mode && strcmp(argv[3], "corrupt")) {
        fprintf(stderr, "tcpmangle: unknown mode '%s'\n", argv[3]);
        return 2;
    }
    after_ms = atoi(argv[4]);
    if (getenv("REMUS_TEST_SLOW")) {
        int slow = atoi(getenv("REMUS_TEST_SLOW"));

        if (slow < 1 || slow > 1000) {
            fprintf(stderr, "tcpmangle: REMUS_TEST_SLOW='%s': want 1 to "
                    "1000\n", getenv("REMUS_TEST_SLOW"));
            return 2;
        }
        after_ms *= slow;
    }
    if (argv[4][0] == '@')
        trig.file = argv[4] + 1;
    trig.after_ns = (uint64_t)after_ms * 1000000;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (stall_mode || cut_mode || sstall_mode) {
        int small = 65536;   /* inherited by the accepted sockets */

        setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    a.sin_port = htons((uint16_t)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4))
        return 1;
    pairs[0][0] = accept(lfd, NULL, NULL);
    pairs[0][1] = dial(atoi(argv[2]));
    pairs[1][0] = pairs[1][1] = -1;
    if (pairs[0][0] < 0 || pairs[0][1] < 0)
        return 1;
    n = 1;
    for (;;) {
        struct pollfd p[5];
        int i;

        for (i = 0; i < 4; i++) {
            p[i].fd = frozen && i >= 2 ? -1 : pairs[i / 2][i % 2];
            p[i].events = POLLIN;
        }
        p[4].fd = n < 2 ? lfd : -1;
        p[4].events = POLLIN;
        if (poll(p, 5, 1000) <= 0)
            continue;
        if (n < 2 && (p[4].revents & POLLIN)) {
            pairs[1][0] = accept(lfd, NULL, NULL);
            pairs[1][1] = dial(atoi(argv[2]));
            if (pairs[1][0] < 0 || pairs[1][1] < 0)
                return 1;
            n = 2;
            t_stream = rm_now_ns();
            continue;
        }
        for (i = 0; i < 4; i++) {
            ssize_t got;
            int to = pairs[i / 2][1 - i % 2];

            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            got = read(p[i].fd, buf, sizeof(buf));
            if (got <= 0)
                return 0;   /* one side closed: stop relaying */
            if (i == 0 && mute_mode && armed(&trig, t_stream)) {
                if (!done) {
                    printf("tcpmangle: muted the primary's control "
                           "messages\n");
                    fflush(stdout);
                    done = true;
                }
                continue;
            }
            if (i == 2 && cut_mode) {
                size_t keep = disk_cut(&recs, buf, (size_t)got,
                                       armed(&trig, t_stream));

                if (keep != (size_t)-1) {
                    if (rm_write_all(to, buf, keep))
                        return 0;
                    printf("tcpmangle: cut the stream after a checkpoint's "
                           "DISK_WRITES, before its end; stalled both "
                           "connections\n");
                    fflush(stdout);
                    for (;;)
                        pause();
                }
            } else if (i == 2 && mute_mode) {
                /* the stream is relayed untouched */
            } else if (i == 2 && ptype_mode) {
                bool now = !done && armed(&trig, t_stream);

                if (retype(&recs, buf, (size_t)got, now && !recs.target)) {
                    printf("tcpmangle: gave a PAGE_DATA page the type "
                           "L1TAB\n");
                    fflush(stdout);
                    done = true;
                }
            } else if (i == 2 && !done && !stall_mode && !sstall_mode &&
                       armed(&trig, t_stream)) {
                if (truncate_mode) {
                    if (rm_write_all(to, buf, (size_t)got / 2))
                        return 0;
                    printf("tcpmangle: truncated the stream\n");
                    fflush(stdout);
                    close(pairs[1][0]);
                    close(pairs[1][1]);
                    pairs[1][0] = pairs[1][1] = -1;
                    done = true;
                    break;      /* the control connection is relayed on */
                }
                buf[got / 2] ^= 0x5a;
                printf("tcpmangle: corrupted one byte\n");
                fflush(stdout);
                done = true;
            }
            if (rm_write_all(to, buf, (size_t)got))
                return 0;
            if (i == 2 && sstall_mode && !frozen && armed(&trig, t_stream)) {
                printf("tcpmangle: stalled the stream (the control "
                       "connection is relayed on)\n");
                fflush(stdout);
                frozen = true;
                break;
            }
            /* Stall in the middle of a checkpoint: right after relaying
             * a chunk of the stream. */
            if (i == 2 && stall_mode && armed(&trig, t_stream)) {
                printf("tcpmangle: stalled both connections\n");
                fflush(stdout);
                for (;;)
                    pause();
            }
        }
    }
}
