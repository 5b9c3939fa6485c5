/* SPDX-License-Identifier: MIT */
/* The devices a checkpoint does not capture (see xen_devices.h). */
#define RM_LOG_PREFIX "xen"
#include "backends/xen/xen_devices.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "common/log.h"

/* Read @path into @buf ("?" when absent).  1 when found, 0 when absent,
 * or -errno. */
static int xs_get(struct xs_handle *xsh, const char *path, char *buf,
                  size_t len)
{
    unsigned n = 0;
    char *v = xs_read(xsh, XBT_NULL, path, &n);

    if (!v) {
        snprintf(buf, len, "?");
        return errno == ENOENT ? 0 : -errno;
    }
    snprintf(buf, len, "%s", v);
    free(v);
    return 1;
}

int rm_xen_vbds(struct rm_xen_host *h, uint32_t domid,
                struct rm_xen_vbd *out, int max, struct rm_error *err)
{
    struct xs_handle *xsh = rm_xen_xsh(h);
    char path[96], node[320], backend[256], sectors[32], **ents;
    unsigned n = 0, i;
    int rc = 0;

    snprintf(path, sizeof(path), "/local/domain/%u/device/vbd", domid);
    ents = xs_directory(xsh, XBT_NULL, path, &n);
    if (!ents)
        return errno == ENOENT ? 0 : rm_error_set(err, -errno, "cannot "
                                                  "read %s: %s", path,
                                                  strerror(errno));
    for (i = 0; i < n && (int)i < max && rc >= 0; i++) {
        struct rm_xen_vbd *v = &out[i];

        snprintf(v->vdev, sizeof(v->vdev), "vbd %.20s", ents[i]);
        snprintf(v->type, sizeof(v->type), "?");
        snprintf(v->target, sizeof(v->target), "?");
        v->size = 0;
        snprintf(node, sizeof(node), "%s/%s/backend", path, ents[i]);
        rc = xs_get(xsh, node, backend, sizeof(backend));
        if (rc <= 0)            /* no backend (yet): named by its devid */
            continue;
        snprintf(node, sizeof(node), "%s/dev", backend);
        rc = xs_get(xsh, node, v->vdev, sizeof(v->vdev));
        if (rc == 0)
            snprintf(v->vdev, sizeof(v->vdev), "vbd %.20s", ents[i]);
        snprintf(node, sizeof(node), "%s/type", backend);
        if (rc >= 0)
            rc = xs_get(xsh, node, v->type, sizeof(v->type));
        snprintf(node, sizeof(node), "%s/params", backend);
        if (rc >= 0)
            rc = xs_get(xsh, node, v->target, sizeof(v->target));
        snprintf(node, sizeof(node), "%s/sectors", backend);
        if (rc >= 0)
            rc = xs_get(xsh, node, sectors, sizeof(sectors));
        if (rc > 0)
            v->size = strtoull(sectors, NULL, 10) * 512;
    }
    if (rc < 0)
        rm_error_set(err, rc, "cannot read the backend of a VBD of domain "
                     "%u (%s): %s", domid, path, strerror(-rc));
    free(ents);
    return rc < 0 ? rc : (int)n;
}

int rm_xen_device_model(struct rm_xen_host *h, uint32_t domid, char *what,
                        size_t len, struct rm_error *err)
{
    struct xs_handle *xsh = rm_xen_xsh(h);
    static const char *const says[] = {
        "QEMU runs in dom0 for it",
        "QEMU runs for it in a stub domain",
        "QEMU has a xenstore directory for it",
    };
    char paths[3][96], val[32];
    const char *path;
    size_t i;
    int rc;

    snprintf(paths[0], sizeof(paths[0]),
             "/local/domain/%u/image/device-model-pid", domid);
    snprintf(paths[1], sizeof(paths[1]),
             "/local/domain/%u/image/device-model-domid", domid);
    snprintf(paths[2], sizeof(paths[2]), "/local/domain/0/device-model/%u",
             domid);
    for (i = 0; i < 3; i++) {
        path = paths[i];
        rc = xs_get(xsh, path, val, sizeof(val));
        if (rc < 0)
            return rm_error_set(err, rc, "cannot read %s: %s", path,
                                strerror(-rc));
        if (rc) {
            snprintf(what, len, "%s (%s = '%s')", says[i], path, val);
            return 1;
        }
    }
    return 0;
}

int rm_xen_check_device_model(struct rm_xen_host *h, uint32_t domid,
                              struct rm_error *err)
{
    char what[200];
    int rc = rm_xen_device_model(h, domid, what, sizeof(what), err);

    if (rc < 0)
        return rc;
    if (rc)
        return rm_error_set(err, -EOPNOTSUPP, "domain %u has a device "
                            "model: device model state is not checkpointed: "
                            "%s; a replica would resume with its emulated "
                            "devices lost (HVM guests with QEMU and PV/PVH "
                            "guests with QEMU backends are refused; use a "
                            "PVH guest with netback/blkback devices)", domid,
                            what);
    return 0;
}

int rm_xen_refuse_vbds(uint32_t domid, const struct rm_xen_vbd *vbds, int n,
                       int more, bool no_disk, struct rm_error *err)
{
    char list[400];
    size_t off = 0;
    int i;

    if (n <= 0)
        return 0;
    list[0] = '\0';
    for (i = 0; i < n && off < sizeof(list); i++) {
        int k = snprintf(list + off, sizeof(list) - off, "%s%s (%s:%s)",
                         i ? ", " : "", vbds[i].vdev, vbds[i].type,
                         vbds[i].target);

        off += k > 0 ? (size_t)k : 0;
    }
    if (more > 0 && off < sizeof(list))
        snprintf(list + off, sizeof(list) - off, " and %d more", more);
    n += more > 0 ? more : 0;
    if (!no_disk)
        return rm_error_set(err, -EOPNOTSUPP, "domain %u has %d disk%s "
                            "(VBD) that remus does not replicate: %s; a "
                            "replica would resume against a disk without "
                            "the guest's latest writes (xl remus refuses "
                            "too); serve %s with `remus disk serve IMAGE "
                            "--device /dev/nbdN` and give the guest "
                            "phy:/dev/nbdN, or use -F -d to protect it with "
                            "%s unreplicated", domid, n, n == 1 ? "" : "s",
                            list, n == 1 ? "it" : "each",
                            n == 1 ? "it" : "them");
    LOG_WARN("UNSAFE (-F -d): domain %u's disk%s NOT replicated: %s; after "
             "a failover the replica sees %s as the secondary has %s, "
             "without the primary's writes", domid, n == 1 ? " is" : "s are",
             list, n == 1 ? "it" : "them", n == 1 ? "it" : "them");
    return 0;
}
