/* SPDX-License-Identifier: MIT */
/* Notifications and metrics for protect and receive (cli_ops.h). */
#include "cli/cli_ops.h"

#include <string.h>

#include "cli/cli.h"

int cli_ops_metrics_opt(const char *cmd, struct cli_ops *o, const char *arg)
{
    struct rm_error err = { 0 };

    if (rm_parse_hostport(arg, &o->metrics_addr, &err))
        return cli_usage_error(cmd, "--metrics '%s': %s", arg,
                               rm_error_str(&err));
    o->have_metrics = true;
    return 0;
}

int cli_ops_start(const char *cmd, struct cli_ops *o,
                  const struct rm_status_observer **obs)
{
    const struct rm_status_observer *next = NULL;
    struct rm_error err = { 0 };
    int rc;

    if (o->have_metrics) {
        rc = rm_metrics_init(&o->metrics, NULL, &next);
        if (rc)
            return cli_fail(cmd, "metrics: %s", strerror(-rc));
        o->metrics_made = true;
        if (rm_metrics_http_start(&o->metrics, &o->metrics_addr, &o->http,
                                  &err))
            return cli_fail(cmd, "--metrics: %s", rm_error_str(&err));
    }
    *obs = rm_notify_init(&o->notify, next);
    return 0;
}

void cli_ops_end(struct cli_ops *o)
{
    rm_notify_stopping(&o->notify);
    rm_metrics_http_stop(o->http);
    o->http = NULL;
    if (o->metrics_made)
        rm_metrics_destroy(&o->metrics);
    o->metrics_made = false;
}
