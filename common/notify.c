/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "notify"
#include "common/notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "common/io.h"

/* One notification; a failure is logged once at debug level (the manager
 * may be gone while we stop). */
static void send_state(const char *msg)
{
    int rc = sd_notify(0, msg);

    if (rc < 0)
        LOG_DBG("sd_notify: %s", strerror(-rc));
}

/* STATUS=: what the side does now, in words. */
static void status_line(const struct rm_status *st, char *buf, size_t len)
{
    bool primary = !strcmp(st->role, "primary");

    if (!strcmp(st->state, "protecting") && st->ready)
        snprintf(buf, len, "STATUS=protecting epoch %" PRIu64 " (acked %"
                 PRIu64 ") to %.100s", st->epoch, st->acked_epoch, st->peer);
    else if (!strcmp(st->state, "replica"))
        snprintf(buf, len, "STATUS=replica at epoch %" PRIu64 " of %.100s",
                 st->epoch, st->peer);
    else if (!strcmp(st->state, "waiting"))
        snprintf(buf, len, "STATUS=waiting for the primary");
    else if (st->detail[0])
        snprintf(buf, len, "STATUS=%s: %.200s", st->state, st->detail);
    else
        snprintf(buf, len, "STATUS=%s%s", st->state,
                 primary && !strcmp(st->state, "protecting")
                     ? " (first checkpoint)" : "");
}

/* The observer: one datagram of what changed (READY, STATUS, the
 * watchdog's arming and feeding), nothing when nothing did. */
static void seen(void *opaque, const struct rm_status *st)
{
    struct rm_notify *n = opaque;
    uint64_t now = rm_now_ns();
    bool changed = strcmp(n->last_state, st->state) != 0;
    char msg[400];
    int len = 0;

    if (!n->enabled)
        return;
    if (st->ready && !n->ready_sent) {
        len += snprintf(msg + len, sizeof(msg) - (size_t)len, "READY=1\n");
        n->ready_sent = true;
        changed = true;
    }
    if (changed || now - n->last_status_ns >=
                       (uint64_t)RM_NOTIFY_STATUS_MS * 1000000) {
        status_line(st, msg + len, sizeof(msg) - (size_t)len);
        len += (int)strlen(msg + len);
        len += snprintf(msg + len, sizeof(msg) - (size_t)len, "\n");
        n->last_status_ns = now;
        snprintf(n->last_state, sizeof(n->last_state), "%s", st->state);
    }
    if (n->watchdog_usec && n->ready_sent) {
        bool feed = st->looping;

        if (feed && !n->armed) {            /* (again) */
            len += snprintf(msg + len, sizeof(msg) - (size_t)len,
                            "WATCHDOG_USEC=%" PRIu64 "\n", n->watchdog_usec);
            n->armed = true;
            n->last_watchdog_ns = 0;
        } else if (!feed && n->armed) {
            len += snprintf(msg + len, sizeof(msg) - (size_t)len,
                            "WATCHDOG_USEC=0\n");
            n->armed = false;
        }
        if (feed && now - n->last_watchdog_ns >= n->watchdog_usec * 250) {
            len += snprintf(msg + len, sizeof(msg) - (size_t)len,
                            "WATCHDOG=1\n");
            n->last_watchdog_ns = now;
        }
    }
    if (len > 0 && (size_t)len < sizeof(msg))
        send_state(msg);
}

const struct rm_status_observer *rm_notify_init(
    struct rm_notify *n, const struct rm_status_observer *next)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    uint64_t usec = 0;
    int rc;

    memset(n, 0, sizeof(*n));
    n->enabled = sock && *sock;
    if (n->enabled) {
        rc = sd_watchdog_enabled(0, &usec);
        if (rc < 0)
            LOG_WARN("WATCHDOG_USEC/WATCHDOG_PID are not understood (%s): "
                     "no watchdog", strerror(-rc));
        else if (rc > 0)
            n->watchdog_usec = usec;
    }
    /* READY=1 comes with the first state: the watchdog runs from then on
     * (systemd arms it once the unit is up). */
    n->armed = true;
    n->obs.seen = seen;
    n->obs.opaque = n;
    n->obs.next = next;
    return &n->obs;
}

void rm_notify_stopping(struct rm_notify *n)
{
    if (n->enabled)
        send_state("STOPPING=1\nSTATUS=stopping");
}
