/* SPDX-License-Identifier: MIT */
/* COLO's disk overlay (backends/kvm/disk_overlay.h): the replica's writes
 * stay in memory over the image, its reads see them, a checkpoint clears
 * them, a takeover folds them into the image; its bound is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/kvm/disk_overlay.h"
#include "common/io.h"

#define DISK (64u * 1024)

/* A 64 KiB image of 0xee bytes (unlinked: gone with its fd). */
static int image(void)
{
    char path[] = "/tmp/remus-overlay-XXXXXX";
    uint8_t buf[DISK];
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(rm_pio_all(fd, buf, sizeof(buf), 0, true), 0);
    return fd;
}

/* What the guest reads: the image, then the overlay on top. */
static void guest_read(int fd, const struct rm_disk_overlay *ov, uint64_t off,
                       uint8_t *buf, uint64_t len)
{
    assert_int_equal(rm_pio_all(fd, buf, len, off, false), 0);
    rm_disk_overlay_read(ov, off, buf, len);
}

static void fill(uint8_t *b, uint8_t v, size_t n) { memset(b, v, n); }

static void test_writes_stay_over_the_image(void **state)
{
    int fd = image();
    struct rm_disk_overlay *ov = rm_disk_overlay_new(0);
    uint8_t w[3 * 512], r[8192], img[8192];
    size_t i;

    (void)state;
    assert_non_null(ov);
    /* three sectors across a chunk boundary: 3584 .. 5120 */
    fill(w, 0x11, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 3584, w, sizeof(w)), 0);
    assert_int_equal(rm_disk_overlay_sectors(ov), 3);
    assert_int_equal(rm_disk_overlay_bytes(ov), 2 * RM_OVERLAY_CHUNK);
    /* the image is untouched */
    assert_int_equal(rm_pio_all(fd, img, sizeof(img), 0, false), 0);
    for (i = 0; i < sizeof(img); i++)
        assert_int_equal(img[i], 0xee);
    /* the guest sees its writes, and the image around them */
    guest_read(fd, ov, 0, r, sizeof(r));
    for (i = 0; i < sizeof(r); i++)
        assert_int_equal(r[i], i >= 3584 && i < 5120 ? 0x11 : 0xee);
    /* a discard reads as zeros */
    assert_int_equal(rm_disk_overlay_discard(ov, 0, 1024), 0);
    guest_read(fd, ov, 0, r, 2048);
    for (i = 0; i < 2048; i++)
        assert_int_equal(r[i], i < 1024 ? 0 : 0xee);
    /* a checkpoint: the image again */
    rm_disk_overlay_clear(ov);
    assert_int_equal(rm_disk_overlay_bytes(ov), 0);
    guest_read(fd, ov, 0, r, sizeof(r));
    for (i = 0; i < sizeof(r); i++)
        assert_int_equal(r[i], 0xee);
    rm_disk_overlay_free(ov);
    close(fd);
}

static void test_fold(void **state)
{
    int fd = image();
    struct rm_disk_overlay *ov = rm_disk_overlay_new(0);
    uint8_t w[512], img[DISK];
    size_t i;

    (void)state;
    fill(w, 0x22, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 512, w, 512), 0);
    fill(w, 0x33, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 40960 + 1536, w, 512), 0);
    assert_int_equal(rm_disk_overlay_write(ov, 40960 + 2048, w, 512), 0);
    fill(w, 0x44, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 512, w, 512), 0); /* again */
    /* two runs of sectors in one chunk */
    fill(w, 0x66, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 8192, w, 512), 0);
    assert_int_equal(rm_disk_overlay_write(ov, 8192 + 1024, w, 512), 0);
    assert_int_equal(rm_disk_overlay_fold(ov, fd), 0);
    assert_int_equal(rm_disk_overlay_bytes(ov), 0);
    assert_int_equal(rm_pio_all(fd, img, sizeof(img), 0, false), 0);
    for (i = 0; i < sizeof(img); i++) {
        uint8_t want = 0xee;

        if (i >= 512 && i < 1024)
            want = 0x44;
        else if (i >= 40960 + 1536 && i < 40960 + 2560)
            want = 0x33;
        else if ((i >= 8192 && i < 8704) || (i >= 9216 && i < 9728))
            want = 0x66;
        assert_int_equal(img[i], want);
    }
    rm_disk_overlay_free(ov);
    close(fd);
}

/* Past its bound a write is refused whole, and what it held stays: for
 * now (-ENOSPC: the caller waits for a clear) when an empty overlay
 * would hold it, for good (-EFBIG) when the chunks it spans would not. */
static void test_bound(void **state)
{
    struct rm_disk_overlay *ov = rm_disk_overlay_new(2 * RM_OVERLAY_CHUNK);
    uint8_t w[3 * RM_OVERLAY_CHUNK];

    (void)state;
    fill(w, 0x55, sizeof(w));
    assert_int_equal(rm_disk_overlay_write(ov, 0, w, 2 * RM_OVERLAY_CHUNK), 0);
    /* a rewrite of held chunks fits */
    assert_int_equal(rm_disk_overlay_write(ov, 512, w, 1024), 0);
    assert_int_equal(rm_disk_overlay_write(ov, 8192, w, 2 * 4096), -ENOSPC);
    assert_int_equal(rm_disk_overlay_discard(ov, 8192, 512), -ENOSPC);
    assert_int_equal(rm_disk_overlay_write(ov, 4096, w, 3 * 4096), -EFBIG);
    /* two chunks' worth of bytes across three chunks */
    assert_int_equal(rm_disk_overlay_write(ov, 512, w, 2 * 4096), -EFBIG);
    assert_int_equal(rm_disk_overlay_bytes(ov), 2 * RM_OVERLAY_CHUNK);
    rm_disk_overlay_clear(ov);
    assert_int_equal(rm_disk_overlay_write(ov, 8192, w, 2 * 4096), 0);
    assert_int_equal(rm_disk_overlay_write(ov, 4096, w, 3 * 4096), -EFBIG);
    rm_disk_overlay_free(ov);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_stay_over_the_image),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_bound),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
