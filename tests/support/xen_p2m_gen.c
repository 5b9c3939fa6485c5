/* SPDX-License-Identifier: MIT */
/*
 * xen_p2m_gen DOMID MS: for MS milliseconds, bump the p2m generation count
 * in the shared info of the PV domain DOMID by two every millisecond, as a
 * guest does around each change of its p2m's mappings (it stays even: no
 * change is in progress).  Prints "p2m generation A -> B".  A Xen lab aid:
 * a save that runs meanwhile sees the guest's p2m change under it, as it
 * would when the guest balloons.  Runs in dom0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>

int main(int argc, char **argv)
{
    volatile shared_info_t *sh;
    xenforeignmemory_handle *fmem;
    xc_dominfo_t info;
    xc_interface *xch;
    xen_pfn_t mfn;
    uint64_t first;
    long ms, i;
    uint32_t domid;
    char *end;
    int err = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: xen_p2m_gen DOMID MS (in dom0)\n");
        return 2;
    }
    domid = (uint32_t)strtoul(argv[1], &end, 0);
    if (*end || !*argv[1]) {
        fprintf(stderr, "xen_p2m_gen: '%s' is not a domain number\n",
                argv[1]);
        return 2;
    }
    ms = strtol(argv[2], &end, 0);
    if (*end || ms <= 0) {
        fprintf(stderr, "xen_p2m_gen: '%s' is not a duration in ms\n",
                argv[2]);
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    fmem = xenforeignmemory_open(NULL, 0);
    if (!xch || !fmem) {
        fprintf(stderr, "xen_p2m_gen: cannot open libxenctrl (dom0?)\n");
        return 1;
    }
    if (xc_domain_getinfo(xch, domid, 1, &info) != 1 || info.domid != domid) {
        fprintf(stderr, "xen_p2m_gen: no domain %u\n", domid);
        return 1;
    }
    mfn = info.shared_info_frame;
    sh = xenforeignmemory_map(fmem, domid, PROT_READ | PROT_WRITE, 1, &mfn,
                              &err);
    if (!sh || err) {
        fprintf(stderr, "xen_p2m_gen: cannot map the shared info of domain "
                "%u\n", domid);
        return 1;
    }
    first = sh->arch.p2m_generation;
    for (i = 0; i < ms; i++) {
        struct timespec one = { 0, 1000000 };

        sh->arch.p2m_generation += 2;
        nanosleep(&one, NULL);
    }
    printf("p2m generation %" PRIu64 " -> %" PRIu64 "\n", first,
           (uint64_t)sh->arch.p2m_generation);
    return 0;
}
