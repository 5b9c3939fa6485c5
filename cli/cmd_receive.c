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
#include "backends/kvm/kvm_sr.h"
#include "backends/kvm/vmctl.h"
#include "cli/cli.h"
#include "cluster/quorum.h"
#include "secondary/takeover.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/status.h"
#include "secondary/receive.h"

static volatile sig_atomic_t receive_stop;
static struct rm_vm *receive_vm;

static void on_signal(int sig)
{
    (void)sig;
    receive_stop = 1;
    if (receive_vm)
        rm_vm_request_stop(receive_vm);
}

static uint64_t replica_digest(void *opaque)
{
    struct rm_kvm_restore_arg *arg = opaque;

    return arg->replica ? rm_kvm_mem_digest(arg->replica) : 0;
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
            "  --listen ADDR:PORT     where the primary connects (required)\n"
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
            "                         /etc/remus/remus.key; without one:\n"
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
    struct rm_receive_cfg rc_cfg;
    struct rm_receive_result res;
    struct rm_kvm_restore_arg arg;
    struct rm_error err = { 0 };
    struct rm_vmctl *ctl = NULL;
    struct sigaction sa;
    bool have_listen = false;
    const char *digest_path = NULL, *commit_log = NULL, *key_path = NULL;
    struct rm_auth_key key;
    bool insecure = false, takeover;
    int digest_fd = -1;
    int64_t code = 0;
    int c, rc, ret = RM_EXIT_FAIL;

    memset(&rc_cfg, 0, sizeof(rc_cfg));
    memset(&arg, 0, sizeof(arg));
    rm_vm_config_default(&arg.cfg);
    arg.cfg.name = NULL;
    rc_cfg.backend_name = "kvm";
    rc_cfg.listen_fd = -1;
    rc_cfg.hb_interval_ms = 100;
    rc_cfg.hb_timeout_ms = 0;      /* derived in the handshake */
    rc_cfg.allow_compression = true;
    rc_cfg.max_guest_bytes = 4ull << 30;
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
            if (rm_parse_hostport(optarg, &rc_cfg.listen, &err))
                return cli_usage_error("receive", "--listen: %s",
                                       rm_error_str(&err));
            have_listen = true;
            break;
        case 'H': rc_cfg.hb_interval_ms = (unsigned)v; break;
        case 'T': rc_cfg.hb_timeout_ms = (unsigned)v; break;
        case 'u': rc_cfg.allow_compression = false; break;
        case 'm': rc_cfg.max_guest_bytes = (uint64_t)v << 20; break;
        case 'B': rc_cfg.buffer_bytes = (uint64_t)v << 20; break;
        case 'n': arg.cfg.name = optarg; break;
        case 't': arg.cfg.tap = optarg; break;
        case 'N': arg.cfg.tap_netns = optarg; break;
        case 'o': arg.cfg.console_path = optarg; break;
        case 'P': rc_cfg.progress_ms = (unsigned)v; break;
        case 'E': rc_cfg.digest_every = (unsigned)v; break;
        case 'D': digest_path = optarg; break;
        case 'L': commit_log = optarg; break;
        case 'K': key_path = optarg; break;
        case 0x301: insecure = true; break;
        case 0x302:   /* the VM this secondary knows: its description */
            if (rm_guestcfg_opt(known, 0x100b, optarg, &err) < 0)
                return cli_usage_error("receive", "--config: %s",
                                       rm_error_str(&err));
            arg.expect = &known->vm;
            break;
        case 'Q':
            if (strcmp(optarg, "corosync"))
                return cli_usage_error("receive", "--quorum: '%s' is not a "
                                       "quorum service (the one supported: "
                                       "corosync)", optarg);
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
    if (rc_cfg.hb_timeout_ms && rc_cfg.hb_timeout_ms <= rc_cfg.hb_interval_ms)
        return cli_usage_error("receive", "--heartbeat-timeout %u must "
                               "exceed --heartbeat %u", rc_cfg.hb_timeout_ms,
                               rc_cfg.hb_interval_ms);
    if (arg.expect && !arg.cfg.name)
        arg.cfg.name = arg.expect->name;     /* the VM's name: its file's */
    if (cl->use_quorum && !arg.cfg.name)
        return cli_usage_error("receive", "--quorum needs --name NAME (the "
                               "protected VM's name: it names the corosync "
                               "group both sides join)");
    if (cl->fence_cmd && !arg.cfg.name)
        return cli_usage_error("receive", "--fence-cmd needs --name NAME "
                               "(the protected VM's name, for REMUS_NAME: "
                               "never taken from the primary)");
    if (cl->use_quorum) {
        struct rm_quorum_cfg qc = { .vm_name = arg.cfg.name,
                                    .role = RM_QUORUM_SECONDARY,
                                    .settle_ms = cl->settle_ms };
        char desc[320];
        bool quorate = false;

        rc = rm_quorum_open(&qc, &cl->q, &err);
        if (!rc)
            rc = rm_quorum_status(cl->q, &quorate, desc, sizeof(desc), &err);
        if (rc)
            return cli_fail("receive", "--quorum corosync: %s",
                            rm_error_str(&err));
        LOG_INFO("corosync: %s", desc);
    }
    rc_cfg.digest_fd = -1;
    rc_cfg.commit_log_fd = -1;
    memset(&key, 0, sizeof(key));
    rc = cli_key("receive", key_path, insecure, &key, &rc_cfg.key);
    if (rc)
        return rc;
    if (commit_log) {
        rc_cfg.commit_log_fd = open(commit_log, O_WRONLY | O_CREAT |
                                    O_TRUNC | O_CLOEXEC | O_APPEND, 0644);
        if (rc_cfg.commit_log_fd < 0)
            return cli_fail("receive", "cannot write '%s': %s", commit_log,
                            strerror(errno));
    }
    if (digest_path && rc_cfg.digest_every) {
        digest_fd = open(digest_path, O_WRONLY | O_CREAT | O_TRUNC |
                         O_CLOEXEC, 0644);
        if (digest_fd < 0)
            return cli_fail("receive", "cannot write '%s': %s", digest_path,
                            strerror(errno));
        rc_cfg.digest_fd = digest_fd;
        rc_cfg.mem_digest = replica_digest;
        rc_cfg.mem_digest_opaque = &arg;
    } else {
        rc_cfg.digest_every = 0;
    }
    rc_cfg.name = arg.cfg.name;
    rc_cfg.quorum = cl->use_quorum;
    rc_cfg.cluster = cl->q;
    rc_cfg.ops = &rm_kvm_restore_ops;
    rc_cfg.backend_arg = &arg;
    rc_cfg.stop_requested = &receive_stop;
    arg.max_mem_bytes = rc_cfg.max_guest_bytes;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* `remus handover` signals only `remus protect` processes; a stray
     * SIGUSR2 must not end a replica or the VM that took over. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &sa, NULL);

    rc = rm_receive_run(&rc_cfg, &res, &err);
    if (rc == -ECANCELED && receive_stop) {
        LOG_INFO("%s", rm_error_str(&err));
        rm_vm_destroy(arg.vm);
        rm_auth_wipe(&key, sizeof(key));
        return RM_EXIT_OK;
    }
    if (rc) {
        rm_vm_destroy(arg.vm);
        rm_auth_wipe(&key, sizeof(key));
        return cli_fail("receive", "%s", rm_error_str(&err));
    }
    if (res.end == RM_RECEIVE_STOPPED) {
        LOG_INFO("the primary stopped protection after checkpoint %" PRIu64
                 "; the replica is discarded", res.committed_epoch);
        rm_vm_destroy(arg.vm);
        rm_auth_wipe(&key, sizeof(key));
        return RM_EXIT_OK;
    }

    /* Failover: the replica takes over. */
    if (!arg.vm) {
        rm_auth_wipe(&key, sizeof(key));
        return cli_fail("receive", "failover without a replica");
    }
    if (cl->use_quorum && strcmp(res.name, arg.cfg.name))
        LOG_WARN("the primary protects '%s' but --name is '%s': the "
                 "corosync group remus:%s cannot have seen it", res.name,
                 arg.cfg.name, arg.cfg.name);
    {
        struct rm_takeover_policy pol = {
            .quorum = cl->q, .fence_cmd = cl->fence_cmd,
            .fence_timeout_ms = cl->fence_timeout_ms, .name = arg.cfg.name,
        };

        takeover = rm_takeover_allowed(&pol, &res);
    }
    if (!takeover) {
        rm_vm_destroy(arg.vm);
        rm_auth_wipe(&key, sizeof(key));
        return RM_EXIT_HELD_BACK;
    }
    if (receive_stop) {
        /* Asked to stop while the takeover was being decided (quorum,
         * fencing): stopping wins; the VM never runs here. */
        LOG_INFO("stopped on request before taking over: the replica of "
                 "checkpoint %" PRIu64 " is discarded", res.committed_epoch);
        rm_vm_destroy(arg.vm);
        rm_auth_wipe(&key, sizeof(key));
        return RM_EXIT_OK;
    }
    if (!arg.cfg.name)
        arg.cfg.name = res.name;
    receive_vm = arg.vm;
    rc = rm_vm_start(arg.vm, &err);
    if (rc) {
        ret = cli_fail("receive", "failover failed: %s", rm_error_str(&err));
        goto out;
    }
    rm_vm_announce(arg.vm);
    {
        uint64_t ms = (rm_now_ns() - res.lost_at_ns) / 1000000;
        struct rm_status st;
        struct rm_error serr = { 0 };

        fprintf(stderr, "remus receive: FAILOVER: %s; the replica resumed "
                "from checkpoint %" PRIu64 " %" PRIu64 " ms after the "
                "primary was declared lost\n", rm_error_str(&res.why),
                res.committed_epoch, ms);
        memset(&st, 0, sizeof(st));
        snprintf(st.name, sizeof(st.name), "%s", res.name);
        snprintf(st.role, sizeof(st.role), "secondary");
        snprintf(st.state, sizeof(st.state), "failed-over");
        snprintf(st.backend, sizeof(st.backend), "kvm");
        snprintf(st.detail, sizeof(st.detail), "running from checkpoint %"
                 PRIu64 ": %s", res.committed_epoch, rm_error_str(&res.why));
        st.pid = (int)getpid();
        st.epoch = st.acked_epoch = res.committed_epoch;
        st.updated_unix_ms = st.failover_unix_ms = rm_unix_ms();
        rm_status_write(&st, &serr);
    }
    ctl = rm_vmctl_start(arg.vm, res.name, &err);
    rm_vmctl_set_key(ctl, rc_cfg.key);   /* a reprotection keeps the key */
    if (cl->use_quorum) {
        /* This process is no longer a secondary: it holds the VM's token
         * (it stays in the group, answering the old primary's claims), and
         * a reprotection is the primary of the next pair, in the group
         * with the same handle. */
        rm_vmctl_set_quorum(ctl, cl->q);
    }
    if (receive_stop)
        rm_vm_request_stop(arg.vm);
    {
        char why[400];

        ret = RM_EXIT_FAILOVER;
        if (!cli_vm_wait_holding(arg.vm, cl->q, &code, why, sizeof(why))) {
            fprintf(stderr, "remus receive: STOPPED the VM that took over: "
                    "%s\n", why);
            ret = RM_EXIT_HELD_BACK;
        }
    }
    LOG_INFO("the VM that took over ended: %s", rm_vm_end_reason(arg.vm));
out:
    rm_vmctl_stop(ctl);
    receive_vm = NULL;
    rm_vm_destroy(arg.vm);
    rm_auth_wipe(&key, sizeof(key));
    return ret;
}
