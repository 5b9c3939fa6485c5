/* SPDX-License-Identifier: MIT */
/* libFuzzer: xl's save-file header and libxl's stream v2 around a libxc
 * stream (common/stream_wrap.h), on any bytes. */
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/stream.h"
#include "common/stream_wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int libxc(void *opaque, struct rm_src *src, struct rm_error *err)
{
    struct rm_stream_reader rd;
    struct rm_record rec;
    int i, rc;

    (void)opaque;
    rm_stream_reader_init(&rd, src, err);
    rd.max_length = 1u << 20;
    rc = rm_stream_read_headers(&rd);
    for (i = 0; !rc && i < 64; i++) {
        rc = rm_stream_read_record(&rd, &rec);
        if (!rc && rec.type == RM_REC_END) {
            rm_record_free(&rec);
            return 0;
        }
        rm_record_free(&rec);
    }
    return rc ? rc : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_libxl_visitor v = { NULL, NULL, libxc, NULL };
    struct rm_xl_header h;
    struct rm_error err = { 0 };
    struct rm_src src;

    rm_log_init(RM_LOG_ERROR, NULL);
    /* The first byte chooses: an xl save file, or a bare libxl stream. */
    if (!size)
        return 0;
    rm_src_init_mem(&src, data + 1, size - 1);
    if ((data[0] & 1) && rm_xl_header_read(&src, &h, &err))
        return 0;
    rm_libxl_stream_read(&src, &v, &err);
    return 0;
}
