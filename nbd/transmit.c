/* SPDX-License-Identifier: MIT */
/*
 * The NBD transmission phase: requests one after another, each answered
 * with a simple reply before the next is read, so that the image (and an
 * observer) sees the changes in the order the client sent them.  A bad
 * request gets an error reply when the stream can go on (a range beyond
 * the export, an unknown command, a write to a read-only export, a read
 * too long); the connection ends when it cannot (a wrong magic, a write
 * longer than we take: its data cannot be skipped safely).
 */
#define RM_LOG_PREFIX "nbd"
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "nbd/nbd_conn.h"
#include "nbd/nbd_wire.h"

static int simple_reply(struct nbd_conn *c, uint64_t cookie, uint32_t error,
                        const void *data, uint32_t len)
{
    uint8_t h[NBD_SIMPLE_REPLY_BYTES];
    int rc;

    nbd_put32(h, NBD_MAGIC_SIMPLE_REPLY);
    nbd_put32(h + 4, error);
    nbd_put64(h + 8, cookie);
    rc = nbd_send(c, h, sizeof(h), "a reply");
    if (!rc && !error && len)
        rc = nbd_send(c, data, len, "a read's data");
    return rc;
}

static const char *cmd_name(uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ: return "READ";
    case NBD_CMD_WRITE: return "WRITE";
    case NBD_CMD_DISC: return "DISC";
    case NBD_CMD_FLUSH: return "FLUSH";
    case NBD_CMD_TRIM: return "TRIM";
    case NBD_CMD_WRITE_ZEROES: return "WRITE_ZEROES";
    default: return "an unknown command";
    }
}

/* Is the request's range within the export?  NBD error or 0. */
static uint32_t check_range(const struct rm_nbd_export *e, uint16_t type,
                            uint64_t off, uint32_t len)
{
    uint64_t size = rm_nbd_export_size(e);

    if (off > size || len > size - off) {
        LOG_INFO("%s of %u bytes at byte %" PRIu64 " is beyond the export's"
                 " %" PRIu64 " bytes", cmd_name(type), len, off, size);
        return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES
                   ? NBD_ENOSPC : NBD_EINVAL;
    }
    return 0;
}

int nbd_transmit(struct rm_nbd_export *e, struct nbd_conn *c,
                 struct rm_nbd_conn_stats *st)
{
    uint8_t req[NBD_REQUEST_BYTES];
    uint8_t *buf = nbd_export_buffer(e);
    bool ro = nbd_export_read_only(e);
    int rc = 0;

    while (!rc) {
        uint16_t flags, type;
        uint64_t cookie, off;
        uint32_t len, nerr = 0;

        rc = nbd_recv(c, req, sizeof(req), true, "a request");
        if (rc == 1) {          /* closed between requests */
            rc = 0;
            break;
        }
        if (rc)
            break;
        if (nbd_get32(req) != NBD_MAGIC_REQUEST) {
            rc = rm_error_set(c->err, -EPROTO, "a request without its magic "
                              "(0x%08x)", nbd_get32(req));
            break;
        }
        flags = nbd_get16(req + 4);
        type = nbd_get16(req + 6);
        cookie = nbd_get64(req + 8);
        off = nbd_get64(req + 16);
        len = nbd_get32(req + 24);
        st->requests++;
        if (type == NBD_CMD_DISC)
            break;
        if (type == NBD_CMD_WRITE && len > RM_NBD_MAX_REQUEST) {
            rc = rm_error_set(c->err, -EPROTO, "a WRITE of %u bytes: at most "
                              "%u (its data cannot be skipped: the "
                              "connection ends)", len, RM_NBD_MAX_REQUEST);
            break;
        }
        if (type == NBD_CMD_WRITE &&
            (rc = nbd_recv(c, buf, len, false, "a WRITE's data")))
            break;
        nbd_export_hold(e, c->stop);
        switch (type) {
        case NBD_CMD_READ:
            if (len > RM_NBD_MAX_REQUEST)
                nerr = NBD_EINVAL;
            else if (!(nerr = check_range(e, type, off, len)))
                nerr = nbd_export_read(e, off, buf, len);
            if (!nerr) {
                st->reads++;
                st->read_bytes += len;
            }
            break;
        case NBD_CMD_WRITE:
            if (ro)
                nerr = NBD_EPERM;
            else if (!(nerr = check_range(e, type, off, len)))
                nerr = nbd_export_write(e, off, buf, len,
                                        flags & NBD_CMD_FLAG_FUA);
            if (!nerr) {
                st->writes++;
                st->write_bytes += len;
            }
            break;
        case NBD_CMD_FLUSH:
            if (!(nerr = nbd_export_flush(e)))
                st->flushes++;
            break;
        case NBD_CMD_TRIM:
        case NBD_CMD_WRITE_ZEROES:
            if (ro)
                nerr = NBD_EPERM;
            else if (!(nerr = check_range(e, type, off, len)))
                nerr = nbd_export_zero(e, off, len,
                                       type == NBD_CMD_WRITE_ZEROES &&
                                       (flags & NBD_CMD_FLAG_NO_HOLE),
                                       flags & NBD_CMD_FLAG_FUA);
            if (!nerr && type == NBD_CMD_TRIM)
                st->trims++;
            else if (!nerr)
                st->zeroes++;
            break;
        default:
            LOG_INFO("command %u is unknown: EINVAL", type);
            nerr = NBD_EINVAL;
            break;
        }
        if (nerr)
            st->errors++;
        rc = simple_reply(c, cookie, nerr, buf,
                          type == NBD_CMD_READ ? len : 0);
    }
    return rc;
}
