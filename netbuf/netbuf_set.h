/* SPDX-License-Identifier: MIT */
/*
 * Several netbufs as one: a VM with more than one network interface (a Xen
 * guest with several VIFs, each behind its own plug qdisc) has its output
 * held and released as a whole.  Every generic operation of netbuf.h on
 * the set is applied to each member in turn, with the same epoch, so all
 * of them start and end their epochs at the same checkpoint boundaries:
 * no member releases what another still holds for the same epoch.
 *
 * An operation is applied to every member even when one fails (a failed
 * release on one VIF must not keep the others' acknowledged output back);
 * it returns the first member's error.  The set has no output path of its
 * own (rm_netbuf_output() on it: -EOPNOTSUPP): each member's device feeds
 * its member.  Its stats are the members' summed.
 */
#ifndef REMUS_NETBUF_NETBUF_SET_H
#define REMUS_NETBUF_NETBUF_SET_H

#include <stddef.h>

#include "netbuf/netbuf.h"

/*
 * A set of the @n (>= 1) netbufs @members.  The set owns them from this
 * call on, also when it fails: rm_netbuf_free() on the set (or a failed
 * call) frees every member.  NULL with the reason in @err.
 */
struct rm_netbuf *rm_netbuf_set_new(struct rm_netbuf *const *members,
                                    size_t n, struct rm_error *err);

/* The number of members, or 0 when @nb is not a set. */
size_t rm_netbuf_set_size(const struct rm_netbuf *nb);

#endif
