/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's block device (private to backends/kvm): a raw image
 * file or block device behind the RM_HC_DISK_* hypercalls of guest_abi.h.
 * The public side (the observer, fd, size) is in vmm.h.
 */
#ifndef REMUS_BACKENDS_KVM_DISK_H
#define REMUS_BACKENDS_KVM_DISK_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/kvm/vmm.h"
#include "common/err.h"

struct vm_disk {
    int fd;                  /* -1: no disk */
    uint64_t size;           /* bytes, a multiple of RM_DISK_SECTOR */
    char path[PATH_MAX];
    /* Serialises the disk calls; guards obs, stats and ov. */
    pthread_mutex_t lock;
    struct rm_vm_disk_observer obs;
    struct rm_vm_disk_stats stats;
    /* COLO's replica: its writes go here, not to the image (NULL: to the
     * image; disk_overlay.h) */
    struct rm_disk_overlay *ov;
    uint64_t ov_max;         /* its cap */
    void (*ov_ask)(void *opaque, const char *why);  /* at half of it */
    void *ov_ask_opaque;
    bool ov_asked;           /* since overlay_start */
    /* stats.overlay_waits and _wait_ns when it was last emptied: more
     * waits since means it filled (and was said to) since */
    uint64_t ov_waits_mark, ov_wait_ns_mark;
    /* Broadcast when the overlay empties (start, clear, fold): a write
     * that found it full waits on it (with d->lock). */
    pthread_cond_t ov_room;
};

/* Set @d to "no disk" (fd -1) and initialise its lock and condition.
 * 0 or -errno. */
int disk_init(struct vm_disk *d);
/* Open @path read-write as the disk: it must exist, be a regular file or
 * a block device, writable, of a non-zero size that is a multiple of
 * RM_DISK_SECTOR.  0 or -errno with a reason naming @path. */
int disk_open(struct vm_disk *d, const char *path, struct rm_error *err);
/* Close the image (if open) and destroy the lock. */
void disk_close(struct vm_disk *d);

struct rm_vm;
/* Serve hypercall @call (RM_HC_DISK_*) with its argument struct at @gpa.
 * 0 (the outcome in the struct's ret) or -EFAULT when the struct is
 * outside guest memory. */
int hc_disk(struct rm_vm *vm, unsigned call, uint64_t gpa);

#endif
