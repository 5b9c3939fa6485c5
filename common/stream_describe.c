/* SPDX-License-Identifier: MIT */
/* A record's contents in a few words (see stream.h). */
#include "common/stream.h"

#include "common/disklog.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void rm_record_describe(const struct rm_record *rec, char *buf, size_t len)
{
    const uint8_t *d = rec->data;

    buf[0] = '\0';
    switch (rec->type) {
    case RM_REC_X86_TSC_INFO: {
        struct rm_x86_tsc_info ti;

        memcpy(&ti, d, sizeof(ti));
        snprintf(buf, len, "  mode %u, %u kHz, %" PRIu64 " ns, incarnation "
                 "%u", ti.mode, ti.khz, (uint64_t)ti.nsec, ti.incarnation);
        break;
    }
    case RM_REC_HVM_PARAMS: {
        uint32_t count;

        memcpy(&count, d, 4);
        snprintf(buf, len, "  %u params", count);
        break;
    }
    case RM_REC_X86_CPUID_POLICY:
        snprintf(buf, len, "  %zu leaves",
                 rec->length / sizeof(struct rm_x86_cpuid_leaf));
        break;
    case RM_REC_X86_MSR_POLICY:
        snprintf(buf, len, "  %zu MSRs",
                 rec->length / sizeof(struct rm_x86_msr_entry));
        break;
    case RM_REC_X86_PV_INFO:
        snprintf(buf, len, "  %u-bit guest, %u levels", d[0] * 8, d[1]);
        break;
    case RM_REC_X86_PV_VCPU_BASIC:
    case RM_REC_X86_PV_VCPU_EXTENDED:
    case RM_REC_X86_PV_VCPU_XSAVE:
    case RM_REC_X86_PV_VCPU_MSRS:
    case RM_REC_KVM_VCPU: {
        uint32_t id;

        memcpy(&id, d, 4);
        snprintf(buf, len, "  vcpu %u", id);
        break;
    }
    case RM_REC_KVM_DEVICE: {
        uint32_t id, ver;

        memcpy(&id, d, 4);
        memcpy(&ver, d + 4, 4);
        snprintf(buf, len, "  device %u, layout %u", id, ver);
        break;
    }
    case RM_REC_KVM_VM_INFO: {
        struct rm_kvm_vm_info vi;

        memcpy(&vi, d, sizeof(vi));
        snprintf(buf, len, "  %" PRIu64 " MiB, %u vcpus, mac "
                 "%02x:%02x:%02x:%02x:%02x:%02x",
                 (uint64_t)vi.mem_bytes >> 20, vi.nr_vcpus, vi.mac[0],
                 vi.mac[1], vi.mac[2], vi.mac[3], vi.mac[4], vi.mac[5]);
        break;
    }
    case RM_REC_EPOCH_INFO: {
        struct rm_epoch_info ei;

        memcpy(&ei, d, sizeof(ei));
        snprintf(buf, len, "  epoch %" PRIu64 ", %" PRIu64 " pages, digest "
                 "%016" PRIx64, (uint64_t)ei.epoch, (uint64_t)ei.dirty_pages,
                 (uint64_t)ei.digest);
        break;
    }
    case RM_REC_DISK_INFO: {
        struct rm_disk_info_hdr h;
        struct rm_disk_info_entry e[RM_DISK_MAX];
        size_t at;
        uint32_t i;

        if (rm_disk_info_parse(rec, &h, e, NULL))
            break;
        at = (size_t)snprintf(buf, len, "  %u disk%s:", h.count,
                              h.count == 1 ? "" : "s");
        for (i = 0; i < h.count && at < len; i++)
            at += (size_t)snprintf(buf + at, len - at, " %u (%" PRIu64
                                   " bytes)", e[i].id, (uint64_t)e[i].size);
        break;
    }
    case RM_REC_DISK_WRITES: {
        struct rm_disk_writes_hdr h;

        if (rm_disk_writes_walk(rec, &h, NULL, NULL, NULL))
            break;
        snprintf(buf, len, "  disk %u, epoch %" PRIu64 ", part %u, %u "
                 "entries%s%s", h.disk, (uint64_t)h.epoch, h.part, h.count,
                 h.flags & RM_DISK_WR_SYNC ? ", sync" : "",
                 h.flags & RM_DISK_WR_LAST ? ", last" : "");
        break;
    }
    default:
        if (rec->type & RM_REC_OPTIONAL)
            snprintf(buf, len, "  (unknown optional record 0x%08x, "
                     "skipped)", rec->type);
        break;
    }
}
