/* SPDX-License-Identifier: MIT */
/* libFuzzer: the stream reader, validator, page-data view, the disk
 * records' walk and record description on any bytes. */
#include <stddef.h>
#include <stdint.h>

#include "common/disklog.h"
#include "common/log.h"
#include "common/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touch every byte the walk hands out (ASan catches a read past it). */
static int touch(void *opaque, const struct rm_disk_writes_hdr *hdr,
                 const struct rm_disk_write_entry *e, const void *d)
{
    volatile uint8_t *sink = opaque;

    (void)hdr;
    if (d && e->length)
        *sink ^= ((const uint8_t *)d)[0] ^
                 ((const uint8_t *)d)[e->length - 1];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_src src;
    struct rm_stream_reader rd;
    struct rm_error err = { 0 };
    struct rm_record rec;
    int i;

    rm_log_init(RM_LOG_ERROR, NULL);
    rm_src_init_mem(&src, data, size);
    rm_stream_reader_init(&rd, &src, &err);
    rd.max_length = 1u << 20;
    if (rm_stream_read_headers(&rd))
        return 0;
    for (i = 0; i < 256; i++) {
        struct rm_page_data_view v;

        if (rm_stream_read_record(&rd, &rec)) {
            rm_record_free(&rec);
            break;
        }
        {
            char what[160];        /* what stream-info prints of it */

            rm_record_describe(&rec, what, sizeof(what));
        }
        if (rec.type == RM_REC_PAGE_DATA &&
            rm_page_data_view(&rec, &v, &err) == 0) {
            volatile uint8_t sink = 0;
            uint32_t k;

            for (k = 0; k < v.nr_data_pages; k++)
                sink ^= v.pages[(size_t)k * RM_PAGE_SIZE + RM_PAGE_SIZE - 1];
            (void)sink;
        }
        if (rec.type == RM_REC_DISK_WRITES) {
            struct rm_disk_writes_hdr h;
            volatile uint8_t sink = 0;

            /* the reader validated it: the walk must agree */
            if (rm_disk_writes_walk(&rec, &h, touch, (void *)&sink, &err))
                __builtin_trap();
        }
        if (rec.type == RM_REC_DISK_INFO) {
            struct rm_disk_info_hdr h;
            struct rm_disk_info_entry e[RM_DISK_MAX];

            if (rm_disk_info_parse(&rec, &h, e, &err))
                __builtin_trap();
        }
        rm_record_free(&rec);
        if (rec.type == RM_REC_END)
            break;
    }
    return 0;
}
