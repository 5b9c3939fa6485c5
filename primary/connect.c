/* SPDX-License-Identifier: MIT */
/* The primary's connections to its secondary (connect.h). */
#define RM_LOG_PREFIX "primary"
#include "primary/connect.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/quorum.h"
#include "common/io.h"
#include "common/key_resolve.h"
#include "common/log.h"
#include "proto/disks.h"

void rm_peer_conn_init(struct rm_peer_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->ctl_fd = c->stream_fd = -1;
}

/*
 * Put the sealed chunk layer on the stream connection and confirm the
 * connection with the session token as its first sealed chunk: the
 * secondary accepts the stream connection only when that chunk opens
 * with this session's stream key (a stranger who saw the token in clear
 * cannot take the stream's place).
 */
static int attach_auth_sink(struct rm_peer_conn *c, const uint8_t *token,
                            size_t len, struct rm_error *err)
{
    int rc;

    rm_sink_init_fd(&c->stream_lower, c->stream_fd);
    rc = rm_auth_sink_attach(&c->auth_sink, &c->stream_sink,
                             &c->stream_lower, &c->chan.stream_tx);
    if (rc)
        return rm_error_set(err, rc, "out of memory");
    c->have_auth_sink = true;
    /* The handshake's copy of the sending state is no longer needed. */
    rm_auth_wipe(&c->chan.stream_tx, sizeof(c->chan.stream_tx));
    rc = rm_sink_write(&c->stream_sink, token, len);
    if (rc)
        return rm_error_set(err, rc, "sending the sealed session token: "
                            "%s", strerror(-rc));
    /* Stream byte offsets count from the checkpoint stream's start. */
    c->stream_sink.offset = 0;
    return 0;
}

/*
 * The initial sync of the disks: log the guest's writes from now on, take
 * the secondary's chunk hashes and queue the chunks that differ (sent
 * before the first pass).  The secondary hashes its images first: allow it
 * RM_DISK_HASH_WAIT_MS plus one second per GiB.
 */
#define RM_DISK_HASH_WAIT_MS 60000u
static int sync_disks(struct rm_peer_conn *c, const struct rm_protect_cfg *cfg,
                      const struct rm_hello *mine, struct rm_error *err)
{
    uint64_t bytes = 0, differ = 0, chunks = 0;
    uint32_t i;
    int rc;

    for (i = 0; i < mine->nr_disks; i++)
        bytes += mine->disks[i].size;
    rm_disklog_start(cfg->disks);
    rc = rm_disk_hashes_recv(&c->chan, cfg->disks, mine,
                             (int)(RM_DISK_HASH_WAIT_MS + (bytes >> 20)),
                             &differ, &chunks, err);
    if (rc)
        return rc;
    LOG_INFO("disks: %" PRIu64 " of %" PRIu64 " chunks differ from the "
             "secondary's images and are sent first", differ, chunks);
    return 0;
}

/* The hello's disks: those replicated, and those -F -d leaves behind. */
static void hello_disks(const struct rm_protect_cfg *cfg,
                        struct rm_hello *mine)
{
    uint32_t i, n = 0;

    for (i = 0; cfg->disks && i < rm_disklog_nr_disks(cfg->disks) &&
         n < RM_DISK_MAX; i++, n++)
        rm_disklog_disk(cfg->disks, i, &mine->disks[n].id,
                        &mine->disks[n].size);
    for (i = 0; i < cfg->nr_unreplicated && n < RM_DISK_MAX; i++, n++) {
        mine->disks[n].id = cfg->unreplicated[i].id;
        mine->disks[n].size = cfg->unreplicated[i].size;
        mine->disks[n].unreplicated = true;
    }
    mine->nr_disks = n;
}

int rm_peer_connect(struct rm_peer_conn *c, const struct rm_protect_cfg *cfg,
                    struct rm_error *err)
{
    struct rm_hello mine, peer;
    int rc;

    /* The secondary may still be starting: retry a refused connection. */
    {
        uint64_t until = rm_now_ns() +
                         (uint64_t)cfg->connect_timeout_ms * 1000000;

        for (;;) {
            struct rm_error e = { 0 };

            c->ctl_fd = rm_tcp_connect(&cfg->peer,
                                       (int)cfg->connect_timeout_ms, &e);
            if (c->ctl_fd >= 0)
                break;
            if (c->ctl_fd != -ECONNREFUSED || rm_now_ns() >= until) {
                *err = e;
                return c->ctl_fd;
            }
            rm_sleep_ms(50);
        }
    }
    rm_chan_init(&c->chan, c->ctl_fd);
    c->have_chan = true;
    rc = rm_chan_set_key(&c->chan, cfg->key);
    if (rc)
        return rm_error_set(err, rc, "%s", rm_error_str(&c->chan.err));

    memset(&mine, 0, sizeof(mine));
    mine.role = RM_ROLE_PRIMARY;
    snprintf(mine.backend, sizeof(mine.backend), "%s", cfg->backend_name);
    snprintf(mine.name, sizeof(mine.name), "%s", cfg->name);
    mine.guest_bytes = cfg->guest_bytes;
    mine.nr_vcpus = cfg->nr_vcpus;
    mine.caps = cfg->compress ? RM_CAP_COMPRESSION : 0;
    if (cfg->colo) {
        mine.caps |= RM_CAP_COLO;
        mine.required_caps |= RM_CAP_COLO;
    }
    mine.interval_ms = cfg->interval_ms;
    mine.hb_interval_ms = cfg->hb_interval_ms;
    mine.hb_timeout_ms = cfg->hb_timeout_ms;
    mine.quorum = cfg->quorum != NULL;
    if (cfg->quorum) {
        mine.has_cpg = true;
        rm_quorum_self(cfg->quorum, &mine.cpg_node, &mine.cpg_pid);
    }
    hello_disks(cfg, &mine);
    rc = rm_chan_handshake_client(&c->chan, &mine, &peer,
                                  (int)cfg->connect_timeout_ms);
    if (rc)
        return rm_error_set(err, rc, "handshake with %s:%u refused: %s",
                            cfg->peer.host, cfg->peer.port,
                            rm_error_str(&c->chan.err));
    c->compress = (peer.caps & RM_CAP_COMPRESSION) != 0;
    c->peer_buffer = peer.buffer_bytes;
    if (cfg->quorum)    /* the handshake checked that the reply names it */
        rm_quorum_bind_peer(cfg->quorum, peer.cpg_node, peer.cpg_pid);

    /* The stream connection carries the session token from the hello. */
    c->stream_fd = rm_tcp_connect(&cfg->peer, (int)cfg->connect_timeout_ms,
                                  err);
    if (c->stream_fd < 0)
        return c->stream_fd;
    rc = rm_write_all(c->stream_fd, peer.session, sizeof(peer.session));
    if (rc)
        return rm_error_set(err, rc, "sending the stream session token");
    /* Every write to the peer has a deadline: hb_timeout_ms without
     * progress (a secondary that stopped reading) fails it. */
    rc = rm_fd_set_send_timeout(c->stream_fd, cfg->hb_timeout_ms);
    if (!rc)
        rc = rm_fd_set_send_timeout(c->ctl_fd, cfg->hb_timeout_ms);
    if (rc)
        return rm_error_set(err, rc, "setting the send deadline: %s",
                            strerror(-rc));
    rm_sink_init_fd(&c->stream_sink, c->stream_fd);
    if (cfg->key) {
        rc = attach_auth_sink(c, peer.session, sizeof(peer.session), err);
        if (rc)
            return rc;
    }
    if (cfg->disks) {
        rc = sync_disks(c, cfg, &mine, err);
        if (rc)
            return rc;
    }
    if (!cfg->key) {
        char peer_addr[96];

        snprintf(peer_addr, sizeof(peer_addr), "the secondary at %s:%u",
                 cfg->peer.host, cfg->peer.port);
        rm_key_warn_insecure("this protection session", peer_addr);
    }
    LOG_INFO("protecting '%s' to %s:%u: interval %u ms, compression %s, "
             "heartbeat %u/%u ms (the secondary's %u/%u ms), its checkpoint "
             "buffer %" PRIu64 " MiB%s", cfg->name, cfg->peer.host,
             cfg->peer.port, cfg->interval_ms, c->compress ? "on" : "off",
             cfg->hb_interval_ms, cfg->hb_timeout_ms, peer.hb_interval_ms,
             peer.hb_timeout_ms, peer.buffer_bytes >> 20,
             cfg->key ? ", authenticated and encrypted (pre-shared key)"
                      : "");
    return 0;
}

void rm_peer_close(struct rm_peer_conn *c)
{
    if (c->have_auth_sink)
        rm_auth_sink_free(&c->auth_sink);
    c->have_auth_sink = false;
    if (c->have_chan)
        rm_chan_destroy(&c->chan);
    c->have_chan = false;
    if (c->stream_fd >= 0)
        close(c->stream_fd);
    if (c->ctl_fd >= 0)
        close(c->ctl_fd);
    c->stream_fd = c->ctl_fd = -1;
}
