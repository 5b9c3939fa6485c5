/* SPDX-License-Identifier: MIT */
/*
 * wirecap IFNAME OUTFILE (tests only)
 * Record every frame that crosses the network device IFNAME (AF_PACKET),
 * with the kernel's receive timestamp, until SIGINT or SIGTERM.  Says
 * "wirecap: capturing on IFNAME" once the socket is bound.  One line per
 * frame in OUTFILE, in the order the kernel delivered them:
 *
 *   DIR MONOTONIC_NS LEN [udp SPORT DPORT PAYLOAD | icmp TYPE ID SEQ]
 *
 * DIR: "in" for a frame the kernel received on IFNAME (on a TAP: one the
 * VMM wrote, i.e. the guest's output), "out" for one it sent there (to
 * the guest).  The kernel stamps frames in CLOCK_REALTIME; they are
 * written in CLOCK_MONOTONIC (the clock of remus' audit logs), shifted by
 * the offset between the two clocks measured at the start.  IPv4 UDP
 * frames add the ports and the payload's first bytes (unprintable bytes
 * as '.'); ICMP echo requests (8) and replies (0) their id and
 * sequence number.  Exit 1 when the kernel dropped frames or the realtime
 * clock was stepped during the capture (the times would then be wrong).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MAX 64
#define OFFSET_DRIFT_MAX_NS 1000000   /* a clock step, not a measuring error */

struct cap {
    int fd;
    FILE *out;
    int64_t offset_ns;          /* realtime - monotonic */
    uint64_t frames_in, frames_out;
    uint8_t buf[65536];
};

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* realtime - monotonic, from the tightest of a few bracketed readings. */
static int64_t clock_offset(void)
{
    int64_t best_offset = 0, best_width = INT64_MAX;
    int i;

    for (i = 0; i < 32; i++) {
        struct timespec m1, r, m2;
        int64_t width;

        clock_gettime(CLOCK_MONOTONIC, &m1);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &m2);
        width = ts_ns(&m2) - ts_ns(&m1);
        if (width < best_width) {
            best_width = width;
            best_offset = ts_ns(&r) - (ts_ns(&m1) + width / 2);
        }
    }
    return best_offset;
}

static int open_socket(struct cap *c, const char *ifname)
{
    struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                               .sll_protocol = htons(ETH_P_ALL) };
    int one = 1, rcvbuf = 8 << 20;

    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (!sll.sll_ifindex) {
        fprintf(stderr, "wirecap: no network device '%s': %s\n", ifname,
                strerror(errno));
        return -1;
    }
    /* Protocol 0: nothing is queued before bind() picks the device. */
    c->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "wirecap: AF_PACKET socket: %s (root needed)\n",
                strerror(errno));
        return -1;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) ||
        (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
                    sizeof(rcvbuf)) &&
         setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)))) {
        fprintf(stderr, "wirecap: socket options: %s\n", strerror(errno));
        return -1;
    }
    if (bind(c->fd, (struct sockaddr *)&sll, sizeof(sll))) {
        fprintf(stderr, "wirecap: bind to '%s': %s\n", ifname,
                strerror(errno));
        return -1;
    }
    return 0;
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)(p[0] << 8 | p[1]);
}

/*
 * " udp SPORT DPORT PAYLOAD" for an IPv4 UDP frame, " icmp TYPE ID SEQ"
 * for an IPv4 ICMP echo request (8) or reply (0), else nothing.
 */
static void print_ipv4(FILE *out, const uint8_t *f, size_t len)
{
    const uint8_t *ip = f + 14, *l4;
    size_t ihl, i, plen;

    if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 || (ip[0] >> 4) != 4)
        return;
    ihl = (size_t)(ip[0] & 0x0f) * 4;
    if (ihl < 20 || len < 14 + ihl + 8)
        return;
    l4 = ip + ihl;
    if (ip[9] == IPPROTO_ICMP && (l4[0] == 8 || l4[0] == 0)) {
        fprintf(out, " icmp %u %u %u", l4[0], be16(l4 + 4), be16(l4 + 6));
        return;
    }
    if (ip[9] != IPPROTO_UDP)
        return;
    plen = len - (14 + ihl + 8);
    if (plen > PAYLOAD_MAX)
        plen = PAYLOAD_MAX;
    fprintf(out, " udp %u %u ", be16(l4), be16(l4 + 2));
    for (i = 0; i < plen; i++) {
        uint8_t ch = l4[8 + i];

        fputc(ch >= 0x20 && ch < 0x7f ? ch : '.', out);
    }
}

/* One frame from the socket: 1 written, 0 none waiting, -1 error. */
static int read_frame(struct cap *c)
{
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct sockaddr_ll from;
    struct iovec iov = { .iov_base = c->buf, .iov_len = sizeof(c->buf) };
    struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from),
                          .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm;
    const struct timespec *kts = NULL;
    ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    bool out;

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        fprintf(stderr, "wirecap: recvmsg: %s\n", strerror(errno));
        return -1;
    }
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
            kts = (const struct timespec *)(void *)CMSG_DATA(cm);
    if (!kts) {
        fprintf(stderr, "wirecap: a frame came without its kernel "
                "timestamp\n");
        return -1;
    }
    out = from.sll_pkttype == PACKET_OUTGOING;
    if (out)
        c->frames_out++;
    else
        c->frames_in++;
    fprintf(c->out, "%s %" PRId64 " %zd", out ? "out" : "in",
            ts_ns(kts) - c->offset_ns, n);
    print_ipv4(c->out, c->buf,
               (size_t)n < sizeof(c->buf) ? (size_t)n : sizeof(c->buf));
    fputc('\n', c->out);
    return 1;
}

static int stop_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL))
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC);
}

static int capture(struct cap *c, int sigfd)
{
    struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN },
                           { .fd = sigfd, .events = POLLIN } };
    int rc;

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "wirecap: poll: %s\n", strerror(errno));
            return -1;
        }
        if (p[1].revents)
            break;
        while ((rc = read_frame(c)) > 0)
            ;
        if (rc < 0)
            return -1;
    }
    while ((rc = read_frame(c)) > 0)      /* what is already queued */
        ;
    return rc;
}

/* 0 when the capture is complete and its times are right. */
static int verdict(struct cap *c)
{
    struct tpacket_stats st;
    socklen_t sl = sizeof(st);
    int64_t drift = clock_offset() - c->offset_ns;

    if (getsockopt(c->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl)) {
        fprintf(stderr, "wirecap: PACKET_STATISTICS: %s\n", strerror(errno));
        return -1;
    }
    fprintf(stderr, "wirecap: %" PRIu64 " frames in, %" PRIu64 " out, %u "
            "dropped by the kernel; realtime-monotonic offset moved %"
            PRId64 " ns\n", c->frames_in, c->frames_out, st.tp_drops, drift);
    if (st.tp_drops) {
        fprintf(stderr, "wirecap: the capture is incomplete (%u frames "
                "dropped)\n", st.tp_drops);
        return -1;
    }
    if (drift > OFFSET_DRIFT_MAX_NS || drift < -OFFSET_DRIFT_MAX_NS) {
        fprintf(stderr, "wirecap: the realtime clock was stepped during the "
                "capture: frame times are wrong\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cap c = { .fd = -1 };
    int sigfd, rc;

    if (argc != 3) {
        fprintf(stderr, "usage: wirecap IFNAME OUTFILE\n");
        return 2;
    }
    sigfd = stop_signals();
    if (sigfd < 0) {
        fprintf(stderr, "wirecap: signalfd: %s\n", strerror(errno));
        return 1;
    }
    c.out = fopen(argv[2], "w");
    if (!c.out) {
        fprintf(stderr, "wirecap: cannot write '%s': %s\n", argv[2],
                strerror(errno));
        return 1;
    }
    if (open_socket(&c, argv[1]))
        return 1;
    c.offset_ns = clock_offset();
    printf("wirecap: capturing on %s\n", argv[1]);
    fflush(stdout);
    rc = capture(&c, sigfd);
    if (fclose(c.out)) {
        fprintf(stderr, "wirecap: writing '%s': %s\n", argv[2],
                strerror(errno));
        rc = -1;
    }
    if (verdict(&c))
        rc = -1;
    close(c.fd);
    close(sigfd);
    return rc ? 1 : 0;
}
