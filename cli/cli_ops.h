/* SPDX-License-Identifier: MIT */
/*
 * What operates protect and receive (both backends): the service
 * manager's notifications (common/notify.h, always; silent without
 * NOTIFY_SOCKET) and, with --metrics ADDR:PORT, the metrics endpoint
 * (common/metrics.h, common/metrics_http.h).
 */
#ifndef REMUS_CLI_CLI_OPS_H
#define REMUS_CLI_CLI_OPS_H

#include <stdbool.h>

#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/net.h"
#include "common/notify.h"

struct cli_ops {
    bool have_metrics;             /* --metrics given */
    struct rm_hostport metrics_addr;
    /* set by cli_ops_start: */
    struct rm_notify notify;
    struct rm_metrics metrics;
    bool metrics_made;
    struct rm_metrics_http *http;
};

/* --metrics ADDR:PORT into @o: 0, or the status of the printed usage
 * error (an address that does not parse, named). */
int cli_ops_metrics_opt(const char *cmd, struct cli_ops *o, const char *arg);

/*
 * Start serving the metrics (when asked for: a port that cannot be bound
 * fails here, before any VM) and make the observers: *@obs, for the
 * protect/receive configuration.  0, or the status of the printed
 * failure.  cli_ops_end() in every case.
 */
int cli_ops_start(const char *cmd, struct cli_ops *o,
                  const struct rm_status_observer **obs);
/* STOPPING=1 to the service manager, the endpoint stopped. */
void cli_ops_end(struct cli_ops *o);

#endif
