/* SPDX-License-Identifier: MIT */
/*
 * COLO's frame rules (netbuf/frame_cmp.h): a frame's flow, and whether two
 * frames are the same but for the IPv4 id, TTL and checksums.
 */
#include "netbuf/frame_cmp.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ETH_HLEN 14
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17

/* What the rules need of an IPv4 frame. */
struct ipv4_view {
    bool valid;       /* a whole IPv4 header and total length in the frame */
    size_t ihl;       /* header length in bytes */
    size_t end;       /* ETH_HLEN + total length: past it is padding */
    uint8_t proto;
    bool first_frag;  /* carries the L4 header (offset 0) */
    bool fragment;    /* MF set or offset non-zero */
};

static uint16_t be16_at(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void ipv4_parse(const uint8_t *f, size_t len, struct ipv4_view *v)
{
    size_t total;
    uint16_t frag;

    memset(v, 0, sizeof(*v));
    if (len < ETH_HLEN + 20 || be16_at(f + 12) != RM_ETH_P_IPV4)
        return;
    if (f[ETH_HLEN] >> 4 != 4)
        return;
    v->ihl = (size_t)(f[ETH_HLEN] & 0xf) * 4;
    total = be16_at(f + ETH_HLEN + 2);
    if (v->ihl < 20 || total < v->ihl || ETH_HLEN + total > len)
        return;
    frag = be16_at(f + ETH_HLEN + 6);
    v->fragment = (frag & 0x3fff) != 0;        /* MF or an offset */
    v->first_frag = (frag & 0x1fff) == 0;
    v->proto = f[ETH_HLEN + 9];
    v->end = ETH_HLEN + total;
    v->valid = true;
}

void rm_frame_flow(const uint8_t *frame, size_t len, struct rm_flow_key *key)
{
    struct ipv4_view v;
    const uint8_t *l4;
    size_t l4len;

    memset(key, 0, sizeof(*key));
    if (len < ETH_HLEN)
        return;
    key->ethertype = be16_at(frame + 12);
    ipv4_parse(frame, len, &v);
    if (!v.valid)
        return;
    key->proto = v.proto;
    memcpy(&key->saddr, frame + ETH_HLEN + 12, 4);
    memcpy(&key->daddr, frame + ETH_HLEN + 16, 4);
    if (v.fragment)
        return;
    l4 = frame + ETH_HLEN + v.ihl;
    l4len = v.end - ETH_HLEN - v.ihl;
    if ((v.proto == IP_PROTO_TCP || v.proto == IP_PROTO_UDP) && l4len >= 4) {
        memcpy(&key->sport, l4, 2);
        memcpy(&key->dport, l4 + 2, 2);
    } else if (v.proto == IP_PROTO_ICMP && l4len >= 8 &&
               (l4[0] == 0 || l4[0] == 8)) {       /* echo reply/request */
        memcpy(&key->sport, l4 + 4, 2);
    }
}

/* The offset of the L4 checksum in an IPv4 frame, or 0 if it has none
 * that counts (not the first fragment, or too short to hold it). */
static size_t l4_csum_at(const struct ipv4_view *v)
{
    size_t l4 = ETH_HLEN + v->ihl, l4len = v->end - l4;

    if (!v->first_frag)
        return 0;
    switch (v->proto) {
    case IP_PROTO_UDP:
        return l4len >= 8 ? l4 + 6 : 0;
    case IP_PROTO_TCP:
        return l4len >= 18 ? l4 + 16 : 0;
    case IP_PROTO_ICMP:
        return l4len >= 4 ? l4 + 2 : 0;
    default:
        return 0;
    }
}

/* Compare [from, to) of a and b; false with *where set on a difference. */
static bool range_same(const uint8_t *a, const uint8_t *b, size_t from,
                       size_t to, size_t *where)
{
    size_t i;

    if (from >= to || !memcmp(a + from, b + from, to - from))
        return true;
    for (i = from; i < to && a[i] == b[i]; i++)
        ;
    *where = i;
    return false;
}

bool rm_frame_same(const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen, size_t *where)
{
    struct ipv4_view va, vb;
    /* The ignored bytes, in order: IPv4 id, TTL, header checksum, L4
     * checksum (start, length). */
    size_t skip[4][2] = {
        { ETH_HLEN + 4, 2 }, { ETH_HLEN + 8, 1 }, { ETH_HLEN + 10, 2 },
        { 0, 2 },
    };
    size_t nskip = 3, pos = 0, i, end, dummy;

    if (!where)
        where = &dummy;
    ipv4_parse(a, alen, &va);
    ipv4_parse(b, blen, &vb);
    if (!va.valid || !vb.valid) {
        /* Whole frames, byte for byte. */
        end = alen < blen ? alen : blen;
        if (!range_same(a, b, 0, end, where))
            return false;
        *where = end;
        return alen == blen;
    }
    end = va.end < vb.end ? va.end : vb.end;
    skip[3][0] = l4_csum_at(&va);
    if (skip[3][0] && skip[3][0] + 2 <= end)
        nskip = 4;
    for (i = 0; i < nskip; i++) {
        if (!range_same(a, b, pos, skip[i][0], where))
            return false;
        pos = skip[i][0] + skip[i][1];
    }
    if (!range_same(a, b, pos, end, where))
        return false;
    *where = end;
    return va.end == vb.end;
}

void rm_flow_describe(const struct rm_flow_key *key, char *buf, size_t size)
{
    char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
    const char *p;

    if (!key->ethertype) {
        snprintf(buf, size, "runt frames");
        return;
    }
    if (key->ethertype != RM_ETH_P_IPV4 || (!key->proto && !key->saddr)) {
        p = key->ethertype == 0x0806 ? " (ARP)" :
            key->ethertype == 0x86dd ? " (IPv6)" :
            key->ethertype == RM_ETH_P_IPV4 ? " (IPv4, malformed)" : "";
        snprintf(buf, size, "EtherType 0x%04x%s", key->ethertype, p);
        return;
    }
    inet_ntop(AF_INET, &key->saddr, s, sizeof(s));
    inet_ntop(AF_INET, &key->daddr, d, sizeof(d));
    switch (key->proto) {
    case IP_PROTO_TCP:
    case IP_PROTO_UDP:
        snprintf(buf, size, "%s %s:%u > %s:%u",
                 key->proto == IP_PROTO_TCP ? "tcp" : "udp", s,
                 ntohs(key->sport), d, ntohs(key->dport));
        break;
    case IP_PROTO_ICMP:
        snprintf(buf, size, "icmp %s > %s id %u", s, d, ntohs(key->sport));
        break;
    default:
        snprintf(buf, size, "ipv4 protocol %u %s > %s", key->proto, s, d);
        break;
    }
}
