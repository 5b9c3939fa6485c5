/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the whole restore engine (checkpoint buffering, compression,
 * epoch checks) over the memory-only backend, on any bytes.  It must never
 * crash, hang or leak, and a FAILOVER must leave a committed epoch.  The
 * backend refuses page types like the real ones (a KVM guest: NOTAB only),
 * and the engine must refuse such pages on arrival: a refusal by map_pages
 * means a checkpoint could fail half applied.
 * Each input is restored twice: without a disk, and with a 256 KiB replica
 * image (a memfd; disk 0) whose dirty mark must be gone whenever the
 * result is a consistent state (COMPLETE, or FAILOVER to a commit).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/disklog.h"
#include "common/log.h"
#include "tests/support/testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DISK_SIZE (256u << 10)

static char state_dir[64];

static void remove_state_dir(void)
{
    rmdir(state_dir);
}

static void restore_with_disk(const uint8_t *data, size_t size)
{
    struct rm_disk_replica_params rp = { .state_dir = state_dir };
    struct mem_replica *r = mem_replica_new();
    struct rm_disk_replica *dr = NULL;
    struct rm_restore_ctx ctx;
    struct rm_error err = { 0 };
    struct rm_src src;
    char path[64], mark[128];
    int fd, rc;

    if (!state_dir[0]) {
        strcpy(state_dir, "/dev/shm/fuzz_restore.XXXXXX");
        if (!mkdtemp(state_dir))
            abort();
        atexit(remove_state_dir);
    }
    fd = memfd_create("replica", MFD_CLOEXEC);
    if (!r || fd < 0 || ftruncate(fd, FUZZ_DISK_SIZE))
        abort();
    r->max_pfns = 256;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    snprintf(mark, sizeof(mark), "%s/%d.remus-dirty", state_dir, fd);
    unlink(mark);
    if (rm_disk_replica_open(&dr, &rp, &err) ||
        rm_disk_replica_add(dr, 0, path, false, &err))
        abort();
    memset(&ctx, 0, sizeof(ctx));
    ctx.ops = &mem_restore_ops;
    ctx.backend_arg = r;
    ctx.err = &err;
    ctx.disks = dr;
    ctx.params.checkpointed_hint = true;
    rm_src_init_mem(&src, data, size);
    rc = rm_restore(&ctx, &src);
    if (rc == 0 && ctx.result == RM_RESTORE_FAILOVER &&
        ctx.committed_epoch == 0)
        abort();
    if (rc == 0 && ctx.result == RM_RESTORE_NONE)
        abort();
    if (rc == 0 && rm_disk_replica_dirty(dr, 0))
        abort();   /* a consistent state on a disk marked dirty */
    if (r->map_refused)
        abort();
    rm_disk_replica_close(dr);
    unlink(mark);
    close(fd);
    mem_replica_free(r);
}

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
    restore_with_disk(data, size);
    return 0;
}
