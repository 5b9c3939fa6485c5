/* SPDX-License-Identifier: MIT */
/*
 * The devices of a domain that a checkpoint does not capture, as xenstore
 * lists them, and the protection's verdict on them.  A checkpoint holds
 * the guest's memory and vCPU/HVM state; what lives outside the domain is
 * not in it:
 *   - a disk (VBD) that `remus disk serve` does not serve (a block device
 *     or file in dom0, or QEMU's qdisk): not replicated, so a replica
 *     would resume against a disk that lacks writes the guest believes
 *     done (the served ones: xen_disks.h);
 *   - a device model (QEMU, in dom0 or a stub domain, for an HVM guest's
 *     emulated devices or a PV/PVH guest's qdisk/vfb backends): its device
 *     state is not checkpointed.
 * (VIFs are handled: netbuf holds their output; see xen_backend.c.)
 */
#ifndef REMUS_BACKENDS_XEN_XEN_DEVICES_H
#define REMUS_BACKENDS_XEN_XEN_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/xen/xen_host.h"
#include "common/err.h"

struct rm_xen_vbd {
    char vdev[32];       /* the guest's name for it (backend "dev"), e.g.
                            xvda; else "vbd <devid>" */
    char type[16];       /* backend "type": phy, file, qdisk... ("?") */
    char target[160];    /* backend "params": what backs it ("?") */
    uint64_t size;       /* backend "sectors" * 512 (0: not told yet) */
};

/*
 * The domain's VBDs, from its frontend directory
 * /local/domain/DOMID/device/vbd/ (each entry's "backend" node leads to
 * the backend's dev, type and params), up to @max.  The number found
 * (may exceed @max: only @max are filled) or -errno.
 */
int rm_xen_vbds(struct rm_xen_host *h, uint32_t domid,
                struct rm_xen_vbd *out, int max, struct rm_error *err);

/*
 * Does the domain have a device model?  libxl's own test (libxl__dm_active):
 * /local/domain/DOMID/image/device-model-pid (QEMU in dom0) or
 * .../image/device-model-domid (a stub domain); also QEMU's own directory
 * /local/domain/0/device-model/DOMID.  1 with what was found in @what, 0
 * when none, or -errno.
 */
int rm_xen_device_model(struct rm_xen_host *h, uint32_t domid, char *what,
                        size_t len, struct rm_error *err);

/* Before protecting @domid: refuse (-EOPNOTSUPP, naming it) a device
 * model, whose state is not checkpointed.  0 or -errno. */
int rm_xen_check_device_model(struct rm_xen_host *h, uint32_t domid,
                              struct rm_error *err);

/*
 * The VBDs @vbds[0..n) (and @more not listed) that remus does not
 * replicate: refused (-EOPNOTSUPP, each named with what backs it, and
 * how to serve it) unless @no_disk (-F -d), then named in a warning.
 * 0 when n + more is 0.
 */
int rm_xen_refuse_vbds(uint32_t domid, const struct rm_xen_vbd *vbds, int n,
                       int more, bool no_disk, struct rm_error *err);

#endif
