/* SPDX-License-Identifier: MIT */
/* xl's save-file header and libxl's stream v2 (see stream_wrap.h). */
#include "common/stream_wrap.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define XL_MAGIC "Xen saved domain, xl format\n \0 \r"
#define XL_BYTEORDER 0x01020304u
#define XL_MAX_OPTIONAL (16u << 20)
#define LIBXL_IDENT 0x4c6962786c466d74ull          /* "LibxlFmt" */
#define LIBXL_MAX_RECORD (64u << 20)

static int skip(struct rm_src *src, uint32_t len)
{
    uint8_t buf[4096];

    while (len) {
        uint32_t n = len < sizeof(buf) ? len : (uint32_t)sizeof(buf);
        int rc = rm_src_read_exact(src, buf, n);

        if (rc)
            return rc;
        len -= n;
    }
    return 0;
}

int rm_xl_header_read(struct rm_src *src, struct rm_xl_header *out,
                      struct rm_error *err)
{
    struct {
        char magic[32];
        uint32_t byteorder, mandatory_flags, optional_flags, optional_len;
    } h;
    int rc;

    rc = rm_src_read_exact(src, &h, sizeof(h));
    if (rc)
        return rm_error_set(err, rc, "byte 0: no xl save-file header (%s)",
                            strerror(-rc));
    if (memcmp(h.magic, XL_MAGIC, sizeof(h.magic)))
        return rm_error_set(err, -EBADMSG, "byte 0: not an xl save file "
                            "(bad magic)");
    if (h.byteorder != XL_BYTEORDER)
        return rm_error_set(err, -EBADMSG, "byte 32: xl save file of the "
                            "other byte order (0x%08x)", h.byteorder);
    /* Mandatory flags xl knows: 1 JSON configuration, 2 libxl stream v2. */
    if (h.mandatory_flags & ~3u)
        return rm_error_set(err, -EBADMSG, "byte 36: unknown mandatory xl "
                            "flags 0x%x", h.mandatory_flags & ~3u);
    if (!(h.mandatory_flags & 2u))
        return rm_error_set(err, -EBADMSG, "byte 36: a legacy xl save file "
                            "(no libxl stream v2): not supported");
    if (h.optional_len > XL_MAX_OPTIONAL)
        return rm_error_set(err, -EBADMSG, "byte 44: xl optional data of "
                            "%u bytes (more than %u)", h.optional_len,
                            XL_MAX_OPTIONAL);
    if (skip(src, h.optional_len))
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": the xl "
                            "optional data is cut short", src->offset);
    out->mandatory_flags = h.mandatory_flags;
    out->optional_flags = h.optional_flags;
    out->optional_len = h.optional_len;
    return 0;
}

const char *rm_libxl_rec_name(uint32_t type)
{
    static const char *const names[] = { "END", "LIBXC_CONTEXT",
                                         "EMULATOR_XENSTORE_DATA",
                                         "EMULATOR_CONTEXT", "CHECKPOINT_END",
                                         "CHECKPOINT_STATE" };

    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "UNKNOWN";
}

int rm_libxl_stream_read(struct rm_src *src,
                         const struct rm_libxl_visitor *v,
                         struct rm_error *err)
{
    uint8_t hdr[16];
    uint64_t ident = 0;
    uint32_t version, options;
    unsigned libxc_parts = 0;
    int i, rc;

    rc = rm_src_read_exact(src, hdr, sizeof(hdr));
    if (rc)
        return rm_error_set(err, rc, "byte %" PRIu64 ": no libxl stream "
                            "header", src->offset);
    for (i = 0; i < 8; i++)
        ident = ident << 8 | hdr[i];
    version = (uint32_t)hdr[8] << 24 | hdr[9] << 16 | hdr[10] << 8 | hdr[11];
    options = (uint32_t)hdr[12] << 24 | hdr[13] << 16 | hdr[14] << 8 |
              hdr[15];
    if (ident != LIBXL_IDENT)
        return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": not a libxl "
                            "stream (ident 0x%016" PRIx64 ")",
                            src->offset - 16, ident);
    if (version != 2)
        return rm_error_set(err, -EBADMSG, "libxl stream version %u (2 is "
                            "known)", version);
    if (options & 1)
        return rm_error_set(err, -EBADMSG, "big-endian libxl stream");
    if (v->header)
        v->header(v->opaque, version, options);
    for (;;) {
        uint32_t rh[2];
        uint64_t at = src->offset;
        const char *name;

        rc = rm_src_read_exact(src, rh, sizeof(rh));
        if (rc)
            return rm_error_set(err, rc == -ENODATA ? -ENODATA : rc,
                                "byte %" PRIu64 ": the libxl stream ends "
                                "without its END record", at);
        if (rh[0] > RM_LIBXL_REC_CHECKPOINT_STATE)
            return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": unknown "
                                "libxl record type 0x%x", at, rh[0]);
        name = rm_libxl_rec_name(rh[0]);
        if (rh[1] > LIBXL_MAX_RECORD)
            return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": libxl %s "
                                "record of %u bytes", at, name, rh[1]);
        if (v->record)
            v->record(v->opaque, at, rh[0], rh[1]);
        if (rh[0] == RM_LIBXL_REC_LIBXC_CONTEXT && rh[1] != 0)
            return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": libxl "
                                "LIBXC_CONTEXT with a body", at);
        if (rh[0] == RM_LIBXL_REC_END && rh[1] != 0)
            return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": libxl END "
                                "with a body", at);
        if (skip(src, (rh[1] + 7) & ~7u))
            return rm_error_set(err, -EBADMSG, "byte %" PRIu64 ": the "
                                "libxl %s record is cut short", src->offset,
                                name);
        if (rh[0] == RM_LIBXL_REC_LIBXC_CONTEXT) {
            rc = v->libxc(v->opaque, src, err);
            if (rc)
                return rc;
            libxc_parts++;
        }
        if (rh[0] == RM_LIBXL_REC_END)
            break;
    }
    if (!libxc_parts)
        return rm_error_set(err, -EBADMSG, "the libxl stream has no "
                            "LIBXC_CONTEXT (no domain state)");
    return 0;
}
