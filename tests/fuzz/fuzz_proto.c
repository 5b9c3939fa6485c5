/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the control protocol, on any bytes.
 *   1. rm_ctl_decode() of the input as one protobuf message; what it
 *      accepts must encode again and decode to the same message.
 *   2. The input as a byte stream on a socket: rm_chan_recv() frames,
 *      bounds and decodes message after message until it refuses or the
 *      stream ends -- never a crash or a hang.
 * Seeds (tests/fuzz/corpus/fuzz_proto): what rm_ctl_encode() produces for
 * each kind -- hello (also with disks), hello reply, ack, heartbeat, stop,
 * failover, stats, disk hashes, COLO's frame, checkpoint, dirty pfns and
 * ask
 * -- as bare messages (.msg) and length-prefixed frames (.frame), and a
 * session of several frames back to back (session.stream).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct rm_ctl_msg *m)
{
    struct rm_error err = { 0 };
    struct rm_ctl_msg again;
    uint8_t *frame = NULL;
    size_t len = 0;

    if (rm_ctl_encode(m, &frame, &len))
        return;             /* e.g. a kind encode refuses: fine */
    memset(&again, 0, sizeof(again));
    if (rm_ctl_decode(frame + 4, len - 4, &again, &err) != 0)
        abort();            /* we refuse what we ourselves sent */
    if (again.kind != m->kind)
        abort();
    if (m->kind == RM_CTL_ACK &&
        memcmp(&again.u.ack, &m->u.ack, sizeof(m->u.ack)))
        abort();
    if (m->kind == RM_CTL_HELLO) {
        uint32_t i;

        if (again.u.hello.nr_disks != m->u.hello.nr_disks)
            abort();
        for (i = 0; i < m->u.hello.nr_disks; i++)
            if (again.u.hello.disks[i].id != m->u.hello.disks[i].id ||
                again.u.hello.disks[i].size != m->u.hello.disks[i].size ||
                again.u.hello.disks[i].unreplicated !=
                m->u.hello.disks[i].unreplicated)
                abort();
    }
    if (m->kind == RM_CTL_DISK_HASHES &&
        (again.u.disk_hashes.count != m->u.disk_hashes.count ||
         again.u.disk_hashes.first != m->u.disk_hashes.first ||
         again.u.disk_hashes.total != m->u.disk_hashes.total ||
         memcmp(again.u.disk_hashes.hashes, m->u.disk_hashes.hashes,
                (size_t)m->u.disk_hashes.count * RM_DISK_HASH_BYTES)))
        abort();
    if ((m->kind == RM_CTL_COLO_INPUT || m->kind == RM_CTL_COLO_OUTPUT) &&
        (again.u.colo_frame.seq != m->u.colo_frame.seq ||
         again.u.colo_frame.len != m->u.colo_frame.len ||
         memcmp(again.u.colo_frame.frame, m->u.colo_frame.frame,
                m->u.colo_frame.len)))
        abort();
    if (m->kind == RM_CTL_COLO_CHECKPOINT &&
        memcmp(&again.u.colo_checkpoint, &m->u.colo_checkpoint,
               sizeof(m->u.colo_checkpoint)))
        abort();
    if (m->kind == RM_CTL_COLO_ASK &&
        (again.u.colo_ask.cause != m->u.colo_ask.cause ||
         strcmp(again.u.colo_ask.why, m->u.colo_ask.why)))
        abort();
    if (m->kind == RM_CTL_COLO_DIRTY &&
        (again.u.colo_dirty.count != m->u.colo_dirty.count ||
         again.u.colo_dirty.epoch != m->u.colo_dirty.epoch ||
         again.u.colo_dirty.output_seq != m->u.colo_dirty.output_seq ||
         again.u.colo_dirty.last != m->u.colo_dirty.last ||
         memcmp(again.u.colo_dirty.pfns, m->u.colo_dirty.pfns,
                (size_t)m->u.colo_dirty.count * 8)))
        abort();
    free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_error err = { 0 };
    struct rm_ctl_msg msg;
    struct rm_chan ch;
    int sv[2], i;

    rm_log_init(RM_LOG_ERROR, NULL);
    memset(&msg, 0, sizeof(msg));
    if (rm_ctl_decode(data, size, &msg, &err) == 0)
        round_trip(&msg);

    if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 0;
    {
        size_t off = 0;

        while (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);

            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    close(sv[1]);           /* the peer is gone after these bytes */
    rm_chan_init(&ch, sv[0]);
    for (i = 0; i < 64; i++) {
        memset(&msg, 0, sizeof(msg));
        if (rm_chan_recv(&ch, 0, &msg))
            break;
        round_trip(&msg);
    }
    rm_chan_destroy(&ch);
    close(sv[0]);
    return 0;
}
