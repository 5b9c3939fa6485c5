/* SPDX-License-Identifier: MIT */
/* When to poll a domain asked to suspend (xen_suspend_wait.h). */
#include "backends/xen/xen_suspend_wait.h"

#include <string.h>

void rm_xen_suspend_wait_init(struct rm_xen_suspend_wait *w)
{
    memset(w, 0, sizeof(*w));
}

int rm_xen_suspend_wait_window(const struct rm_xen_suspend_wait *w,
                               uint64_t *from, uint64_t *to)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    unsigned i;

    *from = *to = 0;
    if (w->nr_freezes < RM_XEN_FREEZES_KNOWN ||
        w->sleep_avg_ns <= RM_XEN_OVERSLEEP * RM_XEN_POLL_SLEEP_NS)
        return 0;
    for (i = 0; i < w->nr_freezes; i++) {
        if (w->freeze_ns[i] < lo)
            lo = w->freeze_ns[i];
        if (w->freeze_ns[i] > hi)
            hi = w->freeze_ns[i];
    }
    *from = lo / 4 * 3;
    *to = hi + hi / 4 + 1000000;
    if (*to - *from > RM_XEN_SPIN_MAX_NS)
        *to = *from + RM_XEN_SPIN_MAX_NS;
    return 1;
}

enum rm_xen_poll_step rm_xen_suspend_wait_step(
    const struct rm_xen_suspend_wait *w, uint64_t since_ns, unsigned polls)
{
    uint64_t from, to;

    if (rm_xen_suspend_wait_window(w, &from, &to)) {
        if (since_ns >= from && since_ns < to)
            return RM_XEN_POLL_NOW;
    } else if (w->nr_freezes < RM_XEN_FREEZES_KNOWN &&
               polls < RM_XEN_FAST_POLLS) {
        return RM_XEN_POLL_NOW;
    }
    return since_ns >= RM_XEN_POLL_LONG_AFTER_NS ? RM_XEN_POLL_SLEEP_LONG
                                                 : RM_XEN_POLL_SLEEP;
}

void rm_xen_suspend_wait_slept(struct rm_xen_suspend_wait *w,
                               uint64_t took_ns)
{
    if (!w->sleep_avg_ns)
        w->sleep_avg_ns = took_ns;
    else
        w->sleep_avg_ns = w->sleep_avg_ns - w->sleep_avg_ns / 8 +
                          took_ns / 8;
}

void rm_xen_suspend_wait_seen(struct rm_xen_suspend_wait *w,
                              uint64_t freeze_ns)
{
    w->freeze_ns[w->next] = freeze_ns;
    w->next = (w->next + 1) % RM_XEN_FREEZE_SAMPLES;
    if (w->nr_freezes < RM_XEN_FREEZE_SAMPLES)
        w->nr_freezes++;
}
