/* SPDX-License-Identifier: MIT */
/*
 * The takeover policy: the primary is lost (or handed the VM over); may
 * the replica run?  Quorum (cluster/quorum.h) and fencing gate every
 * takeover when the operator configured them, a handover included: a
 * handover request is only ever honoured on an authenticated channel
 * (secondary/receive.c), and even then it does not bypass the gates.
 */
#ifndef REMUS_SECONDARY_TAKEOVER_H
#define REMUS_SECONDARY_TAKEOVER_H

#include <stdbool.h>

#include "secondary/receive.h"

struct rm_quorum;

struct rm_takeover_policy {
    struct rm_quorum *quorum;     /* --quorum: not owned; NULL: no gate */
    const char *fence_cmd;        /* --fence-cmd, or NULL */
    unsigned fence_timeout_ms;
    const char *name;             /* the VM's name from this host's own
                                     configuration (--name), or NULL */
};

/*
 * May the replica take over after @res (an RM_RECEIVE_FAILOVER result)?
 * Without quorum and fencing: yes.  With them: only if the quorum service
 * decides this side may act and the fence command exited 0.  Logs the
 * reason either way ("taking over: ..." or "NOT TAKING OVER ...").
 */
bool rm_takeover_allowed(const struct rm_takeover_policy *p,
                         const struct rm_receive_result *res);

#endif
