/* SPDX-License-Identifier: MIT */
/*
 * Local hardening (issue #16, items 11-14), the parts that need no VM:
 * status files and the run directory, the fence command's environment and
 * signals, log escaping, the guest console's escaping and bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/kvm/console.h"
#include "cluster/fence.h"
#include "common/log.h"
#include "common/ctlsock.h"
#include "common/status.h"

static char tmpdir[64];

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* The whole of @path (NUL-terminated) into @buf. */
static size_t slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, buf, len - 1);
    close(fd);
    assert_true(n >= 0);
    buf[n] = '\0';
    return (size_t)n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/remus-test-local.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------ status, run dir */

static void fill_status(struct rm_status *st, const char *name)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    snprintf(st->role, sizeof(st->role), "primary");
    snprintf(st->state, sizeof(st->state), "protecting");
    snprintf(st->backend, sizeof(st->backend), "kvm");
    st->pid = (int)getpid();
}

/* A link planted at the temp name an older version used (NAME...PID.tmp)
 * is never followed: its target stays as it was. */
static void test_status_temp_not_predictable(void **state)
{
    char run[128], victim[128], link[256], buf[64], path[256];
    struct rm_status st, back;
    struct rm_error err = { 0 };

    (void)state;
    snprintf(run, sizeof(run), "%s/run1", tmpdir);
    snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
    assert_int_equal(mkdir(run, 0700), 0);
    assert_int_equal(setenv("REMUS_RUN_DIR", run, 1), 0);
    {
        FILE *f = fopen(victim, "w");

        assert_non_null(f);
        fputs("untouched\n", f);
        fclose(f);
    }
    snprintf(link, sizeof(link), "%s/vm1.primary.status.json.%d.tmp", run,
             (int)getpid());
    assert_int_equal(symlink(victim, link), 0);
    fill_status(&st, "vm1");
    assert_int_equal(rm_status_write(&st, &err), 0);
    slurp(victim, buf, sizeof(buf));
    assert_string_equal(buf, "untouched\n");
    /* The file is there, readable, and names this process. */
    snprintf(path, sizeof(path), "%s/vm1.primary.status.json", run);
    assert_int_equal(rm_status_read(path, &back, &err), 0);
    assert_int_equal(back.pid, getpid());
    assert_true(back.pid_start > 0);
    assert_int_equal(rm_status_check_writer(&back, &err), 0);
    unsetenv("REMUS_RUN_DIR");
}

/* COLO's fields go to the file and come back; without COLO there are
 * none, and a file with part of them is refused. */
static void test_status_colo(void **state)
{
    char run[128], path[256];
    struct rm_status st, back;
    struct rm_error err = { 0 };
    FILE *f;

    (void)state;
    snprintf(run, sizeof(run), "%s/run-colo", tmpdir);
    assert_int_equal(mkdir(run, 0700), 0);
    assert_int_equal(setenv("REMUS_RUN_DIR", run, 1), 0);
    snprintf(path, sizeof(path), "%s/vm2.primary.status.json", run);
    fill_status(&st, "vm2");
    assert_int_equal(rm_status_write(&st, &err), 0);
    assert_int_equal(rm_status_read(path, &back, &err), 0);
    assert_string_equal(back.colo_mode, "");
    snprintf(st.colo_mode, sizeof(st.colo_mode), "buffered");
    st.colo_checkpoints[0] = 3;
    st.colo_checkpoints[3] = 9;
    st.colo_buffered_checkpoints = 24;
    st.colo_fallbacks = 1;
    st.colo_held_primary = 5;
    st.colo_held_replica = 2;
    st.colo_replica_sectors = 40;
    assert_int_equal(rm_status_write(&st, &err), 0);
    assert_int_equal(rm_status_read(path, &back, &err), 0);
    assert_string_equal(back.colo_mode, "buffered");
    assert_int_equal(back.colo_checkpoints[0], 3);
    assert_int_equal(back.colo_checkpoints[1], 0);
    assert_int_equal(back.colo_checkpoints[3], 9);
    assert_int_equal(back.colo_buffered_checkpoints, 24);
    assert_int_equal(back.colo_fallbacks, 1);
    assert_int_equal(back.colo_held_primary, 5);
    assert_int_equal(back.colo_held_replica, 2);
    assert_int_equal(back.colo_replica_sectors, 40);
    /* a mode without its counters: not a status file */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"name\": \"vm2\", \"role\": \"primary\", \"state\": \"x\", "
          "\"backend\": \"kvm\", \"peer\": \"\", \"detail\": \"\", "
          "\"pid\": 1, \"epoch\": 1, \"acked_epoch\": 1, "
          "\"last_pause_us\": 1, \"last_dirty_pages\": 1, "
          "\"last_bytes\": 1, \"total_bytes\": 1, \"interval_ms\": 1, "
          "\"failover_unix_ms\": 0, \"colo_mode\": \"comparing\", "
          "\"updated_unix_ms\": 1}\n", f);
    fclose(f);
    assert_int_equal(rm_status_read(path, &back, &err), -EBADMSG);
    unsetenv("REMUS_RUN_DIR");
}

static void serve_name(void *opaque, const char *req, int fd, char *reply,
                       size_t len)
{
    (void)req;
    (void)fd;
    snprintf(reply, len, "ok %s", (const char *)opaque);
}

static const struct rm_ctlsock_ops name_ops = { .serve = serve_name };

/* A process that takes a control socket's name over (a takeover after a
 * handover, while the old primary is still ending) keeps it when the old
 * one stops, even if its socket file got the old one's inode number. */
static void test_ctlsock_taken_over(void **state)
{
    char run[128], reply[64];
    struct rm_error err = { 0 };
    struct rm_ctlsock *a, *b;
    int i;

    (void)state;
    snprintf(run, sizeof(run), "%s/run-ctl", tmpdir);
    assert_int_equal(mkdir(run, 0700), 0);
    assert_int_equal(setenv("REMUS_RUN_DIR", run, 1), 0);
    for (i = 0; i < 20; i++) {       /* inode reuse is likely, not sure */
        a = rm_ctlsock_start("vmx", &name_ops, "old", &err);
        assert_non_null(a);
        usleep(20000);               /* another change time */
        b = rm_ctlsock_start("vmx", &name_ops, "new", &err);
        assert_non_null(b);
        rm_ctlsock_stop(a);
        assert_int_equal(rm_ctlsock_request("vmx", "who", -1, reply,
                                            sizeof(reply), &err), 0);
        assert_string_equal(reply, "ok new");
        rm_ctlsock_stop(b);
    }
    unsetenv("REMUS_RUN_DIR");
}

/* The run directory is made 0700 whatever the umask, and an existing one
 * with group/other access is tightened. */
static void test_run_dir_mode(void **state)
{
    char run[128];
    struct rm_error err = { 0 };
    struct stat sb;
    mode_t old;

    (void)state;
    snprintf(run, sizeof(run), "%s/run2", tmpdir);
    assert_int_equal(setenv("REMUS_RUN_DIR", run, 1), 0);
    old = umask(0);
    assert_int_equal(rm_run_dir_prepare(&err), 0);
    umask(old);
    assert_int_equal(stat(run, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    assert_int_equal(chmod(run, 0777), 0);
    assert_int_equal(rm_run_dir_prepare(&err), 0);
    assert_int_equal(stat(run, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    unsetenv("REMUS_RUN_DIR");
}

/* A status file naming a process that did not write it (another start
 * time, or a process gone) is stale. */
static void test_status_writer_check(void **state)
{
    struct rm_status st;
    struct rm_error err = { 0 };
    pid_t child;

    (void)state;
    fill_status(&st, "vm2");
    st.pid_start = 1;
    assert_int_equal(rm_status_check_writer(&st, &err), -ESRCH);
    assert_contains(rm_error_str(&err), "not the one that wrote");
    child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    st.pid = (int)child;
    rm_error_clear(&err);
    assert_int_equal(rm_status_check_writer(&st, &err), -ESRCH);
    assert_contains(rm_error_str(&err), "is gone");
}

/* -------------------------------------------------------- fence command */

/* Hostile or empty names are refused before anything runs. */
static void test_fence_name_refused(void **state)
{
    static const char *const bad[] = {
        "", "a b", "x;touch y", "$(id)", "a\nb", "\x1b[31m", "a/b",
        "0123456789012345678901234567890123456789012345678901234567890123x",
    };
    char cmd[256], marker[128];
    struct rm_error err = { 0 };
    size_t i;

    (void)state;
    snprintf(marker, sizeof(marker), "%s/fence-ran", tmpdir);
    snprintf(cmd, sizeof(cmd), "touch '%s'", marker);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rm_error_clear(&err);
        assert_int_equal(rm_fence_run(cmd, bad[i], "127.0.0.1:1", 1, 5000,
                                      &err), -EINVAL);
        assert_contains(rm_error_str(&err), "[A-Za-z0-9._-]");
    }
    rm_error_clear(&err);
    assert_int_equal(rm_fence_run(cmd, NULL, "127.0.0.1:1", 1, 5000, &err),
                     -EINVAL);
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(rm_fence_run(cmd, "vm-1.a_B", "127.0.0.1:1", 1, 5000,
                                  &err), 0);
    assert_int_equal(access(marker, F_OK), 0);
}

/* The command sees our REMUS_NAME (not an inherited one), default signal
 * dispositions and an empty signal mask, whatever ours are. */
static void test_fence_env_and_signals(void **state)
{
    char cmd[512], out[128], buf[4096];
    struct rm_error err = { 0 };
    struct sigaction ign, old_term, old_hup;
    sigset_t block, old_mask;

    (void)state;
    snprintf(out, sizeof(out), "%s/fence.out", tmpdir);
    /* /proc/$$/environ: the environment exactly as exec'd (sh would
     * collapse duplicates in `env`) */
    snprintf(cmd, sizeof(cmd), "{ tr '\\0' '\\n' < /proc/$$/environ | "
             "grep '^REMUS_'; grep -E '^Sig(Blk|Ign):' /proc/self/status; "
             "} > '%s'", out);
    assert_int_equal(setenv("REMUS_NAME", "inherited", 1), 0);
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &ign, &old_term);
    sigaction(SIGHUP, &ign, &old_hup);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    assert_int_equal(rm_fence_run(cmd, "localvm", "10.0.0.1:7790", 42, 5000,
                                  &err), 0);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    unsetenv("REMUS_NAME");
    slurp(out, buf, sizeof(buf));
    assert_contains(buf, "REMUS_NAME=localvm\n");
    assert_null(strstr(buf, "inherited"));
    assert_contains(buf, "REMUS_PEER=10.0.0.1:7790\n");
    assert_contains(buf, "REMUS_EPOCH=42\n");
    /* grep itself: no signal blocked or ignored */
    assert_contains(buf, "SigBlk:\t0000000000000000\n");
    assert_contains(buf, "SigIgn:\t0000000000000000\n");
}

/* ------------------------------------------------------------- escaping */

static void test_log_escape(void **state)
{
    char out[64];
    size_t n;

    (void)state;
    n = rm_log_escape(out, sizeof(out), "a\x1b[31mb\nc\\d\x7f", 12, false);
    assert_string_equal(out, "a\\x1b[31mb\\x0ac\\\\d\\x7f");
    assert_int_equal(n, strlen(out));
    rm_log_escape(out, sizeof(out), "l1\n\tl2\r", 7, true);
    assert_string_equal(out, "l1\n\tl2\\x0d");
    /* A NUL inside is shown too; UTF-8 passes. */
    rm_log_escape(out, sizeof(out), "x\0y\xc3\xa9", 5, false);
    assert_string_equal(out, "x\\x00y\xc3\xa9");
    /* Never a cut escape: "ab" + "\x1b" does not fit in 6 bytes. */
    n = rm_log_escape(out, 6, "ab\x1b", 3, false);
    assert_string_equal(out, "ab");
    assert_int_equal(n, 2);
}

/* Every log line is escaped: a peer's string cannot forge a line or send
 * a terminal sequence. */
static void test_log_line_escaped(void **state)
{
    char path[128], buf[512];
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s/log.out", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    rm_log_init(RM_LOG_INFO, f);
    rm_log_msg(RM_LOG_WARN, "test", "peer said '%s'",
               "hi\x1b]0;title\x07\nremus[1] forged: line");
    rm_log_init(RM_LOG_INFO, NULL);
    fclose(f);
    slurp(path, buf, sizeof(buf));
    assert_contains(buf, "peer said 'hi\\x1b]0;title\\x07\\x0aremus[1] "
                    "forged: line'\n");
    assert_null(strchr(buf, '\x1b'));
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

/* The guest console: escaped, and bounded by the burst then the rate. */
static void test_console(void **state)
{
    char path[128], chunk[4096], buf[16384];
    struct rm_console c;
    struct stat sb;
    unsigned i;
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "%s/console", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    rm_console_init(&c, fd, "vm");
    rm_console_write(&c, "boot \x1b[2J\x07ok\n", 13, 1000);
    memset(chunk, 'F', sizeof(chunk));
    /* 1 MiB at one instant: only the burst gets through */
    for (i = 0; i < 256; i++)
        rm_console_write(&c, chunk, sizeof(chunk), 1000);
    assert_int_equal(fstat(fd, &sb), 0);
    assert_true((uint64_t)sb.st_size <= RM_CONSOLE_BURST + 64);
    /* one second later: RM_CONSOLE_RATE more, and the note */
    for (i = 0; i < 8; i++)
        rm_console_write(&c, chunk, sizeof(chunk), 1000 + 1000000000ull);
    rm_console_destroy(&c);
    assert_int_equal(fstat(fd, &sb), 0);
    close(fd);
    assert_true((uint64_t)sb.st_size <=
                RM_CONSOLE_BURST + RM_CONSOLE_RATE + 256);
    slurp(path, buf, sizeof(buf));
    assert_contains(buf, "boot \\x1b[2J\\x07ok\n");
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    {
        char tail[200];
        ssize_t n = pread(fd, tail, sizeof(tail) - 1,
                          sb.st_size > 199 ? sb.st_size - 199 : 0);

        assert_true(n > 0);
        tail[n] = '\0';
        assert_contains(tail, "bytes of guest output dropped");
    }
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_temp_not_predictable),
        cmocka_unit_test(test_status_colo),
        cmocka_unit_test(test_ctlsock_taken_over),
        cmocka_unit_test(test_run_dir_mode),
        cmocka_unit_test(test_status_writer_check),
        cmocka_unit_test(test_fence_name_refused),
        cmocka_unit_test(test_fence_env_and_signals),
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_log_line_escaped),
        cmocka_unit_test(test_console),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
