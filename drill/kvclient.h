/* SPDX-License-Identifier: MIT */
/*
 * A client of the guest's key-value service (guest/PROTOCOL.md) over UDP:
 * one outstanding request, retransmitted with the same request id until a
 * reply with that id arrives (the guest answers a retransmission from its
 * cache, so a request is applied at most once).
 */
#ifndef REMUS_DRILL_KVCLIENT_H
#define REMUS_DRILL_KVCLIENT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct kv_client {
    int fd;
    struct sockaddr_in dst;
    uint32_t id;
    uint64_t next_req;
};

struct kv_reply {
    uint64_t req;
    bool ok;
    uint64_t value;     /* OK replies with a number */
    uint64_t seq;
    char text[160];
};

int kv_open(struct kv_client *c, uint32_t id, const char *ip, uint16_t port);
void kv_close(struct kv_client *c);
/*
 * Send "@cmd" as a new request; wait @try_ms per try, retransmitting, up
 * to @deadline_ns (monotonic; 0: one try).  @stop may end it early.
 * 0 with @r filled, -ETIMEDOUT, -EINTR (stopped) or -errno.
 */
int kv_call(struct kv_client *c, const char *cmd, struct kv_reply *r,
            int try_ms, uint64_t deadline_ns, volatile int *stop);

#endif
