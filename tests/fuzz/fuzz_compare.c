/* SPDX-License-Identifier: MIT */
/* libFuzzer: COLO's frame rules and packet comparator (netbuf/compare.h)
 * on any bytes.  The input is a program: each step an opcode byte, a
 * length byte and that many bytes of frame.
 *   op % 7 == 0  a primary frame
 *           1  a replica frame
 *           2  the frame to both sides, the replica's copy with another
 *              IPv4 id and TTL (the rules say the same: never a mismatch)
 *           3  the frame to both, one payload byte changed in the
 *              replica's (a mismatch unless the byte does not count)
 *           4  time passes (op / 7 ms) and tick()
 *           5  checkpoint_done()
 *           6  cut()
 * Invariants checked: the rules are reflexive and symmetric; every frame
 * released was accepted from the primary; no frame is released while a
 * divergence stands but at a checkpoint, which leaves nothing held; a
 * divergence is reported once per checkpoint at most. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netbuf/compare.h"
#include "netbuf/frame_cmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    uint64_t released;
    int diverged;
};

static int sink(void *o, const void *f, size_t len)
{
    struct seen *s = o;

    (void)f;
    (void)len;
    s->released++;
    return 0;
}

static void on_diverge(void *o, const struct rm_divergence *d)
{
    struct seen *s = o;

    (void)d;
    s->diverged++;
}

static void rules(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    struct rm_flow_key k;
    char desc[96];
    size_t w1 = 0, w2 = 0;

    if (!rm_frame_same(a, alen, a, alen, NULL))
        abort();
    if (rm_frame_same(a, alen, b, blen, &w1) !=
        rm_frame_same(b, blen, a, alen, &w2))
        abort();
    rm_frame_flow(a, alen, &k);
    rm_flow_describe(&k, desc, sizeof(desc));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen s = { 0 };
    struct rm_compare_cfg cfg = {
        .timeout_ns = 20000000, .max_frames = 64, .max_bytes = 16384,
        .max_flows = 16, .sink = sink, .sink_opaque = &s,
        .on_diverge = on_diverge, .diverge_opaque = &s,
    };
    struct rm_error err = { 0 };
    struct rm_compare_stats st;
    struct rm_compare *c = rm_compare_new(&cfg, &err);
    uint8_t frame[256], copy[256];
    uint64_t now = 0, before;
    size_t i = 0, len;
    int div_before, cut = 0;

    if (!c)
        abort();
    while (i + 2 <= size) {
        uint8_t op = data[i], n = data[i + 1];

        i += 2;
        len = n <= size - i ? n : size - i;
        memcpy(frame, data + i, len);
        i += len;
        rules(frame, len, data, size - i < len ? size - i : len);
        before = s.released;
        div_before = s.diverged;
        switch (op % 7) {
        case 0:
            rm_compare_primary(c, frame, len, now);
            break;
        case 1:
            rm_compare_secondary(c, frame, len, now);
            break;
        case 2:
        case 3:
            memcpy(copy, frame, len);
            if (op % 7 == 2 && len >= 34) {
                copy[18] ^= 0x5a;                  /* IPv4 id */
                copy[22] ^= 0x01;                  /* TTL */
                copy[24] ^= 0x33;                  /* header checksum */
            } else if (len) {
                copy[len - 1] ^= 0x80;
            }
            if (op % 7 == 2 && !rm_frame_same(frame, len, copy, len, NULL) &&
                rm_frame_same(frame, len, frame, len, NULL) && len >= 34 &&
                frame[12] == 0x08 && frame[13] == 0x00 && frame[14] >> 4 == 4 &&
                (frame[14] & 0xf) * 4u + 14 <= len &&
                (size_t)(frame[16] << 8 | frame[17]) + 14 <= len &&
                (size_t)(frame[16] << 8 | frame[17]) >= (frame[14] & 0xfu) * 4 &&
                (frame[14] & 0xf) >= 5)
                abort();        /* valid IPv4 differing in id/TTL only */
            rm_compare_primary(c, frame, len, now);
            rm_compare_secondary(c, copy, len, now);
            break;
        case 4:
            now += (uint64_t)(op / 7) * 1000000;
            rm_compare_tick(c, now);
            break;
        case 5:
            div_before = s.diverged = 0;
            rm_compare_checkpoint_done(c, now);
            rm_compare_get_stats(c, &st);
            if (st.held_replica || (!cut && (st.held_primary || st.flows)))
                abort();
            cut = 0;
            break;
        case 6:
            rm_compare_cut(c);
            cut = 1;
            break;
        }
        if (op % 7 != 5 && div_before && s.released != before)
            abort();            /* released while diverged */
        if (s.diverged > 1)
            abort();            /* reported twice */
        rm_compare_get_stats(c, &st);
        if (st.released_frames > st.primary_frames)
            abort();
    }
    rm_compare_free(c);
    return 0;
}
