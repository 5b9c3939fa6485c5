/* SPDX-License-Identifier: MIT */
/*
 * xen_grow_p2m DOMAIN PFN: populate one page of the HVM/PVH domain DOMAIN
 * (a number) at guest frame PFN, as the toolstack does when it builds a
 * domain, and print the domain's p2m size (its highest frame + 1) before
 * and after: "nr_gpfns BEFORE -> AFTER".  A Xen lab aid: a frame above the
 * guest's highest one grows its p2m, as memory hotplug or ballooning past
 * the highest frame would (the guest never looks at it).  Runs in dom0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>

int main(int argc, char **argv)
{
    xc_interface *xch;
    xen_pfn_t before = 0, after = 0, pfn;
    uint32_t domid;
    char *end;

    if (argc != 3) {
        fprintf(stderr, "usage: xen_grow_p2m DOMID PFN (in dom0)\n");
        return 2;
    }
    domid = (uint32_t)strtoul(argv[1], &end, 0);
    if (*end) {
        fprintf(stderr, "xen_grow_p2m: '%s' is not a domain number\n",
                argv[1]);
        return 2;
    }
    pfn = (xen_pfn_t)strtoull(argv[2], &end, 0);
    if (*end) {
        fprintf(stderr, "xen_grow_p2m: '%s' is not a frame number\n",
                argv[2]);
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        fprintf(stderr, "xen_grow_p2m: cannot open libxenctrl (dom0?)\n");
        return 1;
    }
    if (xc_domain_nr_gpfns(xch, domid, &before) < 0) {
        fprintf(stderr, "xen_grow_p2m: p2m size of domain %u: %s\n", domid,
                strerror(errno));
        return 1;
    }
    if (xc_domain_populate_physmap_exact(xch, domid, 1, 0, 0, &pfn)) {
        fprintf(stderr, "xen_grow_p2m: populating pfn %#" PRIx64 " of "
                "domain %u: %s\n", (uint64_t)pfn, domid, strerror(errno));
        return 1;
    }
    if (xc_domain_nr_gpfns(xch, domid, &after) < 0) {
        fprintf(stderr, "xen_grow_p2m: p2m size of domain %u: %s\n", domid,
                strerror(errno));
        return 1;
    }
    printf("nr_gpfns %" PRIu64 " -> %" PRIu64 "\n", (uint64_t)before,
           (uint64_t)after);
    xc_interface_close(xch);
    return 0;
}
