/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's disk on the real guest (guest/disk): the observer sees
 * every write after the image holds it and before the guest acknowledges
 * it (FUA, offsets, order), a failing observer fails the guest's write,
 * a replica's disk_override is opened instead of the description's disk,
 * the guest pages the VMM fills on a disk read are in the dirty harvest,
 * and a COLO replica's write that finds its overlay full waits for room.
 * Runs in a private network namespace (root and /dev/kvm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/kvm_unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/vmm.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sr.h"
#include "drill/kvclient.h"
#include "tests/support/testutil.h"

#define DISK_BYTES (64u << 10)

static char image[PATH_MAX];

struct obs_log {
    int fd;                 /* the image, to compare with what we are told */
    int fail;               /* return -EIO */
    uint64_t writes, fua_writes, discards, flushes, stale, last_off;
    int in_order;           /* record writes came at rising offsets */
};

static int obs_write(void *opaque, uint32_t disk, uint64_t off,
                     const void *data, uint32_t len, bool fua)
{
    struct obs_log *o = opaque;
    uint8_t *now = malloc(len);

    assert_int_equal(disk, 0);
    assert_non_null(now);
    /* The image already holds the write. */
    if (pread(o->fd, now, len, (off_t)off) != (ssize_t)len ||
        memcmp(now, data, len))
        o->stale++;
    free(now);
    if (off && off <= o->last_off)
        o->in_order = 0;
    if (off)
        o->last_off = off;
    o->writes++;
    o->fua_writes += fua;
    return o->fail ? -EIO : 0;
}

static int obs_discard(void *opaque, uint32_t disk, uint64_t off,
                       uint64_t len)
{
    struct obs_log *o = opaque;

    (void)off;
    (void)len;
    assert_int_equal(disk, 0);
    o->discards++;
    return o->fail ? -EIO : 0;
}

static int obs_flush(void *opaque, uint32_t disk)
{
    struct obs_log *o = opaque;

    assert_int_equal(disk, 0);
    o->flushes++;
    return o->fail ? -EIO : 0;
}

/* A zeroed image in /tmp (its path in @path), open read-only in *fd. */
static void make_image(char *path, size_t len, int *fd)
{
    int w;

    snprintf(path, len, "/tmp/test_kvm_disk.XXXXXX");
    w = mkstemp(path);
    assert_true(w >= 0);
    assert_int_equal(ftruncate(w, DISK_BYTES), 0);
    close(w);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(*fd >= 0);
}

static struct rm_vm *boot(const char *disk, const char *override,
                          const struct rm_vm_disk_observer *obs,
                          struct kv_client *c)
{
    struct rm_vm_config cfg;
    struct rm_error err = { 0 };
    struct rm_vm *vm = NULL;
    struct kv_reply r;

    rm_vm_config_default(&cfg);
    cfg.image = image;
    cfg.tap = "rmdisk0";
    cfg.ipv4 = htonl(0x0a4d0002);       /* 10.77.0.2 */
    cfg.netmask = htonl(0xffffff00);
    cfg.console_path = "/dev/null";
    cfg.disk = disk;
    cfg.disk_override = override;
    if (rm_vm_create(&cfg, &vm, &err))
        fail_msg("%s", rm_error_str(&err));
    if (obs)
        rm_vm_set_disk_observer(vm, obs);
    assert_int_equal(system("ip addr add 10.77.0.1/24 dev rmdisk0 2>/dev/null;"
                            " ip link set rmdisk0 up"), 0);
    assert_int_equal(rm_vm_start(vm, &err), 0);
    assert_int_equal(kv_open(c, 5, "10.77.0.2", 7000), 0);
    assert_int_equal(kv_call(c, "STATS", &r, 50, rm_now_ns() + 10000000000ull,
                             NULL), 0);
    return vm;
}

static void call(struct kv_client *c, const char *cmd, struct kv_reply *r)
{
    assert_int_equal(kv_call(c, cmd, r, 50, rm_now_ns() + 5000000000ull,
                             NULL), 0);
}

static void test_observer(void **state)
{
    struct obs_log o = { .in_order = 1 };
    struct rm_vm_disk_observer obs = { &o, obs_write, obs_discard,
                                       obs_flush };
    struct rm_vm_disk_stats st;
    struct kv_client c;
    struct kv_reply r;
    struct rm_vm *vm;
    char path[64], cmd[32];
    int i;

    (void)state;
    make_image(path, sizeof(path), &o.fd);
    /* The replica's image replaces the description's (which is absent). */
    vm = boot("/nonexistent/disk.img", path, &obs, &c);
    assert_string_equal(rm_vm_disk_path(vm), path);
    assert_int_equal(rm_vm_disk_size(vm), DISK_BYTES);
    assert_true(rm_vm_disk_fd(vm) >= 0);
    /* The first boot formatted: a discard, a flush, the header (FUA). */
    assert_int_equal(o.discards, 1);
    assert_int_equal(o.flushes, 1);
    assert_int_equal(o.writes, 1);
    assert_int_equal(o.fua_writes, 1);
    for (i = 0; i < 10; i++) {
        snprintf(cmd, sizeof(cmd), "SET k%d %d", i, i + 100);
        call(&c, cmd, &r);
        assert_true(r.ok);
        /* Acknowledged only after the observer saw it. */
        assert_int_equal(o.writes, 2 + i);
    }
    printf("observer: %llu writes (%llu FUA), %llu stale\n",
           (unsigned long long)o.writes, (unsigned long long)o.fua_writes,
           (unsigned long long)o.stale);
    assert_int_equal(o.fua_writes, 11);
    assert_int_equal(o.stale, 0);
    assert_true(o.in_order);
    assert_int_equal(o.last_off, 10 * 512);
    /* A failing observer fails the guest's write: nothing acknowledged. */
    o.fail = 1;
    call(&c, "SET k0 7", &r);
    assert_false(r.ok);
    assert_non_null(strstr(r.text, "ERR disk-io"));
    o.fail = 0;
    call(&c, "GET k0", &r);
    assert_int_equal(r.value, 100);
    rm_vm_disk_stats(vm, &st);
    assert_int_equal(st.writes, 11);
    assert_int_equal(st.errors, 1);
    assert_true(st.reads >= 1);
    rm_vm_set_disk_observer(vm, NULL);
    call(&c, "SET k0 8", &r);
    assert_true(r.ok);
    assert_int_equal(o.writes, 12);     /* removed: not called again */
    kv_close(&c);
    rm_vm_destroy(vm);
    close(o.fd);
    unlink(path);
}

/* Guest pages the VMM filled on a disk read are in the harvest. */
static void test_read_pages_are_dirty(void **state)
{
    struct kv_client c;
    struct kv_reply r;
    struct rm_vm *vm;
    uint64_t pages, i, changed = 0, miss = 0;
    unsigned long *bm;
    uint8_t *before;
    char path[64], cmd[32];
    int fd;

    (void)state;
    make_image(path, sizeof(path), &fd);
    vm = boot(path, NULL, NULL, &c);
    for (i = 0; i < 60; i++) {
        snprintf(cmd, sizeof(cmd), "SET r%llu %llu", (unsigned long long)i,
                 (unsigned long long)i * 3 + 1);
        call(&c, cmd, &r);
        assert_true(r.ok);
    }
    pages = rm_vm_mem_bytes(vm) / 4096;
    before = malloc(rm_vm_mem_bytes(vm));
    bm = calloc(RM_BITMAP_LONGS(pages), sizeof(long));
    assert_non_null(before);
    assert_non_null(bm);
    assert_int_equal(rm_vm_logdirty(vm, true), 0);
    rm_vm_pause(vm);
    assert_int_equal(rm_vm_harvest_dirty(vm, bm), 0);   /* clear */
    memcpy(before, rm_vm_mem(vm), rm_vm_mem_bytes(vm));
    rm_vm_resume(vm);
    call(&c, "DISKCHECK", &r);       /* reads the whole log into memory */
    assert_true(r.ok);
    assert_non_null(strstr(r.text, "records=60 "));
    rm_vm_pause(vm);
    memset(bm, 0, RM_BITMAP_LONGS(pages) * sizeof(long));
    assert_int_equal(rm_vm_harvest_dirty(vm, bm), 0);
    for (i = 0; i < pages; i++) {
        if (!memcmp(before + i * 4096, rm_vm_mem(vm) + i * 4096, 4096))
            continue;
        changed++;
        miss += !rm_bitmap_test(bm, i);
    }
    printf("disk read: %llu pages changed, %llu not reported\n",
           (unsigned long long)changed, (unsigned long long)miss);
    assert_true(changed > 0);
    assert_int_equal(miss, 0);
    kv_close(&c);
    rm_vm_destroy(vm);
    free(before);
    free(bm);
    close(fd);
    unlink(path);
}

static void count_ask(void *opaque, const char *why)
{
    (void)why;
    (*(int *)opaque)++;
}

/* The overlay's writes counted as waiting: up to 5 s for @n of them. */
static uint64_t wait_waits(struct rm_vm *vm, uint64_t n)
{
    uint64_t until = rm_now_ns() + 5000000000ull;
    struct rm_vm_disk_stats st;

    for (;;) {
        rm_vm_disk_stats(vm, &st);
        if (st.overlay_waits >= n || rm_now_ns() > until)
            return st.overlay_waits;
        rm_sleep_ms(5);
    }
}

/*
 * COLO's replica: a write that finds its overlay full waits (no reply,
 * no error) until a clear empties it; a pause meanwhile parks the vCPU
 * (the guest calls again after the resume); a fold (a takeover) lets it
 * through to the image.  Records go one per sector from sector 1
 * (kvlog.h): with a two-chunk (8 KiB) overlay, records 1-15 fit and
 * record 16 (sector 16, a third chunk) does not.
 */
static void test_overlay_full_waits(void **state)
{
    struct rm_error err = { 0 };
    struct rm_vm_disk_stats st;
    struct kv_client c;
    struct kv_reply r;
    struct rm_vm *vm;
    char path[64], cmd[32];
    uint64_t sectors;
    int fd, i, asks = 0;

    (void)state;
    make_image(path, sizeof(path), &fd);
    vm = boot(path, NULL, NULL, &c);
    assert_int_equal(rm_vm_disk_overlay_start(vm, 8192, count_ask, &asks,
                                              &err), 0);
    for (i = 0; i < 15; i++) {
        snprintf(cmd, sizeof(cmd), "SET f%d %d", i, i + 1);
        call(&c, cmd, &r);
        assert_true(r.ok);
    }
    assert_int_equal(asks, 1);          /* at half: once */
    /* Full: no reply (not an error) while it waits. */
    assert_int_equal(kv_call(&c, "SET f15 16", &r, 50,
                             rm_now_ns() + 300000000ull, NULL), -ETIMEDOUT);
    assert_int_equal(wait_waits(vm, 1), 1);
    /* A pause parks it; after the resume the guest calls again and the
     * write waits again. */
    assert_int_equal(rm_vm_pause(vm), 0);
    assert_int_equal(rm_vm_resume(vm), 0);
    assert_int_equal(wait_waits(vm, 2), 2);
    /* A clear (a checkpoint) lets it in. */
    assert_int_equal(rm_vm_disk_overlay_clear(vm), 15);
    call(&c, "GET f15", &r);
    assert_true(r.ok);
    assert_int_equal(r.value, 16);
    /* Full again (sectors 17-31 fit in two chunks), then a takeover's
     * fold: the waiting write goes to the image. */
    for (i = 16; i < 31; i++) {
        snprintf(cmd, sizeof(cmd), "SET f%d %d", i, i + 1);
        call(&c, cmd, &r);
        assert_true(r.ok);
    }
    assert_int_equal(kv_call(&c, "SET f31 32", &r, 50,
                             rm_now_ns() + 300000000ull, NULL), -ETIMEDOUT);
    assert_int_equal(wait_waits(vm, 3), 3);
    assert_int_equal(rm_vm_pause(vm), 0);
    assert_int_equal(rm_vm_disk_overlay_fold(vm, &sectors, &err), 0);
    assert_int_equal(sectors, 16);      /* records 16-31 */
    assert_int_equal(rm_vm_resume(vm), 0);
    call(&c, "GET f31", &r);
    assert_true(r.ok);
    assert_int_equal(r.value, 32);
    rm_vm_disk_stats(vm, &st);
    printf("overlay: %llu writes waited, %.1f ms in all\n",
           (unsigned long long)st.overlay_waits,
           (double)st.overlay_wait_ns / 1e6);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.overlay_waits, 3);
    /* Its record is on the image now (sector 32). */
    {
        uint8_t sec[512];

        assert_int_equal(pread(fd, sec, sizeof(sec), 32 * 512), 512);
        assert_non_null(memmem(sec, sizeof(sec), "f31", 3));
    }
    kv_close(&c);
    rm_vm_destroy(vm);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observer),
        cmocka_unit_test(test_read_pages_are_dirty),
        cmocka_unit_test(test_overlay_full_waits),
    };

    (void)argc;
    (void)argv;
    return TU_KVM_UNIT_MAIN(tests, image);
}
