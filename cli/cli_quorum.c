/* SPDX-License-Identifier: MIT */
/* --quorum of protect/receive, KVM and Xen (see cli.h). */
#include "cli/cli.h"

#include <string.h>

#include "cluster/quorum.h"

int cli_quorum_service(const char *cmd, const char *arg)
{
    if (strcmp(arg, "corosync"))
        return cli_usage_error(cmd, "--quorum: '%s' is not a quorum service "
                               "(the one supported: corosync)", arg);
    return 0;
}

int cli_quorum_open(const char *cmd, const char *name, bool primary,
                    unsigned settle_ms, struct rm_quorum **out)
{
    struct rm_quorum_cfg qc = {
        .vm_name = name, .settle_ms = settle_ms,
        .role = primary ? RM_QUORUM_PRIMARY : RM_QUORUM_SECONDARY,
    };
    struct rm_error err = { 0 };

    if (rm_quorum_open_checked(&qc, primary, out, &err))
        return cli_fail(cmd, "--quorum corosync: %s", rm_error_str(&err));
    return 0;
}
