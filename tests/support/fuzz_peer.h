/* SPDX-License-Identifier: MIT */
/*
 * The far end of a socket for a libFuzzer harness: a thread that sends the
 * fuzzer's bytes into @fd while it reads what the code under test answers
 * (keeping the first out_cap bytes in @out), so that neither side blocks on
 * a full socket buffer; after the last byte it shuts its writing half, and
 * it ends when the other side closes or shuts down.
 */
#ifndef REMUS_TESTS_FUZZ_PEER_H
#define REMUS_TESTS_FUZZ_PEER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct rm_fuzz_peer {
    int fd;               /* the peer's end (the caller closes it) */
    const uint8_t *in;    /* what it sends */
    size_t len;
    uint8_t *out;         /* what it keeps of the answers (may be NULL) */
    size_t out_cap;
    size_t out_len;       /* kept so far (valid after the join) */
    pthread_t thread;
};

/* Start the peer's thread.  Aborts when it cannot (a harness, not a
 * library). */
void rm_fuzz_peer_start(struct rm_fuzz_peer *p);
/* Wait until the other side closed or shut down. */
void rm_fuzz_peer_join(struct rm_fuzz_peer *p);

#endif
