/* SPDX-License-Identifier: MIT */
/* SIGINT/SIGTERM for protect and receive (see cli.h). */
#include "cli/cli.h"

#include <signal.h>
#include <string.h>

#include "backends/backend.h"

/* Signal handlers reach these (a process runs one command). */
static volatile sig_atomic_t stop_flag;
static struct rm_backend *stop_be;
static bool stop_first;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_be && (stop_flag || stop_first))
        stop_be->ops->request_stop(stop_be);
    stop_flag = 1;
}

volatile sig_atomic_t *cli_catch_stop(struct rm_backend *be, bool first_stops)
{
    struct sigaction sa;

    stop_be = be;
    stop_first = first_stops;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &stop_flag;
}

void cli_release_stop(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    stop_be = NULL;
}
