/* SPDX-License-Identifier: MIT */
/*
 * The remus micro-VMM: a minimal KVM tender in the spirit of Solo5's hvt.
 *
 * It creates a VM with one memory slot [0, mem_bytes), loads a static
 * ELF64 guest, and sets each vCPU directly into 64-bit mode at CPL3 with
 * identity-mapped user pages (on PVM-based KVM only CPL3 code runs at
 * native speed).  The guest talks to the VMM only through the hypercalls
 * of backends/kvm/guest_abi.h (port I/O exits); every address it passes is
 * checked against guest memory before use.
 *
 * All VMM state sits behind the opaque struct rm_vm.  Threads: one per
 * vCPU, started by rm_vm_start(); the rest of the API is called from one
 * controlling thread (the CLI's, or the save engine's), except
 * rm_vm_request_stop() which is async-signal-safe.
 */
#ifndef REMUS_BACKENDS_KVM_VMM_H
#define REMUS_BACKENDS_KVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/kvm/guest_abi.h"
#include "common/err.h"

struct rm_vm;

/* Where the guest's outgoing frames go; default: straight to the TAP. */
typedef int (*rm_vm_net_out_fn)(void *opaque, const void *frame, size_t len);

struct rm_vm_config {
    const char *name;
    /* A description's `backend = kvm|xen` (NULL: kvm) and, for a Xen VM
     * (the domain `name`), `xl_config`: its xl config, from which a
     * secondary builds the replica.  Read by backends/open.h, not by the
     * micro-VMM. */
    const char *backend;
    const char *xl_config;
    uint64_t mem_bytes;        /* multiple of 2 MiB, 4 MiB .. 4 GiB */
    uint32_t nr_vcpus;         /* 1 .. RM_KVM_MAX_VCPUS */
    const char *image;         /* guest ELF; NULL when restoring */
    const char *cmdline;
    uint8_t mac[6];
    uint32_t ipv4, netmask, gateway;   /* network order */
    const char *tap;           /* TAP interface (created if needed); NULL:
                                  no network */
    const char *tap_netns;     /* open the TAP in this named network
                                  namespace (/run/netns/NAME); NULL: ours */
    const char *console_path;  /* NULL: console lines go to stderr */
    bool dirty_ring;           /* track dirty pages with KVM's per-vCPU
                                  dirty ring instead of the bitmap log
                                  (KVM_GET_DIRTY_LOG); fails if the host
                                  lacks KVM_CAP_DIRTY_LOG_RING */
    bool dirty_manual_clear;   /* bitmap log with manual clear
                                  (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2:
                                  only harvested pages are re-protected);
                                  the default, measured fastest here; falls
                                  back to get-and-clear if unavailable */
    /*
     * Hot pages (manual-clear mode only).  On this PVM host every first
     * write to a page after a harvest is a write-protection fault costing
     * ~20 us, so a guest that rewrites a working set is throttled to the
     * fault rate.  A page found dirty often enough (a score: +8 dirty,
     * -1 clean, hot at 4 * hot_after: dirty in two harvests in a row, or
     * in one of every six) is left writable (its dirty bit is not
     * cleared, so every harvest
     * reports it and every checkpoint copies it) for up to hot_period
     * harvests, then re-protected so a page that went cold is tracked
     * again.  At most hot_pages_max pages are hot: the checkpoint pause
     * grows by the copy of them.  0 disables.  Defaults 3, 64, 4096.
     */
    uint32_t hot_after;
    uint32_t hot_period;
    uint64_t hot_pages_max;
    rm_vm_net_out_fn net_out;  /* NULL: write to the TAP */
    void *net_out_opaque;
    /* The guest's disk (RM_HC_DISK_*): a raw image file or block device,
     * size a multiple of 512, opened read-write by rm_vm_create().  NULL:
     * no disk.  disk_override, when set, is opened instead of disk (a
     * replica's own image, e.g. `receive --disk`). */
    const char *disk;
    const char *disk_override;
};

/* Defaults: 64 MiB, 1 vCPU, MAC 52:54:00:12:34:56, no network. */
void rm_vm_config_default(struct rm_vm_config *cfg);

/*
 * Parse a guest description file: `key = value` lines (# comments):
 * name, memory (MiB), vcpus, image, cmdline, mac, ip, netmask, gateway,
 * tap, tap_netns, console, backend (kvm|xen), xl_config, disk.  Strings are
 * copied into @storage (freed by the caller with free()).  Unknown keys
 * and bad values are errors that name the line.
 */
int rm_vm_config_load(const char *path, struct rm_vm_config *cfg,
                      char **storage, struct rm_error *err);

/*
 * Create the VM: memory, vCPUs, TAP; when cfg->image is set, load it and
 * set every vCPU to its entry point.  The vCPUs do not run until
 * rm_vm_start().  0 or -errno; *out is NULL on failure.
 */
int rm_vm_create(const struct rm_vm_config *cfg, struct rm_vm **out,
                 struct rm_error *err);
/* Stop the vCPU threads (if running) and free everything. */
void rm_vm_destroy(struct rm_vm *vm);

/* Start the vCPU threads.  0 or -errno. */
int rm_vm_start(struct rm_vm *vm, struct rm_error *err);

/*
 * Pause every vCPU (pending port I/O completed, so the state is
 * consistent) / let them run again.  Pause returns once all are parked.
 */
int rm_vm_pause(struct rm_vm *vm);
int rm_vm_resume(struct rm_vm *vm);
/* rm_now_ns() when the last rm_vm_resume() released the vCPUs (0: never):
 * the pause's true end; the caller's own clock after the call may be
 * later by the time the woken vCPUs, running the guest, held its CPU. */
uint64_t rm_vm_resumed_ns(struct rm_vm *vm);
/*
 * The last rm_vm_pause() in parts (#21, goal 1), along the vCPU that
 * parked last (the one the pause waited for): each step ends at its own
 * time or the end of the step before, whichever is later, so the parts
 * add up to the total (a step that overlapped the one before is charged
 * to that one).  All in ns.  0, or -ENODATA before the first pause.
 */
struct rm_vm_suspend_parts {
    uint64_t total;  /* rm_vm_pause() entry to return */
    uint64_t kick;   /* entry to the kicks sent (the priority boost, the
                        signals and the eventfd write) */
    uint64_t wake;   /* kicks sent to that vCPU seeing the request (its
                        thread scheduled, out of KVM_RUN or the poll) */
    uint64_t io;     /* completing its interrupted port I/O (a KVM_RUN
                        that exits at once) */
    uint64_t state;  /* reading its registers and devices' state */
    uint64_t park;   /* parked to rm_vm_pause() returning (the lock, the
                        pauser woken) */
};
int rm_vm_suspend_parts(struct rm_vm *vm, struct rm_vm_suspend_parts *out);
bool rm_vm_is_paused(const struct rm_vm *vm);

/* Async-signal-safe: ask rm_vm_wait() to return (the VM is stopped). */
void rm_vm_request_stop(struct rm_vm *vm);
/*
 * Wait until the guest halts, crashes, or a stop is requested; at most
 * @timeout_ms (-1: forever).  Returns 0 when the VM ended (*exit_code set:
 * the guest's halt code, or -1 for a crash / stop request) or -ETIMEDOUT.
 */
int rm_vm_wait(struct rm_vm *vm, int timeout_ms, int64_t *exit_code);
/* Why the VM ended, for messages ("guest halted with 0", "triple fault"). */
const char *rm_vm_end_reason(const struct rm_vm *vm);
/* How it ended: decisions use this, never the message. */
enum rm_vm_end {
    RM_VM_RUNNING,      /* not ended */
    RM_VM_HALTED,       /* the guest halted itself (its halt code) */
    RM_VM_STOPPED,      /* rm_vm_request_stop() */
    RM_VM_FAILED,       /* a guest crash or a KVM error */
};
enum rm_vm_end rm_vm_end_kind(const struct rm_vm *vm);

/* Guest memory (host mapping) and geometry. */
uint8_t *rm_vm_mem(struct rm_vm *vm);
/* Keep a host page that was taken out of service (backends/kvm/offline.c)
 * mapped until the VM is destroyed, so the host does not reuse it.
 * 0 or -ENOMEM.  rm_vm_quarantined() counts them. */
int rm_vm_quarantine_page(struct rm_vm *vm, void *page);
size_t rm_vm_quarantined(const struct rm_vm *vm);
uint64_t rm_vm_mem_bytes(const struct rm_vm *vm);
uint32_t rm_vm_nr_vcpus(const struct rm_vm *vm);
const struct rm_vm_config *rm_vm_config(const struct rm_vm *vm);

/* Dirty logging: on/off, and harvest-and-clear into @bitmap (one bit per
 * page, OR'ed in), merging the pages the VMM itself wrote. */
int rm_vm_logdirty(struct rm_vm *vm, bool on);
int rm_vm_harvest_dirty(struct rm_vm *vm, unsigned long *bitmap);

/* The guest clock (ns): continues across save/restore. */
uint64_t rm_vm_guest_ns(struct rm_vm *vm);
void rm_vm_set_guest_ns(struct rm_vm *vm, uint64_t ns);

/* Counters the guest published with RM_HC_STATS. */
void rm_vm_guest_stats(struct rm_vm *vm, struct rm_hc_stats *st);

/* Send a gratuitous ARP for the guest's MAC/IP straight to the TAP (after
 * a failover, so the network learns where the guest is now). */
int rm_vm_announce(struct rm_vm *vm);

/*
 * The disk (backends/kvm/disk.c).  The observer is called on the vCPU's
 * thread after the image write / discard / fdatasync succeeded and before
 * the hypercall returns to the guest; it may block (the guest's request
 * waits), and a negative return fails the guest's request with EIO.
 * @disk is 0.  @data is guest memory, valid during the call only.  The
 * disk calls are serialised, so observers see them in completion order.
 */
struct rm_vm_disk_observer {
    void *opaque;
    int (*write)(void *opaque, uint32_t disk, uint64_t off, const void *data,
                 uint32_t len, bool fua);
    int (*discard)(void *opaque, uint32_t disk, uint64_t off, uint64_t len);
    int (*flush)(void *opaque, uint32_t disk);
};
/* Set (NULL: remove) the observer; a copy is kept.  Waits for a disk call
 * in progress to end, so after it returns no call uses the old one. */
void rm_vm_set_disk_observer(struct rm_vm *vm,
                             const struct rm_vm_disk_observer *obs);
/* The open image (-1 / 0 / NULL without a disk): fd, size in bytes, the
 * path opened (disk_override or disk). */
int rm_vm_disk_fd(const struct rm_vm *vm);
uint64_t rm_vm_disk_size(const struct rm_vm *vm);
const char *rm_vm_disk_path(const struct rm_vm *vm);
/* Counters of the guest's disk calls. */
struct rm_vm_disk_stats {
    uint64_t reads, writes, flushes, discards, errors;
    uint64_t read_bytes, write_bytes;
    /* COLO's replica: writes that found its overlay full and waited for
     * the checkpoint that empties it, and their time in all */
    uint64_t overlay_waits, overlay_wait_ns;
};
void rm_vm_disk_stats(struct rm_vm *vm, struct rm_vm_disk_stats *st);

/*
 * COLO's replica (backends/kvm/disk_overlay.h): overlay_start() sends the
 * guest's disk writes to an empty overlay in memory from now on (the
 * image keeps the committed checkpoint's disk), of at most @max_bytes (0:
 * 256 MiB; fixed by the first call); the first write that fills half of
 * it calls @ask(@ask_opaque, why) (NULL: none), once until the next
 * overlay_start(), from the writing vCPU's thread; a write that finds it
 * full waits (its vCPU in the call) until one of start, clear or fold
 * empties it, or until the VM is paused or stops (then the guest calls
 * again: RM_HC_DISK_EAGAIN); overlay_clear() forgets them (a checkpoint
 * replaced the replica's state) and returns how many sectors it forgot;
 * overlay_sectors() says how many it holds (any thread); overlay_fold()
 * writes them into the image (*@sectors of them), syncs, and ends the
 * overlay (a takeover).  Without a disk: nothing to do, 0.
 */
int rm_vm_disk_overlay_start(struct rm_vm *vm, uint64_t max_bytes,
                             void (*ask)(void *opaque, const char *why),
                             void *ask_opaque, struct rm_error *err);
uint64_t rm_vm_disk_overlay_clear(struct rm_vm *vm);
uint64_t rm_vm_disk_overlay_sectors(struct rm_vm *vm);
int rm_vm_disk_overlay_fold(struct rm_vm *vm, uint64_t *sectors,
                            struct rm_error *err);

/*
 * COLO: where the guest's network input comes from instead of its TAP (the
 * replica reads the frames mirrored from the primary: colo/input_queue.h).
 * poll_fd is readable while a frame waits; read() copies the next frame
 * into @buf (truncated to @cap) and returns its length, 0 when none waits.
 */
struct rm_vm_net_in {
    void *opaque;
    int poll_fd;
    ssize_t (*read)(void *opaque, void *buf, size_t cap);
};
/* Set the input source (NULL: the TAP again).  Only while the VM is
 * paused (or before it first runs): vCPU 0 reads it unlocked. */
void rm_vm_set_net_in(struct rm_vm *vm, const struct rm_vm_net_in *in);
/*
 * COLO: called on vCPU 0's thread with every frame the guest receives,
 * once it is in guest memory and before the guest sees it, in order (the
 * primary mirrors them to the replica).  @frame is guest memory, valid
 * during the call.  NULL: none.  Only while the VM is paused (or before
 * it first runs).
 */
typedef void (*rm_vm_net_in_tap_fn)(void *opaque, const void *frame,
                                    size_t len);
void rm_vm_set_net_in_tap(struct rm_vm *vm, rm_vm_net_in_tap_fn fn,
                          void *opaque);
/* Change where guest output goes (netbuf plugs in here). */
void rm_vm_set_net_out(struct rm_vm *vm, rm_vm_net_out_fn fn, void *opaque);
/* Write a frame to the TAP (the default net_out; for netbuf's sink). */
int rm_vm_tap_write(void *vm, const void *frame, size_t len);

/*
 * vCPU state as a versioned blob (RM_REC_KVM_VCPU body after its header):
 * registers, special registers, FPU, XSAVE, XCRs, MSRs (TSC included),
 * pending events, debug registers.  The VM must be paused.
 * get: *blob malloc'd (caller frees).  check: validate without applying.
 */
int rm_vm_get_vcpu_state(struct rm_vm *vm, uint32_t idx, void **blob,
                         size_t *len, struct rm_error *err);
int rm_vm_check_vcpu_state(const void *blob, size_t len,
                           struct rm_error *err);
int rm_vm_set_vcpu_state(struct rm_vm *vm, uint32_t idx, const void *blob,
                         size_t len, struct rm_error *err);

/* Device state (RM_REC_KVM_DEVICE): clock, console, net, guest stats. */
#define RM_KVM_DEV_CLOCK 1u
#define RM_KVM_DEV_CONSOLE 2u
#define RM_KVM_DEV_NET 3u
#define RM_KVM_DEV_STATS 4u
#define RM_KVM_DEV_LAYOUT 1u
int rm_vm_get_device_state(struct rm_vm *vm, uint32_t dev, void *buf,
                           size_t *len);
int rm_vm_check_device_state(uint32_t dev, uint32_t version,
                             const void *buf, size_t len,
                             struct rm_error *err);
int rm_vm_set_device_state(struct rm_vm *vm, uint32_t dev, const void *buf,
                           size_t len);

/* Tests only: stop merging VMM-written pages into harvests, to prove that
 * the test that checks them can fail. */
void rm_vm_debug_drop_vmm_dirty(struct rm_vm *vm, bool drop);
/* Tests only: leave hot pages out of the harvest (must be caught). */
void rm_vm_debug_drop_hot(struct rm_vm *vm, bool drop);
/* Pages now hot (left writable, reported by every harvest). */
uint64_t rm_vm_hot_pages(const struct rm_vm *vm);
/* Tests only: how many of the @count pages from @first_pfn are hot (pages
 * past the end of guest memory count as not hot). */
uint64_t rm_vm_debug_hot_in(const struct rm_vm *vm, uint64_t first_pfn,
                            uint64_t count);

/* Bench/diagnostics: the KVM dirty-log capability in use. */
const char *rm_vm_dirty_log_mode(const struct rm_vm *vm);

#endif
