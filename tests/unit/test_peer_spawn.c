/* SPDX-License-Identifier: MIT */
/*
 * primary/peer_spawn: the receiver started through -s CMD.  CMD is a fake
 * "ssh" (a shell script) that records what it got (HOST and the remote
 * command, the key on its stdin) and behaves as $FAKE_MODE says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/case_filter.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/log.h"
#include "primary/peer_spawn.h"

static char dir[] = "/tmp/remus-peer-spawn.XXXXXX";
static char fake[256];

static const char fake_text[] =
    "#!/bin/sh\n"
    "host=$1; shift\n"
    "echo \"$host $*\" > \"$FAKE_DIR/args\"\n"
    "echo $$ > \"$FAKE_DIR/pid\"\n"
    "case $FAKE_MODE in\n"
    "keyed) head -c 65 > \"$FAKE_DIR/key\";;\n"
    "esac\n"
    "case $FAKE_MODE in\n"
    "keyed) echo 'Welcome to the remote host'\n"
    "       echo 'remus-receive: listening 0.0.0.0:4242'; exit 0;;\n"
    "addr) echo 'remus-receive: listening 10.1.2.3:5555'; exec sleep 30;;\n"
    "silent) echo 'fake: logged in, saying nothing' >&2; exec sleep 30;;\n"
    "fails) echo 'fake: no route to host' >&2; exit 7;;\n"
    "garbled) echo 'remus-receive: listening nowhere'; exec sleep 30;;\n"
    "esac\n";

static int setup(void **state)
{
    FILE *f;

    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(fake, sizeof(fake), "%s/fake-ssh", dir);
    f = fopen(fake, "w");
    if (!f)
        return -1;
    fputs(fake_text, f);
    fclose(f);
    chmod(fake, 0755);
    setenv("FAKE_DIR", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void read_file(const char *name, char *buf, size_t len)
{
    char path[300];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void base_cfg(struct rm_peer_spawn_cfg *c, const char *mode)
{
    memset(c, 0, sizeof(*c));
    setenv("FAKE_MODE", mode, 1);
    c->shell_cmd = fake;
    c->host = "admin@example.org";
    c->name = "vm1";
    c->hb_interval_ms = 100;
    c->announce_timeout_ms = 5000;
    c->relay_fd = -1;
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' not in '%s'", needle, hay);
}

/* The key reaches its stdin, not its command line; a wildcard address
 * means HOST (without USER@); a clean exit is status 0. */
static void test_keyed_wildcard(void **state)
{
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps;
    struct rm_hostport peer;
    struct rm_error err = { 0 };
    struct rm_auth_key key;
    char args[1024], got[128], hex[2 * RM_AUTH_KEY_LEN + 2];
    unsigned i;

    (void)state;
    for (i = 0; i < RM_AUTH_KEY_LEN; i++) {
        key.k[i] = (uint8_t)(i * 13 + 5);
        snprintf(hex + 2 * i, 3, "%02x", key.k[i]);
    }
    strcat(hex, "\n");
    base_cfg(&c, "keyed");
    c.key = &key;
    c.hb_timeout_ms = 1000;
    c.quorum = true;
    c.quorum_settle_ms = 5000;
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), 0);
    assert_string_equal(peer.host, "example.org");
    assert_int_equal(peer.port, 4242);
    assert_int_equal(rm_peer_spawn_end(ps, RM_PEER_WAIT, 5000, &err), 0);
    read_file("key", got, sizeof(got));
    assert_string_equal(got, hex);
    read_file("args", args, sizeof(args));
    assert_has(args, "admin@example.org remus receive --listen=0.0.0.0:0 "
               "--announce --key-file - --name=vm1 --heartbeat 100 "
               "--heartbeat-timeout 1000 --quorum corosync "
               "--quorum-settle 5000");
    hex[2 * RM_AUTH_KEY_LEN] = '\0';
    if (strstr(args, hex))
        fail_msg("the key is on the command line: %s", args);
}

/* --peer-addr: it listens there and we connect there; KILL ends it. */
static void test_peer_addr_kill(void **state)
{
    const char *extra[] = { "--tap=tap1", NULL };
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps;
    struct rm_hostport peer;
    struct rm_error err = { 0 };
    char args[1024];

    (void)state;
    base_cfg(&c, "addr");
    c.peer_addr = "10.1.2.3";
    c.xen = true;
    c.config = "/etc/xen/vm1.cfg";
    c.extra = extra;
    c.remote_remus = "/opt/remus/bin/remus";
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), 0);
    assert_string_equal(peer.host, "10.1.2.3");
    assert_int_equal(peer.port, 5555);
    assert_int_equal(rm_peer_spawn_end(ps, RM_PEER_KILL, 0, &err),
                     128 + SIGTERM);
    read_file("args", args, sizeof(args));
    assert_has(args, "/opt/remus/bin/remus receive --xen "
               "--listen=10.1.2.3:0 --announce --insecure --name=vm1 "
               "--heartbeat 100 --config=/etc/xen/vm1.cfg --tap=tap1");
}

/* Never announces: an error within the deadline naming its stderr and the
 * command; it was ended. */
static void test_silent(void **state)
{
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps = NULL;
    struct rm_hostport peer;
    struct rm_error err = { 0 };
    char pid[32];

    (void)state;
    base_cfg(&c, "silent");
    c.announce_timeout_ms = 300;
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -ETIMEDOUT);
    assert_null(ps);
    assert_has(err.msg, "did not announce its port within 300 ms: it was "
               "killed; its stderr: fake: logged in, saying nothing; the "
               "command: `exec ");
    assert_has(err.msg, "fake-ssh admin@example.org remus receive");
    read_file("pid", pid, sizeof(pid));
    assert_int_equal(kill(atoi(pid), 0), -1);    /* ended and reaped */
    assert_int_equal(errno, ESRCH);
}

/* The -s command fails: its status and stderr. */
static void test_fails(void **state)
{
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps = NULL;
    struct rm_hostport peer;
    struct rm_error err = { 0 };

    (void)state;
    base_cfg(&c, "fails");
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -EPIPE);
    assert_has(err.msg, "ended without announcing its port: it exited with "
               "status 7; its stderr: fake: no route to host; the command");
}

/* A garbled announcement is refused, naming it. */
static void test_garbled(void **state)
{
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps = NULL;
    struct rm_hostport peer;
    struct rm_error err = { 0 };

    (void)state;
    base_cfg(&c, "garbled");
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -EPROTO);
    assert_has(err.msg, "announced 'remus-receive: listening nowhere', not "
               "ADDR:PORT");
}

/* Words a shell would split or expand are refused before anything runs. */
static void test_unsafe_words(void **state)
{
    const char *extra[] = { "--fence-cmd=fence $(id)", NULL };
    struct rm_peer_spawn_cfg c;
    struct rm_peer_spawn *ps = NULL;
    struct rm_hostport peer;
    struct rm_error err = { 0 };

    (void)state;
    base_cfg(&c, "keyed");
    c.extra = extra;
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -EINVAL);
    assert_has(err.msg, "the receive option '--fence-cmd=fence $(id)' cannot "
               "be passed to the remote receiver");
    base_cfg(&c, "keyed");
    c.host = "host;reboot";
    err = (struct rm_error){ 0 };
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -EINVAL);
    assert_has(err.msg, "HOST 'host;reboot' cannot be passed");
    base_cfg(&c, "keyed");
    c.name = "my vm";
    err = (struct rm_error){ 0 };
    assert_int_equal(rm_peer_spawn_start(&c, &ps, &peer, &err), -EINVAL);
    assert_has(err.msg, "the VM's name 'my vm' cannot be passed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyed_wildcard),
        cmocka_unit_test(test_peer_addr_kill),
        cmocka_unit_test(test_silent),
        cmocka_unit_test(test_fails),
        cmocka_unit_test(test_garbled),
        cmocka_unit_test(test_unsafe_words),
    };

    signal(SIGPIPE, SIG_IGN);
    rm_log_init(RM_LOG_ERROR, NULL);
    tu_case_filter();
    return cmocka_run_group_tests(tests, setup, teardown);
}
