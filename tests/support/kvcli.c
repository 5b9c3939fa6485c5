/* SPDX-License-Identifier: MIT */
/*
 * kvcli IP CLIENT-ID FIRST-REQ-ID CMD [CMD...]: send each CMD to the
 * guest's key-value service (port 7000), one request each, retransmitting
 * up to 5 s; print each reply on a line.  Exit 1 if a reply never came.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/io.h"
#include "drill/kvclient.h"

int main(int argc, char **argv)
{
    struct kv_client c;
    int i;

    if (argc < 5) {
        fprintf(stderr, "usage: kvcli IP CLIENT-ID FIRST-REQ CMD...\n");
        return 2;
    }
    if (kv_open(&c, (uint32_t)strtoul(argv[2], NULL, 10), argv[1], 7000))
        return 2;
    c.next_req = strtoull(argv[3], NULL, 10);
    for (i = 4; i < argc; i++) {
        struct kv_reply r;

        if (kv_call(&c, argv[i], &r, 100, rm_now_ns() + 5000000000ull,
                    NULL)) {
            fprintf(stderr, "kvcli: no reply to '%s'\n", argv[i]);
            return 1;
        }
        printf("%s\n", r.text);
    }
    kv_close(&c);
    return 0;
}
