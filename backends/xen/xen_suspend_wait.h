/* SPDX-License-Identifier: MIT */
/*
 * When to poll a domain asked to suspend: pure logic, no Xen.
 *
 * A Linux guest publishes no suspend event channel, so a checkpoint's
 * suspend is seen by polling the domain's state (rm_xen_suspend_wait in
 * xen_host.h); what the guest was asked to the poll that sees it
 * suspended is the guest's own way there (its "freeze": 50-160 ms in the
 * lab), and the time from its suspension to that poll is on the pause.
 * Polls 200 us apart keep that short where a sleep of 200 us takes about
 * that; in the Xen lab (dom0 under Xen under TCG) it took 1.5-3 ms, and
 * the suspend was seen ~1.5 ms late on average (a throwaway probe,
 * 2026-12-05: 77 polls a suspend, the last two 2.5-3.3 ms apart).
 *
 * So: while the sleeps take what they are asked for (or until enough
 * freezes were seen to know when the next one ends), poll as before: 50
 * polls at once (a guest that suspends fast is seen fast), then every
 * 200 us, after a second every 2 ms.  Once sleeps are seen to take more
 * than RM_XEN_OVERSLEEP times what they ask, and at least
 * RM_XEN_FREEZES_KNOWN freezes were seen, poll without sleeping (the
 * caller yields the CPU between polls) from 3/4 of the shortest recent
 * freeze to 5/4 of the longest plus a millisecond, and sleep outside that
 * window: the spinning is bounded by how much the freezes vary, not paid
 * for the whole freeze.  And by RM_XEN_SPIN_MAX_NS from the window's
 * start: one freeze that took seconds among the last 16 would otherwise
 * have dom0 spin a CPU for seconds at each of the next 16 checkpoints; a
 * freeze that ends after the window is seen by the sleeping polls, a
 * sleep late.
 *
 * One struct per protected domain; one thread uses it.
 */
#ifndef REMUS_BACKENDS_XEN_XEN_SUSPEND_WAIT_H
#define REMUS_BACKENDS_XEN_XEN_SUSPEND_WAIT_H

#include <stdint.h>

#define RM_XEN_FREEZE_SAMPLES 16       /* recent freezes kept */
#define RM_XEN_FREEZES_KNOWN 4         /* before the window is used */
#define RM_XEN_POLL_SLEEP_NS 200000ull /* the short sleep asked */
#define RM_XEN_POLL_LONG_NS 2000000ull /* past RM_XEN_POLL_LONG_AFTER_NS */
#define RM_XEN_POLL_LONG_AFTER_NS 1000000000ull
#define RM_XEN_FAST_POLLS 50u          /* at once, with no window known */
#define RM_XEN_OVERSLEEP 4u            /* sleeps this many times too long:
                                          spin in the window */
#define RM_XEN_SPIN_MAX_NS 250000000ull /* the widest window (the lab's
                                           freezes: 50-160 ms) */

struct rm_xen_suspend_wait {
    uint64_t freeze_ns[RM_XEN_FREEZE_SAMPLES];
    unsigned nr_freezes, next;
    uint64_t sleep_avg_ns;             /* what a short sleep took (a
                                          decaying mean; 0: none yet) */
};

enum rm_xen_poll_step {
    RM_XEN_POLL_NOW,                   /* poll again at once (yield) */
    RM_XEN_POLL_SLEEP,                 /* sleep RM_XEN_POLL_SLEEP_NS */
    RM_XEN_POLL_SLEEP_LONG,            /* sleep RM_XEN_POLL_LONG_NS */
};

void rm_xen_suspend_wait_init(struct rm_xen_suspend_wait *w);
/* What to do before the next poll, @since_ns after the request, after
 * @polls polls that did not see the domain suspended. */
enum rm_xen_poll_step rm_xen_suspend_wait_step(
    const struct rm_xen_suspend_wait *w, uint64_t since_ns, unsigned polls);
/* A short sleep (RM_XEN_POLL_SLEEP) took @took_ns. */
void rm_xen_suspend_wait_slept(struct rm_xen_suspend_wait *w,
                               uint64_t took_ns);
/* The domain was seen suspended @freeze_ns after the request. */
void rm_xen_suspend_wait_seen(struct rm_xen_suspend_wait *w,
                              uint64_t freeze_ns);
/* The window in which the caller spins, [*from, *to) after the request,
 * at most RM_XEN_SPIN_MAX_NS wide; 0 (and both 0) when there is none: too
 * few freezes seen, or sleeps that take what they ask. */
int rm_xen_suspend_wait_window(const struct rm_xen_suspend_wait *w,
                               uint64_t *from, uint64_t *to);

#endif
