/* SPDX-License-Identifier: MIT */
/*
 * xen_pv_frame: a Xen lab aid for a 64-bit PV guest's frames (dom0 only).
 *
 *   xen_pv_frame DOMAIN pfn PFN         "PFN MFN TYPE" from the guest's p2m
 *                                       and Xen's page type
 *   xen_pv_frame DOMAIN find TYPE [N]   the (N+1)th frame of TYPE (data, L1,
 *                                       L2, L3, L4; "+" suffix: pinned) as
 *                                       "PFN MFN TYPE"
 *   xen_pv_frame DOMAIN hash PFN        a 64-bit FNV-1a hash of the page
 *   xen_pv_frame DOMAIN p2m N           "PFN MFN" of the Nth frame of the
 *                                       guest's p2m (from its frame lists)
 *   xen_pv_frame DOMAIN hold MFN        map the frame read only (as a dom0
 *                                       process that uses a guest page
 *                                       would), say "holding", and keep it
 *                                       mapped until killed
 * TYPE prints as data, L1..L4, with "+" when pinned, or "invalid".
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/xen/xen_pv_mem.h"
#include "common/stream.h"

static void type_name(xen_pfn_t t, char *buf, size_t len)
{
    unsigned nib = (unsigned)((t >> 28) & 0xf), level = nib & 7;

    if (nib == 0xf || nib == 0xd || nib == 0xe)
        snprintf(buf, len, "invalid");
    else if (level >= 1 && level <= 4)
        snprintf(buf, len, "L%u%s", level, (nib & 8) ? "+" : "");
    else
        snprintf(buf, len, "data");
}

static int types_of(struct rm_xen_pv_mem *m, uint64_t pfn, unsigned n,
                    xen_pfn_t *out, struct rm_error *err)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        unsigned long mfn = m->p2m[pfn + i];

        out[i] = (mfn == RM_XEN_PV_INVALID_MFN ||
                  !rm_xen_pv_mfn_valid(m, mfn)) ? 0 : mfn;
    }
    return rm_xen_pv_frame_types(m, out, n, err);
}

int main(int argc, char **argv)
{
    struct rm_xen_host *h = NULL;
    struct rm_xen_pv_mem m;
    struct rm_error err = { 0 };
    uint32_t domid;
    char tn[16];
    int rc = 1;

    memset(&m, 0, sizeof(m));
    if (argc < 4) {
        fprintf(stderr, "usage: xen_pv_frame DOMAIN pfn|find|hash|p2m|hold "
                "ARG [N]\n");
        return 2;
    }
    if (rm_xen_host_open(&h, &err) || rm_xen_domid(h, argv[1], &domid, &err)
        || rm_xen_pv_mem_open(&m, h, domid, &err) ||
        rm_xen_pv_mem_read_p2m(&m, &err)) {
        fprintf(stderr, "xen_pv_frame: %s\n", rm_error_str(&err));
        goto out;
    }
    if (!strcmp(argv[2], "pfn") || !strcmp(argv[2], "hash")) {
        uint64_t pfn = strtoull(argv[3], NULL, 0);
        xen_pfn_t t;

        if (pfn >= m.p2m_size || m.p2m[pfn] == RM_XEN_PV_INVALID_MFN) {
            fprintf(stderr, "xen_pv_frame: pfn %#" PRIx64 " has no frame\n",
                    pfn);
            goto out;
        }
        if (!strcmp(argv[2], "pfn")) {
            if (types_of(&m, pfn, 1, &t, &err))
                goto fail;
            type_name(t, tn, sizeof(tn));
            printf("%#" PRIx64 " %#lx %s\n", pfn, m.p2m[pfn], tn);
        } else {
            unsigned long page[RM_PAGE_SIZE / sizeof(unsigned long)];
            xen_pfn_t mfn = m.p2m[pfn];
            uint64_t hash = 0xcbf29ce484222325ull;
            size_t i;

            if (rm_xen_pv_copy_frames(&m, &mfn, 1, page, RM_PAGE_SIZE / 8,
                                      "page", &err))
                goto fail;
            for (i = 0; i < RM_PAGE_SIZE; i++)
                hash = (hash ^ ((const uint8_t *)page)[i]) *
                       0x100000001b3ull;
            printf("%016" PRIx64 "\n", hash);
        }
        rc = 0;
    } else if (!strcmp(argv[2], "find")) {
        unsigned long skip = argc > 4 ? strtoul(argv[4], NULL, 0) : 0;
        xen_pfn_t t[512];
        uint64_t pfn;
        unsigned i, n;

        for (pfn = 0; pfn < m.p2m_size; pfn += n) {
            n = m.p2m_size - pfn < 512 ? (unsigned)(m.p2m_size - pfn) : 512;
            if (types_of(&m, pfn, n, t, &err))
                goto fail;
            for (i = 0; i < n; i++) {
                if (m.p2m[pfn + i] == RM_XEN_PV_INVALID_MFN)
                    continue;
                type_name(t[i], tn, sizeof(tn));
                if (strcmp(tn, argv[3]) || skip-- > 0)
                    continue;
                printf("%#" PRIx64 " %#lx %s\n", pfn + i, m.p2m[pfn + i], tn);
                rc = 0;
                goto out;
            }
        }
        fprintf(stderr, "xen_pv_frame: no such frame of type %s\n", argv[3]);
    } else if (!strcmp(argv[2], "p2m")) {
        unsigned long n = strtoul(argv[3], NULL, 0);
        uint64_t pfn;

        if (n >= m.nr_p2m_frames ||
            !rm_xen_pv_mfn_to_pfn(&m, m.p2m_frames[n], &pfn)) {
            fprintf(stderr, "xen_pv_frame: no p2m frame %lu of the guest's "
                    "(%u frames)\n", n, m.nr_p2m_frames);
            goto out;
        }
        printf("%#" PRIx64 " %#lx\n", pfn, (unsigned long)m.p2m_frames[n]);
        rc = 0;
    } else if (!strcmp(argv[2], "hold")) {
        xen_pfn_t mfn = strtoull(argv[3], NULL, 0);
        int e = 0;
        void *p = xenforeignmemory_map(m.fmem, domid, PROT_READ, 1, &mfn, &e);

        if (!p || e) {
            fprintf(stderr, "xen_pv_frame: cannot map mfn %#lx of domain "
                    "%u\n", (unsigned long)mfn, domid);
            goto out;
        }
        printf("holding %#lx\n", (unsigned long)mfn);
        fflush(stdout);
        rm_xen_pv_mem_close(&m);
        for (;;)
            pause();
    } else {
        fprintf(stderr, "xen_pv_frame: unknown command %s\n", argv[2]);
        rc = 2;
    }
    goto out;
fail:
    fprintf(stderr, "xen_pv_frame: %s\n", rm_error_str(&err));
out:
    rm_xen_pv_mem_close(&m);
    rm_xen_host_close(h);
    return rc;
}
