/* SPDX-License-Identifier: MIT */
/*
 * The multiboot build's NIC: an Intel 8254x ("e1000", PCI 8086:100e, as
 * QEMU's -device e1000 models it) driven by MMIO only, polled, without
 * interrupts.  It backs the RM_HC_NET_* and RM_HC_POLL hypercalls of the
 * multiboot runtime (guest/lib/rt.c), so the guest's network stack runs
 * unchanged under QEMU.
 *
 * Machine contract: the device on PCI bus 0 with its BAR0 (memory)
 * assigned below 4 GiB by the firmware (SeaBIOS does).  Its configuration
 * space is found through q35's ECAM at MB_E1000_ECAM_BASE (MMIO) or, when
 * nothing answers there, through configuration mechanism #1 (ports
 * 0xCF8/0xCFC: QEMU's `pc`, i440fx; on PVM-based KVM each such access
 * traps to multiboot.S's #GP handler, slow, but only the probe uses them).
 * The guest identity-maps the low 4 GiB with user pages, so the registers,
 * the descriptor rings and the buffers are reached at virtual == physical
 * addresses from CPL3; after the probe, no port I/O.
 *
 * The network is configured from the kernel command line: ip=A.B.C.D
 * (required: without it the driver stays off and the guest runs without
 * network, as before), netmask=A.B.C.D (default 255.255.255.0),
 * gateway=A.B.C.D (default none).  The MAC is the device's (RAL0/RAH0).
 *
 * Single-threaded: only the network vCPU (vCPU 0) calls these.
 */
#ifndef REMUS_GUEST_MB_E1000_H
#define REMUS_GUEST_MB_E1000_H

#include <stddef.h>
#include <stdint.h>

#include "backends/kvm/guest_abi.h"

#define MB_E1000_ECAM_BASE 0xB0000000ull

/*
 * Find the device on bus 0, enable it, set up both rings and the network
 * configuration.  0 on success (also when already up); -ENODEV (-19) no
 * ip= on the command line or no e1000 found; -EIO (-5) the BAR is not a
 * usable 32-bit memory BAR.  Called once, from the first RM_HC_NET_INFO.
 */
int mb_e1000_init(void);

/* The configuration of an initialised NIC into @ni; -ENODEV if down. */
int mb_e1000_info(struct rm_hc_net_info *ni);

/*
 * Take the oldest received frame: copies at most @cap bytes into @buf
 * (a longer frame is dropped and counts as taken), sets *@len.
 * 0 a frame, 1 none pending, -ENODEV the NIC is down.
 */
int mb_e1000_read(void *buf, size_t cap, size_t *len);

/*
 * Queue one frame (14..1514 bytes) and have the device send it.  0 once
 * the device took it; -EINVAL bad length; -EBUSY (-16) the ring stayed
 * full; -ENODEV the NIC is down.
 */
int mb_e1000_write(const void *buf, size_t len);

/* 1 if a received frame is pending, else 0 (also when down). */
int mb_e1000_rx_pending(void);

#endif
