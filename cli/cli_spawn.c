/* SPDX-License-Identifier: MIT */
/* protect VM HOST: the receiver started through -s CMD (cli.h). */
#define RM_LOG_PREFIX "protect"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "primary/peer_spawn.h"

/* How long a receiver told END may take to exit. */
#define SPAWN_END_WAIT_MS 10000u

int cli_spawn_opt(const char *cmd, struct cli_spawn *s, int c,
                  const char *arg)
{
    switch (c) {
    case 's': s->shell_cmd = arg; break;
    case 0x380: s->remote_remus = arg; break;
    case 0x381: s->peer_addr = arg; break;
    case 0x382: s->peer_config = arg; break;
    case 0x384: {
        char *end;
        unsigned long v = strtoul(arg, &end, 10);

        if (*end || !*arg || !v || v > 3600000) {
            cli_usage_error(cmd, "--peer-timeout %s: a number of "
                            "milliseconds from 1 to 3600000", arg);
            return -RM_EXIT_USAGE;
        }
        s->timeout_ms = (unsigned)v;
        break;
    }
    case 0x383:
        if (s->nr_extra == CLI_SPAWN_MAX_OPTS) {
            cli_usage_error(cmd, "more than %d --peer-opt",
                            CLI_SPAWN_MAX_OPTS);
            return -RM_EXIT_USAGE;
        }
        s->extra[s->nr_extra++] = arg;
        s->extra[s->nr_extra] = NULL;
        break;
    default:
        return 0;
    }
    s->given = true;
    return 1;
}

int cli_spawn_start(const char *cmd, struct cli_spawn *s,
                    struct rm_peer_spawn_cfg *cfg, struct rm_hostport *peer)
{
    struct rm_error err = { 0 };

    cfg->shell_cmd = s->shell_cmd;
    cfg->remote_remus = s->remote_remus;
    cfg->peer_addr = s->peer_addr;
    if (s->peer_config)
        cfg->config = s->peer_config;
    cfg->extra = s->nr_extra ? s->extra : NULL;
    cfg->relay_fd = STDERR_FILENO;
    cfg->announce_timeout_ms = s->timeout_ms;
    if (rm_peer_spawn_start(cfg, &s->ps, peer, &err))
        return cli_fail(cmd, "%s", rm_error_str(&err));
    return 0;
}

void cli_spawn_end(const char *cmd, struct cli_spawn *s, bool started,
                   bool clean_end)
{
    enum rm_peer_end how = !started ? RM_PEER_KILL :
                           clean_end ? RM_PEER_WAIT : RM_PEER_LEAVE;
    struct rm_error err = { 0 };
    int rc;

    if (!s->ps)
        return;
    rc = rm_peer_spawn_end(s->ps, how, SPAWN_END_WAIT_MS, &err);
    s->ps = NULL;
    if (rc < 0)
        LOG_WARN("%s: %s", cmd, rm_error_str(&err));
    else if (how == RM_PEER_LEAVE)
        LOG_INFO("the receiver runs on (it may be taking over the VM)");
    else if (how == RM_PEER_WAIT && rc)
        LOG_WARN("the receiver exited with status %d after a clean end", rc);
    else if (how == RM_PEER_WAIT)
        LOG_INFO("the receiver exited cleanly");
    else
        LOG_INFO("the receiver was ended (status %d): protection never "
                 "started", rc);
}
