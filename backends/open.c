/* SPDX-License-Identifier: MIT */
/* Opening a backend by kind (see open.h). */
#define RM_LOG_PREFIX "backend"
#include "backends/open.h"

#include <errno.h>
#include <string.h>

#include "backends/xen/xen_backend.h"

const char *rm_backend_kind_name(enum rm_backend_kind kind)
{
    return kind == RM_BACKEND_KIND_XEN ? "xen" : "kvm";
}

int rm_backend_kind_parse(const char *name, enum rm_backend_kind *kind,
                          struct rm_error *err)
{
    if (!name || !strcmp(name, "kvm")) {
        *kind = RM_BACKEND_KIND_KVM;
        return 0;
    }
    if (!strcmp(name, "xen")) {
        *kind = RM_BACKEND_KIND_XEN;
        return 0;
    }
    return rm_error_set(err, -EINVAL, "backend '%s': kvm or xen", name);
}

int rm_backend_open_protected(const struct rm_backend_protect_spec *s,
                              struct rm_backend **out, struct rm_error *err)
{
    if (s->kind == RM_BACKEND_KIND_XEN && s->colo)
        return rm_error_set(err, -EOPNOTSUPP, "COLO (--colo) runs on the "
                            "micro-VMM (KVM) only, for now");
    if (s->kind == RM_BACKEND_KIND_XEN) {
        struct rm_xen_protect_opts xo;

        memset(&xo, 0, sizeof(xo));
        xo.no_netbuf = s->no_netbuf;
        xo.no_disk = s->no_disk;
        xo.suspend_timeout_ms = s->suspend_timeout_ms;
        xo.disk_buffer_bytes = s->disk_buffer_bytes;
        return rm_xen_backend_protect(s->domain, &xo, out, err);
    } else {
        struct rm_kvm_protect_opts ko;

        memset(&ko, 0, sizeof(ko));
        ko.no_netbuf = s->no_netbuf;
        ko.netbuf_max_bytes = s->netbuf_max_bytes;
        ko.disk_buffer_bytes = s->disk_buffer_bytes;
        ko.release_log_fd = s->release_log_fd;
        ko.no_disk = s->no_disk;
        ko.colo = s->colo;
        ko.compare_timeout_ms = s->compare_timeout_ms;
        return rm_kvm_backend_protect(s->vm, &ko, out, err);
    }
}

int rm_backend_open_replica(const struct rm_backend_replica_spec *s,
                            struct rm_backend **out, struct rm_error *err)
{
    struct rm_kvm_replica_opts ko;

    if (s->kind == RM_BACKEND_KIND_XEN)
        return rm_xen_backend_replica(s->xl_config, s->name,
                                      s->replica_name, s->disk_paths,
                                      s->nr_disks, s->disk_sync, out, err);
    ko = s->kvm;
    ko.disk_paths = s->disk_paths;
    ko.nr_disks = s->nr_disks;
    ko.disk_sync = s->disk_sync;
    ko.test_colo_no_fold = s->test_colo_no_fold;
    return rm_kvm_backend_replica(&ko, out, err);
}
