/* SPDX-License-Identifier: MIT */
/*
 * The wrappers Xen's toolstack puts around a libxc stream: xl's save-file
 * header, and libxl's migration stream v2 (Xen's
 * docs/specs/libxl-migration-stream).  Read with every field checked;
 * what is found goes to the caller's callbacks (remus stream-info prints
 * it).  The libxc stream inside is the caller's to read (common/stream.h).
 */
#ifndef REMUS_COMMON_STREAM_WRAP_H
#define REMUS_COMMON_STREAM_WRAP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/io.h"

struct rm_xl_header {
    uint32_t mandatory_flags;     /* 1 JSON configuration, 2 libxl v2 */
    uint32_t optional_flags;
    uint32_t optional_len;        /* skipped: the domain's configuration */
};

/* xl's save-file header and its optional data (skipped).  0 or -errno
 * with the byte offset and the reason in @err. */
int rm_xl_header_read(struct rm_src *src, struct rm_xl_header *h,
                      struct rm_error *err);

enum rm_libxl_rec {
    RM_LIBXL_REC_END = 0,
    RM_LIBXL_REC_LIBXC_CONTEXT = 1,
    RM_LIBXL_REC_EMULATOR_XENSTORE_DATA = 2,
    RM_LIBXL_REC_EMULATOR_CONTEXT = 3,
    RM_LIBXL_REC_CHECKPOINT_END = 4,
    RM_LIBXL_REC_CHECKPOINT_STATE = 5,
};

const char *rm_libxl_rec_name(uint32_t type);

struct rm_libxl_visitor {
    /* Optional: the stream header. */
    void (*header)(void *opaque, uint32_t version, uint32_t options);
    /* Optional: each record's header, at byte @at. */
    void (*record)(void *opaque, uint64_t at, uint32_t type, uint32_t len);
    /* Required: read the libxc stream that follows a LIBXC_CONTEXT record
     * on @src, up to and including its END.  0 or -errno (@err set). */
    int (*libxc)(void *opaque, struct rm_src *src, struct rm_error *err);
    void *opaque;
};

/* A libxl stream v2 on @src up to its END record; at least one
 * LIBXC_CONTEXT.  0 or -errno with the byte offset and the reason. */
int rm_libxl_stream_read(struct rm_src *src,
                         const struct rm_libxl_visitor *v,
                         struct rm_error *err);

#endif
