/* SPDX-License-Identifier: MIT */
/*
 * The Xen implementation of netbuf: the guest's output leaves the guest
 * through its backend interface in dom0 (the VIF, e.g. vif3.0), where it is
 * *ingress* traffic.  We redirect all of it (a match-all u32 filter on the
 * VIF's ingress qdisc, every protocol, with a mirred "egress redirect"
 * action) to an IFB device, whose root qdisc is a `plug`: the kernel holds
 * the packets there until we release them.  All of it over rtnetlink with
 * libnl-3 / libnl-route-3; no shell, no `tc`.
 *
 * Epochs and the plug qdisc.  TCQ_PLUG_BUFFER inserts a barrier: what was
 * queued before it forms "the last epoch"; TCQ_PLUG_RELEASE_ONE lets the
 * packets of that epoch out.  The kernel counts only one such epoch (a
 * second barrier before a release overwrites the first's count, and a
 * release would then let out packets of an unacknowledged epoch), so at
 * most one barrier is outstanding here: start_epoch(E) inserts one only if
 * none is; otherwise E's output stays with the next barrier and goes out
 * with a later acknowledgement (later, never earlier).
 *
 * The IFB is claimed through its interface alias "remus-netbuf:VIF:PID",
 * so that rm_netbuf_plug_cleanup_stale() can recognise and remove what a
 * run that died left behind (its PID is gone).
 */
#define RM_LOG_PREFIX "netbuf-plug"
#include "netbuf/netbuf_plug.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/plug.h>
#include <netlink/route/tc.h>

#include "common/log.h"
#include "netbuf/netbuf_impl.h"

#define ALIAS_PREFIX "remus-netbuf:"
#define PLUG_HANDLE 0x00010000u      /* 1: */
#define INGRESS_HANDLE 0xffff0000u   /* ffff: */

struct nb_plug {
    struct rm_netbuf base;          /* first: ops */
    struct rm_netbuf_plug_cfg cfg;
    struct nl_sock *sock;
    pthread_mutex_t lock;
    char vif[IFNAMSIZ], ifb[IFNAMSIZ];
    int vif_index, ifb_index;
    bool created_ifb, have_ingress, have_plug, passthrough;
    uint64_t outstanding;           /* epoch of the barrier not released */
    struct rm_netbuf_stats st;      /* frames are the kernel's: epochs */
};

static const struct rm_netbuf_ops plug_ops;

/* ------------------------------------------------------------ helpers */

static int nl_to_errno(int nlerr)
{
    switch (-nlerr) {
    case NLE_NOMEM: return -ENOMEM;
    case NLE_EXIST: return -EEXIST;
    case NLE_OBJ_NOTFOUND: return -ENOENT;
    case NLE_NODEV: return -ENODEV;
    case NLE_PERM: return -EPERM;
    case NLE_BUSY: return -EBUSY;
    case NLE_OPNOTSUPP: return -EOPNOTSUPP;
    case NLE_INVAL: return -EINVAL;
    case NLE_RANGE: return -ERANGE;
    default: return -EIO;
    }
}

static struct nl_sock *open_route_socket(struct rm_error *err)
{
    struct nl_sock *sock = nl_socket_alloc();
    int rc;

    if (!sock) {
        rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        return NULL;
    }
    rc = nl_connect(sock, NETLINK_ROUTE);
    if (rc < 0) {
        rm_error_set(err, nl_to_errno(rc), "netbuf: cannot open a route "
                     "netlink socket: %s", nl_geterror(rc));
        nl_socket_free(sock);
        return NULL;
    }
    return sock;
}

/* Parse "remus-netbuf:VIF:PID".  true when @alias is one of ours. */
static bool parse_alias(const char *alias, char *vif, size_t vif_len,
                        long *pid)
{
    const char *p, *colon;
    char *end;

    if (!alias || strncmp(alias, ALIAS_PREFIX, strlen(ALIAS_PREFIX)))
        return false;
    p = alias + strlen(ALIAS_PREFIX);
    colon = strrchr(p, ':');
    if (!colon || colon == p || (size_t)(colon - p) >= vif_len)
        return false;
    memcpy(vif, p, (size_t)(colon - p));
    vif[colon - p] = '\0';
    *pid = strtol(colon + 1, &end, 10);
    return *end == '\0' && *pid > 0;
}

static bool pid_alive(long pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int qdisc_delete(struct nl_sock *sock, int ifindex, uint32_t parent)
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    int rc;

    if (!q)
        return -ENOMEM;
    rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
    rtnl_tc_set_parent(TC_CAST(q), parent);
    rc = rtnl_qdisc_delete(sock, q);
    rtnl_qdisc_put(q);
    return rc < 0 ? nl_to_errno(rc) : 0;
}

static int link_delete(struct nl_sock *sock, int ifindex)
{
    struct rtnl_link *l = rtnl_link_alloc();
    int rc;

    if (!l)
        return -ENOMEM;
    rtnl_link_set_ifindex(l, ifindex);
    rc = rtnl_link_delete(sock, l);
    rtnl_link_put(l);
    return rc < 0 ? nl_to_errno(rc) : 0;
}

/* Set (or with NULL, clear) the alias and the up flag of a link. */
static int link_change(struct nl_sock *sock, struct rtnl_link *orig,
                       const char *alias, bool up)
{
    struct rtnl_link *chg = rtnl_link_alloc();
    int rc;

    if (!chg)
        return -ENOMEM;
    rtnl_link_set_ifalias(chg, alias ? alias : "");
    if (up)
        rtnl_link_set_flags(chg, IFF_UP);
    else
        rtnl_link_unset_flags(chg, IFF_UP);
    rc = rtnl_link_change(sock, orig, chg, 0);
    rtnl_link_put(chg);
    return rc < 0 ? nl_to_errno(rc) : 0;
}

/* ------------------------------------------------------------ stale runs */

struct stale_walk {
    struct nl_sock *sock;
    const char *only_vif;       /* NULL: every stale claim */
    unsigned removed;
};

static void remove_stale(struct nl_object *obj, void *arg)
{
    struct stale_walk *w = arg;
    struct rtnl_link *l = (struct rtnl_link *)obj;
    char vif[IFNAMSIZ];
    const char *type = rtnl_link_get_type(l);
    long pid;
    int vif_index;

    if (!type || strcmp(type, "ifb") ||
        !parse_alias(rtnl_link_get_ifalias(l), vif, sizeof(vif), &pid) ||
        pid_alive(pid) || (w->only_vif && strcmp(vif, w->only_vif)))
        return;
    LOG_WARN("removing what a dead run (pid %ld) left: IFB %s and the "
             "ingress redirect of %s", pid, rtnl_link_get_name(l), vif);
    vif_index = (int)if_nametoindex(vif);
    if (vif_index > 0)
        qdisc_delete(w->sock, vif_index, TC_H_INGRESS);
    link_delete(w->sock, rtnl_link_get_ifindex(l));
    w->removed++;
}

int rm_netbuf_plug_cleanup_stale(const char *vif, unsigned *removed,
                                 struct rm_error *err)
{
    struct nl_sock *sock = open_route_socket(err);
    struct nl_cache *links = NULL;
    struct stale_walk w = { .sock = sock, .only_vif = vif };
    int rc;

    if (!sock)
        return err->code;
    rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &links);
    if (rc < 0) {
        rc = rm_error_set(err, nl_to_errno(rc), "netbuf: cannot list "
                          "network interfaces: %s", nl_geterror(rc));
        goto out;
    }
    nl_cache_foreach(links, remove_stale, &w);
    rc = 0;
out:
    if (removed)
        *removed = w.removed;
    if (links)
        nl_cache_free(links);
    nl_socket_free(sock);
    return rc;
}

/* ------------------------------------------------------------ setup */

static int pick_ifb(struct nb_plug *nb, struct rm_error *err)
{
    struct rtnl_link *l = NULL, *ifb = NULL;
    char alias[IFNAMSIZ + 48], owner[IFNAMSIZ];
    long pid;
    int rc;

    snprintf(alias, sizeof(alias), ALIAS_PREFIX "%s:%ld", nb->vif,
             (long)getpid());
    if (nb->cfg.ifb) {
        /* The operator's IFB: it must be an unclaimed IFB device. */
        snprintf(nb->ifb, sizeof(nb->ifb), "%s", nb->cfg.ifb);
        rc = rtnl_link_get_kernel(nb->sock, 0, nb->ifb, &l);
        if (rc < 0)
            return rm_error_set(err, nl_to_errno(rc), "netbuf: no IFB "
                                "device '%s': %s", nb->ifb, nl_geterror(rc));
        if (!rtnl_link_get_type(l) || strcmp(rtnl_link_get_type(l), "ifb")) {
            rtnl_link_put(l);
            return rm_error_set(err, -EINVAL, "netbuf: '%s' is not an IFB "
                                "device", nb->ifb);
        }
        if (parse_alias(rtnl_link_get_ifalias(l), owner, sizeof(owner),
                        &pid) && pid_alive(pid)) {
            rtnl_link_put(l);
            return rm_error_set(err, -EBUSY, "netbuf: IFB '%s' is in use by "
                                "remus pid %ld (for %s)", nb->ifb, pid, owner);
        }
    } else {
        /* Our own, named after the VIF's index: free unless claimed. */
        snprintf(nb->ifb, sizeof(nb->ifb), "rmifb%d", nb->vif_index);
        ifb = rtnl_link_alloc();
        if (!ifb)
            return rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        rtnl_link_set_name(ifb, nb->ifb);
        rc = rtnl_link_set_type(ifb, "ifb");
        if (rc >= 0)
            rc = rtnl_link_add(nb->sock, ifb, NLM_F_CREATE | NLM_F_EXCL);
        rtnl_link_put(ifb);
        if (rc < 0)
            return rm_error_set(err, nl_to_errno(rc), "netbuf: cannot create "
                                "the IFB device %s: %s (the kernel needs "
                                "CONFIG_IFB, module ifb)", nb->ifb,
                                nl_geterror(rc));
        nb->created_ifb = true;
        rc = rtnl_link_get_kernel(nb->sock, 0, nb->ifb, &l);
        if (rc < 0)
            return rm_error_set(err, nl_to_errno(rc), "netbuf: the new IFB "
                                "%s vanished: %s", nb->ifb, nl_geterror(rc));
    }
    nb->ifb_index = rtnl_link_get_ifindex(l);
    rc = link_change(nb->sock, l, alias, true);
    rtnl_link_put(l);
    if (rc)
        return rm_error_set(err, rc, "netbuf: cannot claim and bring up IFB "
                            "%s: %s", nb->ifb, strerror(-rc));
    return 0;
}

static int add_ingress_redirect(struct nb_plug *nb, struct rm_error *err)
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    struct rtnl_cls *cls = NULL;
    struct rtnl_act *act = NULL;
    int rc;

    if (!q)
        return rm_error_set(err, -ENOMEM, "netbuf: out of memory");
    rtnl_tc_set_ifindex(TC_CAST(q), nb->vif_index);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
    rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
    rc = rtnl_tc_set_kind(TC_CAST(q), "ingress");
    if (rc >= 0)
        rc = rtnl_qdisc_add(nb->sock, q, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_qdisc_put(q);
    if (rc < 0) {
        rc = rm_error_set(err, nl_to_errno(rc), "netbuf: cannot add an "
                          "ingress qdisc to %s: %s%s", nb->vif,
                          nl_geterror(rc), rc == -NLE_EXIST ? " (the "
                          "interface already has one: another tool or an "
                          "earlier run owns it)" : "");
        goto out;
    }
    nb->have_ingress = true;

    cls = rtnl_cls_alloc();
    act = rtnl_act_alloc();
    if (!cls || !act) {
        rc = rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        goto out;
    }
    rtnl_tc_set_ifindex(TC_CAST(cls), nb->vif_index);
    rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
    rtnl_cls_set_protocol(cls, ETH_P_ALL);     /* every protocol */
    rtnl_cls_set_prio(cls, 1);
    rc = rtnl_tc_set_kind(TC_CAST(cls), "u32");
    if (rc >= 0)
        rc = rtnl_u32_set_cls_terminal(cls);
    if (rc >= 0)
        rc = rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0);  /* match all */
    if (rc >= 0)
        rc = rtnl_tc_set_kind(TC_CAST(act), "mirred");
    if (rc >= 0)
        rc = rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
    if (rc >= 0)
        rc = rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
    if (rc >= 0)
        rc = rtnl_mirred_set_ifindex(act, (uint32_t)nb->ifb_index);
    if (rc >= 0)
        rc = rtnl_u32_add_action(cls, act);
    if (rc >= 0)
        rc = rtnl_cls_add(nb->sock, cls, NLM_F_CREATE | NLM_F_EXCL);
    if (rc < 0) {
        rc = rm_error_set(err, nl_to_errno(rc), "netbuf: cannot add the "
                          "u32 filter redirecting %s's ingress to %s: %s "
                          "(the kernel needs CONFIG_NET_CLS_U32 and "
                          "CONFIG_NET_ACT_MIRRED)", nb->vif, nb->ifb,
                          nl_geterror(rc));
        goto out;
    }
    rc = 0;
out:
    if (act)
        rtnl_act_put(act);
    if (cls)
        rtnl_cls_put(cls);
    return rc;
}

/* A fresh plug qdisc at the IFB's root (holding from the start). */
static int add_plug(struct nb_plug *nb, int flags, struct rm_error *err)
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    int rc;

    if (!q)
        return rm_error_set(err, -ENOMEM, "netbuf: out of memory");
    rtnl_tc_set_ifindex(TC_CAST(q), nb->ifb_index);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q), PLUG_HANDLE);
    rc = rtnl_tc_set_kind(TC_CAST(q), "plug");
    if (rc >= 0)
        rc = rtnl_qdisc_plug_set_limit(q, (int)nb->cfg.limit_bytes);
    if (rc >= 0)
        rc = rtnl_qdisc_add(nb->sock, q, flags);
    rtnl_qdisc_put(q);
    if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_OPNOTSUPP ||
        rc == -NLE_NOATTR || rc == -NLE_INVAL)
        return rm_error_set(err, -EOPNOTSUPP, "netbuf: the kernel has no "
                            "'plug' qdisc (CONFIG_NET_SCH_PLUG, module "
                            "sch_plug): cannot hold back the VM's output on "
                            "%s; load sch_plug (modprobe sch_plug) or run "
                            "without output buffering (-F -n)", nb->ifb);
    if (rc < 0)
        return rm_error_set(err, nl_to_errno(rc), "netbuf: cannot add the "
                            "plug qdisc to %s: %s", nb->ifb, nl_geterror(rc));
    return 0;
}

/* One plug command (buffer / release one / release indefinite). */
static int plug_cmd(struct nb_plug *nb, int (*cmd)(struct rtnl_qdisc *))
{
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    int rc;

    if (!q)
        return -ENOMEM;
    rtnl_tc_set_ifindex(TC_CAST(q), nb->ifb_index);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q), PLUG_HANDLE);
    rc = rtnl_tc_set_kind(TC_CAST(q), "plug");
    if (rc >= 0)
        rc = cmd(q);
    if (rc >= 0)
        rc = rtnl_qdisc_add(nb->sock, q, NLM_F_REPLACE);
    rtnl_qdisc_put(q);
    return rc < 0 ? nl_to_errno(rc) : 0;
}

static void teardown(struct nb_plug *nb)
{
    struct rtnl_link *l = NULL;

    if (nb->have_ingress)          /* takes the filter with it */
        qdisc_delete(nb->sock, nb->vif_index, TC_H_INGRESS);
    nb->have_ingress = false;
    if (nb->ifb_index > 0) {
        if (nb->created_ifb) {
            link_delete(nb->sock, nb->ifb_index);
        } else {
            if (nb->have_plug)
                qdisc_delete(nb->sock, nb->ifb_index, TC_H_ROOT);
            if (rtnl_link_get_kernel(nb->sock, nb->ifb_index, NULL, &l) >= 0) {
                link_change(nb->sock, l, NULL, false);   /* unclaim */
                rtnl_link_put(l);
            }
        }
    }
    nb->have_plug = false;
    nb->ifb_index = 0;
}

struct rm_netbuf *rm_netbuf_plug_new(const struct rm_netbuf_plug_cfg *cfg,
                                     struct rm_error *err)
{
    struct nb_plug *nb;
    unsigned stale = 0;
    int rc;

    if (!cfg->vif || !*cfg->vif || strlen(cfg->vif) >= IFNAMSIZ) {
        rm_error_set(err, -EINVAL, "netbuf: bad interface name '%s'",
                     cfg->vif ? cfg->vif : "");
        return NULL;
    }
    nb = calloc(1, sizeof(*nb));
    if (!nb) {
        rm_error_set(err, -ENOMEM, "netbuf: out of memory");
        return NULL;
    }
    nb->base.ops = &plug_ops;
    nb->cfg = *cfg;
    if (!nb->cfg.limit_bytes)
        nb->cfg.limit_bytes = 16u << 20;
    snprintf(nb->vif, sizeof(nb->vif), "%s", cfg->vif);
    pthread_mutex_init(&nb->lock, NULL);

    rc = rm_netbuf_plug_cleanup_stale(nb->vif, &stale, err);
    if (rc)
        goto fail;
    nb->sock = open_route_socket(err);
    if (!nb->sock)
        goto fail;
    nb->vif_index = (int)if_nametoindex(nb->vif);
    if (nb->vif_index <= 0) {
        rm_error_set(err, -ENODEV, "netbuf: no network interface '%s' (the "
                     "VM's backend interface, e.g. vif3.0)", nb->vif);
        goto fail;
    }
    if (pick_ifb(nb, err) || add_ingress_redirect(nb, err))
        goto fail;
    if (!cfg->no_plug) {
        if (add_plug(nb, NLM_F_CREATE | NLM_F_REPLACE, err))
            goto fail;
        nb->have_plug = true;
    }
    LOG_INFO("%s's output is redirected to %s%s (%u stale setup%s removed)",
             nb->vif, nb->ifb, cfg->no_plug ? " (no plug: --no-plug)"
                                            : " and held by its plug qdisc",
             stale, stale == 1 ? "" : "s");
    return &nb->base;
fail:
    if (nb->sock)
        teardown(nb);
    if (nb->sock)
        nl_socket_free(nb->sock);
    pthread_mutex_destroy(&nb->lock);
    free(nb);
    return NULL;
}

const char *rm_netbuf_plug_ifb(const struct rm_netbuf *nb)
{
    return nb->ops == &plug_ops ? ((const struct nb_plug *)nb)->ifb : NULL;
}

/* ------------------------------------------------------------ ops */

static int p_start_epoch(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_plug *nb = (struct nb_plug *)base;
    int rc = 0;

    pthread_mutex_lock(&nb->lock);
    if (nb->have_plug && !nb->passthrough && !nb->outstanding) {
        rc = plug_cmd(nb, rtnl_qdisc_plug_buffer);
        if (rc == 0)
            nb->outstanding = epoch;
    }
    pthread_mutex_unlock(&nb->lock);
    return rc;
}

static int p_release(struct rm_netbuf *base, uint64_t epoch)
{
    struct nb_plug *nb = (struct nb_plug *)base;
    int rc = 0;

    pthread_mutex_lock(&nb->lock);
    if (nb->outstanding && epoch >= nb->outstanding) {
        rc = plug_cmd(nb, rtnl_qdisc_plug_release_one);
        if (rc == 0) {
            nb->outstanding = 0;
            nb->st.released_epochs++;
        }
    }
    pthread_mutex_unlock(&nb->lock);
    return rc;
}

static int p_discard(struct rm_netbuf *base)
{
    struct nb_plug *nb = (struct nb_plug *)base;
    struct rm_error err = { 0 };
    int rc = 0;

    pthread_mutex_lock(&nb->lock);
    if (nb->have_plug) {
        /* The only way to drop what a plug holds: a fresh plug qdisc. */
        qdisc_delete(nb->sock, nb->ifb_index, TC_H_ROOT);
        rc = add_plug(nb, NLM_F_CREATE | NLM_F_REPLACE, &err);
        if (rc)
            LOG_WARN("%s", rm_error_str(&err));
        nb->st.discards++;
        nb->outstanding = 0;
    }
    pthread_mutex_unlock(&nb->lock);
    return rc;
}

static int p_passthrough(struct rm_netbuf *base)
{
    struct nb_plug *nb = (struct nb_plug *)base;
    int rc = 0;

    pthread_mutex_lock(&nb->lock);
    nb->passthrough = true;
    if (nb->have_plug)
        rc = plug_cmd(nb, rtnl_qdisc_plug_release_indefinite);
    nb->outstanding = 0;
    pthread_mutex_unlock(&nb->lock);
    return rc;
}

static void p_get_stats(struct rm_netbuf *base, struct rm_netbuf_stats *st)
{
    struct nb_plug *nb = (struct nb_plug *)base;

    pthread_mutex_lock(&nb->lock);
    *st = nb->st;
    pthread_mutex_unlock(&nb->lock);
}

static void p_destroy(struct rm_netbuf *base)
{
    struct nb_plug *nb = (struct nb_plug *)base;

    teardown(nb);
    nl_socket_free(nb->sock);
    pthread_mutex_destroy(&nb->lock);
    free(nb);
}

static const struct rm_netbuf_ops plug_ops = {
    .kind = "plug",
    .output = NULL,        /* the kernel holds the output, not us */
    .start_epoch = p_start_epoch,
    .release = p_release,
    .discard = p_discard,
    .passthrough = p_passthrough,
    .get_stats = p_get_stats,
    .destroy = p_destroy,
};
