/* SPDX-License-Identifier: MIT */
/*
 * `remus receive`'s options as parsed and resolved (cli/receive_opts.c)
 * and run (cli/cmd_receive.c).
 */
#ifndef REMUS_CLI_RECEIVE_OPTS_H
#define REMUS_CLI_RECEIVE_OPTS_H

#include <stdbool.h>

#include "backends/kvm/guestcfg.h"
#include "backends/open.h"
#include "cli/cli.h"
#include "cli/cli_ops.h"
#include "secondary/session.h"

struct receive_args {
    struct rm_secondary_cfg sc;        /* sc.receive: the protocol */
    struct rm_backend_replica_spec spec;
    struct rm_guestcfg known;          /* --config: the VM's description */
    bool xen, have_listen, have_config, use_quorum, insecure, announce;
    unsigned qsettle;
    unsigned long long max_mib;
    const char *config, *name, *digest_path, *commit_log, *key_path;
    const char *kvm_only;              /* an option given that is */
    bool xen_only;                     /* --replica-name given */
    char xl_name[64];                  /* the name in the xl config */
    struct cli_ops ops;                /* --metrics; notifications */
};

/*
 * Parse argv into @a (initialised by the caller): 0; -1 after --help was
 * printed; or the exit status of a usage error (printed).
 */
int cli_receive_parse(struct receive_args *a, int argc, char **argv);

/*
 * The VM this side knows: --config (with --xen: the xl config), its name,
 * its backend, the limits.  0 or the status of a usage error (printed).
 */
int cli_receive_resolve(struct receive_args *a);

#endif
