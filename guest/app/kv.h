/* SPDX-License-Identifier: MIT */
/*
 * The key-value store's index (in guest memory) and, when the VM has a
 * disk, its durable copy (guest/disk/kvlog.h): a change is on the disk
 * before it is applied in memory and acknowledged.  vCPU 0 only.
 */
#ifndef REMUS_GUEST_KV_H
#define REMUS_GUEST_KV_H

#include <stddef.h>
#include <stdint.h>

#include "guest/disk/kvlog.h"

/* Open the disk (if any) and replay its log into the index; @format:
 * format the disk whatever it holds.  Says what it did on the console. */
void kv_boot(int format, uint64_t seed);
/* The value of a key (0 when missing). */
uint64_t kv_get(const char *key, size_t len);
/* Set @key to @v (durably first when there is a disk).  NULL, or the
 * error word of the reply: "full", "disk-full", "disk-io", "disk-bad". */
const char *kv_set(const char *key, size_t len, uint64_t v);
/* The log's state, for DISKCHECK and STATS. */
const struct kvlog *kv_log(void);
/* Compare the disk's log with the index: 0 (*records set) or -1 with the
 * difference in kv_log()->why. */
int kv_diskcheck(uint64_t *records);

/* Keep the log below byte @end of the disk (kvlog_reserve_tail). */
int kv_reserve_disk_tail(uint64_t end);

#endif
