/* SPDX-License-Identifier: MIT */
/*
 * The metrics endpoint (--metrics ADDR:PORT): GET /metrics serves
 * common/metrics.h's rendering over HTTP (libmicrohttpd, its own thread):
 * OpenMetrics 1.0 when the Accept header asks for
 * application/openmetrics-text (Prometheus does), else the Prometheus
 * text format 0.0.4 (curl, promtool).  Any other path is 404, any other
 * method 405.  At most 16 connections, each closed after 10 s idle.
 */
#ifndef REMUS_COMMON_METRICS_HTTP_H
#define REMUS_COMMON_METRICS_HTTP_H

#include "common/err.h"
#include "common/metrics.h"
#include "common/net.h"

struct rm_metrics_http;

/*
 * Listen on @addr (HOST:PORT as rm_parse_hostport; port 0: any free one)
 * and serve @m (not owned; must outlive the server) from now on.  0 with
 * *out set, or -errno with the reason in @err (an address that does not
 * resolve or cannot be bound, named).
 */
int rm_metrics_http_start(struct rm_metrics *m, const struct rm_hostport *addr,
                          struct rm_metrics_http **out, struct rm_error *err);

/* The port it listens on (for port 0). */
int rm_metrics_http_port(const struct rm_metrics_http *h);

/* Stop serving and free (NULL: nothing). */
void rm_metrics_http_stop(struct rm_metrics_http *h);

#endif
