/* SPDX-License-Identifier: MIT */
/* Waiting for a KVM VM that this side runs after a cluster decision. */
#include "cli/cli.h"

#include <errno.h>

#include "backends/kvm/vmm.h"
#include "cluster/quorum.h"

static int wait_vm(void *vm, int ms)
{
    return rm_vm_wait(vm, ms, NULL) == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

static void stop_vm(void *vm)
{
    rm_vm_request_stop(vm);
}

bool cli_vm_wait_holding(struct rm_vm *vm, struct rm_quorum *q,
                         int64_t *code, char *why, size_t len)
{
    bool kept = true;

    if (q && rm_quorum_hold(q, wait_vm, stop_vm, vm, why, len) == -ENOLCK)
        kept = false;
    rm_vm_wait(vm, -1, code);
    return kept;
}
