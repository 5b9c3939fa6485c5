/* SPDX-License-Identifier: MIT */
/*
 * remus stream-info [--format libxc|libxl|xl] FILE|-: validate a
 * checkpoint stream and print its headers and records.  Exit 0 only for a
 * valid, complete stream (END seen, nothing after it); otherwise 1 with the
 * byte offset and the reason on stderr.  Reads with bounded memory (one
 * record at a time).  With --format libxl or xl, the libxl stream v2
 * wrapper (and xl's save-file header) around the libxc stream is read and
 * checked too, as Xen's verify-stream-v2 -f does.
 */
#define RM_LOG_PREFIX "stream-info"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/stream.h"
#include "common/stream_wrap.h"

struct info_state {
    bool all;               /* print every PAGE_DATA record */
    bool quiet;             /* only the summary */
    uint64_t run_records;   /* current run of PAGE_DATA records */
    uint64_t run_pages;
    uint64_t run_start;
    uint64_t records;
    uint64_t pages;         /* pages carrying data */
    uint64_t pfns;          /* all pfn entries incl. XTAB/XALLOC/BROKEN */
    uint64_t checkpoints;
    uint64_t page_records;
    uint64_t skipped_optional;
    bool static_data_end;
};

static void flush_run(struct info_state *st)
{
    if (!st->run_records)
        return;
    if (!st->quiet)
        printf("%10" PRIu64 "  PAGE_DATA x %" PRIu64 " records, %" PRIu64
               " pages\n", st->run_start, st->run_records, st->run_pages);
    st->run_records = st->run_pages = 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus stream-info [--format F] [--all] [--quiet] FILE|-\n"
            "\n"
            "Validate a checkpoint/migration stream (Xen libxc stream v2/v3,\n"
            "or a remus KVM stream) and print its headers and records.\n"
            "\n"
            "  --format libxc  the bare libxc stream (default)\n"
            "  --format libxl  libxl's migration stream v2 around it\n"
            "  --format xl     an `xl save` file (xl header, then libxl)\n"
            "  --all     one line per PAGE_DATA record (default: runs are\n"
            "            summarised)\n"
            "  --quiet   print only the summary\n"
            "\n"
            "Exit status: 0 when the stream is valid and complete; 1 when it\n"
            "is not (the byte offset and the reason go to stderr); 2 for a\n"
            "usage error.\n");
}

static void print_record(struct info_state *st, const struct rm_record *rec)
{
    char detail[160];

    flush_run(st);
    if (st->quiet)
        return;
    rm_record_describe(rec, detail, sizeof(detail));
    printf("%10" PRIu64 "  %-26s length %u%s", rec->offset,
           rm_rec_type_name(rec->type), rec->length, detail);
    if (rec->type == RM_REC_CHECKPOINT)
        printf("  (checkpoint %" PRIu64 ")", st->checkpoints + 1);
    printf("\n");
}

static int account_pages(struct info_state *st, const struct rm_record *rec,
                         struct rm_error *err)
{
    struct rm_page_data_view v;
    int rc = rm_page_data_view(rec, &v, err);

    if (rc)
        return rc;
    if (!st->run_records)
        st->run_start = rec->offset;
    st->run_records++;
    st->run_pages += v.count;
    st->page_records++;
    st->pfns += v.count;
    st->pages += v.nr_data_pages;
    if (st->all) {
        flush_run(st);
    }
    return 0;
}

/* The libxc stream on @src up to and including its END record. */
static int read_libxc(struct info_state *st, struct rm_src *src,
                      struct rm_error *err, bool *ended)
{
    struct rm_stream_reader rd;
    struct rm_record rec;
    int rc;

    rm_stream_reader_init(&rd, src, err);
    rc = rm_stream_read_headers(&rd);
    if (rc)
        return rc;
    if (!st->quiet) {
        printf("Image header: version %u, %s endian\n", rd.ihdr.version,
               (rd.ihdr.options & RM_IHDR_OPT_BIG_ENDIAN) ? "big" : "little");
        if (rm_dhdr_is_remus(rd.dhdr.type))
            printf("Domain header: %s (0x%08x), page shift %u, remus "
                   "format %u.%u\n", rm_dhdr_type_name(rd.dhdr.type),
                   rd.dhdr.type, rd.dhdr.page_shift, rd.dhdr.xen_major,
                   rd.dhdr.xen_minor);
        else
            printf("Domain header: %s, page shift %u, from Xen %u.%u\n",
                   rm_dhdr_type_name(rd.dhdr.type), rd.dhdr.page_shift,
                   rd.dhdr.xen_major, rd.dhdr.xen_minor);
        printf("%10s  %s\n", "offset", "record");
    }
    for (;;) {
        rc = rm_stream_read_record(&rd, &rec);
        if (rc) {
            if (rc == -ENODATA)
                rm_error_force(err, -ENODATA,
                               "byte %" PRIu64 ": the stream ends without "
                               "an END record (incomplete after %" PRIu64
                               " records, %" PRIu64 " checkpoints)",
                               src->offset, st->records, st->checkpoints);
            rm_record_free(&rec);
            return rc;
        }
        st->records++;
        if (rec.type == RM_REC_PAGE_DATA) {
            rc = account_pages(st, &rec, err);
            if (rc) {
                rm_record_free(&rec);
                return rc;
            }
        } else {
            if ((rec.type & RM_REC_OPTIONAL) &&
                !rm_rec_type_known(rec.type))
                st->skipped_optional++;
            print_record(st, &rec);
            if (rec.type == RM_REC_CHECKPOINT)
                st->checkpoints++;
            if (rec.type == RM_REC_STATIC_DATA_END)
                st->static_data_end = true;
        }
        if (rec.type == RM_REC_END) {
            rm_record_free(&rec);
            *ended = true;
            return 0;
        }
        rm_record_free(&rec);
    }
}

/* The libxl wrapper's parts, printed (common/stream_wrap.h). */
static void libxl_header(void *opaque, uint32_t version, uint32_t options)
{
    struct info_state *st = opaque;

    if (!st->quiet)
        printf("libxl stream: version %u, options 0x%x%s\n", version,
               options, (options & 2) ? " (legacy)" : "");
}

static void libxl_record(void *opaque, uint64_t at, uint32_t type,
                         uint32_t len)
{
    struct info_state *st = opaque;

    if (!st->quiet)
        printf("%10" PRIu64 "  libxl %s, %u bytes\n", at,
               rm_libxl_rec_name(type), len);
}

static int libxl_libxc(void *opaque, struct rm_src *src,
                       struct rm_error *err)
{
    bool ended = false;

    return read_libxc(opaque, src, err, &ended);
}

int cmd_stream_info(int argc, char **argv)
{
    static const struct option opts[] = {
        { "all", no_argument, NULL, 'a' },
        { "quiet", no_argument, NULL, 'q' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct info_state st;
    struct rm_error err;
    struct rm_src src;
    const char *format = "libxc";
    int fd, rc, c, ret = RM_EXIT_FAIL;
    bool ended = false;
    uint8_t extra;

    memset(&st, 0, sizeof(st));
    rm_error_clear(&err);
    optind = 1;
    while ((c = getopt_long(argc, argv, "+aqf:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': st.all = true; break;
        case 'q': st.quiet = true; break;
        case 'f': format = optarg; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("stream-info", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (strcmp(format, "libxc") && strcmp(format, "libxl") &&
        strcmp(format, "xl"))
        return cli_usage_error("stream-info", "--format %s: libxc, libxl "
                               "or xl", format);
    if (argc - optind != 1)
        return cli_usage_error("stream-info",
                               "expected exactly one FILE (or - for stdin)");

    fd = cli_open_in(argv[optind]);
    if (fd < 0)
        return cli_fail("stream-info", "cannot open '%s': %s", argv[optind],
                        strerror(-fd));
    rm_src_init_fd(&src, fd);

    if (!strcmp(format, "xl")) {
        struct rm_xl_header xh;

        rc = rm_xl_header_read(&src, &xh, &err);
        if (rc)
            goto out;
        if (!st.quiet)
            printf("xl save file: byte order ok, optional flags 0x%x, %u "
                   "bytes of domain configuration\n", xh.optional_flags,
                   xh.optional_len);
    }
    if (strcmp(format, "libxc")) {
        struct rm_libxl_visitor v = { libxl_header, libxl_record,
                                      libxl_libxc, &st };

        rc = rm_libxl_stream_read(&src, &v, &err);
        ended = rc == 0;
    } else {
        rc = read_libxc(&st, &src, &err, &ended);
    }
    if (rc)
        goto out;

    /* Nothing may follow END. */
    rc = rm_src_read_exact(&src, &extra, 1);
    if (rc == 0) {
        rc = rm_error_set(&err, -EBADMSG,
                          "byte %" PRIu64 ": data after the END record",
                          src.offset - 1);
        goto out;
    }
    if (rc != -ENODATA)
        goto out;
    rc = 0;

out:
    flush_run(&st);
    if (ended && rc == 0) {
        printf("Summary: valid and complete: %" PRIu64 " records, %" PRIu64
               " page records, %" PRIu64 " pages with data (%" PRIu64
               " pfns), %" PRIu64 " checkpoints, %" PRIu64 " bytes",
               st.records, st.page_records, st.pages, st.pfns,
               st.checkpoints, src.offset);
        if (st.skipped_optional)
            printf(", %" PRIu64 " unknown optional records skipped",
                   st.skipped_optional);
        printf("\n");
        ret = RM_EXIT_OK;
    } else {
        if (rc == 0)
            rm_error_set(&err, -EBADMSG, "stream incomplete");
        fprintf(stderr, "remus stream-info: invalid stream: %s\n",
                rm_error_str(&err));
        ret = RM_EXIT_FAIL;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return ret;
}
