/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's dirty page tracking: the pages the VMM itself writes,
 * the per-vCPU dirty rings, the bitmap log (get-and-clear or manual
 * clear), harvests, and hot pages (left writable while they stay hot).
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"
#include "common/sr.h"

void mark_vmm_dirty(struct rm_vm *vm, uint64_t gpa, uint64_t len)
{
    uint64_t pfn, last;

    if (!len)
        return;
    last = (gpa + len - 1) >> RM_PAGE_SHIFT;
    for (pfn = gpa >> RM_PAGE_SHIFT; pfn <= last; pfn++)
        __atomic_fetch_or(&vm->vmm_dirty[pfn / RM_BITS_PER_LONG],
                          1ul << (pfn % RM_BITS_PER_LONG), __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ dirty ring */

/*
 * Move the entries KVM published in @vc's ring into vm->ring_dirty and
 * hand the slots back (KVM_RESET_DIRTY_RINGS).  Called by the harvester
 * and by a vCPU whose ring is full.
 */
void collect_ring(struct rm_vm *vm, struct vcpu *vc)
{
    uint32_t n = 0;

    pthread_mutex_lock(&vc->ring_lock);
    for (;;) {
        struct kvm_dirty_gfn *e = &vc->ring[vc->ring_fetch %
                                            DIRTY_RING_ENTRIES];
        uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
        uint64_t pfn;

        if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
            break;
        pfn = e->offset;
        if (e->slot == 0 && pfn < vm->nr_pfns)
            __atomic_fetch_or(&vm->ring_dirty[pfn / RM_BITS_PER_LONG],
                              1ul << (pfn % RM_BITS_PER_LONG),
                              __ATOMIC_RELAXED);
        __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        vc->ring_fetch++;
        n++;
    }
    if (n)
        ioctl(vm->vm_fd, KVM_RESET_DIRTY_RINGS, 0);
    pthread_mutex_unlock(&vc->ring_lock);
}

/* ------------------------------------------------------------ bitmap log */

void rm_vm_debug_drop_vmm_dirty(struct rm_vm *vm, bool drop)
{
    vm->drop_vmm_dirty = drop;
}

void rm_vm_debug_drop_hot(struct rm_vm *vm, bool drop)
{
    vm->drop_hot = drop;
}

uint64_t rm_vm_hot_pages(const struct rm_vm *vm)
{
    return vm->hot_count;
}

uint64_t rm_vm_debug_hot_in(const struct rm_vm *vm, uint64_t first_pfn,
                            uint64_t count)
{
    uint64_t pfn, n = 0;

    for (pfn = first_pfn; pfn < vm->nr_pfns && pfn - first_pfn < count; pfn++)
        if (rm_bitmap_test(vm->hot_bm, pfn))
            n++;
    return n;
}

const char *rm_vm_dirty_log_mode(const struct rm_vm *vm)
{
    return vm->cfg.dirty_ring ? "dirty ring"
           : vm->cfg.dirty_manual_clear ? "bitmap, manual clear"
                                        : "bitmap (KVM_GET_DIRTY_LOG)";
}

int rm_vm_logdirty(struct rm_vm *vm, bool on)
{
    int rc;

    if (vm->logdirty == on)
        return 0;
    rc = set_region(vm, on);
    if (rc)
        return rc;
    vm->logdirty = on;
    if (on && vm->cfg.dirty_manual_clear) {
        /* KVM_DIRTY_LOG_INITIALLY_SET reports every page dirty until it is
         * cleared once: take that harvest now (it write-protects the
         * guest, as enabling the classic log does). */
        unsigned long *bm = calloc(RM_BITMAP_LONGS(vm->nr_pfns),
                                   sizeof(long));

        if (!bm)
            return -ENOMEM;
        rc = rm_vm_harvest_dirty(vm, bm);
        free(bm);
        if (rc)
            return rc;
    }
    if (on) {
        memset(vm->vmm_dirty, 0, RM_BITMAP_LONGS(vm->nr_pfns) * sizeof(long));
        memset(vm->ring_dirty, 0, RM_BITMAP_LONGS(vm->nr_pfns) * sizeof(long));
    }
    /* Logging off makes every page writable; on starts from nothing hot. */
    memset(vm->hot_bm, 0, RM_BITMAP_LONGS(vm->nr_pfns) * sizeof(long));
    memset(vm->hot_streak, 0, RM_BITMAP_LONGS(vm->nr_pfns) *
                              RM_BITS_PER_LONG);
    vm->hot_count = 0;
    vm->harvests = 0;
    return 0;
}

/*
 * Manual-clear mode: decide which of the harvested pages (scratch_bm) to
 * re-protect (clear_bm).  Each page keeps a score: +HOT_GAIN for every
 * harvest that finds it dirty, -1 for every harvest that does not.  A
 * page whose score reaches 4 * hot_after is promoted to hot (left
 * writable): a page dirty in two harvests in a row, and one dirty in one
 * harvest of every six or seven, gets there.  That matters because the
 * write faults themselves throttle a busy guest below one sweep of its
 * working set per epoch: at 10 ms a seventh of 2,048 pages here, and with
 * +4 per dirty harvest (as before 2026-12-03) such pages never got hot
 * and the guest stayed throttled (tests/unit/test_kvm_dirty.c,
 * test_hot_pages_slow_sweep).  Every hot_period harvests every hot page is
 * demoted (re-protected, score 0) so a page that went cold is tracked
 * again.  A hot page's dirty bit is never cleared, so KVM keeps reporting
 * it: it is in every harvest and every checkpoint copies it.
 */
#define HOT_GAIN 8u

static void plan_clear(struct rm_vm *vm)
{
    uint64_t longs = RM_BITMAP_LONGS(vm->nr_pfns), w;
    bool hot_on = vm->cfg.hot_pages_max > 0 && vm->cfg.hot_after > 0;
    bool demote = hot_on && vm->cfg.hot_period &&
                  ++vm->harvests % vm->cfg.hot_period == 0;
    unsigned promote_at = hot_on ? 4u * vm->cfg.hot_after : 0;

    if (demote && vm->hot_count)
        LOG_INFO("hot pages: %" PRIu64 " left writable over the last %u "
                 "harvests, re-protected now", vm->hot_count,
                 vm->cfg.hot_period);
    for (w = 0; w < longs; w++) {
        unsigned long dirty = vm->scratch_bm[w], clear = dirty, b;
        uint8_t *score = vm->hot_streak + w * RM_BITS_PER_LONG;

        if (!hot_on) {
            vm->clear_bm[w] = clear;
            continue;
        }
        if (!dirty) {
            /* The common case on a large guest: nothing here to decay. */
            uint64_t any = 0, k;

            for (k = 0; k < RM_BITS_PER_LONG; k += 8) {
                uint64_t v;

                memcpy(&v, score + k, 8);
                any |= v;
            }
            if (!any) {
                vm->clear_bm[w] = 0;
                continue;
            }
        }
        for (b = 0; b < RM_BITS_PER_LONG; b++) {
            unsigned long bit = 1ul << b;

            if (!(dirty & bit)) {
                if (score[b])
                    score[b]--;
                continue;
            }
            if (vm->hot_bm[w] & bit) {
                if (demote) {              /* re-protect: track it again */
                    vm->hot_bm[w] &= ~bit;
                    vm->hot_count--;
                    score[b] = 0;
                } else {
                    clear &= ~bit;         /* stays writable */
                }
                continue;
            }
            score[b] = score[b] > UINT8_MAX - HOT_GAIN ? UINT8_MAX
                                                       : score[b] + HOT_GAIN;
            if (!demote && score[b] >= promote_at &&
                vm->hot_count < vm->cfg.hot_pages_max) {
                vm->hot_bm[w] |= bit;      /* from now on left writable */
                vm->hot_count++;
                clear &= ~bit;
            }
        }
        vm->clear_bm[w] = clear;
    }
}

int rm_vm_harvest_dirty(struct rm_vm *vm, unsigned long *bitmap)
{
    struct kvm_dirty_log log;
    uint64_t i, longs = RM_BITMAP_LONGS(vm->nr_pfns);

    if (!vm->logdirty)
        return -EINVAL;
    memset(vm->scratch_bm, 0, longs * sizeof(long));
    if (vm->cfg.dirty_ring) {
        uint32_t v;

        for (v = 0; v < vm->nr_vcpus; v++)
            collect_ring(vm, &vm->vcpus[v]);
        for (i = 0; i < longs; i++)
            vm->scratch_bm[i] = __atomic_exchange_n(&vm->ring_dirty[i], 0,
                                                    __ATOMIC_RELAXED);
    } else {
        memset(&log, 0, sizeof(log));
        log.slot = 0;
        log.dirty_bitmap = vm->scratch_bm;
        if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
            return -errno;
        if (vm->cfg.dirty_manual_clear) {
            /* Re-protect the pages we took, but for the hot ones. */
            struct kvm_clear_dirty_log clr = {
                .slot = 0,
                .num_pages = (uint32_t)vm->nr_pfns,
                .first_page = 0,
                .dirty_bitmap = vm->clear_bm,
            };

            plan_clear(vm);
            if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
                return -errno;
            if (vm->drop_hot)
                for (i = 0; i < longs; i++)
                    vm->scratch_bm[i] &= ~vm->hot_bm[i];
        }
    }
    for (i = 0; i < longs; i++) {
        unsigned long v = __atomic_exchange_n(&vm->vmm_dirty[i], 0,
                                              __ATOMIC_RELAXED);

        bitmap[i] |= vm->scratch_bm[i] | (vm->drop_vmm_dirty ? 0 : v);
    }
    return 0;
}
