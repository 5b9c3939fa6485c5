/* SPDX-License-Identifier: MIT */
/*
 * netbuf for Xen: the VIF's ingress redirected to an IFB device whose
 * root qdisc is a `plug` (see netbuf_plug.c).  Needs CAP_NET_ADMIN.
 */
#ifndef REMUS_NETBUF_NETBUF_PLUG_H
#define REMUS_NETBUF_NETBUF_PLUG_H

#include "netbuf/netbuf.h"

struct rm_netbuf_plug_cfg {
    const char *vif;          /* the VM's backend interface in dom0 */
    const char *ifb;          /* an existing IFB to use; NULL: create
                                 rmifb<VIF's ifindex> (removed at the end) */
    uint32_t limit_bytes;     /* plug qdisc limit; 0: 16 MiB */
    bool no_plug;             /* set up the redirect only (kernels
                                 without sch_plug: tests, `netbuf check
                                 --no-plug`); start_epoch/release are
                                 then no-ops */
};

/*
 * Set it all up: remove what dead runs left for this VIF, claim or create
 * the IFB, add the VIF's ingress qdisc with a match-all u32 filter (every
 * protocol) redirecting to the IFB, and the plug qdisc.  NULL with the
 * reason in @err (a kernel without `plug`: -EOPNOTSUPP naming sch_plug);
 * nothing is left behind on failure.  rm_netbuf_free() tears it down.
 */
struct rm_netbuf *rm_netbuf_plug_new(const struct rm_netbuf_plug_cfg *cfg,
                                     struct rm_error *err);

/* The IFB in use, or NULL if @nb is not a plug netbuf. */
const char *rm_netbuf_plug_ifb(const struct rm_netbuf *nb);

/*
 * Remove the IFB devices (and their VIFs' ingress qdiscs) claimed by remus
 * runs that are gone; only those of @vif unless NULL.  0 or -errno;
 * @removed (may be NULL) counts them.
 */
int rm_netbuf_plug_cleanup_stale(const char *vif, unsigned *removed,
                                 struct rm_error *err);

#endif
