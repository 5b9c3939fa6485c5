/* SPDX-License-Identifier: MIT */
/* A protected domain's served disks (see xen_disks.h). */
#define RM_LOG_PREFIX "xen"
#include "backends/xen/xen_disks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/xen/xen_devices.h"
#include "common/log.h"
#include "nbd/attach.h"

#define MAX_VBDS 8

struct rm_xen_disks {
    struct rm_disklog *log;
    struct rm_nbd_attached *att[RM_DISK_MAX];
    unsigned n;
};

static int by_vdev(const void *a, const void *b)
{
    const struct rm_xen_vbd *x = a, *y = b;
    size_t lx = strlen(x->vdev), ly = strlen(y->vdev);

    /* xvdz before xvdaa, as the kernel names them */
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->vdev, y->vdev);
}

/* Attach VBD @v as disk d->n.  1 when attached, 0 when nothing of ours
 * serves it, or -errno. */
static int attach_one(struct rm_xen_disks *d, const struct rm_xen_vbd *v,
                      struct rm_error *err)
{
    struct rm_error e = { 0 };
    char name[64];
    int rc;

    if (strcmp(v->type, "phy") ||
        rm_nbd_attach_name(v->target, name, sizeof(name), &e))
        return 0;
    if (d->n >= RM_DISK_MAX)
        return rm_error_set(err, -EOPNOTSUPP, "more than %u served disks",
                            RM_DISK_MAX);
    rc = rm_nbd_attach(name, d->log, d->n, &d->att[d->n], &e);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rm_error_set(err, rc, "disk %s (%s): %s", v->vdev, v->target,
                            rm_error_str(&e));
    LOG_INFO("disk %u: %s (phy:%s) replicated: its server sends every "
             "write to this protection's log", d->n, v->vdev, v->target);
    d->n++;
    return 1;
}

int rm_xen_disks_protect(struct rm_xen_host *h, uint32_t domid,
                         bool no_disk, uint64_t max_unacked,
                         struct rm_xen_disks **out,
                         struct rm_unreplicated_disk *unrep,
                         uint32_t *nr_unrep, struct rm_error *err)
{
    struct rm_disklog_params lp = { .max_unacked_bytes = max_unacked };
    struct rm_xen_vbd vbds[MAX_VBDS], unserved[MAX_VBDS];
    struct rm_xen_disks *d = NULL;
    int n, listed, more, i, nu = 0, rc;

    *out = NULL;
    *nr_unrep = 0;
    n = rm_xen_vbds(h, domid, vbds, MAX_VBDS, err);
    if (n <= 0)
        return n;
    listed = n < MAX_VBDS ? n : MAX_VBDS;   /* the others only counted */
    more = n - listed;
    qsort(vbds, (size_t)listed, sizeof(vbds[0]), by_vdev);
    if (no_disk) {
        /* -F -d: none replicated, served or not */
        for (i = 0; i < listed && i < (int)RM_DISK_MAX; i++) {
            unrep[i].id = (uint32_t)i;
            unrep[i].size = vbds[i].size;
        }
        *nr_unrep = (uint32_t)i;
        return rm_xen_refuse_vbds(domid, vbds, listed, more, true, err);
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return rm_error_set(err, -ENOMEM, "out of memory");
    rc = rm_disklog_open(&d->log, &lp, err);
    if (rc)
        goto fail;
    for (i = 0; i < listed; i++) {
        rc = attach_one(d, &vbds[i], err);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            unserved[nu++] = vbds[i];
    }
    rc = rm_xen_refuse_vbds(domid, unserved, nu, more, false, err);
    if (rc)
        goto fail;
    if (!d->n) {
        rm_xen_disks_close(d);
        return 0;
    }
    *out = d;
    return 0;
fail:
    rm_xen_disks_close(d);
    return rc;
}

struct rm_disklog *rm_xen_disks_log(struct rm_xen_disks *d)
{
    return d ? d->log : NULL;
}

void rm_xen_disks_close(struct rm_xen_disks *d)
{
    unsigned i;

    if (!d)
        return;
    /* A change waiting on the log's cap must not hold the feeds. */
    if (d->log)
        rm_disklog_shutdown(d->log);
    for (i = 0; i < d->n; i++)
        rm_nbd_detach(d->att[i]);
    rm_disklog_close(d->log);
    free(d);
}
