/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "metrics"
#include "common/metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct rm_metrics_http {
    struct rm_metrics *m;
    struct MHD_Daemon *d;
    int lfd, port;
};

#define CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code,
                             const char *type, char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code,
                            const char *msg)
{
    char *body = strdup(msg);

    return body ? reply(c, code, "text/plain; charset=utf-8", body,
                        strlen(body)) : MHD_NO;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct rm_metrics_http *h = cls;
    const char *accept;
    bool om;
    char *body;
    size_t len;

    if (strcmp(method, MHD_HTTP_METHOD_GET) &&
        strcmp(method, MHD_HTTP_METHOD_HEAD))
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n");
    if (*upload_data_size)         /* a GET with a body: ignored */
        *upload_data_size = 0;
    if (strcmp(url, "/metrics"))
        return text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at "
                    "/metrics\n");
    accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_ACCEPT);
    om = accept && strstr(accept, "application/openmetrics-text");
    if (rm_metrics_render(h->m, om, &body, &len))
        return MHD_NO;
    return reply(c, MHD_HTTP_OK, om ? CT_OPENMETRICS : CT_TEXT, body, len);
}

/* libmicrohttpd's own messages, through our logger. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    LOG_WARN("%s", msg);
}

int rm_metrics_http_start(struct rm_metrics *m, const struct rm_hostport *addr,
                          struct rm_metrics_http **out, struct rm_error *err)
{
    struct rm_metrics_http *h;
    struct rm_error e = { 0 };
    int rc = 0;

    *out = NULL;
    h = calloc(1, sizeof(*h));
    if (!h)
        return rm_error_set(err, -ENOMEM, "out of memory");
    h->m = m;
    h->lfd = rm_tcp_listen(addr, &e);
    if (h->lfd < 0) {
        rc = rm_error_set(err, h->lfd, "metrics endpoint %s:%u: %s",
                          addr->host, addr->port, rm_error_str(&e));
        goto out;
    }
    h->port = rm_tcp_local_port(h->lfd);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                            MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, h,
                            /* first: it logs the other options' errors */
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_LISTEN_SOCKET, h->lfd,
                            MHD_OPTION_CONNECTION_LIMIT, 16u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                            MHD_OPTION_END);
    if (!h->d) {
        rc = rm_error_set(err, -EIO, "metrics endpoint %s:%u: the HTTP "
                          "server did not start", addr->host, addr->port);
        goto out;
    }
    LOG_INFO("metrics at http://%s%s%s:%d/metrics",
             strchr(addr->host, ':') ? "[" : "", addr->host,
             strchr(addr->host, ':') ? "]" : "", h->port);
out:
    if (rc) {
        if (h->lfd >= 0)
            close(h->lfd);
        free(h);
    } else {
        *out = h;
    }
    return rc;
}

int rm_metrics_http_port(const struct rm_metrics_http *h)
{
    return h->port;
}

void rm_metrics_http_stop(struct rm_metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    close(h->lfd);
    free(h);
}
