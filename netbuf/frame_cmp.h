/* SPDX-License-Identifier: MIT */
/*
 * COLO's frame rules: which flow an Ethernet frame belongs to, and whether
 * two frames (the primary VM's and the replica's) say the same thing.
 *
 * Two VMs that run the same code on the same inputs still differ in what
 * no client acts on: the IPv4 identification, the TTL and the checksums
 * that cover them.  So:
 *   - IPv4 UDP, ICMP and TCP: the Ethernet header, every IPv4 header field
 *     but id, TTL and header checksum, the L4 header but its checksum, and
 *     the payload must be equal (Ethernet padding past the IPv4 total
 *     length is ignored);
 *   - anything else (ARP, IPv6, VLAN-tagged, a malformed IPv4 header): the
 *     whole frame, byte for byte.
 * A frame shorter than an Ethernet header is its own flow and compared
 * whole.
 *
 * Flows: frames are compared in order within a flow and never across
 * flows, so that the two VMs may interleave independent conversations
 * differently.  IPv4 TCP/UDP: (protocol, addresses, ports); ICMP:
 * (protocol, addresses, echo id); IPv4 fragments: (protocol, addresses)
 * with no ports (a fragment after the first carries none); other frames:
 * their EtherType.  TCP is compared segment by segment for now; a flow
 * knows its protocol, so a byte-stream rule can replace that later.
 *
 * Pure functions: no allocation, no state, safe on any bytes.
 */
#ifndef REMUS_NETBUF_FRAME_CMP_H
#define REMUS_NETBUF_FRAME_CMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RM_ETH_P_IPV4 0x0800

struct rm_flow_key {
    uint16_t ethertype;   /* 0: a runt frame (shorter than 14 bytes) */
    uint8_t proto;        /* IPv4 protocol; 0 for non-IPv4 */
    uint8_t pad;          /* always 0 (keys are compared with memcmp) */
    uint32_t saddr, daddr;            /* IPv4, network order; else 0 */
    uint16_t sport, dport;            /* TCP/UDP ports, ICMP echo id in
                                       * sport; network order; else 0 */
};

/* The flow @frame belongs to (every field of @key written). */
void rm_frame_flow(const uint8_t *frame, size_t len, struct rm_flow_key *key);

/*
 * Do @a and @b say the same thing under the rules above?  On a difference,
 * *@where (if not NULL) is the offset of the first differing byte that
 * counts (or the shorter length when the lengths that count differ).
 */
bool rm_frame_same(const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen, size_t *where);

/* "10.0.0.2:5000 > 10.0.0.1:40000 udp", "arp", ... into @buf. */
void rm_flow_describe(const struct rm_flow_key *key, char *buf, size_t size);

#endif
