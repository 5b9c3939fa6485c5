/* SPDX-License-Identifier: MIT */
/*
 * `remus protect`'s options as parsed (cli/protect_opts.c) and run
 * (cli/cmd_protect.c).
 */
#ifndef REMUS_CLI_PROTECT_OPTS_H
#define REMUS_CLI_PROTECT_OPTS_H

#include <stdbool.h>

#include "backends/kvm/guestcfg.h"
#include "backends/open.h"
#include "cli/cli_ops.h"
#include "cli/cli.h"
#include "primary/session.h"

struct protect_args {
    struct rm_primary_cfg sc;          /* sc.protect: the protocol */
    struct rm_backend_protect_spec spec;
    struct rm_guestcfg g;              /* KVM: the VM */
    bool xen, unsafe, blackhole, use_quorum, insecure;
    unsigned qsettle;
    unsigned long long digest_every;
    const char *stats_path, *digest_path, *release_path, *key_path;
    const char *kvm_only, *xen_only;   /* an option given that is */
    const char *colo_only;             /* ... that needs --colo */
    bool fallback_set;                 /* --colo-fallback given */
    struct cli_spawn sp;               /* HOST without :PORT */
    const char *spawn_host;
    const char *desc_path;             /* VM: the description file */
    struct cli_ops ops;                /* --metrics; notifications */
};

/*
 * Parse argv into @a (initialised by the caller): 0; -1 after --help was
 * printed; or the exit status of a usage error (printed).  A VM
 * description is read here, after the options, which override it.
 */
int cli_protect_parse(struct protect_args *a, int argc, char **argv);

#endif
