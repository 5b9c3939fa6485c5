/* SPDX-License-Identifier: MIT */
/*
 * mkstream MODE TYPE FILE: write a stream through the engines and the
 * memory-only backend (tests only).
 *   MODE: nonlive | live | checkpointed | verify
 *   TYPE: hvm | kvm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/support/testutil.h"

int main(int argc, char **argv)
{
    struct tu_save_opts o = { .dirty_per_epoch = 8, .epochs = 4 };
    struct rm_buf out = { 0 };
    struct rm_error err = { 0 };
    struct mem_guest *g;
    uint32_t dtype;
    FILE *f;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: mkstream nonlive|live|checkpointed|verify "
                "hvm|kvm FILE\n");
        return 2;
    }
    rm_log_init(RM_LOG_ERROR, NULL);
    if (!strcmp(argv[1], "nonlive"))
        o.mode = RM_SAVE_NONLIVE;
    else if (!strcmp(argv[1], "live"))
        o.mode = RM_SAVE_LIVE;
    else if (!strcmp(argv[1], "checkpointed"))
        o.mode = RM_SAVE_CHECKPOINTED;
    else if (!strcmp(argv[1], "verify")) {
        o.mode = RM_SAVE_NONLIVE;
        o.verify = true;
    } else {
        fprintf(stderr, "mkstream: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    dtype = !strcmp(argv[2], "hvm") ? RM_DHDR_TYPE_X86_HVM
                                    : RM_DHDR_TYPE_REMUS_KVM;
    g = mem_guest_new(getenv("MKSTREAM_PAGES") ?
                      strtoull(getenv("MKSTREAM_PAGES"), NULL, 0) : 48,
                      dtype, 1234);
    if (!g)
        return 1;
    /* A hole in an HVM guest (a KVM guest has none: its backend refuses
     * any page type but NOTAB). */
    if (dtype == RM_DHDR_TYPE_X86_HVM && g->nr_pfns > 5)
        g->hole[5] = true;
    rc = tu_save(g, &o, &out, NULL, &err);
    if (rc) {
        fprintf(stderr, "mkstream: %s\n", rm_error_str(&err));
        return 1;
    }
    f = fopen(argv[3], "wb");
    if (!f || fwrite(out.data, 1, out.len, f) != out.len || fclose(f)) {
        perror(argv[3]);
        return 1;
    }
    rm_buf_free(&out);
    mem_guest_free(g);
    return 0;
}
