/* SPDX-License-Identifier: MIT */
#include "guest/net/net.h"

#include "guest/lib/rt.h"

#define ETH_ARP 0x0806
#define ETH_IP 0x0800

static struct {
    uint8_t mac[6];
    uint32_t ip, mask, gw;
    uint16_t udp_port;
    udp_handler_fn handler;
    struct net_stats st;
    /* rx has a page of its own: only the VMM writes it (a test checks that
     * such pages reach the dirty log); tx is written by the guest. */
    uint8_t rx[4096] __attribute__((aligned(4096)));
    uint8_t tx[2048] __attribute__((aligned(16)));
} net;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint32_t get32n(const uint8_t *p)   /* keep network order */
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

static uint16_t csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;

    while (len > 1) {
        sum += get16(p);
        p += 2;
        len -= 2;
    }
    if (len)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int send_frame(const void *frame, size_t len)
{
    struct rm_hc_net_io io = { .data = (uint64_t)(uintptr_t)frame,
                               .len = len };

    hc(RM_HC_NET_WRITE, &io);
    if (io.ret == 0)
        net.st.tx_frames++;
    return io.ret;
}

int net_init(uint16_t udp_port, udp_handler_fn handler)
{
    struct rm_hc_net_info ni;

    memset(&ni, 0, sizeof(ni));
    hc(RM_HC_NET_INFO, &ni);
    memcpy(net.mac, ni.mac, 6);
    net.ip = ni.ipv4;
    net.mask = ni.netmask;
    net.gw = ni.gateway;
    net.udp_port = udp_port;
    net.handler = handler;
    return net.ip ? 0 : -1;
}

uint32_t net_ip(void)
{
    return net.ip;
}

const struct net_stats *net_get_stats(void)
{
    return &net.st;
}

static void arp_send(uint16_t op, const uint8_t *tha, uint32_t tpa)
{
    uint8_t *f = net.tx;
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

    memcpy(f, op == 1 || !tha ? bcast : tha, 6);
    memcpy(f + 6, net.mac, 6);
    put16(f + 12, ETH_ARP);
    put16(f + 14, 1);          /* Ethernet */
    put16(f + 16, ETH_IP);
    f[18] = 6;
    f[19] = 4;
    put16(f + 20, op);
    memcpy(f + 22, net.mac, 6);
    memcpy(f + 28, &net.ip, 4);
    if (tha)
        memcpy(f + 32, tha, 6);
    else
        memset(f + 32, 0, 6);
    memcpy(f + 38, &tpa, 4);
    memset(f + 42, 0, 18);
    send_frame(f, 60);
}

void net_announce(void)
{
    /* Gratuitous ARP: a request for our own address, and a reply. */
    arp_send(1, NULL, net.ip);
    arp_send(2, NULL, net.ip);
}

static void handle_arp(const uint8_t *f, size_t len)
{
    uint32_t tpa;

    if (len < 42 || get16(f + 14) != 1 || get16(f + 16) != ETH_IP ||
        f[18] != 6 || f[19] != 4)
        return;
    tpa = get32n(f + 38);
    if (get16(f + 20) == 1 && tpa == net.ip) {
        arp_send(2, f + 22, get32n(f + 28));
        net.st.arp_replies++;
    }
}

static void handle_icmp(const uint8_t *f, size_t iphl, size_t iplen)
{
    const uint8_t *icmp = f + 14 + iphl;
    size_t ilen = iplen - iphl;
    uint8_t *o = net.tx;

    if (ilen < 8 || icmp[0] != 8 || csum(icmp, ilen) != 0)
        return;
    if (14 + iplen > sizeof(net.tx))
        return;
    memcpy(o, f + 6, 6);
    memcpy(o + 6, net.mac, 6);
    put16(o + 12, ETH_IP);
    memcpy(o + 14, f + 14, iplen);
    /* swap addresses, reset TTL and checksum */
    memcpy(o + 14 + 12, f + 14 + 16, 4);
    memcpy(o + 14 + 16, f + 14 + 12, 4);
    o[14 + 8] = 64;
    put16(o + 14 + 10, 0);
    put16(o + 14 + 10, csum(o + 14, iphl));
    o[14 + iphl] = 0;  /* echo reply */
    put16(o + 14 + iphl + 2, 0);
    put16(o + 14 + iphl + 2, csum(o + 14 + iphl, ilen));
    send_frame(o, 14 + iplen < 60 ? 60 : 14 + iplen);
    net.st.icmp_replies++;
}

static void handle_ip(const uint8_t *f, size_t len)
{
    const uint8_t *ip = f + 14;
    size_t ihl, tot;
    uint32_t dst;

    if (len < 14 + 20 || (ip[0] >> 4) != 4)
        return;
    ihl = (size_t)(ip[0] & 0xf) * 4;
    tot = get16(ip + 2);
    if (ihl < 20 || tot < ihl || 14 + tot > len || csum(ip, ihl) != 0)
        return;
    if (get16(ip + 6) & 0x3fff)
        return; /* fragments are not supported */
    dst = get32n(ip + 16);
    if (dst != net.ip)
        return;
    if (ip[9] == 1) {
        handle_icmp(f, ihl, tot);
    } else if (ip[9] == 17 && tot >= ihl + 8) {
        const uint8_t *u = ip + ihl;
        size_t ulen = get16(u + 4);
        struct udp_peer from;

        if (ulen < 8 || ulen > tot - ihl || get16(u + 2) != net.udp_port)
            return;
        memcpy(from.mac, f + 6, 6);
        from.ip = get32n(ip + 12);
        from.port = get16(u);
        net.st.udp_rx++;
        if (net.handler)
            net.handler(&from, u + 8, ulen - 8);
    }
}

int net_poll(void)
{
    int n = 0;

    for (;;) {
        struct rm_hc_net_io io = { .data = (uint64_t)(uintptr_t)net.rx,
                                   .len = sizeof(net.rx) };

        hc(RM_HC_NET_READ, &io);
        if (io.ret != 0 || io.len < 14 || io.len > sizeof(net.rx))
            break;
        n++;
        net.st.rx_frames++;
        switch (get16(net.rx + 12)) {
        case ETH_ARP:
            handle_arp(net.rx, io.len);
            break;
        case ETH_IP:
            handle_ip(net.rx, io.len);
            break;
        default:
            net.st.rx_dropped++;
            break;
        }
    }
    return n;
}

int net_udp_send(const struct udp_peer *to, uint16_t src_port,
                 const void *data, size_t len)
{
    uint8_t *f = net.tx, *ip = f + 14, *u = ip + 20;
    size_t tot = 20 + 8 + len;
    static uint16_t ident;

    if (len > NET_MTU - 28)
        return -1;
    memcpy(f, to->mac, 6);
    memcpy(f + 6, net.mac, 6);
    put16(f + 12, ETH_IP);
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)tot);
    put16(ip + 4, ident++);
    put16(ip + 6, 0x4000); /* DF */
    ip[8] = 64;
    ip[9] = 17;
    put16(ip + 10, 0);
    memcpy(ip + 12, &net.ip, 4);
    memcpy(ip + 16, &to->ip, 4);
    put16(ip + 10, csum(ip, 20));
    put16(u, src_port);
    put16(u + 2, to->port);
    put16(u + 4, (uint16_t)(8 + len));
    put16(u + 6, 0); /* no UDP checksum (optional over IPv4) */
    memcpy(u + 8, data, len);
    return send_frame(f, 14 + tot < 60 ? 60 : 14 + tot);
}
