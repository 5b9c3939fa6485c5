/* SPDX-License-Identifier: MIT */
/*
 * The NBD negotiation, fixed newstyle: the greeting, the client's flags,
 * then its options until one starts the transmission (EXPORT_NAME, GO) or
 * ends the connection (ABORT).  INFO and LIST are answered; every other
 * option (STARTTLS, STRUCTURED_REPLY, META_CONTEXT, ...) gets
 * NBD_REP_ERR_UNSUP, so that a client falls back to simple replies.
 */
#define RM_LOG_PREFIX "nbd"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "nbd/nbd_conn.h"
#include "nbd/nbd_wire.h"

static uint16_t transmission_flags(const struct rm_nbd_export *e)
{
    uint16_t f = NBD_TFLAG_HAS_FLAGS | NBD_TFLAG_SEND_FLUSH |
                 NBD_TFLAG_SEND_FUA;

    if (nbd_export_read_only(e))
        f |= NBD_TFLAG_READ_ONLY;
    else
        f |= NBD_TFLAG_SEND_TRIM | NBD_TFLAG_SEND_WRITE_ZEROES;
    return f;
}

static int reply(struct nbd_conn *c, uint32_t opt, uint32_t type,
                 const void *data, uint32_t len)
{
    uint8_t h[20];
    int rc;

    nbd_put64(h, NBD_MAGIC_REPLY);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, type);
    nbd_put32(h + 16, len);
    rc = nbd_send(c, h, sizeof(h), "an option reply");
    if (!rc && len)
        rc = nbd_send(c, data, len, "an option reply's data");
    return rc;
}

/* The export's name matches (a client may ask for "" too). */
static bool name_ok(const struct rm_nbd_export *e, const char *name)
{
    return !name[0] || !strcmp(name, nbd_export_name(e));
}

/* INFO and GO: name length, name, count of info requests, requests.
 * 0 with *go set for a GO that starts the transmission. */
static int info_or_go(const struct rm_nbd_export *e, struct nbd_conn *c,
                      uint32_t opt, const uint8_t *d, uint32_t len, bool *go)
{
    uint8_t info[12];
    uint32_t nlen, nreq, i;
    char name[NBD_OPT_MAX_LEN + 1];
    int rc;

    if (len < 6 || (nlen = nbd_get32(d)) > len - 6 ||
        (nreq = nbd_get16(d + 4 + nlen)) * 2u != len - 6 - nlen)
        return reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
    memcpy(name, d + 4, nlen);
    name[nlen] = '\0';
    if (strlen(name) != nlen || !name_ok(e, name)) {
        LOG_INFO("a client asked for the export '%s': this server has only "
                 "'%s'", name, nbd_export_name(e));
        return reply(c, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
    }
    nbd_put16(info, NBD_INFO_EXPORT);
    nbd_put64(info + 2, rm_nbd_export_size(e));
    nbd_put16(info + 10, transmission_flags(e));
    rc = reply(c, opt, NBD_REP_INFO, info, 12);
    for (i = 0; !rc && i < nreq; i++) {
        uint8_t bs[14];

        if (nbd_get16(d + 6 + nlen + 2 * i) != NBD_INFO_BLOCK_SIZE)
            continue;
        nbd_put16(bs, NBD_INFO_BLOCK_SIZE);
        nbd_put32(bs + 2, RM_NBD_BLOCK);          /* minimum */
        nbd_put32(bs + 6, 4096);                  /* preferred */
        nbd_put32(bs + 10, RM_NBD_MAX_REQUEST);   /* maximum */
        rc = reply(c, opt, NBD_REP_INFO, bs, 14);
    }
    if (!rc)
        rc = reply(c, opt, NBD_REP_ACK, NULL, 0);
    if (!rc && opt == NBD_OPT_GO)
        *go = true;
    return rc;
}

static int list(const struct rm_nbd_export *e, struct nbd_conn *c)
{
    size_t n = strlen(nbd_export_name(e));
    uint8_t *d = malloc(4 + n);
    int rc;

    if (!d)
        return rm_error_set(c->err, -ENOMEM, "out of memory");
    nbd_put32(d, (uint32_t)n);
    memcpy(d + 4, nbd_export_name(e), n);
    rc = reply(c, NBD_OPT_LIST, NBD_REP_SERVER, d, (uint32_t)(4 + n));
    free(d);
    return rc ? rc : reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* EXPORT_NAME's old-style answer: size, flags, zeros (unless NO_ZEROES). */
static int export_name(const struct rm_nbd_export *e, struct nbd_conn *c,
                       const uint8_t *d, uint32_t len, bool no_zeroes)
{
    uint8_t a[10 + 124];
    char name[NBD_OPT_MAX_LEN + 1];

    memcpy(name, d, len);
    name[len] = '\0';
    if (strlen(name) != len || !name_ok(e, name))
        return rm_error_set(c->err, -ENOENT, "the client asked for the "
                            "export '%s': this server has only '%s'", name,
                            nbd_export_name(e));
    memset(a, 0, sizeof(a));
    nbd_put64(a, rm_nbd_export_size(e));
    nbd_put16(a + 8, transmission_flags(e));
    return nbd_send(c, a, no_zeroes ? 10 : sizeof(a), "the export's size");
}

int nbd_negotiate(struct rm_nbd_export *e, struct nbd_conn *c)
{
    uint8_t greet[18], cflags[4], h[16], *d = NULL;
    bool go = false, no_zeroes;
    int rc;

    nbd_put64(greet, NBD_MAGIC_INIT);
    nbd_put64(greet + 8, NBD_MAGIC_OPTS);
    nbd_put16(greet + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    rc = nbd_send(c, greet, sizeof(greet), "the greeting");
    if (!rc)
        rc = nbd_recv(c, cflags, 4, false, "the client's flags");
    if (rc)
        return rc;
    if (nbd_get32(cflags) & ~(NBD_FLAG_C_FIXED_NEWSTYLE |
                              NBD_FLAG_C_NO_ZEROES))
        return rm_error_set(c->err, -EPROTO, "the client sent unknown "
                            "flags 0x%08x", nbd_get32(cflags));
    no_zeroes = nbd_get32(cflags) & NBD_FLAG_C_NO_ZEROES;
    d = malloc(NBD_OPT_MAX_LEN);
    if (!d)
        return rm_error_set(c->err, -ENOMEM, "out of memory");
    while (!rc && !go) {
        uint32_t opt, len;

        rc = nbd_recv(c, h, 16, false, "an option");
        if (rc)
            break;
        opt = nbd_get32(h + 8);
        len = nbd_get32(h + 12);
        if (nbd_get64(h) != NBD_MAGIC_OPTS) {
            rc = rm_error_set(c->err, -EPROTO, "an option without its magic"
                              " (0x%016" PRIx64 ")", nbd_get64(h));
            break;
        }
        if (len > NBD_OPT_MAX_LEN) {
            rc = rm_error_set(c->err, -EPROTO, "option %u of %u bytes: at "
                              "most %u", opt, len, NBD_OPT_MAX_LEN);
            break;
        }
        if (len && (rc = nbd_recv(c, d, len, false, "an option's data")))
            break;
        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            rc = export_name(e, c, d, len, no_zeroes);
            go = !rc;
            break;
        case NBD_OPT_ABORT:
            reply(c, opt, NBD_REP_ACK, NULL, 0);   /* the client may be gone */
            free(d);
            return 1;
        case NBD_OPT_LIST:
            rc = len ? reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0)
                     : list(e, c);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            rc = info_or_go(e, c, opt, d, len, &go);
            break;
        default:
            rc = reply(c, opt, NBD_REP_ERR_UNSUP, NULL, 0);
            break;
        }
    }
    free(d);
    return rc;
}
