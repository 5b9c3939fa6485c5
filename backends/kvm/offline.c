/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "offline"
#include "backends/kvm/offline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/stream.h"

#define PM_PRESENT (1ull << 63)
#define PM_PFN_MASK ((1ull << 55) - 1)

/* Read the pagemap entries of @n pages from @va. */
static int read_pagemap(const void *va, uint64_t *ent, size_t n,
                        struct rm_error *err)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    off_t off = (off_t)((uintptr_t)va / RM_PAGE_SIZE * 8);
    size_t want = n * 8, got = 0;
    ssize_t r;
    int rc = 0;

    if (fd < 0)
        return rm_error_set(err, -errno, "cannot open /proc/self/pagemap: "
                            "%s", strerror(errno));
    while (got < want) {
        r = pread(fd, (uint8_t *)ent + got, want - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = rm_error_set(err, r < 0 ? -errno : -EIO, "reading "
                              "/proc/self/pagemap: %s",
                              r < 0 ? strerror(errno) : "short read");
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    return rc;
}

static int entry_pfn(uint64_t e, uint64_t gfn, uint64_t *pfn,
                     struct rm_error *err)
{
    if (!(e & PM_PRESENT))
        return rm_error_set(err, -ENOENT, "guest frame %#" PRIx64 " has no "
                            "host page (never touched)", gfn);
    if (!(e & PM_PFN_MASK))
        return rm_error_set(err, -EPERM, "host frame numbers are hidden: "
                            "reading them needs CAP_SYS_ADMIN");
    *pfn = e & PM_PFN_MASK;
    return 0;
}

int rm_kvm_gfn_to_host_pfn(struct rm_vm *vm, uint64_t gfn, uint64_t *pfn,
                           struct rm_error *err)
{
    uint64_t e;
    int rc;

    if (gfn >= rm_vm_mem_bytes(vm) / RM_PAGE_SIZE)
        return rm_error_set(err, -ERANGE, "guest frame %#" PRIx64 " is "
                            "beyond the guest's %" PRIu64 " frames", gfn,
                            rm_vm_mem_bytes(vm) / RM_PAGE_SIZE);
    rc = read_pagemap(rm_vm_mem(vm) + gfn * RM_PAGE_SIZE, &e, 1, err);
    return rc ? rc : entry_pfn(e, gfn, pfn, err);
}

int rm_kvm_host_pfn_to_gfns(struct rm_vm *vm, uint64_t pfn, uint64_t *gfns,
                            int max, struct rm_error *err)
{
    uint64_t n = rm_vm_mem_bytes(vm) / RM_PAGE_SIZE, i, chunk = 4096;
    uint64_t ent[4096];
    int found = 0, rc;
    bool any_pfn = false;

    for (i = 0; i < n && found < max; i += chunk) {
        uint64_t k, m = n - i < chunk ? n - i : chunk;

        rc = read_pagemap(rm_vm_mem(vm) + i * RM_PAGE_SIZE, ent, m, err);
        if (rc)
            return rc;
        for (k = 0; k < m && found < max; k++) {
            if ((ent[k] & PM_PRESENT) && (ent[k] & PM_PFN_MASK))
                any_pfn = true;
            if ((ent[k] & PM_PRESENT) && (ent[k] & PM_PFN_MASK) == pfn)
                gfns[found++] = i + k;
        }
    }
    if (!found && !any_pfn)
        return rm_error_set(err, -EPERM, "host frame numbers are hidden: "
                            "reading them needs CAP_SYS_ADMIN");
    return found;
}

int rm_kvm_offline_gfn(struct rm_vm *vm, uint64_t gfn,
                       enum rm_kvm_offline_fault fault,
                       struct rm_kvm_offline_result *res,
                       struct rm_error *err)
{
    uint8_t *at = rm_vm_mem(vm) + gfn * RM_PAGE_SIZE;
    bool was_paused = rm_vm_is_paused(vm);
    void *old = MAP_FAILED, *fresh = MAP_FAILED;
    uint64_t h_old, h_new;
    int rc;

    memset(res, 0, sizeof(*res));
    res->gfn = gfn;
    rc = rm_kvm_gfn_to_host_pfn(vm, gfn, &res->old_pfn, err);
    if (rc)
        return rc;
    if (!was_paused)
        rm_vm_pause(vm);
    h_old = rm_hash_words(RM_FNV64_INIT, at, RM_PAGE_SIZE);
    res->hash = h_old;

    /* 1. The old page (its host frame) moves to a quarantine address
     *    (reserved first: mremap without a target would not move it). */
    old = mmap(NULL, RM_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
               MAP_NORESERVE, -1, 0);
    if (old != MAP_FAILED)
        old = mremap(at, RM_PAGE_SIZE, RM_PAGE_SIZE,
                     MREMAP_MAYMOVE | MREMAP_FIXED, old);
    if (old == MAP_FAILED) {
        rc = rm_error_set(err, -errno, "cannot move guest frame %#" PRIx64
                          " aside: %s", gfn, strerror(errno));
        goto out;
    }
    /* 2. A fresh page fills the hole; the contents are copied. */
    if (fault != RM_OFFLINE_FAULT_MAP)
        fresh = mmap(at, RM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                     -1, 0);
    else
        errno = ENOMEM;
    if (fresh == MAP_FAILED) {
        rc = rm_error_set(err, -errno, "cannot map a fresh page for guest "
                          "frame %#" PRIx64 ": %s", gfn, strerror(errno));
        goto undo;
    }
    memcpy(at, old, RM_PAGE_SIZE);
    if (fault == RM_OFFLINE_FAULT_VERIFY)
        at[0] ^= 0xff;
    /* 3. Verify: another host frame, the same contents. */
    h_new = rm_hash_words(RM_FNV64_INIT, at, RM_PAGE_SIZE);
    rc = rm_kvm_gfn_to_host_pfn(vm, gfn, &res->new_pfn, err);
    if (!rc && h_new != h_old) {
        size_t k = 0;

        while (k < RM_PAGE_SIZE && at[k] == ((uint8_t *)old)[k])
            k++;
        rc = rm_error_set(err, -EIO, "the copy of guest frame %#" PRIx64
                          " does not match the original (hash %016" PRIx64
                          " vs %016" PRIx64 ", first difference at byte "
                          "%zu)", gfn, h_old, h_new, k);
    }
    if (!rc && res->new_pfn == res->old_pfn)
        rc = rm_error_set(err, -EIO, "guest frame %#" PRIx64 " is still on "
                          "host frame %#" PRIx64, gfn, res->old_pfn);
    if (rc)
        goto undo;
    rc = rm_vm_quarantine_page(vm, old);
    if (rc) {
        rm_error_set(err, rc, "out of memory");
        goto undo;
    }
    LOG_INFO("guest frame %#" PRIx64 " moved off host frame %#" PRIx64
             " to %#" PRIx64 " (%zu host pages quarantined)", gfn,
             res->old_pfn, res->new_pfn, rm_vm_quarantined(vm));
    goto out;

undo:
    /* Put the old page back where it was: the guest sees no change. */
    if (mremap(old, RM_PAGE_SIZE, RM_PAGE_SIZE,
               MREMAP_MAYMOVE | MREMAP_FIXED, at) == MAP_FAILED) {
        /* Cannot happen short of a kernel bug; say so loudly. */
        LOG_ERR("undo failed for guest frame %#" PRIx64 ": %s; its "
                "contents are at %p", gfn, strerror(errno), old);
        rm_error_set(err, -EIO, "undo failed for guest frame %#" PRIx64,
                     gfn);
    } else {
        uint64_t back = 0;
        struct rm_error e2 = { 0 };

        rm_kvm_gfn_to_host_pfn(vm, gfn, &back, &e2);
        LOG_WARN("guest frame %#" PRIx64 " left on host frame %#" PRIx64
                 " (%s)", gfn, back, back == res->old_pfn ? "undone" :
                 "moved back");
    }
out:
    if (!was_paused)
        rm_vm_resume(vm);
    return rc;
}
