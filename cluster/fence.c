/* SPDX-License-Identifier: MIT */
/* The fence command (see fence.h). */
#define RM_LOG_PREFIX "fence"
#include "cluster/fence.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

/* A name for the fence command's environment: [A-Za-z0-9._-], 1..64. */
static bool fence_name_ok(const char *name)
{
    size_t i;

    for (i = 0; name[i]; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z') ||
              (name[i] >= '0' && name[i] <= '9') || name[i] == '.' ||
              name[i] == '_' || name[i] == '-'))
            return false;
    return i > 0 && i <= 64;
}

/*
 * The fence command's environment: ours, with REMUS_NAME, REMUS_PEER and
 * REMUS_EPOCH replaced by @vars ("KEY=value").  Built before the
 * fork (the child of a threaded process may not allocate).  NULL when out
 * of memory.
 */
static char **fence_env(char *const vars[3])
{
    extern char **environ;
    size_t n = 0, o = 0, i;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 4, sizeof(*env));
    if (!env)
        return NULL;
    for (i = 0; i < n; i++) {
        size_t k;

        for (k = 0; k < 3; k++)
            if (!strncmp(environ[i], vars[k],
                         (size_t)(strchr(vars[k], '=') - vars[k]) + 1))
                break;
        if (k == 3)
            env[o++] = environ[i];
    }
    for (i = 0; i < 3; i++)
        env[o++] = vars[i];
    return env;
}

/* In the fence command's child: default dispositions, nothing blocked
 * (an ignored SIGTERM or a blocked SIGCHLD must not reach the command). */
static void fence_child_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    int sig;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, &sa, NULL) && errno == EINVAL) {
            /* glibc keeps two real-time signals for itself and refuses
             * them; an ignored one would still reach the command: reset
             * it with the kernel's own call. */
            struct { void (*handler)(int); unsigned long flags;
                     void (*restorer)(void); unsigned long mask; } k = {
                SIG_DFL, 0, NULL, 0 };

            syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof(k.mask));
        }
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int rm_fence_run(const char *cmd, const char *name, const char *peer,
                 uint64_t epoch, unsigned timeout_ms, struct rm_error *err)
{
    char name_v[80], peer_v[300], epoch_v[48];
    char *vars[3] = { name_v, peer_v, epoch_v };
    char **env;
    uint64_t deadline;
    pid_t pid, w;
    int status = 0;

    if (!name || !fence_name_ok(name))
        return rm_error_set(err, -EINVAL, "not running the fence command: "
                            "the VM name '%s' is not 1 to 64 of "
                            "[A-Za-z0-9._-]", name ? name : "");
    snprintf(name_v, sizeof(name_v), "REMUS_NAME=%s", name);
    snprintf(peer_v, sizeof(peer_v), "REMUS_PEER=%s", peer ? peer : "");
    snprintf(epoch_v, sizeof(epoch_v), "REMUS_EPOCH=%" PRIu64, epoch);
    env = fence_env(vars);
    if (!env)
        return rm_error_set(err, -ENOMEM, "cannot run the fence command: "
                            "out of memory");
    LOG_INFO("fencing the primary: %s", cmd);
    pid = fork();
    if (pid < 0) {
        free(env);
        return rm_error_set(err, -errno, "cannot run the fence command: %s",
                            strerror(errno));
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, 0);
            close(fd);
        }
        dup2(2, 1);      /* its output goes to our log (stderr) */
        setpgid(0, 0);
        fence_child_signals();
        execve("/bin/sh", (char *const[]){ "sh", "-c", (char *)cmd, NULL },
               env);
        _exit(127);
    }
    free(env);
    deadline = rm_now_ns() + (uint64_t)timeout_ms * 1000000;
    for (;;) {
        w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return rm_error_set(err, -errno, "waiting for the fence command:"
                                " %s", strerror(errno));
        if (rm_now_ns() >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return rm_error_set(err, -ETIMEDOUT, "the fence command did not "
                                "finish within %u ms (killed): the primary "
                                "is not known to be fenced", timeout_ms);
        }
        rm_sleep_ms(20);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        LOG_INFO("fence command succeeded: the primary is fenced");
        return 0;
    }
    if (WIFEXITED(status))
        return rm_error_set(err, -ECANCELED, "the fence command failed "
                            "(exit %d): the primary is not known to be "
                            "fenced", WEXITSTATUS(status));
    return rm_error_set(err, -ECANCELED, "the fence command was killed by "
                        "signal %d: the primary is not known to be fenced",
                        WTERMSIG(status));
}
