/* SPDX-License-Identifier: MIT */
/* The takeover policy (see takeover.h). */
#define RM_LOG_PREFIX "takeover"
#include "secondary/takeover.h"

#include <inttypes.h>
#include <stdio.h>

#include "cluster/quorum.h"
#include "cluster/fence.h"
#include "common/log.h"

bool rm_takeover_allowed(const struct rm_takeover_policy *p,
                         const struct rm_receive_result *res)
{
    struct rm_quorum_verdict v;
    struct rm_error err = { 0 };
    const char *what = res->handover ? "the primary handed the VM over"
                                     : rm_error_str(&res->why);

    if (!p->quorum && !p->fence_cmd) {
        LOG_INFO("taking over: %s after checkpoint %" PRIu64, what,
                 res->committed_epoch);
        return true;
    }
    if (p->quorum) {
        rm_quorum_decide(p->quorum, &v, &err);
        if (!v.act) {
            LOG_ERR("NOT TAKING OVER after checkpoint %" PRIu64 " (%s): %s",
                    res->committed_epoch, what, v.why);
            return false;
        }
        LOG_INFO("taking over: %s", v.why);
    }
    if (p->fence_cmd) {
        /* REMUS_NAME is this host's --name (required with --fence-cmd),
         * never the name the peer sent. */
        if (rm_fence_run(p->fence_cmd, p->name,
                         res->peer_addr, res->committed_epoch,
                         p->fence_timeout_ms, &err)) {
            LOG_ERR("NOT TAKING OVER after checkpoint %" PRIu64 " (%s): %s",
                    res->committed_epoch, what, rm_error_str(&err));
            return false;
        }
        LOG_INFO("taking over: the fence command succeeded");
    }
    return true;
}
