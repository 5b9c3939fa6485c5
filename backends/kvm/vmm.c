/* SPDX-License-Identifier: MIT */
/*
 * The remus micro-VMM (see vmm.h): the VM object's life (create, start,
 * pause, resume, stop, wait, destroy), its memory and the accessors.
 * The other concerns sit beside it (vmm_priv.h lists them): vm_config.c,
 * vcpu.c, vm_load.c, hypercall.c, dirty.c, vm_net.c, vcpu_state.c,
 * devices.c, disk.c.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/kvm/console.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sr.h"

/* ------------------------------------------------------------ setup */

int set_region(struct rm_vm *vm, bool logdirty)
{
    struct kvm_userspace_memory_region reg = {
        .slot = 0,
        .flags = logdirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        .guest_phys_addr = 0,
        .memory_size = vm->mem_bytes,
        .userspace_addr = (uint64_t)(uintptr_t)vm->mem,
    };

    return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0 ? -errno
                                                                  : 0;
}

int rm_vm_create(const struct rm_vm_config *cfg, struct rm_vm **out,
                 struct rm_error *err)
{
    struct rm_vm *vm;
    struct sigaction sa;
    uint32_t i;
    int rc;

    *out = NULL;
    if (cfg->mem_bytes < RM_GUEST_MIN_MEM || cfg->mem_bytes > MAX_MEM ||
        cfg->mem_bytes % (2u << 20))
        return rm_error_set(err, -EINVAL, "guest memory of %" PRIu64 " bytes:"
                            " must be a multiple of 2 MiB from 4 MiB to "
                            "4 GiB", cfg->mem_bytes);
    if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > RM_KVM_MAX_VCPUS)
        return rm_error_set(err, -EINVAL, "%u vcpus: 1..%u allowed",
                            cfg->nr_vcpus, RM_KVM_MAX_VCPUS);
    vm = calloc(1, sizeof(*vm));
    if (!vm)
        return rm_error_set(err, -ENOMEM, "out of memory");
    vm->cfg = *cfg;
    snprintf(vm->name, sizeof(vm->name), "%s", cfg->name ? cfg->name : "vm");
    snprintf(vm->cmdline, sizeof(vm->cmdline), "%s",
             cfg->cmdline ? cfg->cmdline : "");
    vm->cfg.name = vm->name;
    vm->cfg.cmdline = vm->cmdline;
    vm->kvm_fd = vm->vm_fd = vm->tap_fd = vm->kick_fd = vm->stop_fd = -1;
    vm->console_fd = STDERR_FILENO;
    rm_console_init(&vm->console, STDERR_FILENO, vm->name);
    vm->mem_bytes = cfg->mem_bytes;
    vm->nr_pfns = cfg->mem_bytes >> RM_PAGE_SHIFT;
    vm->nr_vcpus = cfg->nr_vcpus;
    for (i = 0; i < RM_KVM_MAX_VCPUS; i++)
        vm->vcpus[i].fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    /* Its timed waits are monotonic (rm_vm_pause re-kicks every 2 ms). */
    rc = rm_cond_init_monotonic(&vm->cond);
    pthread_mutex_init(&vm->stats_lock, NULL);
    if (disk_init(&vm->disk) && !rc)
        rc = -ENOMEM;
    vm->net_out = cfg->net_out ? cfg->net_out : rm_vm_tap_write;
    vm->net_out_opaque = cfg->net_out ? cfg->net_out_opaque : vm;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;   /* no SA_RESTART: interrupt syscalls */
    sigaction(KICK_SIGNAL, &sa, NULL);

    vm->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->vmm_dirty = calloc(RM_BITMAP_LONGS(vm->nr_pfns), sizeof(long));
    vm->ring_dirty = calloc(RM_BITMAP_LONGS(vm->nr_pfns), sizeof(long));
    vm->scratch_bm = calloc(RM_BITMAP_LONGS(vm->nr_pfns), sizeof(long));
    vm->hot_bm = calloc(RM_BITMAP_LONGS(vm->nr_pfns), sizeof(long));
    vm->clear_bm = calloc(RM_BITMAP_LONGS(vm->nr_pfns), sizeof(long));
    vm->hot_streak = calloc(RM_BITMAP_LONGS(vm->nr_pfns) * RM_BITS_PER_LONG,
                            1);
    if (rc || vm->kick_fd < 0 || vm->stop_fd < 0 || !vm->vmm_dirty ||
        !vm->ring_dirty || !vm->scratch_bm || !vm->hot_bm ||
        !vm->clear_bm || !vm->hot_streak) {
        rc = rm_error_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->console_path) {
        vm->console_fd = open(cfg->console_path, O_WRONLY | O_CREAT |
                              O_APPEND | O_CLOEXEC, 0644);
        if (vm->console_fd < 0) {
            rc = rm_error_set(err, -errno, "cannot open console log '%s': "
                              "%s", cfg->console_path, strerror(errno));
            vm->console_fd = STDERR_FILENO;
            goto fail;
        }
        rm_console_destroy(&vm->console);
        rm_console_init(&vm->console, vm->console_fd, vm->name);
    }
    if (cfg->disk_override || cfg->disk) {
        rc = disk_open(&vm->disk, cfg->disk_override ? cfg->disk_override
                                                     : cfg->disk, err);
        if (rc)
            goto fail;
    }

    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        rc = rm_error_set(err, -errno, "cannot open /dev/kvm: %s",
                          strerror(errno));
        goto fail;
    }
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        rc = rm_error_set(err, -ENOTSUP, "unsupported KVM API version");
        goto fail;
    }
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        rc = rm_error_set(err, -errno, "KVM_CREATE_VM: %s", strerror(errno));
        goto fail;
    }
    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    if (cfg->dirty_manual_clear) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
                      KVM_DIRTY_LOG_INITIALLY_SET },
        };

        if (cfg->dirty_ring || ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
            LOG_DBG("manual-clear dirty log unavailable: using "
                    "KVM_GET_DIRTY_LOG's get-and-clear");
            vm->cfg.dirty_manual_clear = false;
        }
    }
    if (cfg->dirty_ring) {
        struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING };
        int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION,
                        KVM_CAP_DIRTY_LOG_RING);

        cap.args[0] = DIRTY_RING_ENTRIES * sizeof(struct kvm_dirty_gfn);
        if (max < (int)cap.args[0] ||
            ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
            rc = rm_error_set(err, -ENOTSUP, "this host's KVM has no usable "
                              "dirty ring (KVM_CAP_DIRTY_LOG_RING %d)", max);
            goto fail;
        }
    }
    vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    vm->mem = mmap(NULL, vm->mem_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->mem == MAP_FAILED) {
        vm->mem = NULL;
        rc = rm_error_set(err, -ENOMEM, "cannot map %" PRIu64 " MiB of "
                          "guest memory", vm->mem_bytes >> 20);
        goto fail;
    }
    madvise(vm->mem, vm->mem_bytes, MADV_MERGEABLE);
    rm_name_mapping(vm->mem, vm->mem_bytes, "remus-guest-ram");
    rc = set_region(vm, false);
    if (rc) {
        rm_error_set(err, rc, "KVM_SET_USER_MEMORY_REGION: %s",
                     strerror(-rc));
        goto fail;
    }
    for (i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *vc = &vm->vcpus[i];

        vc->vm = vm;
        vc->idx = i;
        vc->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
        if (vc->fd < 0) {
            rc = rm_error_set(err, -errno, "KVM_CREATE_VCPU %u: %s", i,
                              strerror(errno));
            goto fail;
        }
        vc->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED, vc->fd, 0);
        if (vc->run == MAP_FAILED) {
            vc->run = NULL;
            rc = rm_error_set(err, -errno, "mmap of kvm_run: %s",
                              strerror(errno));
            goto fail;
        }
        rc = set_cpuid(vm, vc, err);
        if (rc)
            goto fail;
        pthread_mutex_init(&vc->ring_lock, NULL);
        vc->snap = alloc_vcpu_blob();   /* NULL: read at checkpoint time */
        if (cfg->dirty_ring) {
            long page = sysconf(_SC_PAGESIZE);

            vc->ring = mmap(NULL, DIRTY_RING_ENTRIES *
                            sizeof(struct kvm_dirty_gfn),
                            PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd,
                            DIRTY_RING_PGOFF * page);
            if (vc->ring == MAP_FAILED) {
                vc->ring = NULL;
                rc = rm_error_set(err, -errno, "mapping the dirty ring of "
                                  "vcpu %u: %s", i, strerror(errno));
                goto fail;
            }
        }
    }
    if (cfg->tap) {
        rc = open_tap(vm, err);
        if (rc)
            goto fail;
    }
    vm->clock_offset_ns = 0;

    if (cfg->image) {
        struct rm_guest_bootinfo bi;
        uint64_t entry = 0;

        rc = load_elf(vm, &entry, err);
        if (rc)
            goto fail;
        build_tables(vm);
        memset(&bi, 0, sizeof(bi));
        bi.abi_version = RM_GUEST_ABI_VERSION;
        bi.nr_vcpus = vm->nr_vcpus;
        bi.mem_bytes = vm->mem_bytes;
        snprintf(bi.cmdline, sizeof(bi.cmdline), "%s", vm->cmdline);
        memcpy(vm->mem + RM_GUEST_BOOTINFO_GPA, &bi, sizeof(bi));
        for (i = 0; i < vm->nr_vcpus; i++) {
            rc = setup_vcpu_regs(vm, &vm->vcpus[i], entry, err);
            if (rc)
                goto fail;
        }
    }
    *out = vm;
    return 0;
fail:
    rm_vm_destroy(vm);
    return rc;
}

int rm_vm_start(struct rm_vm *vm, struct rm_error *err)
{
    uint32_t i;

    for (i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *vc = &vm->vcpus[i];
        int rc = pthread_create(&vc->thread, NULL, vcpu_main, vc);
        char name[16];

        if (rc)
            return rm_error_set(err, -rc, "cannot start vcpu %u", i);
        vc->started = true;
        /* top -H, /proc/PID/task/TID/comm: the guest's own CPU time */
        snprintf(name, sizeof(name), "vcpu%u", i);
        pthread_setname_np(vc->thread, name);
    }
    return 0;
}

static uint32_t started_vcpus(const struct rm_vm *vm)
{
    uint32_t i, n = 0;

    for (i = 0; i < vm->nr_vcpus; i++)
        n += vm->vcpus[i].started;
    return n;
}

/*
 * The scheduling policy of the first @n vCPUs (those started): the index
 * of the first that refused it (its error in *@err), or @n.
 */
static uint32_t vcpus_policy(struct rm_vm *vm, uint32_t n, int policy,
                             const struct sched_param *sp, int *err)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (!vm->vcpus[i].started)
            continue;
        *err = pthread_setschedparam(vm->vcpus[i].thread, policy, sp);
        if (*err)
            return i;
    }
    return n;
}

/*
 * The vCPUs of a VM being paused must get a CPU to park: on a host whose
 * cores are busy (other VMs' vCPUs), a kicked vCPU thread waits for the
 * scheduler, and that wait was most of the pause (#21: with 4 and 16
 * busy VMs on 2 cores, "suspend" took over 2 ms in half the pauses).  So
 * from the kick until they park they run at the lowest real-time
 * priority (SCHED_FIFO 1), and go back to SCHED_OTHER before they run the
 * guest again.  Without CAP_SYS_NICE (or under RestrictRealtime=) it is
 * said once and pauses wait for the scheduler.
 */
static void vcpus_urgent(struct rm_vm *vm, bool on)
{
    static const struct sched_param rt = { .sched_priority = 1 };
    static const struct sched_param other = { .sched_priority = 0 };
    uint32_t refused;
    int err = 0;

    if (vm->urgent_refused || on == vm->urgent)
        return;
    if (!on) {
        vcpus_policy(vm, vm->nr_vcpus, SCHED_OTHER, &other, &err);
        vm->urgent = false;
        return;
    }
    refused = vcpus_policy(vm, vm->nr_vcpus, SCHED_FIFO, &rt, &err);
    if (refused < vm->nr_vcpus) {
        vm->urgent_refused = true;
        LOG_INFO("pauses wait for the scheduler to park the vCPUs "
                 "(SCHED_FIFO: %s)", strerror(err));
        vcpus_policy(vm, refused, SCHED_OTHER, &other, &err);
        return;
    }
    vm->urgent = true;
}

int rm_vm_pause(struct rm_vm *vm)
{
    uint32_t want = started_vcpus(vm);

    pthread_mutex_lock(&vm->lock);
    if (vm->pause_req) {
        pthread_mutex_unlock(&vm->lock);
        return 0;
    }
    vm->pause_t_enter = rm_now_ns();
    __atomic_store_n(&vm->pause_req, true, __ATOMIC_RELEASE);
    vm->paused_at_ns = rm_vm_guest_ns(vm);
    vcpus_urgent(vm, true);
    pthread_mutex_unlock(&vm->lock);
    kick_all(vm);
    vm->pause_t_kicked = rm_now_ns();   /* read under the lock, after */
    pthread_mutex_lock(&vm->lock);
    while (vm->parked < want) {
        struct timespec ts = rm_deadline_ts(2000000);

        /* Re-kick now and then: a signal may land outside KVM_RUN. */
        if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&vm->lock);
            kick_all(vm);
            pthread_mutex_lock(&vm->lock);
        }
    }
    vm->pause_t_return = rm_now_ns();
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

/* The later of two times. */
static uint64_t later(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

int rm_vm_suspend_parts(struct rm_vm *vm, struct rm_vm_suspend_parts *out)
{
    const struct vcpu *vc;
    uint64_t b[6];
    int rc = 0;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&vm->lock);
    if (!vm->pause_t_return || vm->pause_last_vcpu >= vm->nr_vcpus) {
        rc = -ENODATA;
        goto out;
    }
    /* The critical path: each step ends at its own stamp or at the end
     * of the step before, whichever is later (a vCPU that saw the request
     * while the kicks were still being sent overlapped them: that time is
     * the kick's), so the parts add up to the whole. */
    vc = &vm->vcpus[vm->pause_last_vcpu];
    b[0] = vm->pause_t_enter;
    b[1] = later(b[0], vm->pause_t_kicked);
    b[2] = later(b[1], vc->t_seen);
    b[3] = later(b[2], vc->t_io);
    b[4] = later(b[3], vc->t_state);
    b[5] = later(b[4], vm->pause_t_return);
    out->kick = b[1] - b[0];
    out->wake = b[2] - b[1];
    out->io = b[3] - b[2];
    out->state = b[4] - b[3];
    out->park = b[5] - b[4];
    out->total = b[5] - b[0];
out:
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

int rm_vm_resume(struct rm_vm *vm)
{
    uint64_t v;
    uint32_t i;

    pthread_mutex_lock(&vm->lock);
    if (!vm->pause_req) {
        pthread_mutex_unlock(&vm->lock);
        return 0;
    }
    for (i = 0; i < vm->nr_vcpus; i++) {
        if (vm->vcpus[i].run)
            vm->vcpus[i].run->immediate_exit = 0;
        vm->vcpus[i].snap_valid = false;
    }
    if (!vm->stopping)
        while (read(vm->kick_fd, &v, sizeof(v)) > 0)
            ;
    __atomic_store_n(&vm->pause_req, false, __ATOMIC_RELEASE);
    vcpus_urgent(vm, false);      /* before they run the guest again */
    vm->resumed_ns = rm_now_ns();
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

uint64_t rm_vm_resumed_ns(struct rm_vm *vm)
{
    uint64_t ns;

    pthread_mutex_lock(&vm->lock);
    ns = vm->resumed_ns;
    pthread_mutex_unlock(&vm->lock);
    return ns;
}

bool rm_vm_is_paused(const struct rm_vm *vm)
{
    return __atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE);
}

void rm_vm_request_stop(struct rm_vm *vm)
{
    uint64_t one = 1;

    if (write(vm->stop_fd, &one, sizeof(one)) < 0)
        (void)0;
}

int rm_vm_wait(struct rm_vm *vm, int timeout_ms, int64_t *exit_code)
{
    struct pollfd pfd = { .fd = vm->stop_fd, .events = POLLIN };
    int rc;

    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return -ETIMEDOUT;
    pthread_mutex_lock(&vm->lock);
    if (!vm->ended) {
        vm->ended = true;
        vm->end_kind = RM_VM_STOPPED;
        vm->exit_code = -1;
        snprintf(vm->end_reason, sizeof(vm->end_reason), "stopped on "
                 "request");
    }
    if (exit_code)
        *exit_code = vm->exit_code;
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

enum rm_vm_end rm_vm_end_kind(const struct rm_vm *vm)
{
    return vm->ended ? vm->end_kind : RM_VM_RUNNING;
}

const char *rm_vm_end_reason(const struct rm_vm *vm)
{
    return vm->end_reason[0] ? vm->end_reason : "running";
}

void rm_vm_destroy(struct rm_vm *vm)
{
    uint32_t i;

    if (!vm)
        return;
    pthread_mutex_lock(&vm->lock);
    vm->stopping = true;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (vm->kick_fd >= 0)
        kick_all(vm);
    for (i = 0; i < vm->nr_vcpus; i++) {
        struct vcpu *vc = &vm->vcpus[i];

        if (vc->started) {
            while (pthread_tryjoin_np(vc->thread, NULL) == EBUSY) {
                vc->run->immediate_exit = 1;
                pthread_kill(vc->thread, KICK_SIGNAL);
                rm_sleep_ms(1);
            }
        }
        if (vc->run)
            munmap(vc->run, vm->run_size);
        if (vc->ring)
            munmap(vc->ring, DIRTY_RING_ENTRIES * sizeof(struct kvm_dirty_gfn));
        if (vc->fd >= 0)
            close(vc->fd);
        free(vc->snap);
        vc->snap = NULL;
    }
    if (vm->mem)
        munmap(vm->mem, vm->mem_bytes);
    for (i = 0; i < vm->nr_quarantine; i++)
        munmap(vm->quarantine[i], RM_PAGE_SIZE);
    free(vm->quarantine);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->tap_fd >= 0)
        close(vm->tap_fd);
    rm_console_destroy(&vm->console);   /* (says what it dropped) */
    if (vm->console_fd >= 0 && vm->console_fd != STDERR_FILENO)
        close(vm->console_fd);
    if (vm->kick_fd >= 0)
        close(vm->kick_fd);
    if (vm->stop_fd >= 0)
        close(vm->stop_fd);
    disk_close(&vm->disk);
    free(vm->vmm_dirty);
    free(vm->ring_dirty);
    free(vm->scratch_bm);
    free(vm->hot_bm);
    free(vm->clear_bm);
    free(vm->hot_streak);
    pthread_mutex_destroy(&vm->lock);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->stats_lock);
    free(vm);
}

/* ------------------------------------------------------------ accessors */

int rm_vm_quarantine_page(struct rm_vm *vm, void *page)
{
    void **q = realloc(vm->quarantine,
                       (vm->nr_quarantine + 1) * sizeof(*q));

    if (!q)
        return -ENOMEM;
    q[vm->nr_quarantine++] = page;
    vm->quarantine = q;
    return 0;
}

size_t rm_vm_quarantined(const struct rm_vm *vm) { return vm->nr_quarantine; }

uint8_t *rm_vm_mem(struct rm_vm *vm) { return vm->mem; }
uint64_t rm_vm_mem_bytes(const struct rm_vm *vm) { return vm->mem_bytes; }
uint32_t rm_vm_nr_vcpus(const struct rm_vm *vm) { return vm->nr_vcpus; }
const struct rm_vm_config *rm_vm_config(const struct rm_vm *vm)
{
    return &vm->cfg;
}
