/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "xen-pv-mem"
#include "backends/xen/xen_pv_mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenguest.h>

#include "common/log.h"
#include "common/stream.h"

#define M2P_SIZE(max_mfn) (((max_mfn) * sizeof(xen_pfn_t) + (1ul << 21) - 1) \
                           & ~((1ul << 21) - 1))

int rm_xen_pv_mem_open(struct rm_xen_pv_mem *m, struct rm_xen_host *h,
                       uint32_t domid, struct rm_error *err)
{
    unsigned int width = 0;
    xc_dominfo_t info;
    int errs = 0;

    memset(m, 0, sizeof(*m));
    m->xch = rm_xen_xch(h);
    m->fmem = rm_xen_fmem(h);
    m->domid = domid;
    if (xc_domain_getinfo(m->xch, domid, 1, &info) != 1 ||
        info.domid != domid)
        return rm_error_set(err, errno ? -errno : -ENOENT, "cannot read "
                            "domain %u: %s", domid,
                            errno ? strerror(errno) : "no such domain");
    if (info.hvm)
        return rm_error_set(err, -EINVAL, "domain %u is not PV", domid);
    if (xc_domain_get_guest_width(m->xch, domid, &width))
        return rm_error_set(err, -errno, "cannot read the guest width of "
                            "domain %u: %s", domid, strerror(errno));
    if (width != 8)
        return rm_error_set(err, -EOPNOTSUPP, "domain %u is a %u-bit PV "
                            "guest: remus handles 64-bit PV guests", domid,
                            width * 8);
    if (xc_maximum_ram_page(m->xch, &m->max_mfn))
        return rm_error_set(err, -errno, "cannot read the host's highest "
                            "frame: %s", strerror(errno));
    m->m2p = xc_map_m2p(m->xch, m->max_mfn, PROT_READ, NULL);
    if (!m->m2p)
        return rm_error_set(err, errno ? -errno : -EIO, "cannot map Xen's "
                            "m2p table: %s", strerror(errno));
    m->shinfo_mfn = info.shared_info_frame;
    m->shinfo = xenforeignmemory_map(m->fmem, domid, PROT_READ | PROT_WRITE,
                                     1, &m->shinfo_mfn, &errs);
    if (!m->shinfo || errs) {
        if (m->shinfo)
            xenforeignmemory_unmap(m->fmem, m->shinfo, 1);
        m->shinfo = NULL;
        return rm_error_set(err, -EIO, "cannot map the shared info of "
                            "domain %u (mfn %#lx)", domid,
                            (unsigned long)m->shinfo_mfn);
    }
    return 0;
}

void rm_xen_pv_mem_close(struct rm_xen_pv_mem *m)
{
    if (m->shinfo)
        xenforeignmemory_unmap(m->fmem, m->shinfo, 1);
    m->shinfo = NULL;
    if (m->m2p)
        munmap(m->m2p, M2P_SIZE(m->max_mfn));
    m->m2p = NULL;
    free(m->p2m);
    m->p2m = NULL;
    free(m->p2m_frames);
    m->p2m_frames = NULL;
    free(m->fl_frames);
    m->fl_frames = NULL;
}

bool rm_xen_pv_mfn_valid(const struct rm_xen_pv_mem *m, uint64_t mfn)
{
    return mfn < m->max_mfn;
}

bool rm_xen_pv_mfn_to_pfn(const struct rm_xen_pv_mem *m, uint64_t mfn,
                          uint64_t *pfn)
{
    uint64_t p;

    if (!rm_xen_pv_mfn_valid(m, mfn) || !m->p2m)
        return false;
    p = m->m2p[mfn];
    if (p >= m->p2m_size || m->p2m[p] != mfn)
        return false;
    *pfn = p;
    return true;
}

int rm_xen_pv_copy_frames(const struct rm_xen_pv_mem *m,
                          const xen_pfn_t *mfns, unsigned n,
                          unsigned long *dst, size_t dst_longs,
                          const char *what, struct rm_error *err)
{
    size_t per = RM_PAGE_SIZE / sizeof(unsigned long), i, want;
    int *errs = calloc(n ? n : 1, sizeof(int));
    void *map;
    int rc = 0;

    if (!errs)
        return rm_error_set(err, -ENOMEM, "out of memory");
    map = xenforeignmemory_map(m->fmem, m->domid, PROT_READ, n, mfns, errs);
    if (!map) {
        rc = rm_error_set(err, errno ? -errno : -EIO, "cannot map the %s of "
                          "domain %u (%u frames): %s", what, m->domid, n,
                          strerror(errno));
        goto out;
    }
    for (i = 0; i < n && !rc; i++)
        if (errs[i])
            rc = rm_error_set(err, -EIO, "cannot map frame %zu (mfn %#lx) of"
                              " the %s of domain %u", i,
                              (unsigned long)mfns[i], what, m->domid);
    if (!rc) {
        want = (size_t)n * per < dst_longs ? (size_t)n * per : dst_longs;
        memcpy(dst, map, want * sizeof(unsigned long));
    }
    xenforeignmemory_unmap(m->fmem, map, n);
out:
    free(errs);
    return rc;
}

/* The guest bumps it before and after each change of its p2m's mappings
 * (odd in between).  Read once, as the guest may be writing it. */
static uint64_t p2m_generation(const struct rm_xen_pv_mem *m)
{
    const volatile shared_info_t *s = m->shinfo;

    return s->arch.p2m_generation;
}

int rm_xen_pv_mem_p2m_size(struct rm_xen_pv_mem *m, uint64_t *size,
                           struct rm_error *err)
{
    const shared_info_t *s = m->shinfo;
    uint64_t max_pfn = s->arch.max_pfn;
    uint64_t fll = s->arch.pfn_to_mfn_frame_list_list;

    if (!max_pfn || max_pfn > (1ull << 32) || !rm_xen_pv_mfn_valid(m, fll))
        return rm_error_set(err, -EINVAL, "domain %u publishes no usable p2m"
                            " (max_pfn %#" PRIx64 ", frame list list mfn %#"
                            PRIx64 "): is it a PV guest that has booted?",
                            m->domid, max_pfn, fll);
    *size = max_pfn;
    return 0;
}

/* Read the guest's p2m through its frame-list-list (3 levels). */
int rm_xen_pv_mem_read_p2m(struct rm_xen_pv_mem *m, struct rm_error *err)
{
    size_t per = RM_PAGE_SIZE / sizeof(unsigned long);
    unsigned long *fll = NULL, *fl = NULL;
    unsigned nr_fl, nr_p2m;
    uint64_t size = 0, i;
    xen_pfn_t one;
    int rc;

    free(m->p2m);
    free(m->p2m_frames);
    free(m->fl_frames);
    m->p2m = NULL;
    m->p2m_frames = m->fl_frames = NULL;
    m->nr_p2m_frames = m->nr_fl_frames = 0;
    rc = rm_xen_pv_mem_p2m_size(m, &size, err);
    if (rc)
        return rc;
    m->p2m_generation = p2m_generation(m);
    if (m->p2m_generation & 1)
        return rm_error_set(err, -EAGAIN, "domain %u is changing its p2m "
                            "(generation %" PRIu64 " is odd)", m->domid,
                            m->p2m_generation);
    m->fll_mfn = ((const shared_info_t *)m->shinfo)->arch
                 .pfn_to_mfn_frame_list_list;
    m->p2m_size = size;
    nr_p2m = (unsigned)((size + per - 1) / per);
    nr_fl = (unsigned)((nr_p2m + per - 1) / per);
    if (nr_fl > per)
        return rm_error_set(err, -EINVAL, "p2m of %" PRIu64 " pfns is too "
                            "large", size);
    fll = calloc(per, sizeof(*fll));
    fl = calloc((size_t)nr_fl * per, sizeof(*fl));
    m->fl_frames = calloc(nr_fl, sizeof(*m->fl_frames));
    m->p2m_frames = calloc(nr_p2m, sizeof(*m->p2m_frames));
    m->p2m = malloc((size_t)nr_p2m * per * sizeof(*m->p2m));
    if (!fll || !fl || !m->fl_frames || !m->p2m_frames || !m->p2m) {
        rc = rm_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    one = (xen_pfn_t)m->fll_mfn;
    rc = rm_xen_pv_copy_frames(m, &one, 1, fll, per, "p2m frame list list",
                               err);
    if (rc)
        goto out;
    for (i = 0; i < nr_fl; i++) {
        if (!rm_xen_pv_mfn_valid(m, fll[i])) {
            rc = rm_error_set(err, -EINVAL, "the p2m frame list list of "
                              "domain %u names a bad frame %#lx (entry %"
                              PRIu64 ")", m->domid, fll[i], i);
            goto out;
        }
        m->fl_frames[i] = fll[i];
    }
    m->nr_fl_frames = nr_fl;
    rc = rm_xen_pv_copy_frames(m, m->fl_frames, nr_fl, fl,
                               (size_t)nr_fl * per, "p2m frame lists", err);
    if (rc)
        goto out;
    for (i = 0; i < nr_p2m; i++) {
        if (!rm_xen_pv_mfn_valid(m, fl[i])) {
            rc = rm_error_set(err, -EINVAL, "the p2m frame list of domain %u"
                              " names a bad frame %#lx (p2m frame %" PRIu64
                              ")", m->domid, fl[i], i);
            goto out;
        }
        m->p2m_frames[i] = fl[i];
    }
    m->nr_p2m_frames = nr_p2m;
    rc = rm_xen_pv_copy_frames(m, m->p2m_frames, nr_p2m, m->p2m,
                               (size_t)nr_p2m * per, "p2m", err);
    if (rc)
        goto out;
    for (i = size; i < (uint64_t)nr_p2m * per; i++)
        m->p2m[i] = RM_XEN_PV_INVALID_MFN;
    if (p2m_generation(m) != m->p2m_generation)
        rc = rm_error_set(err, -EAGAIN, "domain %u changed its p2m while it "
                          "was read (generation %" PRIu64 " -> %" PRIu64 ")",
                          m->domid, m->p2m_generation, p2m_generation(m));
out:
    free(fll);
    free(fl);
    return rc;
}

int rm_xen_pv_mem_p2m_unchanged(const struct rm_xen_pv_mem *m,
                                struct rm_error *err)
{
    const shared_info_t *s = m->shinfo;
    uint64_t gen = p2m_generation(m), max_pfn = s->arch.max_pfn;

    if (gen == m->p2m_generation && max_pfn == m->p2m_size)
        return 0;
    return rm_error_set(err, -ESTALE, "domain %u changed its p2m during the "
                        "save (generation %" PRIu64 " -> %" PRIu64 ", %"
                        PRIu64 " -> %" PRIu64 " pfns): the page tables "
                        "already sent were translated with the old one; "
                        "aborted", m->domid, m->p2m_generation, gen,
                        m->p2m_size, max_pfn);
}

int rm_xen_pv_frame_types(const struct rm_xen_pv_mem *m, xen_pfn_t *arr,
                          unsigned n, struct rm_error *err)
{
    struct xen_domctl d;
    int rc;
    DECLARE_HYPERCALL_BUFFER(xen_pfn_t, hbuf);

    hbuf = xc_hypercall_buffer_alloc(m->xch, hbuf, n * sizeof(*arr));
    if (!hbuf)
        return rm_error_set(err, -ENOMEM, "out of hypercall memory");
    memcpy(hbuf, arr, n * sizeof(*arr));
    memset(&d, 0, sizeof(d));
    d.cmd = XEN_DOMCTL_getpageframeinfo3;
    d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    d.domain = (domid_t)m->domid;
    d.u.getpageframeinfo3.num = n;
    set_xen_guest_handle(d.u.getpageframeinfo3.array, hbuf);
    rc = xc_domctl(m->xch, &d);
    if (!rc)
        memcpy(arr, hbuf, n * sizeof(*arr));
    else
        rc = rm_error_set(err, -errno, "cannot read the page types of "
                          "domain %u: %s", m->domid, strerror(errno));
    xc_hypercall_buffer_free(m->xch, hbuf);
    return rc;
}
