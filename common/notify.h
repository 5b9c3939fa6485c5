/* SPDX-License-Identifier: MIT */
/*
 * The service manager's notifications (sd_notify(3)), fed by the status
 * publications (common/status.h) of `remus protect` and `remus receive`:
 *   READY=1      once the side does its job (rm_status.ready: the primary
 *                after its first acknowledged checkpoint, the secondary
 *                once it listens);
 *   STATUS=...   on every change of state, and at most every
 *                RM_NOTIFY_STATUS_MS otherwise ("protecting epoch N ...");
 *   WATCHDOG=1   when the manager asked for it (WATCHDOG_USEC, checked
 *                with sd_watchdog_enabled), from the loop's publications
 *                and ticks only (rm_status.looping), at most every quarter
 *                of the period: a loop that stalls stops feeding it.  When
 *                the loop ends or pauses for long work (the first full
 *                checkpoint, the disks' hashes) the watchdog is disarmed
 *                (WATCHDOG_USEC=0) and armed again (WATCHDOG_USEC=period)
 *                when it is back: a VM that runs on in this process after
 *                a failover is never killed by it.
 * Without NOTIFY_SOCKET nothing is sent.
 */
#ifndef REMUS_COMMON_NOTIFY_H
#define REMUS_COMMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/status.h"

#define RM_NOTIFY_STATUS_MS 5000u

struct rm_notify {
    bool enabled;                  /* NOTIFY_SOCKET is set */
    uint64_t watchdog_usec;        /* 0: no watchdog asked for */
    bool ready_sent;
    bool armed;                    /* the watchdog runs (after READY=1,
                                      while looping) */
    uint64_t last_watchdog_ns, last_status_ns;
    char last_state[32];
    struct rm_status_observer obs;
};

/*
 * Read the environment (NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID through
 * sd_watchdog_enabled) into @n and make its observer, which comes before
 * @next in the list: returns it, to be put in a protect or receive
 * configuration's observers.  Never fails: a bad WATCHDOG_USEC is logged
 * and means no watchdog.
 */
const struct rm_status_observer *rm_notify_init(
    struct rm_notify *n, const struct rm_status_observer *next);

/* STOPPING=1 (the process is about to end).  Nothing without a socket. */
void rm_notify_stopping(struct rm_notify *n);

#endif
