/* SPDX-License-Identifier: MIT */
/*
 * cpg_join GROUP (tests only): join the corosync CPG group GROUP (as a
 * stray process would: a second instance in a Pacemaker bring-up, a
 * monitor), print "joined GROUP as pid PID", and stay until killed.
 */
#include <corosync/cpg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_deliver(cpg_handle_t h, const struct cpg_name *g,
                       uint32_t node, uint32_t pid, void *msg, size_t len)
{
    (void)h; (void)g; (void)node; (void)pid; (void)msg; (void)len;
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g,
                       const struct cpg_address *m, size_t nm,
                       const struct cpg_address *l, size_t nl,
                       const struct cpg_address *j, size_t nj)
{
    (void)h; (void)g; (void)m; (void)nm; (void)l; (void)nl; (void)j;
    (void)nj;
}

int main(int argc, char **argv)
{
    cpg_callbacks_t cb = { .cpg_deliver_fn = on_deliver,
                           .cpg_confchg_fn = on_confchg };
    struct cpg_name name;
    cpg_handle_t h;

    if (argc != 2 || strlen(argv[1]) >= sizeof(name.value)) {
        fprintf(stderr, "usage: cpg_join GROUP\n");
        return 2;
    }
    name.length = (uint32_t)strlen(argv[1]);
    memcpy(name.value, argv[1], name.length);
    if (cpg_initialize(&h, &cb) != CS_OK || cpg_join(h, &name) != CS_OK) {
        fprintf(stderr, "cpg_join: cannot join %s (is corosync running?)\n",
                argv[1]);
        return 1;
    }
    printf("joined %s as pid %d\n", argv[1], (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
