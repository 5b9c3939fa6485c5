/* SPDX-License-Identifier: MIT */
/*
 * The ABI between the remus micro-VMM (backends/kvm) and its guest
 * (guest/).  Included by both; freestanding (no libc types beyond
 * stdint.h).  Versioned by RM_GUEST_ABI_VERSION in the boot info.
 *
 * Machine model (the VMM sets it up directly, no firmware):
 *   - guest-physical memory [0, mem_bytes), identity-mapped with 2 MiB
 *     pages, every mapping user-accessible (U bit), so the guest runs its
 *     code at CPL3: on PVM-based KVM only CPL3 code runs at native speed.
 *   - every vCPU starts in 64-bit mode at CPL3 at the ELF entry point with
 *     RDI = RM_GUEST_BOOTINFO_GPA, RSI = vCPU index, RSP = 0 (the entry
 *     stub picks its own stack), RFLAGS.IOPL = 3 (port I/O allowed), no
 *     interrupts (RFLAGS.IF = 0, no IDT: a fault is a triple fault, which
 *     the VMM reports as a guest crash).
 *   - the guest image is a static ELF64, linked at RM_GUEST_LOAD_GPA;
 *     every PT_LOAD segment must fit in guest memory (checked by the VMM).
 *
 * Hypercalls: the guest writes the 32-bit guest-physical address of the
 * call's argument struct with one 32-bit store to RM_HC_MMIO_BASE +
 * 8 * call number (an MMIO exit: the VMM maps that 2 MiB window, user-
 * accessible, outside every memory slot).  `outl` to I/O port
 * RM_HC_PORT_BASE + call number is accepted too, for guests that run with
 * IOPL 3 (PVM-based KVM drops an IOPL set from outside, so our guest uses
 * MMIO).  The VMM checks that the struct (and every buffer it names) lies
 * inside guest memory before touching it; a bad address makes the VMM stop
 * the guest with an error.  Results are written back into the struct.
 * No call is re-entrant across vCPUs except as noted.
 */
#ifndef REMUS_GUEST_ABI_H
#define REMUS_GUEST_ABI_H

#include <stdint.h>

#define RM_GUEST_ABI_VERSION 1u

/* Fixed guest-physical layout */
#define RM_GUEST_BOOTINFO_GPA 0x1000ull   /* struct rm_guest_bootinfo */
#define RM_GUEST_PAGETABLE_GPA 0x10000ull /* VMM-built tables, 64 KiB max */
#define RM_GUEST_LOAD_GPA 0x100000ull     /* image link/load address */
#define RM_GUEST_MIN_MEM (4ull << 20)

#define RM_HC_PORT_BASE 0x500u
#define RM_HC_MMIO_BASE 0x100000000ull   /* 4 GiB */
#define RM_HC_MMIO_SIZE 0x200000ull
enum rm_hypercall {
    RM_HC_PUTS = 0,      /* struct rm_hc_puts: console output */
    RM_HC_CLOCK = 1,     /* struct rm_hc_clock: monotonic time */
    RM_HC_NET_INFO = 2,  /* struct rm_hc_net_info */
    RM_HC_NET_WRITE = 3, /* struct rm_hc_net_io: send one frame */
    RM_HC_NET_READ = 4,  /* struct rm_hc_net_io: receive one frame */
    RM_HC_POLL = 5,      /* struct rm_hc_poll: block for a frame/deadline */
    RM_HC_HALT = 6,      /* struct rm_hc_halt: the guest exits */
    /* RM_HC_POLL from a vCPU other than 0 only sleeps until the deadline
     * (only vCPU 0 serves the network). */
    RM_HC_STATS = 7,     /* struct rm_hc_stats: guest publishes counters */
    /* The block device (struct rm_hc_disk_info / rm_hc_disk_io, below). */
    RM_HC_DISK_INFO = 8,
    RM_HC_DISK_READ = 9,
    RM_HC_DISK_WRITE = 10,
    RM_HC_DISK_FLUSH = 11,
    RM_HC_DISK_DISCARD = 12,
    RM_HC_COUNT
};

struct rm_guest_bootinfo {
    uint32_t abi_version;      /* RM_GUEST_ABI_VERSION */
    uint32_t nr_vcpus;
    uint64_t mem_bytes;
    uint64_t tsc_khz;          /* 0 if unknown */
    char cmdline[512];         /* NUL-terminated, "key=value key=value" */
};

struct rm_hc_puts {
    uint64_t data;   /* in: gpa of the bytes */
    uint64_t len;    /* in */
};

struct rm_hc_clock {
    uint64_t monotonic_ns; /* out: guest monotonic clock; continues across
                              save/restore and failover, never backwards */
};

struct rm_hc_net_info {
    uint8_t mac[6];   /* out */
    uint16_t mtu;     /* out: 1500 */
    uint32_t ipv4;    /* out: network order, 0 if unconfigured */
    uint32_t netmask; /* out: network order */
    uint32_t gateway; /* out: network order, 0 if none */
};

struct rm_hc_net_io {
    uint64_t data;    /* in: gpa of the frame buffer */
    uint64_t len;     /* in: WRITE: frame length; READ: buffer size.
                         out (READ): frame length */
    int32_t ret;      /* out: 0 ok; 1 (READ) no frame pending; <0 error */
    uint32_t pad;
};

struct rm_hc_poll {
    uint64_t deadline_ns; /* in: monotonic_ns to wake at (0: don't block) */
    uint32_t ready;       /* out: 1 if a frame is pending */
    uint32_t pad;
};

struct rm_hc_halt {
    int64_t exit_code;    /* in */
};

/*
 * Counters the guest publishes so that tests and benchmarks can read the
 * workload's progress without the network (e.g. page-writes done).
 */
struct rm_hc_stats {
    uint64_t page_writes;     /* in: total page-writes done so far */
    uint64_t kv_ops;          /* in: key-value operations applied */
    uint64_t kv_seq;          /* in: last sequence number issued */
};

/*
 * The block device: at most one disk (number 0), a raw image on the host.
 * Every call is synchronous: it returns once the host has done it (a
 * WRITE with RM_HC_DISK_FUA, and a FLUSH, once the data is on stable
 * storage; a plain WRITE is durable only after a later FLUSH).  Offsets
 * and lengths are bytes, multiples of `sector`, length > 0 and at most
 * `max_io`, inside the disk.  Errors come back in `ret` (negated Linux
 * errno values): RM_HC_DISK_ENODEV no such disk, RM_HC_DISK_EINVAL bad
 * alignment / length / flags, RM_HC_DISK_ERANGE beyond the end,
 * RM_HC_DISK_EFAULT a data buffer outside guest memory, RM_HC_DISK_EIO
 * the host failed (the disk may hold the write or not), RM_HC_DISK_EAGAIN
 * nothing was done, call again (a COLO replica's WRITE or DISCARD that
 * waited for room in its disk overlay when the host paused the VM).  The
 * argument struct itself outside guest memory stops the guest, as for
 * every call.
 * READ: the data arrives in [data, data + len).  DISCARD: the range reads
 * as zeros afterwards.  No call reaches the disk when ret != 0 except
 * EIO.  Several vCPUs may call at once: the calls are serialised.
 */
#define RM_HC_DISK_PRESENT 0x1u   /* info.flags: the disk exists */
#define RM_HC_DISK_READONLY 0x2u  /* info.flags: WRITE/DISCARD refused;
                                     never set today (the VMM refuses a
                                     read-only image at start) */
#define RM_HC_DISK_FUA 0x1u       /* io.flags (WRITE): durable on return */
#define RM_HC_DISK_ENODEV (-19)
#define RM_HC_DISK_EINVAL (-22)
#define RM_HC_DISK_ERANGE (-34)
#define RM_HC_DISK_EFAULT (-14)
#define RM_HC_DISK_EIO (-5)
#define RM_HC_DISK_EAGAIN (-11)

struct rm_hc_disk_info {
    uint32_t disk;        /* in: 0 */
    uint32_t flags;       /* out: RM_HC_DISK_PRESENT (0: no such disk),
                             RM_HC_DISK_READONLY */
    uint64_t size;        /* out: bytes, a multiple of sector */
    uint32_t sector;      /* out: 512 */
    uint32_t max_io;      /* out: largest READ/WRITE/DISCARD length */
};

struct rm_hc_disk_io {
    uint32_t disk;        /* in: 0 */
    uint32_t flags;       /* in: WRITE: RM_HC_DISK_FUA or 0; others 0 */
    uint64_t offset;      /* in: bytes (READ, WRITE, DISCARD) */
    uint64_t len;         /* in: bytes (READ, WRITE, DISCARD) */
    uint64_t data;        /* in: gpa of the buffer (READ, WRITE) */
    int32_t ret;          /* out: 0 or an RM_HC_DISK_E* value */
    uint32_t pad;
};

#endif
