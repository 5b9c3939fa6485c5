/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's private state, shared by the files that implement
 * backends/kvm/vmm.h and by no one else:
 *
 *   vmm.c         the VM object's life, memory, accessors
 *   vm_config.c   rm_vm_config_default / rm_vm_config_load
 *   vcpu.c        the vCPU thread loop, kick/park, x86 setup
 *   vm_load.c     the ELF loader
 *   hypercall.c   hc_* and their dispatch from port I/O and MMIO exits
 *   dirty.c       dirty rings, the bitmap log, harvests, hot pages
 *   vm_net.c      the TAP, the guest's output path, announce
 *   vcpu_state.c  vCPU state blobs
 *   devices.c     the guest clock and the device state records
 *   disk.c        the block device (disk.h)
 *
 * Each of them defines RM_LOG_PREFIX "vmm" before its first include.
 */
#ifndef REMUS_BACKENDS_KVM_VMM_PRIV_H
#define REMUS_BACKENDS_KVM_VMM_PRIV_H

#include <linux/if.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/kvm/console.h"
#include "backends/kvm/disk.h"
#include "backends/kvm/vmm.h"
#include "common/err.h"
#include "common/sr.h"

#define MAX_MEM (4ull << 30)
#define KICK_SIGNAL SIGUSR1
/* x86's dirty ring lives at this page offset of the vCPU fd (the arch
 * header of older uapi packages does not define it). */
#define DIRTY_RING_PGOFF 64
#define DIRTY_RING_ENTRIES 4096u

struct vcpu_blob;   /* vcpu_state.c */

struct vcpu {
    struct rm_vm *vm;
    uint32_t idx;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool started;
    struct kvm_dirty_gfn *ring;   /* dirty_ring mode */
    uint32_t ring_fetch;
    pthread_mutex_t ring_lock;
    /* The vCPU's state, read by its own thread as it parks for a pause
     * (the vCPUs read theirs in parallel, off the pauser's critical
     * path); valid until the resume or a set_vcpu_state. */
    struct vcpu_blob *snap;
    bool snap_valid;
    /* rm_now_ns() in this vCPU's last park: the pause request seen, the
     * port I/O completed, the state read (rm_vm_suspend_parts) */
    uint64_t t_seen, t_io, t_state;
};

struct rm_vm {
    struct rm_vm_config cfg;
    char name[64], cmdline[512], tap[IFNAMSIZ];
    int kvm_fd, vm_fd, tap_fd, console_fd, kick_fd, stop_fd;
    size_t run_size;
    uint8_t *mem;
    uint64_t mem_bytes, nr_pfns;
    struct vcpu vcpus[RM_KVM_MAX_VCPUS];
    uint32_t nr_vcpus;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool pause_req;          /* under lock; read racily as a hint */
    bool urgent;             /* under lock: vCPUs at SCHED_FIFO (pause) */
    bool urgent_refused;     /* under lock: no CAP_SYS_NICE, said once */
    uint32_t parked;
    bool stopping;
    bool ended;
    enum rm_vm_end end_kind;
    int64_t exit_code;
    char end_reason[160];

    bool logdirty;
    bool drop_vmm_dirty;         /* tests only */
    unsigned long *vmm_dirty;    /* pages the VMM wrote (atomic OR) */
    unsigned long *ring_dirty;   /* collected from the dirty rings */
    unsigned long *scratch_bm;
    /* hot pages (manual-clear mode): see rm_vm_config.hot_pages_max */
    unsigned long *hot_bm;       /* left writable, never cleared */
    unsigned long *clear_bm;     /* what one harvest re-protects */
    uint8_t *hot_streak;         /* per-page hotness score */
    uint64_t hot_count;
    uint64_t harvests;
    bool drop_hot;               /* tests only */

    int64_t clock_offset_ns;     /* guest = host monotonic + offset */
    uint64_t paused_at_ns;       /* guest time frozen while paused */
    uint64_t resumed_ns;         /* rm_now_ns() the last resume released
                                    the vCPUs (under lock) */
    /* rm_now_ns() in the last rm_vm_pause(): entered, kicks sent,
     * returned; and the vCPU that parked last (under lock) */
    uint64_t pause_t_enter, pause_t_kicked, pause_t_return;
    uint32_t pause_last_vcpu;

    pthread_mutex_t stats_lock;
    struct rm_hc_stats stats;
    uint64_t console_bytes, tx_frames, rx_frames, tx_dropped;
    struct rm_console console;     /* escapes and bounds console output */

    rm_vm_net_out_fn net_out;
    void *net_out_opaque;
    /* COLO (set only while paused; vCPU 0 reads them): the input source
     * instead of the TAP (read NULL: the TAP), and the input tap. */
    struct rm_vm_net_in net_in;
    rm_vm_net_in_tap_fn net_in_tap;
    void *net_in_tap_opaque;

    struct vm_disk disk;           /* disk.c */

    /* Host pages taken out of service (offline.c): kept mapped here so
     * that the host does not hand them out again while we run. */
    void **quarantine;
    size_t nr_quarantine;
};

/* Is [gpa, gpa + len) inside guest memory? */
static inline bool gpa_ok(const struct rm_vm *vm, uint64_t gpa, uint64_t len)
{
    return gpa < vm->mem_bytes && len <= vm->mem_bytes - gpa;
}

/* ---------------------------------------------------------------- vmm.c */

/* Register guest memory as KVM slot 0, with dirty logging on or off.
 * 0 or -errno. */
int set_region(struct rm_vm *vm, bool logdirty);

/* ---------------------------------------------------------------- vcpu.c */

/* End the VM: the first call sets how (@kind), the exit code and the
 * reason (rm_vm_end_reason()); every call stops the vCPUs and wakes
 * rm_vm_wait(). */
void end_vm(struct rm_vm *vm, enum rm_vm_end kind, int64_t code,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* KICK_SIGNAL's handler: does nothing; it is there to interrupt KVM_RUN
 * (installed without SA_RESTART). */
void kick_handler(int sig);
/* A vCPU thread (arg: its struct vcpu): runs the guest, serves its exits,
 * parks while a pause is requested, returns once the VM is stopping. */
void *vcpu_main(void *arg);
/* Get every started vCPU out of KVM_RUN and out of a hypercall poll. */
void kick_all(struct rm_vm *vm);
/* Write the identity-mapped page tables (and the hypercall window) and
 * the GDT with its TSS into guest memory. */
void build_tables(struct rm_vm *vm);
/* Set @vc into 64-bit mode at CPL3 at @entry (rdi: boot info, rsi: its
 * index), with a fresh FPU.  0 or -errno. */
int setup_vcpu_regs(struct rm_vm *vm, struct vcpu *vc, uint64_t entry,
                    struct rm_error *err);
/* Give @vc the CPUID that KVM supports.  0 or -errno. */
int set_cpuid(struct rm_vm *vm, struct vcpu *vc, struct rm_error *err);

/* ---------------------------------------------------------------- vm_load.c */

/* Load vm->cfg.image (a static x86-64 ELF; every segment inside guest
 * memory above 1 MiB) and return its entry point.  0 or -errno. */
int load_elf(struct rm_vm *vm, uint64_t *entry, struct rm_error *err);

/* ---------------------------------------------------------------- hypercall.c */

/* Serve a KVM_EXIT_IO / KVM_EXIT_MMIO exit of @vc as a hypercall.  0, the
 * hypercall's -errno (-EFAULT: a bad guest address), or -EIO when the
 * exit is no hypercall (the VM is then ended as crashed). */
int handle_io(struct rm_vm *vm, struct vcpu *vc);
int handle_mmio(struct rm_vm *vm, struct vcpu *vc);

/* ---------------------------------------------------------------- dirty.c */

/* Record that the VMM wrote [gpa, gpa + len) (merged into the next
 * harvest).  Any thread. */
void mark_vmm_dirty(struct rm_vm *vm, uint64_t gpa, uint64_t len);
/* Move the entries KVM published in @vc's dirty ring into vm->ring_dirty
 * and hand the slots back.  The harvester's or @vc's own thread. */
void collect_ring(struct rm_vm *vm, struct vcpu *vc);

/* ---------------------------------------------------------------- vm_net.c */

/* Open the TAP vm->cfg.tap (in vm->cfg.tap_netns when set) into
 * vm->tap_fd, link up.  0 or -errno. */
int open_tap(struct rm_vm *vm, struct rm_error *err);

/* ---------------------------------------------------------------- vcpu_state.c */

/* A buffer for one vCPU's state (malloc'd; NULL when out of memory). */
struct vcpu_blob *alloc_vcpu_blob(void);
/* Read the state of the vCPU behind @fd into @b.  0 or -errno. */
int read_vcpu_blob(int fd, struct vcpu_blob *b);

#endif
