/* SPDX-License-Identifier: MIT */
/*
 * The guest's network stack: Ethernet, ARP, IPv4 (no fragments), ICMP echo
 * and UDP, over the RM_HC_NET_* hypercalls.  Single-threaded: only the
 * network vCPU calls it.
 */
#ifndef REMUS_GUEST_NET_H
#define REMUS_GUEST_NET_H

#include <stddef.h>
#include <stdint.h>

#define NET_MTU 1500
#define NET_FRAME_MAX 1514

struct udp_peer {
    uint8_t mac[6];
    uint32_t ip;       /* network order */
    uint16_t port;     /* host order */
};

/* Called for each UDP datagram to the bound port. */
typedef void (*udp_handler_fn)(const struct udp_peer *from,
                               const uint8_t *data, size_t len);

struct net_stats {
    uint64_t rx_frames, tx_frames, rx_dropped, arp_replies, icmp_replies,
        udp_rx;
};

int net_init(uint16_t udp_port, udp_handler_fn handler);
/* Receive and process every pending frame; returns how many. */
int net_poll(void);
int net_udp_send(const struct udp_peer *to, uint16_t src_port,
                 const void *data, size_t len);
void net_announce(void);   /* gratuitous ARP */
const struct net_stats *net_get_stats(void);
uint32_t net_ip(void);

#endif
