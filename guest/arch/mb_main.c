/* SPDX-License-Identifier: MIT */
/*
 * The multiboot build's C entry (CPL3): turn the multiboot info into our
 * boot info and run the same guest_main as under the remus VMM.
 */
#include "guest/lib/rt.h"

struct mb_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper;   /* KiB, valid with flag 0 */
    uint32_t boot_device;
    uint32_t cmdline;                /* valid with flag 2 */
};

int guest_main(struct rm_guest_bootinfo *bi, uint64_t vcpu);
void mb_main(uint32_t mbi_addr);

static struct rm_guest_bootinfo mb_bootinfo;

void mb_main(uint32_t mbi_addr)
{
    const struct mb_info *mbi = (const struct mb_info *)(uintptr_t)mbi_addr;
    struct rm_guest_bootinfo *bi = &mb_bootinfo;
    uint64_t khz;

    bi->abi_version = RM_GUEST_ABI_VERSION;
    bi->nr_vcpus = 1;
    bi->mem_bytes = 64ull << 20;
    if (mbi && (mbi->flags & 1))
        bi->mem_bytes = ((uint64_t)mbi->mem_upper + 1024) * 1024;
    if (mbi && (mbi->flags & 4) && mbi->cmdline) {
        const char *c = (const char *)(uintptr_t)mbi->cmdline;
        size_t i;

        for (i = 0; i + 1 < sizeof(bi->cmdline) && c[i]; i++)
            bi->cmdline[i] = c[i];
    }
    rt_init(bi);
    khz = rt_cmdline_u64("tsc_khz", 0);
    if (!khz)
        khz = rt_calibrate_tsc();
    rt_tsc_khz = khz;
    bi->tsc_khz = khz;
    rt_printf("remus-guest (multiboot): %lu MiB, TSC %lu kHz, cmdline '%s'\n",
              bi->mem_bytes >> 20, khz, bi->cmdline);
    guest_main(bi, 0);
    rt_halt(0);
}
