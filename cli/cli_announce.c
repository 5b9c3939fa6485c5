/* SPDX-License-Identifier: MIT */
/* receive --announce (KVM and Xen): cli.h. */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "primary/peer_spawn.h"
#include "secondary/receive.h"

int cli_receive_announce(const char *cmd, struct rm_receive_cfg *rc)
{
    struct rm_error err = { 0 };
    bool v6 = strchr(rc->listen.host, ':') != NULL;
    int port;

    rc->listen_fd = rm_tcp_listen(&rc->listen, &err);
    if (rc->listen_fd < 0)
        return cli_fail(cmd, "--listen %s:%u: %s", rc->listen.host,
                        rc->listen.port, rm_error_str(&err));
    port = rm_tcp_local_port(rc->listen_fd);
    if (port <= 0)
        return cli_fail(cmd, "cannot tell the port of --listen %s: %s",
                        rc->listen.host, strerror(port ? -port : EINVAL));
    /* Outlive the session that started us (peer_spawn.h). */
    signal(SIGHUP, SIG_IGN);
    if (!rc->accept_timeout_ms)
        rc->accept_timeout_ms = CLI_ANNOUNCE_ACCEPT_MS;
    printf("%s%s%s%s:%d\n", RM_PEER_ANNOUNCE, v6 ? "[" : "",
           rc->listen.host, v6 ? "]" : "", port);
    if (fflush(stdout))
        return cli_fail(cmd, "--announce: cannot write to stdout: %s",
                        strerror(errno));
    return 0;
}
