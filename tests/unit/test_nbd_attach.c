/* SPDX-License-Identifier: MIT */
/*
 * A protection attached to a served disk (nbd/attach.h, nbd/feed.h): every
 * change is in the protection's disk log by the time the client has its
 * reply (P3 on Xen); one protection at a time; a protection that dies
 * leaves a plain disk server whose writes still succeed; a server that
 * goes away, or a feed that speaks nonsense, fails the protection's next
 * cut instead of letting a checkpoint miss a write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ctlsock.h"
#include "common/disklog.h"
#include "common/io.h"
#include "nbd/attach.h"
#include "nbd/export.h"
#include "nbd/feed.h"
#include "nbd/nbd_wire.h"
#include "tests/support/nbd_client.h"

#define SIZE (8u << 20)
#define CTL "disk-unit"

struct served {
    char run_dir[64], image[80];
    struct rm_nbd_export *e;
    struct rm_nbd_attach_point *ap;
    int client, server_fd;
    pthread_t thread;
};

static void *serve_main(void *arg)
{
    struct served *s = arg;
    struct rm_error err = { 0 };

    rm_nbd_serve(s->e, s->server_fd, NULL, NULL, &err);
    close(s->server_fd);
    return NULL;
}

/* A served image with its attach point, and a client connected to it. */
static void serve_up(struct served *s)
{
    struct rm_nbd_params p = { 0 };
    struct rm_error err = { 0 };
    int fd, sv[2];

    memset(s, 0, sizeof(*s));
    snprintf(s->run_dir, sizeof(s->run_dir), "/tmp/remus-attach.XXXXXX");
    assert_non_null(mkdtemp(s->run_dir));
    setenv("REMUS_RUN_DIR", s->run_dir, 1);
    snprintf(s->image, sizeof(s->image), "%s/disk.img", s->run_dir);
    fd = open(s->image, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SIZE), 0);
    close(fd);
    p.image = s->image;
    if (rm_nbd_export_open(&s->e, &p, &err) ||
        rm_nbd_attach_point_open(&s->ap, s->e, s->image, CTL, &err))
        fail_msg("%s", rm_error_str(&err));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s->server_fd = sv[1];
    s->client = sv[0];
    assert_int_equal(pthread_create(&s->thread, NULL, serve_main, s), 0);
    tnbd_negotiate(s->client);
}

static void serve_down(struct served *s)
{
    char path[128];

    tnbd_disconnect(s->client);
    close(s->client);
    pthread_join(s->thread, NULL);
    rm_nbd_attach_point_close(s->ap);
    rm_nbd_export_close(s->e);
    unlink(s->image);
    snprintf(path, sizeof(path), "%s/%s.sock", s->run_dir, CTL);
    unlink(path);
    rmdir(s->run_dir);
}

static struct rm_disklog *new_log(void)
{
    struct rm_disklog_params p = { 0 };
    struct rm_disklog *log = NULL;
    struct rm_error err = { 0 };

    assert_int_equal(rm_disklog_open(&log, &p, &err), 0);
    return log;
}

static uint64_t logged(struct rm_disklog *log)
{
    struct rm_disklog_stats st;

    rm_disklog_get_stats(log, &st);
    return st.logged_bytes;
}

/* Every change is in the log when its reply arrives: no waiting here. */
static void test_changes_logged_before_reply(void **state)
{
    struct rm_disklog *log = new_log();
    struct rm_nbd_attached *a = NULL;
    struct rm_error err = { 0 };
    struct rm_disklog_stats st;
    struct served s;
    uint8_t *big = malloc(3u << 19);
    char reply[256];

    (void)state;
    serve_up(&s);
    if (rm_nbd_attach(CTL, log, 0, &a, &err))
        fail_msg("attach: %s", rm_error_str(&err));
    assert_int_equal(rm_nbd_attached_size(a), SIZE);
    rm_disklog_start(log);
    memset(big, 0x6b, 3u << 19);
    assert_int_equal(tnbd_request(s.client, NBD_CMD_WRITE, 0, 4096, 4096,
                                  big), 0);
    assert_int_equal(logged(log), 4096);
    /* 1.5 MiB with FUA: two pieces, both logged, the epoch a sync one */
    assert_int_equal(tnbd_request(s.client, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA,
                                  1u << 20, 3u << 19, big), 0);
    assert_int_equal(logged(log), 4096 + (3u << 19));
    assert_int_equal(tnbd_request(s.client, NBD_CMD_TRIM, 0, 0, 4096, NULL),
                     0);
    assert_int_equal(tnbd_request(s.client, NBD_CMD_FLUSH, 0, 0, 0, NULL), 0);
    assert_int_equal(rm_disklog_cut(log, 1, &err), 0);
    rm_disklog_get_stats(log, &st);
    assert_int_equal(st.sync_epochs, 1);
    assert_int_equal(rm_ctlsock_request(CTL, "status", -1, reply,
                                        sizeof(reply), &err), 0);
    assert_non_null(strstr(reply, "ok attached"));
    assert_non_null(strstr(reply, "changes=5"));
    rm_nbd_detach(a);
    /* detached: a plain disk, the log sees nothing more */
    assert_int_equal(tnbd_request(s.client, NBD_CMD_WRITE, 0, 0, 4096, big),
                     0);
    assert_int_equal(logged(log), 4096 + (3u << 19));
    assert_int_equal(rm_ctlsock_request(CTL, "status", -1, reply,
                                        sizeof(reply), &err), 0);
    assert_non_null(strstr(reply, "ok detached"));
    rm_disklog_close(log);
    free(big);
    serve_down(&s);
}

/* One protection at a time; after a detach the next one may attach. */
static void test_one_protection_at_a_time(void **state)
{
    struct rm_disklog *l1 = new_log(), *l2 = new_log();
    struct rm_nbd_attached *a1 = NULL, *a2 = NULL;
    struct rm_error err = { 0 };
    struct served s;

    (void)state;
    serve_up(&s);
    assert_int_equal(rm_nbd_attach(CTL, l1, 0, &a1, &err), 0);
    assert_int_not_equal(rm_nbd_attach(CTL, l2, 0, &a2, &err), 0);
    assert_null(a2);
    assert_non_null(strstr(rm_error_str(&err), "attached to a protection "
                                               "already"));
    rm_nbd_detach(a1);
    rm_error_clear(&err);
    if (rm_nbd_attach(CTL, l2, 0, &a2, &err))
        fail_msg("attach after a detach: %s", rm_error_str(&err));
    rm_nbd_detach(a2);
    /* nothing serves this name */
    rm_error_clear(&err);
    assert_int_equal(rm_nbd_attach("disk-none", l1, 1, &a1, &err), -ENOENT);
    assert_non_null(strstr(rm_error_str(&err), "no disk server answers"));
    rm_disklog_close(l1);
    rm_disklog_close(l2);
    serve_down(&s);
}

/* A protection that dies: the next write still succeeds (it is in the
 * image), and another protection can attach. */
static void test_dead_protection_leaves_plain_disk(void **state)
{
    struct rm_disklog *log;
    struct rm_nbd_attached *a = NULL;
    struct rm_error err = { 0 };
    uint8_t b[4096], back[4096];
    struct served s;
    pid_t pid;
    int st, fd;

    (void)state;
    serve_up(&s);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log = new_log();
        if (rm_nbd_attach(CTL, log, 0, &a, &err))
            _exit(1);
        rm_disklog_start(log);
        _exit(0);                  /* dies attached */
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    memset(b, 0x77, sizeof(b));
    assert_int_equal(tnbd_request(s.client, NBD_CMD_WRITE, 0, 8192, 4096, b),
                     0);
    fd = open(s.image, O_RDONLY);
    assert_int_equal(pread(fd, back, 4096, 8192), 4096);
    close(fd);
    assert_memory_equal(b, back, 4096);
    log = new_log();
    if (rm_nbd_attach(CTL, log, 0, &a, &err))
        fail_msg("attach after a dead protection: %s", rm_error_str(&err));
    rm_nbd_detach(a);
    rm_disklog_close(log);
    serve_down(&s);
}

/* The server goes away: the protection's next cut fails, naming it. */
static void test_server_gone_fails_cut(void **state)
{
    struct rm_disklog *log = new_log();
    struct rm_nbd_attached *a = NULL;
    struct rm_error err = { 0 };
    struct served s;
    int i, rc = 0;

    (void)state;
    serve_up(&s);
    assert_int_equal(rm_nbd_attach(CTL, log, 0, &a, &err), 0);
    rm_disklog_start(log);
    rm_nbd_attach_point_close(s.ap);       /* the server's side ends */
    s.ap = NULL;
    for (i = 0; i < 200 && !rc; i++) {
        usleep(10000);
        rc = rm_disklog_cut(log, (uint64_t)i + 1, &err);
        if (!rc)
            rm_disklog_acked(log, (uint64_t)i + 1);
    }
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(rm_error_str(&err), "feed of disk 0 ended"));
    rm_nbd_detach(a);
    rm_disklog_close(log);
    serve_down(&s);
}

/* A feed that speaks nonsense fails the log, naming what it said. */
static void test_bad_feed_fails_cut(void **state)
{
    static const struct { uint32_t kind, flags; uint64_t len; const char *why; }
    bad[] = {
        { 99, 0, 0, "unknown change" },
        { RM_NBD_FEED_WRITE, 0, 0, "a write of 0 bytes" },
        { RM_NBD_FEED_WRITE, 0, RM_NBD_FEED_MAX_WRITE + 1, "1 to" },
        { RM_NBD_FEED_FLUSH, 1, 0, "flags 0x1 on a flush" },
        { 0, 0, 0, "magic" },
    };
    unsigned i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rm_disklog *log = new_log();
        struct rm_nbd_feed *f = NULL;
        struct rm_error err = { 0 };
        uint8_t h[32] = { 0 };
        uint32_t magic = i == 4 ? 0xdeadbeef : RM_NBD_FEED_MAGIC;
        int32_t answer;
        int sv[2], rc = 0, k;

        int img = open("/dev/zero", O_RDONLY);

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(rm_disklog_add_disk(log, 0, img, SIZE, &err), 0);
        rm_disklog_start(log);
        assert_int_equal(rm_nbd_feed_start(&f, sv[0], log, 0, &err), 0);
        memcpy(h, &magic, 4);
        memcpy(h + 4, &bad[i].kind, 4);
        memcpy(h + 16, &bad[i].len, 8);
        memcpy(h + 24, &bad[i].flags, 4);
        assert_int_equal(rm_write_all(sv[1], h, sizeof(h)), 0);
        /* no answer: the feed ends (a server waiting for one must learn
         * it: a hang here is the bug) */
        {
            struct pollfd p = { .fd = sv[1], .events = POLLIN };

            if (poll(&p, 1, 10000) != 1)
                fail_msg("case %u: the feed neither answered nor ended "
                         "within 10 s", i);
        }
        assert_int_equal(read(sv[1], &answer, sizeof(answer)), 0);
        for (k = 0; k < 200 && !rc; k++) {
            rc = rm_disklog_cut(log, (uint64_t)k + 1, &err);
            if (!rc) {
                rm_disklog_acked(log, (uint64_t)k + 1);
                usleep(5000);
            }
        }
        if (!rc || !strstr(rm_error_str(&err), bad[i].why))
            fail_msg("case %u: cut says '%s', expected '%s'", i,
                     rm_error_str(&err), bad[i].why);
        rm_nbd_feed_stop(f);
        close(sv[0]);
        close(sv[1]);
        close(img);
        rm_disklog_close(log);
    }
}

/* The default control socket of a kernel device, and what is not one. */
static void test_attach_name(void **state)
{
    struct rm_error err = { 0 };
    char name[64];

    (void)state;
    assert_int_equal(rm_nbd_attach_name("/dev/nbd0", name, sizeof(name),
                                        &err), 0);
    assert_string_equal(name, "disk-nbd0");
    assert_int_equal(rm_nbd_attach_name("/dev/nbd15", name, sizeof(name),
                                        &err), 0);
    assert_string_equal(name, "disk-nbd15");
    assert_int_equal(rm_nbd_attach_name("/dev/loop0", name, sizeof(name),
                                        &err), -EINVAL);
    assert_int_equal(rm_nbd_attach_name("/dev/nbd", name, sizeof(name),
                                        &err), -EINVAL);
    assert_int_equal(rm_nbd_attach_name("/dev/nbd1p1", name, sizeof(name),
                                        &err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_changes_logged_before_reply),
        cmocka_unit_test(test_one_protection_at_a_time),
        cmocka_unit_test(test_dead_protection_leaves_plain_disk),
        cmocka_unit_test(test_server_gone_fails_cut),
        cmocka_unit_test(test_bad_feed_fails_cut),
        cmocka_unit_test(test_attach_name),
    };

    tu_case_filter();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
