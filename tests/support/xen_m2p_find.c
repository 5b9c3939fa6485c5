/* SPDX-License-Identifier: MIT */
/*
 * xen_m2p_find GFN...: print the machine frames whose machine-to-physical
 * entry is one of the given guest frame numbers (Xen's m2p table, read
 * only).  A Xen lab aid: every domain has such a frame, so the list holds
 * the candidates a test then tries (remus offline-page refuses frames of
 * other domains).  Runs in dom0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenguest.h>

int main(int argc, char **argv)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    unsigned long max_mfn = 0, mfn0 = 0, m;
    xen_pfn_t *m2p;
    int i, found = 0;

    if (argc < 2 || !xch) {
        fprintf(stderr, "usage: xen_m2p_find GFN... (in dom0)\n");
        return 2;
    }
    if (xc_maximum_ram_page(xch, &max_mfn)) {
        perror("xc_maximum_ram_page");
        return 1;
    }
    m2p = xc_map_m2p(xch, max_mfn, PROT_READ, &mfn0);
    if (!m2p) {
        perror("xc_map_m2p");
        return 1;
    }
    for (m = 0; m < max_mfn; m++)
        for (i = 1; i < argc; i++)
            if (m2p[m] == strtoull(argv[i], NULL, 0)) {
                printf("%#lx %#lx\n", m, (unsigned long)m2p[m]);
                found++;
            }
    xc_interface_close(xch);
    return found ? 0 : 1;
}
