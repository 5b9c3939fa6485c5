/* SPDX-License-Identifier: MIT */
/* Start the secondary's `remus receive` through -s CMD (peer_spawn.h). */
#define RM_LOG_PREFIX "protect"
#include "primary/peer_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/io.h"
#include "common/log.h"

#define CMD_MAX 4096
#define TAIL_MAX 240        /* stderr bytes kept for an error message */

struct rm_peer_spawn {
    pid_t pid;
    int in_fd, out_fd, err_fd;    /* our ends of its stdin/stdout/stderr */
    int wake[2];                  /* stops the relay thread */
    int relay_fd;
    pthread_t relay;
    bool relaying;
    pthread_mutex_t lock;         /* tail */
    char tail[TAIL_MAX];
    size_t tail_len;
    char cmd[CMD_MAX];            /* the sh -c string, for messages */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------- the command line */

static bool word_ok(const char *w)
{
    if (!*w)
        return false;
    for (; *w; w++) {
        if (!((*w >= 'a' && *w <= 'z') || (*w >= 'A' && *w <= 'Z') ||
              (*w >= '0' && *w <= '9') || strchr("_./:,=@%+-", *w)))
            return false;
    }
    return true;
}

/* @value may go on the remote command line: 0, or -EINVAL naming @what. */
static int check(const char *what, const char *value, struct rm_error *err)
{
    if (word_ok(value))
        return 0;
    return rm_error_set(err, -EINVAL, "%s '%s' cannot be passed to the "
                        "remote receiver: only letters, digits and "
                        "_./:,=@%%+- are allowed (the command is parsed by "
                        "a shell on each side)", what, value);
}

/* Append to @buf (CMD_MAX bytes). */
static int add(char *buf, struct rm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add(char *buf, struct rm_error *err, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + len, CMD_MAX - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= CMD_MAX - len)
        return rm_error_set(err, -E2BIG, "the receiver's command line is "
                            "longer than %d bytes", CMD_MAX - 1);
    return 0;
}

static int build_cmd(const struct rm_peer_spawn_cfg *cfg, char *buf,
                     struct rm_error *err)
{
    const char *addr = cfg->peer_addr ? cfg->peer_addr : "0.0.0.0";
    const char *remus = cfg->remote_remus ? cfg->remote_remus : "remus";
    bool v6 = strchr(addr, ':') != NULL;
    size_t i;
    int rc = 0;

    if (!cfg->name || !cfg->host || !cfg->hb_interval_ms)
        return rm_error_set(err, -EINVAL, "starting a receiver needs the "
                            "VM's name, HOST and the heartbeat");
    if (cfg->shell_cmd && !*cfg->shell_cmd)
        return rm_error_set(err, -EINVAL, "-s '': an empty command cannot "
                            "reach HOST (give -s CMD, e.g. -s ssh)");
    rc = check("HOST", cfg->host, err);
    rc = rc ? rc : check("--remote-remus", remus, err);
    rc = rc ? rc : check("the peer's address", addr, err);
    rc = rc ? rc : check("the VM's name", cfg->name, err);
    if (!rc && cfg->config)
        rc = check("the peer's config", cfg->config, err);
    for (i = 0; !rc && cfg->extra && cfg->extra[i]; i++)
        rc = check("the receive option", cfg->extra[i], err);
    if (rc)
        return rc;
    buf[0] = '\0';
    rc = add(buf, err, "exec %s %s %s receive%s --listen=%s%s%s:0 "
             "--announce %s --name=%s --heartbeat %u",
             cfg->shell_cmd ? cfg->shell_cmd : "ssh", cfg->host, remus,
             cfg->xen ? " --xen" : "", v6 ? "[" : "", addr, v6 ? "]" : "",
             cfg->key ? "--key-file -" : "--insecure", cfg->name,
             cfg->hb_interval_ms);
    if (!rc && cfg->hb_timeout_ms)
        rc = add(buf, err, " --heartbeat-timeout %u", cfg->hb_timeout_ms);
    if (!rc && cfg->config)
        rc = add(buf, err, " --config=%s", cfg->config);
    if (!rc && cfg->quorum)
        rc = add(buf, err, " --quorum corosync");
    if (!rc && cfg->quorum && cfg->quorum_settle_ms)
        rc = add(buf, err, " --quorum-settle %u", cfg->quorum_settle_ms);
    for (i = 0; !rc && cfg->extra && cfg->extra[i]; i++)
        rc = add(buf, err, " %s", cfg->extra[i]);
    return rc;
}

/* ----------------------------------------------------- its stderr */

static void keep_tail(struct rm_peer_spawn *ps, const char *p, size_t n)
{
    pthread_mutex_lock(&ps->lock);
    if (n >= TAIL_MAX) {
        p += n - TAIL_MAX;
        n = TAIL_MAX;
    }
    if (ps->tail_len + n > TAIL_MAX) {
        size_t drop = ps->tail_len + n - TAIL_MAX;

        memmove(ps->tail, ps->tail + drop, ps->tail_len - drop);
        ps->tail_len -= drop;
    }
    memcpy(ps->tail + ps->tail_len, p, n);
    ps->tail_len += n;
    pthread_mutex_unlock(&ps->lock);
}

/* Relay one read of the receiver's stderr; false at its end. */
static bool relay_once(struct rm_peer_spawn *ps)
{
    char buf[4096];
    ssize_t n = read(ps->err_fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    keep_tail(ps, buf, (size_t)n);
    /* Best effort: our own stderr may be gone too. */
    if (ps->relay_fd >= 0 && write(ps->relay_fd, buf, (size_t)n) < 0)
        ps->relay_fd = -1;
    return true;
}

static void *relay_main(void *arg)
{
    struct rm_peer_spawn *ps = arg;

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = ps->err_fd, .events = POLLIN },
            { .fd = ps->wake[0], .events = POLLIN },
        };

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents) {      /* told to stop: what is there, then go */
            while (poll(pfd, 1, 0) > 0 && relay_once(ps))
                ;
            break;
        }
        if (pfd[0].revents && !relay_once(ps))
            break;
    }
    return NULL;
}

/* The end of the receiver's stderr, escaped, for an error message. */
static void tail_text(struct rm_peer_spawn *ps, char *out, size_t len)
{
    size_t n;

    pthread_mutex_lock(&ps->lock);
    n = ps->tail_len;
    while (n && (ps->tail[n - 1] == '\n' || ps->tail[n - 1] == '\r' ||
                 ps->tail[n - 1] == ' '))
        n--;
    if (n)
        rm_log_escape(out, len, ps->tail, n, false);
    else
        snprintf(out, len, "(nothing)");
    pthread_mutex_unlock(&ps->lock);
}

/* ----------------------------------------------------- the process */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int exit_status(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Reap within @ms: the exit status, or -ETIMEDOUT. */
static int reap(pid_t pid, unsigned ms)
{
    uint64_t deadline = now_ms() + ms;
    int st;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            return exit_status(st);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (now_ms() >= deadline)
            return -ETIMEDOUT;
        rm_sleep_ms(20);
    }
}

/* SIGTERM to its process group, SIGKILL after 2 s; its exit status. */
static int terminate(pid_t pid)
{
    int rc;

    kill(-pid, SIGTERM);
    rc = reap(pid, 2000);
    if (rc == -ETIMEDOUT) {
        kill(-pid, SIGKILL);
        rc = reap(pid, 5000);
    }
    return rc;
}

static void *reaper_main(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void child_exec(const char *cmd, int in, int out, int errfd)
{
    sigset_t none;

    /* Between fork and exec: async-signal-safe calls only. */
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

static int send_key(struct rm_peer_spawn *ps, const struct rm_auth_key *key,
                    struct rm_error *err)
{
    static const char hex[] = "0123456789abcdef";
    char text[RM_AUTH_KEY_FILE_LEN];
    size_t i;
    ssize_t n;

    for (i = 0; i < RM_AUTH_KEY_LEN; i++) {
        text[2 * i] = hex[key->k[i] >> 4];
        text[2 * i + 1] = hex[key->k[i] & 15];
    }
    text[sizeof(text) - 1] = '\n';
    /* Smaller than a pipe's buffer: never blocks. */
    do {
        n = write(ps->in_fd, text, sizeof(text));
    } while (n < 0 && errno == EINTR);
    rm_auth_wipe(text, sizeof(text));
    if (n != (ssize_t)sizeof(text))
        return rm_error_set(err, n < 0 ? -errno : -EIO, "cannot give the "
                            "key to the receiver (`%s`): %s", ps->cmd,
                            n < 0 ? strerror(errno) : "short write");
    return 0;
}

/*
 * Read stdout until the announcement (other lines, e.g. a login banner,
 * are skipped).  0 with @line holding it, -ETIMEDOUT, or -EPIPE when the
 * receiver closed its stdout (it ended).
 */
static int read_announce(struct rm_peer_spawn *ps, unsigned timeout_ms,
                         char *line, size_t len)
{
    uint64_t deadline = now_ms() + timeout_ms;
    size_t got = 0;

    for (;;) {
        struct pollfd pfd = { .fd = ps->out_fd, .events = POLLIN };
        uint64_t now = now_ms();
        char c;
        ssize_t n;
        int r;

        if (now >= deadline)
            return -ETIMEDOUT;
        r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        n = read(ps->out_fd, &c, 1);    /* byte by byte: a short line */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EPIPE;
        if (c != '\n') {
            if (got < len - 1)
                line[got++] = c;
            continue;
        }
        line[got] = '\0';
        if (!strncmp(line, RM_PEER_ANNOUNCE, strlen(RM_PEER_ANNOUNCE)))
            return 0;
        got = 0;
    }
}

/* Where to connect: the announced ADDR:PORT, HOST's host for a wildcard. */
static int announced_peer(const struct rm_peer_spawn_cfg *cfg,
                          const char *line, struct rm_hostport *peer,
                          struct rm_error *err)
{
    const char *at = strrchr(cfg->host, '@');
    const char *host = at ? at + 1 : cfg->host;
    struct rm_error e = { 0 };

    if (rm_parse_hostport(line + strlen(RM_PEER_ANNOUNCE), peer, &e) ||
        !peer->port)
        return rm_error_set(err, -EPROTO, "the receiver announced '%s', "
                            "not ADDR:PORT%s%s", line, e.code ? ": " : "",
                            rm_error_str(&e));
    if (!cfg->peer_addr && (!strcmp(peer->host, "0.0.0.0") ||
                            !strcmp(peer->host, "::") ||
                            !strcmp(peer->host, "*") || !peer->host[0])) {
        if (strlen(host) >= sizeof(peer->host))
            return rm_error_set(err, -EINVAL, "HOST '%s' is too long", host);
        snprintf(peer->host, sizeof(peer->host), "%s", host);
    }
    return 0;
}

static void spawn_free(struct rm_peer_spawn *ps)
{
    if (ps->relaying) {
        if (write(ps->wake[1], "x", 1) < 0)
            LOG_DBG("cannot wake the relay: %s", strerror(errno));
        pthread_join(ps->relay, NULL);
    }
    close_fd(&ps->in_fd);
    close_fd(&ps->out_fd);
    close_fd(&ps->err_fd);
    close_fd(&ps->wake[0]);
    close_fd(&ps->wake[1]);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
}

/* A failed start: end it, say how it ended and what it said. */
static int start_failed(struct rm_peer_spawn *ps, int rc, unsigned ms,
                        struct rm_error *err)
{
    char tail[TAIL_MAX * 4 + 1];
    char how[64];
    int st;

    /* Gone by itself (stdout closed): its status, else end it. */
    st = rc == -EPIPE ? reap(ps->pid, 1000) : -ETIMEDOUT;
    if (st == -ETIMEDOUT) {
        st = terminate(ps->pid);
        snprintf(how, sizeof(how), "was killed");
    } else {
        snprintf(how, sizeof(how), "exited with status %d", st);
    }
    if (ps->relaying) {           /* its last words */
        if (write(ps->wake[1], "x", 1) < 0)
            LOG_DBG("cannot wake the relay: %s", strerror(errno));
        pthread_join(ps->relay, NULL);
        ps->relaying = false;
    }
    tail_text(ps, tail, sizeof(tail));
    /* Its stderr before the command (logged already): a long command
     * line is what the message's limit cuts. */
    if (rc == -ETIMEDOUT)
        rm_error_set(err, rc, "the receiver did not announce its port "
                     "within %u ms: it %s; its stderr: %s; the command: "
                     "`%s`", ms, how, tail, ps->cmd);
    else if (rc == -EPIPE)
        rm_error_set(err, rc, "the receiver ended without announcing its "
                     "port: it %s; its stderr: %s; the command: `%s`", how,
                     tail, ps->cmd);
    else
        rm_error_set(err, rc, "the receiver failed: %s; it %s; its "
                     "stderr: %s; the command: `%s`", strerror(-rc), how,
                     tail, ps->cmd);
    spawn_free(ps);
    return rc;
}

int rm_peer_spawn_start(const struct rm_peer_spawn_cfg *cfg,
                        struct rm_peer_spawn **out, struct rm_hostport *peer,
                        struct rm_error *err)
{
    unsigned ms = cfg->announce_timeout_ms ? cfg->announce_timeout_ms :
                  RM_PEER_ANNOUNCE_TIMEOUT_MS;
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
    struct rm_peer_spawn *ps;
    char line[512];
    int rc;

    *out = NULL;
    ps = calloc(1, sizeof(*ps));
    if (!ps)
        return rm_error_set(err, -ENOMEM, "out of memory");
    ps->in_fd = ps->out_fd = ps->err_fd = ps->wake[0] = ps->wake[1] = -1;
    ps->relay_fd = cfg->relay_fd;
    pthread_mutex_init(&ps->lock, NULL);
    rc = build_cmd(cfg, ps->cmd, err);
    if (rc) {
        spawn_free(ps);
        return rc;
    }
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) ||
        pipe2(perr, O_CLOEXEC) || pipe2(ps->wake, O_CLOEXEC)) {
        rc = rm_error_set(err, -errno, "cannot make pipes for the "
                          "receiver: %s", strerror(errno));
        goto fail_fds;
    }
    ps->pid = fork();
    if (ps->pid < 0) {
        rc = rm_error_set(err, -errno, "cannot start `%s`: %s", ps->cmd,
                          strerror(errno));
        goto fail_fds;
    }
    if (ps->pid == 0)
        child_exec(ps->cmd, pin[0], pout[1], perr[1]);
    setpgid(ps->pid, ps->pid);    /* both sides: no race with kill(-pid) */
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    ps->in_fd = pin[1];
    ps->out_fd = pout[0];
    ps->err_fd = perr[0];
    LOG_INFO("starting the receiver: %s", ps->cmd);
    rc = pthread_create(&ps->relay, NULL, relay_main, ps);
    if (rc)
        return start_failed(ps, -rc, ms, err);
    ps->relaying = true;
    if (cfg->key) {
        rc = send_key(ps, cfg->key, err);
        if (rc == -EPIPE) {
            /* Its stdin is closed: it ended before it took the key (a
             * command that fails at once).  Say how it ended. */
            rm_error_clear(err);
            read_announce(ps, ms, line, sizeof(line));
            return start_failed(ps, -EPIPE, ms, err);
        }
        if (rc)
            return start_failed(ps, rc, ms, err);
    }
    close_fd(&ps->in_fd);         /* nothing more: EOF */
    rc = read_announce(ps, ms, line, sizeof(line));
    if (rc)
        return start_failed(ps, rc, ms, err);
    rc = announced_peer(cfg, line, peer, err);
    if (rc)
        return start_failed(ps, rc, ms, err);
    LOG_INFO("the receiver (pid %d here) listens: connecting to %s:%u",
             (int)ps->pid, peer->host, peer->port);
    *out = ps;
    return 0;

fail_fds:
    close_fd(&pin[0]);
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&pout[1]);
    close_fd(&perr[0]);
    close_fd(&perr[1]);
    spawn_free(ps);
    return rc;
}

int rm_peer_spawn_pid(const struct rm_peer_spawn *ps)
{
    return ps ? (int)ps->pid : -1;
}

int rm_peer_spawn_end(struct rm_peer_spawn *ps, enum rm_peer_end how,
                      unsigned wait_ms, struct rm_error *err)
{
    pthread_t t;
    int rc = 0;

    if (!ps)
        return 0;
    switch (how) {
    case RM_PEER_WAIT:
        rc = reap(ps->pid, wait_ms);
        if (rc == -ETIMEDOUT) {
            terminate(ps->pid);
            rm_error_set(err, rc, "the receiver (`%s`) did not exit within "
                         "%u ms after protection ended: killed", ps->cmd,
                         wait_ms);
        } else if (rc < 0) {
            rm_error_set(err, rc, "cannot wait for the receiver: %s",
                         strerror(-rc));
        }
        break;
    case RM_PEER_KILL:
        rc = terminate(ps->pid);
        if (rc < 0)
            rm_error_set(err, rc, "cannot end the receiver: %s",
                         strerror(-rc));
        break;
    case RM_PEER_LEAVE:
        /* Our pipes close with @ps: its writes fail, it runs on.  A
         * detached thread reaps it whenever it ends. */
        if (pthread_create(&t, NULL, reaper_main,
                           (void *)(intptr_t)ps->pid) == 0)
            pthread_detach(t);
        break;
    }
    spawn_free(ps);
    return rc;
}
