/* SPDX-License-Identifier: MIT */
/*
 * The save engine's staged checkpoint (common/save.c): the pass over the
 * staged records that computes its page digest after the resume, and how
 * much of its staging buffers stays resident between checkpoints.
 */
#ifndef REMUS_COMMON_SAVE_STAGE_H
#define REMUS_COMMON_SAVE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/io.h"

/*
 * The page digest of a staged checkpoint, computed after the resume from
 * the staged copies (the bytes that go on the wire), in stream order, then
 * written into the staged REMUS_EPOCH_INFO record.  Keeps ~1 us per page
 * of hashing out of the pause.  *@digest is the digest so far (the pages
 * since the last CHECKPOINT record) and on success the checkpoint's; a
 * @remus stream's checkpoint must hold an EPOCH_INFO record.  0, or -EIO
 * with @err when the staged records do not parse (a bug of ours).
 */
int rm_stage_digest(struct rm_buf *stage, bool remus, uint64_t *digest,
                    struct rm_error *err);

/* What one staging buffer keeps resident between checkpoints. */
struct rm_stage_size {
    size_t hi;        /* the sizes recent checkpoints needed (decaying) */
    size_t kept;      /* what the buffer may hold resident (0: never
                         trimmed) */
    size_t ready;     /* its first bytes resident (written by a checkpoint
                         or prefaulted): rm_stage_ready() */
};

/*
 * The staging buffers keep room for what recent checkpoints needed, not
 * for the biggest one ever (a burst, or a first copy of all the guest's
 * memory): the primary's memory stays near the dirty set (#21, goal 6).
 * @z->hi follows the sizes staged, decaying by 1/32 a checkpoint; once what
 * the buffer may hold resident (@z->kept: its capacity until the first trim,
 * then the most it held since the last one; the live pre-copy staged
 * through it too) exceeds twice @z->hi + 1 MiB, the pages beyond 1.25 @z->hi
 * go back to the kernel (a bigger checkpoint later faults them in again).
 * A steady guest's checkpoints never trim: no first touches in its
 * pauses.  True when it released pages.
 */
bool rm_stage_trim(struct rm_buf *b, struct rm_stage_size *z);

/*
 * After a checkpoint, the VM running: make the staging buffer resident up
 * to 1.25 times the size recent checkpoints needed (what rm_stage_trim()
 * keeps), so that a checkpoint up to a quarter bigger than any recent one
 * takes no page fault in its pause.  A first touch costs ~2.4 us a page on
 * this PVM host against ~0.75 us for the copy itself (#21, goal 2): in
 * the bench of 2026-12-03 the 100,000-page row faulted 45,000 and 17,000
 * pages in two of its four pauses as the dirty set grew by a fifth.  A
 * steady guest's checkpoints prefault nothing.  @trimmed: rm_stage_trim()
 * just released pages of @b.
 */
void rm_stage_ready(struct rm_buf *b, struct rm_stage_size *z, bool trimmed);

#endif
