/* SPDX-License-Identifier: MIT */
/* kvm_bench's guest and what its rows share (see kvm_bench.h). */
#include "bench/kvm_bench.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "backends/kvm/vmm.h"
#include "common/io.h"
#include "common/sr.h"

FILE *bench_data_file(const struct bench_run *run, const char *name)
{
    char path[PATH_MAX + 64];

    if (!run->data_dir[0])
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", run->data_dir, name);
    return fopen(path, "w");
}

void bench_not_measured(struct bench_run *run, const char *row,
                        const char *why)
{
    printf("| %s | NOT MEASURED: %s |\n", row, why);
    fflush(stdout);
    run->unmeasured++;
}

int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int gvm_kv(struct gvm *g, const char *cmd, struct kv_reply *r)
{
    return kv_call(&g->kc, cmd, r, 50, rm_now_ns() + 10000000000ull, NULL);
}

int gvm_start(struct bench_run *run, struct gvm *g, unsigned mib,
              unsigned vcpus, int mode, const char *disk)
{
    struct rm_vm_config cfg;
    struct rm_error err = { 0 };
    struct kv_reply r;
    uint64_t t0 = rm_now_ns();

    memset(g, 0, sizeof(*g));
    rm_vm_config_default(&cfg);
    cfg.image = run->image;
    cfg.mem_bytes = (uint64_t)mib << 20;
    cfg.nr_vcpus = vcpus;
    cfg.tap = "rmbench0";
    cfg.ipv4 = htonl(0x0a4d0002);
    cfg.netmask = htonl(0xffffff00);
    cfg.console_path = "/dev/null";
    cfg.dirty_ring = mode == 1;
    cfg.dirty_manual_clear = mode == 2;
    cfg.disk = disk;
    if (rm_vm_create(&cfg, &g->vm, &err) ||
        system("ip addr replace 10.77.0.1/24 dev rmbench0 && "
               "ip link set rmbench0 up") ||
        rm_vm_start(g->vm, &err)) {
        fprintf(stderr, "kvm_bench: %s\n", rm_error_str(&err));
        return -1;
    }
    kv_open(&g->kc, 7, "10.77.0.2", 7000);
    if (gvm_kv(g, "STATS", &r))
        return -1;
    g->start_ms = (double)(rm_now_ns() - t0) / 1e6;
    return 0;
}

void gvm_stop(struct gvm *g)
{
    kv_close(&g->kc);
    rm_vm_destroy(g->vm);
}

uint64_t gvm_writes(struct gvm *g)
{
    struct kv_reply r;

    return gvm_kv(g, "STATS", &r) ? 0 : r.value;
}

double gvm_write_rate(struct gvm *g, bool logdirty, unsigned ms,
                      double *harvest_pages_s)
{
    uint64_t pages = rm_vm_mem_bytes(g->vm) / 4096, w0, w1, t0, t1;
    unsigned long *bm = calloc(RM_BITMAP_LONGS(pages), sizeof(long));
    uint64_t harvested = 0, harvest_ns = 0;

    if (logdirty)
        rm_vm_logdirty(g->vm, true);
    w0 = gvm_writes(g);
    t0 = rm_now_ns();
    while (rm_now_ns() - t0 < (uint64_t)ms * 1000000) {
        rm_sleep_ms(25);
        if (logdirty) {
            uint64_t h0 = rm_now_ns();

            memset(bm, 0, RM_BITMAP_LONGS(pages) * sizeof(long));
            rm_vm_harvest_dirty(g->vm, bm);
            harvest_ns += rm_now_ns() - h0;
            harvested += rm_bitmap_weight(bm, pages);
        }
    }
    w1 = gvm_writes(g);
    t1 = rm_now_ns();
    if (logdirty)
        rm_vm_logdirty(g->vm, false);
    if (harvest_pages_s)
        *harvest_pages_s = harvest_ns ? (double)harvested /
                                        ((double)harvest_ns / 1e9) : 0;
    free(bm);
    return (double)(w1 - w0) / ((double)(t1 - t0) / 1e9);
}
