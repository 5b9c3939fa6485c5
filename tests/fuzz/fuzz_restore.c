/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the whole restore engine (checkpoint buffering, compression,
 * epoch checks) over the memory-only backend, on any bytes.  It must never
 * crash, hang or leak, and a FAILOVER must leave a committed epoch.  The
 * backend refuses page types like the real ones (a KVM guest: NOTAB only),
 * and the engine must refuse such pages on arrival: a refusal by map_pages
 * means a checkpoint could fail half applied.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "tests/support/testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem_replica *r = mem_replica_new();
    struct rm_restore_ctx ctx;
    struct rm_error err = { 0 };
    int rc;

    rm_log_init(RM_LOG_ERROR, NULL);
    if (!r)
        return 0;
    r->max_pfns = 256;     /* keep guest sizes small */
    r->nr_pfns = 64;       /* for HVM-typed inputs */
    rc = tu_restore(data, size, r, true, true, NULL, &ctx, &err);
    if (rc == 0 && ctx.result == RM_RESTORE_FAILOVER &&
        ctx.committed_epoch == 0)
        abort();   /* a failover without a committed checkpoint */
    if (rc == 0 && ctx.result == RM_RESTORE_NONE)
        abort();
    if (r->map_refused)
        abort();   /* the engine let through a page the backend refuses */
    mem_replica_free(r);
    return 0;
}
