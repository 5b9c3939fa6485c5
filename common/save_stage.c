/* SPDX-License-Identifier: MIT */
/* The save engine's staged checkpoint (common/save_stage.h). */
#include "common/save_stage.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/stream.h"

int rm_stage_digest(struct rm_buf *stage, bool remus, uint64_t *digestp,
                    struct rm_error *err)
{
    size_t off = 0, epoch_info = 0;
    uint64_t digest = *digestp;

    while (off + RM_RHDR_SIZE <= stage->len) {
        struct rm_rhdr h;
        size_t body = off + RM_RHDR_SIZE, padded;

        memcpy(&h, stage->data + off, sizeof(h));
        padded = ((size_t)h.length + 7) & ~(size_t)7;
        if (body + padded > stage->len)
            break;
        if (h.type == RM_REC_PAGE_DATA) {
            uint32_t count, i;
            const uint8_t *data;

            memcpy(&count, stage->data + body, 4);
            data = stage->data + body + 8 + (size_t)count * 8;
            for (i = 0; i < count; i++) {
                uint64_t e, pfn;

                memcpy(&e, stage->data + body + 8 + (size_t)i * 8, 8);
                if (!rm_page_type_has_data(rm_ptype_of(e)))
                    continue;
                pfn = rm_pfn_of(e);
                digest = rm_fnv64(digest, &pfn, 8);
                digest = rm_hash_words(digest, data, RM_PAGE_SIZE);
                data += RM_PAGE_SIZE;
            }
        } else if (h.type == RM_REC_EPOCH_INFO &&
                   h.length == sizeof(struct rm_epoch_info)) {
            epoch_info = body;
        }
        off = body + padded;
    }
    if (off != stage->len || (remus && !epoch_info))
        return rm_error_set(err, -EIO, "internal: staged checkpoint "
                            "is malformed (digest pass at byte %zu)", off);
    *digestp = digest;
    if (epoch_info)      /* remus streams carry it in EPOCH_INFO */
        memcpy(stage->data + epoch_info +
               offsetof(struct rm_epoch_info, digest), &digest,
               sizeof(digest));
    return 0;
}

bool rm_stage_trim(struct rm_buf *b, struct rm_stage_size *z)
{
    size_t decayed = z->hi - z->hi / 32, keep;

    z->hi = b->len > decayed ? b->len : decayed;
    if (!z->kept)               /* never trimmed: it may all be resident */
        z->kept = b->cap;
    if (b->len > z->kept)
        z->kept = b->len;
    if (z->kept <= 2 * z->hi + ((size_t)1 << 20))
        return false;
    keep = z->hi + z->hi / 4;
    rm_buf_release_tail(b, keep);
    z->kept = keep;
    return true;
}

void rm_stage_ready(struct rm_buf *b, struct rm_stage_size *z, bool trimmed)
{
    size_t want = z->hi + z->hi / 4;

    if (b->len > z->ready)                   /* this checkpoint wrote it */
        z->ready = b->len;
    if (trimmed && z->ready > z->kept)
        z->ready = z->kept;
    if (want <= z->ready)
        return;
    if (rm_buf_prefault(b, z->ready, want) == 0)
        z->ready = want;
}
