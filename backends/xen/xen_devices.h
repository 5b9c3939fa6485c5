/* SPDX-License-Identifier: MIT */
/*
 * The devices of a domain that a checkpoint does not capture, as xenstore
 * lists them, and the protection's verdict on them.  A checkpoint holds
 * the guest's memory and vCPU/HVM state; what lives outside the domain is
 * not in it:
 *   - a disk (VBD): its backing store (a block device or file in dom0, or
 *     QEMU's qdisk) is not replicated by remus (yet), so a replica would
 *     resume against a disk that lacks writes the guest believes done;
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

/*
 * Before protecting @domid: refuse (-EOPNOTSUPP, naming them) a device
 * model, whose state is not checkpointed, and VBDs unless @no_disk (-F -d),
 * in which case every VBD left unreplicated is named in a warning.
 * 0 or -errno.
 */
int rm_xen_check_devices(struct rm_xen_host *h, uint32_t domid,
                         bool no_disk, struct rm_error *err);

#endif
