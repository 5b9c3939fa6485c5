/* SPDX-License-Identifier: MIT */
/*
 * remus receive --listen ADDR:PORT [OPTIONS]: be the secondary of one
 * protected KVM VM; on failover, run the replica here.
 */
#define RM_LOG_PREFIX "receive"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/kvm/guestcfg.h"
#include "backends/kvm/kvm_backend.h"
#include "backends/kvm/vmctl.h"
#include "cli/cli.h"
#include "cluster/quorum.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/status.h"
#include "secondary/session.h"

static volatile sig_atomic_t receive_stop;
static struct rm_backend *receive_be;

static void on_signal(int sig)
{
    (void)sig;
    receive_stop = 1;
    if (receive_be)
        receive_be->ops->request_stop(receive_be);
}

/* After a takeover: the VM's control socket (reprotect, handover), with
 * the key and the quorum handle this process ran with. */
struct took_over_ctx {
    const struct rm_auth_key *key;
    struct rm_quorum *quorum;
    struct rm_vmctl *ctl;
};

static void took_over(void *opaque, struct rm_backend *be)
{
    struct took_over_ctx *to = opaque;
    struct rm_error err = { 0 };

    to->ctl = rm_vmctl_start(rm_kvm_backend_vm(be), be->vm_name, &err);
    if (!to->ctl) {
        LOG_WARN("no control socket for '%s': %s", be->vm_name,
                 rm_error_str(&err));
        return;
    }
    rm_vmctl_set_key(to->ctl, to->key);   /* a reprotection keeps the key */
    rm_vmctl_set_quorum(to->ctl, to->quorum);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus receive --listen ADDR:PORT [OPTIONS]\n"
            "\n"
            "Be the secondary of one protected VM: keep a paused replica at\n"
            "the last complete checkpoint, acknowledge every checkpoint, and\n"
            "when the primary is lost (broken stream or no heartbeat for the\n"
            "timeout) discard any partial checkpoint, resume the replica with\n"
            "the same MAC (gratuitous ARP) and run it here.\n"
            "\n"
            "  --listen ADDR:PORT     where the primary connects (required;\n"
            "                         port 0: any free port)\n"
            "  --announce             once listening, print 'remus-receive:\n"
            "                         listening ADDR:PORT' (the port bound)\n"
            "                         on stdout; for a receiver started by\n"
            "                         `remus protect VM HOST`, which also\n"
            "                         makes it outlive its session: SIGHUP\n"
            "                         is ignored, and a primary that does\n"
            "                         not pair within 60 s ends it (exit 1)\n"
            "  --heartbeat MS         heartbeat period (default 100)\n"
            "  --heartbeat-timeout MS the primary is lost after this much\n"
            "                         silence (default: the primary's, at\n"
            "                         least 1000 and the checkpoint interval\n"
            "                         + 4 of its heartbeats); one shorter\n"
            "                         than interval + 3 heartbeats is refused\n"
            "  --no-compression       refuse compressed checkpoints\n"
            "  --max-memory MIB       refuse larger guests (default 4096)\n"
            "  --buffer MIB           memory for one checkpoint in flight\n"
            "                         (default 1024); the primary shortens\n"
            "                         its epochs to stay below it, and a\n"
            "                         bigger checkpoint is staged on disk\n"
            "                         ($TMPDIR, else /var/tmp)\n"
            "  --name NAME            replica name (default: --config's, else\n"
            "                         the primary's)\n"
            "  --config FILE          the VM's description (as for protect):\n"
            "                         a primary whose VM has another MAC,\n"
            "                         IP, memory size or vCPU count is\n"
            "                         refused\n"
            "  --tap NAME             TAP interface for the replica's NIC\n"
            "  --tap-netns NS         open that TAP in network namespace NS\n"
            "  --console FILE         replica console log (default stderr)\n"
            "  --progress MS          a progress line every MS (default 0)\n"
            "  --digest-every N --digest-file FILE  (tests) every Nth\n"
            "                         committed checkpoint, write 'epoch hash'\n"
            "                         of the replica's whole memory\n"
            "  --commit-log FILE      (audit) 'commit MONOTONIC_NS EPOCH' per\n"
            "                         committed checkpoint, before its ack\n"
            "  --quorum corosync      split-brain protection: take over only\n"
            "                         when the primary's process is gone\n"
            "                         from this corosync partition and the\n"
            "                         partition is quorate and the\n"
            "                         primary did not claim the VM's token\n"
            "                         first; otherwise stand down (exit 4).\n"
            "                         After taking over, stop the VM (exit\n"
            "                         4) if this partition loses quorum.\n"
            "                         Needs --name (the VM's\n"
            "                         name: the group is remus:NAME); the\n"
            "                         primary needs --quorum too (a pair\n"
            "                         where only one side has it is\n"
            "                         refused at the handshake)\n"
            "  --quorum-settle MS     how long the lost primary may stay\n"
            "                         visible before it counts as alive\n"
            "                         (default 10000)\n"
            "  --fence-cmd CMD        run CMD (sh -c; REMUS_NAME, REMUS_PEER,\n"
            "                         REMUS_EPOCH set) before taking over,\n"
            "                         as Pacemaker fences with STONITH: take\n"
            "                         over only if it exits 0.  Needs\n"
            "                         --name (REMUS_NAME is always --name)\n"
            "  --fence-timeout MS     kill the fence command after MS and do\n"
            "                         not take over (default 60000)\n"
            "  --key-file FILE        require the primary to prove it holds\n"
            "                         this pre-shared key (`remus keygen`;\n"
            "                         default: $REMUS_KEY_FILE, else\n"
            "                         /etc/remus/remus.key; '-': read it\n"
            "                         from stdin; without one:\n"
            "                         refused unless --insecure, which any\n"
            "                         host that reaches the port can abuse);\n"            "                         control and stream are then sealed.\n"
            "                         Peers that fail are logged with their\n"
            "                         address and the reason, and refused;\n"
            "                         the secondary goes on waiting\n"
            "\n"
            "Exit status: 0 when the primary ended protection cleanly, or\n"
            "SIGINT/SIGTERM came before a takeover began (the replica is\n"
            "discarded); 3 after a failover, once the VM that took\n"
            "over ends or is stopped by SIGINT/SIGTERM; 1 on an error (no\n"
            "consistent replica: nothing runs); 2 for a usage error; 4 when\n"
            "--quorum or --fence-cmd held the takeover back, or --quorum\n"
            "stopped the VM that took over (its partition lost quorum).\n");
}

/* Split-brain protection: --quorum and --fence-cmd (secondary/takeover.h
 * decides with them). */
struct receive_cluster {
    bool use_quorum;
    unsigned settle_ms;
    const char *fence_cmd;
    unsigned fence_timeout_ms;
    struct rm_quorum *q;
};

static int receive_main(int argc, char **argv, struct receive_cluster *cl,
                        struct rm_guestcfg *known);

int cmd_receive(int argc, char **argv)
{
    struct receive_cluster cl;
    struct rm_guestcfg known;
    int ret;

    memset(&cl, 0, sizeof(cl));
    cl.settle_ms = 10000;
    cl.fence_timeout_ms = 60000;
    rm_guestcfg_init(&known, argv[0]);
    ret = receive_main(argc, argv, &cl, &known);
    rm_guestcfg_free(&known);
    rm_quorum_close(cl.q);
    return ret;
}

static int receive_main(int argc, char **argv, struct receive_cluster *cl,
                        struct rm_guestcfg *known)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "announce", no_argument, NULL, 0x303 },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "no-compression", no_argument, NULL, 'u' },
        { "max-memory", required_argument, NULL, 'm' },
        { "buffer", required_argument, NULL, 'B' },
        { "name", required_argument, NULL, 'n' },
        { "tap", required_argument, NULL, 't' },
        { "tap-netns", required_argument, NULL, 'N' },
        { "console", required_argument, NULL, 'o' },
        { "progress", required_argument, NULL, 'P' },
        { "digest-file", required_argument, NULL, 'D' },
        { "commit-log", required_argument, NULL, 'L' },
        { "digest-every", required_argument, NULL, 'E' },
        { "key-file", required_argument, NULL, 'K' },
        { "insecure", no_argument, NULL, 0x301 },
        { "config", required_argument, NULL, 0x302 },
        { "quorum", required_argument, NULL, 'Q' },
        { "quorum-settle", required_argument, NULL, 'S' },
        { "fence-cmd", required_argument, NULL, 'F' },
        { "fence-timeout", required_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_secondary_cfg sc;
    struct rm_secondary_result res;
    struct rm_kvm_replica_opts ro;
    struct took_over_ctx to = { 0 };
    struct rm_backend *be = NULL;
    struct rm_error err = { 0 };
    struct sigaction sa;
    bool have_listen = false, announce = false;
    const char *digest_path = NULL, *commit_log = NULL, *key_path = NULL;
    struct rm_auth_key key;
    bool insecure = false;
    int c, rc, ret = RM_EXIT_FAIL;

    memset(&sc, 0, sizeof(sc));
    memset(&ro, 0, sizeof(ro));
    rm_vm_config_default(&ro.cfg);
    ro.cfg.name = NULL;
    sc.receive.listen_fd = -1;
    sc.receive.hb_interval_ms = 100;
    sc.receive.hb_timeout_ms = 0;      /* derived in the handshake */
    sc.receive.allow_compression = true;
    sc.receive.max_guest_bytes = 4ull << 30;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;

        if (c == 'H' || c == 'T' || c == 'm' || c == 'B' || c == 'P' ||
            c == 'E' ||
            c == 'S' || c == 'W') {
            v = strtoul(optarg, &end, 10);
            if (*end || !*optarg || v > 3600000 || (c != 'P' && v == 0))
                return cli_usage_error("receive", "%s: '%s' is not a "
                                       "positive number", argv[optind - 2],
                                       optarg);
        }
        switch (c) {
        case 'l':
            if (rm_parse_hostport(optarg, &sc.receive.listen, &err))
                return cli_usage_error("receive", "--listen: %s",
                                       rm_error_str(&err));
            have_listen = true;
            break;
        case 'H': sc.receive.hb_interval_ms = (unsigned)v; break;
        case 'T': sc.receive.hb_timeout_ms = (unsigned)v; break;
        case 'u': sc.receive.allow_compression = false; break;
        case 'm': sc.receive.max_guest_bytes = (uint64_t)v << 20; break;
        case 'B': sc.receive.buffer_bytes = (uint64_t)v << 20; break;
        case 'n': ro.cfg.name = optarg; break;
        case 't': ro.cfg.tap = optarg; break;
        case 'N': ro.cfg.tap_netns = optarg; break;
        case 'o': ro.cfg.console_path = optarg; break;
        case 'P': sc.receive.progress_ms = (unsigned)v; break;
        case 'E': sc.receive.digest_every = (unsigned)v; break;
        case 'D': digest_path = optarg; break;
        case 'L': commit_log = optarg; break;
        case 'K': key_path = optarg; break;
        case 0x303: announce = true; break;
        case 0x301: insecure = true; break;
        case 0x302:   /* the VM this secondary knows: its description */
            if (rm_guestcfg_opt(known, 0x100b, optarg, &err) < 0)
                return cli_usage_error("receive", "--config: %s",
                                       rm_error_str(&err));
            ro.expect = &known->vm;
            break;
        case 'Q':
            if (cli_quorum_service("receive", optarg))
                return RM_EXIT_USAGE;
            cl->use_quorum = true;
            break;
        case 'S': cl->settle_ms = (unsigned)v; break;
        case 'F': cl->fence_cmd = optarg; break;
        case 'W': cl->fence_timeout_ms = (unsigned)v; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("receive", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (!have_listen)
        return cli_usage_error("receive", "--listen ADDR:PORT is required");
    if (optind != argc)
        return cli_usage_error("receive", "unexpected argument '%s'",
                               argv[optind]);
    if (sc.receive.hb_timeout_ms && sc.receive.hb_timeout_ms <= sc.receive.hb_interval_ms)
        return cli_usage_error("receive", "--heartbeat-timeout %u must "
                               "exceed --heartbeat %u", sc.receive.hb_timeout_ms,
                               sc.receive.hb_interval_ms);
    if (ro.expect && !ro.cfg.name)
        ro.cfg.name = ro.expect->name;     /* the VM's name: its file's */
    if (cl->use_quorum && !ro.cfg.name)
        return cli_usage_error("receive", "--quorum needs --name NAME (the "
                               "protected VM's name: it names the corosync "
                               "group both sides join)");
    if (cl->fence_cmd && !ro.cfg.name)
        return cli_usage_error("receive", "--fence-cmd needs --name NAME "
                               "(the protected VM's name, for REMUS_NAME: "
                               "never taken from the primary)");
    if (cl->use_quorum &&
        (rc = cli_quorum_open("receive", ro.cfg.name, false, cl->settle_ms,
                              &cl->q)))
        return rc;
    sc.receive.digest_fd = -1;
    sc.receive.commit_log_fd = -1;
    memset(&key, 0, sizeof(key));
    rc = cli_key("receive", key_path, insecure, &key, &sc.receive.key);
    if (rc)
        return rc;
    if (commit_log) {
        sc.receive.commit_log_fd = open(commit_log, O_WRONLY | O_CREAT |
                                        O_TRUNC | O_CLOEXEC | O_APPEND,
                                        0644);
        if (sc.receive.commit_log_fd < 0) {
            ret = cli_fail("receive", "cannot write '%s': %s", commit_log,
                           strerror(errno));
            goto out;
        }
    }
    if (digest_path && sc.receive.digest_every) {
        sc.receive.digest_fd = open(digest_path, O_WRONLY | O_CREAT |
                                    O_TRUNC | O_CLOEXEC, 0644);
        if (sc.receive.digest_fd < 0) {
            ret = cli_fail("receive", "cannot write '%s': %s", digest_path,
                           strerror(errno));
            goto out;
        }
    }
    ro.max_mem_bytes = sc.receive.max_guest_bytes;
    if (rm_kvm_backend_replica(&ro, &be, &err)) {
        ret = cli_fail("receive", "%s", rm_error_str(&err));
        goto out;
    }
    sc.quorum = cl->q;
    sc.fence_cmd = cl->fence_cmd;
    sc.fence_timeout_ms = cl->fence_timeout_ms;
    sc.name = ro.cfg.name;
    sc.stop_requested = &receive_stop;
    sc.took_over = took_over;
    sc.took_over_opaque = &to;
    to.key = sc.receive.key;
    to.quorum = cl->q;

    if (announce) {
        ret = cli_receive_announce("receive", &sc.receive);
        if (ret)
            goto out;
        ret = RM_EXIT_FAIL;
    }
    receive_be = be;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* `remus handover` signals only `remus protect` processes; a stray
     * SIGUSR2 must not end a replica or the VM that took over. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &sa, NULL);

    rm_secondary_run(be, &sc, &res);
    ret = (int)res.outcome;
out:
    rm_vmctl_stop(to.ctl);
    receive_be = NULL;
    rm_backend_close(be);
    if (sc.receive.digest_fd >= 0)
        close(sc.receive.digest_fd);
    if (sc.receive.commit_log_fd >= 0)
        close(sc.receive.commit_log_fd);
    if (sc.receive.listen_fd >= 0)
        close(sc.receive.listen_fd);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}
