/* SPDX-License-Identifier: MIT */
/*
 * The drill's disk (drill.h): the guest keeps its key-value data on a
 * disk, which the primary replicates at each checkpoint onto the
 * secondary's own image.  After the failover the drill asks the replica
 * to compare its disk with its memory (DISKCHECK); then it stops the
 * replica hard (SIGKILL: its host dies too) and cold-boots a fresh guest
 * from a copy of the secondary's image, which must hold every
 * acknowledged operation, no more and no less than the replica served.
 */
#ifndef REMUS_DRILL_DRILL_DISK_H
#define REMUS_DRILL_DRILL_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "drill/kvclient.h"

struct rm_drill_disk {
    char primary[256];    /* DIR/primary.img: the protected VM's disk */
    char replica[256];    /* DIR/replica.img: receive --disk */
    char cold[256];       /* DIR/cold.img: the copy cold-booted */
    unsigned mib;
};

/* Two zeroed images of @mib MiB in @dir (the guest formats its disk at
 * first boot).  0 or -errno with the reason. */
int rm_drill_disk_images(const char *dir, unsigned mib,
                         struct rm_drill_disk *dd, struct rm_error *err);

/* DISKCHECK through @c: 0 with the log's record count in @records, or
 * -EPROTO with the guest's answer (or the silence) in @why. */
int rm_drill_diskcheck(struct kv_client *c, uint64_t *records, char *why,
                       size_t len);

struct rm_drill_cold {
    const char *self;         /* the remus binary */
    const char *image;        /* the guest image */
    const char *dir;          /* the drill's directory (logs) */
    const char *ip;           /* the guest's address and port */
    uint16_t port;
    const char *tap;          /* a TAP on the drill's bridge, free now */
    unsigned memory_mib, vcpus;
    const uint64_t *want;     /* want[i]: key k<i>'s value, n keys */
    unsigned n;
};

/* Copy the replica's image, cold-boot a guest from the copy (remus run),
 * and check every key's value and DISKCHECK.  0 when it holds; -EPROTO
 * with what differs in @why; -errno when it could not run.  @boot_ms gets
 * the time from start to the first answer. */
int rm_drill_cold_boot(const struct rm_drill_disk *dd,
                       const struct rm_drill_cold *c, double *boot_ms,
                       uint64_t *records, char *why, size_t len);

#endif
