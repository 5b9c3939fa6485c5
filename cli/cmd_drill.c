/* SPDX-License-Identifier: MIT */
/* remus drill [OPTIONS]: rehearse a failover on the embedded KVM backend. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "drill/drill.h"

/* The pause by part, and what made its slowest 1% (after checkpoint 1). */
static void print_pause_parts(const struct rm_drill_pause_parts *pp)
{
    unsigned i;

    if (!pp->n)
        return;
    printf("  pause by part p50/p99/max   (ms; %" PRIu64 " checkpoints after "
           "the first)\n", pp->n);
    for (i = 0; i < RM_PAUSE_PHASES; i++)
        printf("    %-25s %.3f / %.3f / %.3f\n", rm_pause_phase_name(i),
               pp->p50_ms[i], pp->p99_ms[i], pp->max_ms[i]);
    printf("  pause p99 / p50             %.1f (%.3f / %.3f ms)\n",
           pp->pause_ms_p50 > 0 ? pp->pause_ms_p99 / pp->pause_ms_p50 : 0.0,
           pp->pause_ms_p99, pp->pause_ms_p50);
    printf("  the slowest pauses          %" PRIu64 " at or above p99: %.0f%% "
           "of their time in %s\n", pp->tail_n, pp->tail_share * 100.0,
           rm_pause_phase_name(pp->tail_part));
}

/* COLO's part of the report (after the common one). */
static void print_colo(const struct rm_drill_report *rep)
{
    const struct rm_drill_colo *c = &rep->colo_st;

    if (!c->sampled) {
        printf("  COLO                        no status was read\n");
        return;
    }
    printf("  COLO checkpoints by cause   mismatch %" PRIu64 ", timeout %"
           PRIu64 ", full queue %" PRIu64 ", periodic %" PRIu64 " (under "
           "load: %.2f, %.2f, %.2f, %.2f /s)\n"
           "  COLO mode                   %s at the kill (%sbuffered "
           "under load; fallbacks %" PRIu64 ", checkpoints buffered %"
           PRIu64 ")\n"
           "  COLO queues (largest seen)  %" PRIu64 " frames of the VM, %"
           PRIu64 " of the replica\n"
           "  COLO replica's pause        mean %.3f ms, max %.3f ms per "
           "checkpoint (paused .. ran again)\n",
           c->last[0], c->last[1], c->last[2], c->last[3],
           rm_drill_colo_rate(c, 0), rm_drill_colo_rate(c, 1),
           rm_drill_colo_rate(c, 2), rm_drill_colo_rate(c, 3), c->mode,
           c->ever_buffered ? "" : "never ", c->fallbacks,
           c->buffered_checkpoints, c->held_max_vm, c->held_max_replica,
           c->replica_pause_mean_ms, c->replica_pause_max_ms);
    if (c->takeover_folded < 0)
        printf("  COLO takeover's disk        not said by the secondary\n");
    else
        printf("  COLO takeover's disk        %" PRId64 " sectors the replica "
               "wrote since its checkpoint folded into its image%s\n",
               c->takeover_folded, c->takeover_folded ? "" : " (none: the "
               "fold was not exercised)");
    if (c->takeover_dropped)
        printf("  COLO takeover's disk        %" PRIu64 " sectors DROPPED "
               "(test mode)\n", c->takeover_dropped);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus drill [OPTIONS]\n"
            "\n"
            "Rehearse a failover on this machine with the embedded KVM backend:\n"
            "start a secondary and a primary protecting our guest (in a private\n"
            "network namespace), put a client load on the guest's key-value\n"
            "service, kill the primary with SIGKILL at a random moment, and\n"
            "show the failover.  The report: epochs, checkpoint pause p50/p99/\n"
            "max, bytes per epoch, failover time (primary death to the guest\n"
            "answering from the secondary), operations acknowledged, and\n"
            "acknowledged operations lost.\n"
            "\n"
            "  --kill-after S        kill the primary after S seconds (default:\n"
            "                        random, 2 to 5 s)\n"
            "  -i MS                 checkpoint interval (default 25)\n"
            "  --heartbeat MS        heartbeat period (default 50)\n"
            "  --heartbeat-timeout MS  (default 500)\n"
            "  --clients N           concurrent clients (default 4)\n"
            "  --memory MIB --vcpus N  the guest (default 64 MiB, 2 vCPUs)\n"
            "  --dirty-rate N --dirty-wss N  guest memory workload: page-writes\n"
            "                        per second over N pages (default 5000, 2048)\n"
            "  --after S             load after the failover (default 2)\n"
            "  -u                    no checkpoint compression\n"
            "  --no-buffer           protect with -F -n: output not held back\n"
            "                        (a latency baseline; may lose acked ops)\n"
            "  --disk MIB            the guest's disk, which holds its data and\n"
            "                        is replicated (default 16; 0: none).\n"
            "                        After the failover the replica compares\n"
            "                        its disk with its memory (DISKCHECK), then\n"
            "                        the secondary is killed too and a guest\n"
            "                        cold-booted from a copy of its image must\n"
            "                        hold exactly what the replica served\n"
            "  --no-disk-replication protect with -F -d (a negative control:\n"
            "                        the drill must fail)\n"
            "  --colo                COLO mode (protect/receive --colo): the\n"
            "                        report adds the checkpoints by cause\n"
            "                        and per second, the mode, the fallbacks\n"
            "                        and the comparator's largest queues\n"
            "                        seen under load, and what the takeover\n"
            "                        folded into the disk; the primary dies\n"
            "                        300 ms after the secondary committed a\n"
            "                        checkpoint, the replica having run on\n"
            "                        (disk writes included)\n"
            "  --compare-timeout MS  COLO: protect --compare-timeout (how\n"
            "                        long an output waits for the replica's;\n"
            "                        default protect's, 20)\n"
            "  --image ELF           guest image (default: next to this binary)\n"
            "  --json FILE           write the report as JSON\n"
            "  --keep-logs DIR       keep all logs in DIR\n"
            "  --key-file FILE       authenticate and encrypt with this key\n"
            "                        (default: a key generated for this\n"
            "                        drill; --auth is accepted and is the\n"
            "                        default)\n"
            "  --insecure            protect/receive without a key (a\n"
            "                        baseline: warned about)\n"
            "  --seed N              seed of the random kill time\n"
            "  --quiet               no live progress\n"
            "\n"
            "Needs root and /dev/kvm.  Exit status: 0 only if the guest\n"
            "survived and no acknowledged operation was lost; 1 otherwise;\n"
            "2 for a usage error.\n");
}

int cmd_drill(int argc, char **argv)
{
    static const struct option opts[] = {
        { "kill-after", required_argument, NULL, 'k' },
        { "heartbeat", required_argument, NULL, 'H' },
        { "heartbeat-timeout", required_argument, NULL, 'T' },
        { "clients", required_argument, NULL, 'c' },
        { "memory", required_argument, NULL, 'm' },
        { "vcpus", required_argument, NULL, 'v' },
        { "dirty-rate", required_argument, NULL, 'r' },
        { "dirty-wss", required_argument, NULL, 'w' },
        { "after", required_argument, NULL, 'a' },
        { "image", required_argument, NULL, 'I' },
        { "json", required_argument, NULL, 'j' },
        { "keep-logs", required_argument, NULL, 'K' },
        { "key-file", required_argument, NULL, 0x200 },
        { "auth", no_argument, NULL, 0x201 },
        { "insecure", no_argument, NULL, 0x202 },
        { "seed", required_argument, NULL, 's' },
        { "quiet", no_argument, NULL, 'q' },
        { "no-buffer", no_argument, NULL, 'N' },
        { "disk", required_argument, NULL, 'D' },
        { "no-disk-replication", no_argument, NULL, 0x203 },
        { "colo", no_argument, NULL, 0x204 },
        { "compare-timeout", required_argument, NULL, 0x205 },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_drill_cfg cfg;
    struct rm_drill_report rep = { 0 };
    struct rm_error err = { 0 };
    char self[PATH_MAX - 64], image[PATH_MAX];
    const char *json = NULL;
    char disk[200];
    unsigned long long v;
    ssize_t n;
    int c, rc;
    bool pass;

    rm_drill_cfg_default(&cfg);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return cli_fail("drill", "cannot find my own binary");
    self[n] = '\0';
    cfg.self = self;
    snprintf(image, sizeof(image), "%.*s/guest/remus-guest.elf",
             (int)(strrchr(self, '/') - self), self);
    cfg.image = image;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+i:uh", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (cli_uint("drill", "--kill-after", optarg, 1, 3600, &v))
                return RM_EXIT_USAGE;
            cfg.kill_after_ms = (unsigned)v * 1000;
            break;
        case 'i':
            if (cli_uint("drill", "-i", optarg, 1, 10000, &v))
                return RM_EXIT_USAGE;
            cfg.interval_ms = (unsigned)v;
            break;
        case 'H':
            if (cli_uint("drill", "--heartbeat", optarg, 1, 10000, &v))
                return RM_EXIT_USAGE;
            cfg.hb_interval_ms = (unsigned)v;
            break;
        case 'T':
            if (cli_uint("drill", "--heartbeat-timeout", optarg, 2, 60000,
                         &v))
                return RM_EXIT_USAGE;
            cfg.hb_timeout_ms = (unsigned)v;
            break;
        case 'c':
            if (cli_uint("drill", "--clients", optarg, 1, 64, &v))
                return RM_EXIT_USAGE;
            cfg.clients = (unsigned)v;
            break;
        case 'm':
            if (cli_uint("drill", "--memory", optarg, 8, 4096, &v) ||
                (v % 2 && cli_usage_error("drill", "--memory: even MiB")))
                return RM_EXIT_USAGE;
            cfg.memory_mib = (unsigned)v;
            break;
        case 'v':
            if (cli_uint("drill", "--vcpus", optarg, 1, 8, &v))
                return RM_EXIT_USAGE;
            cfg.vcpus = (unsigned)v;
            break;
        case 'r':
            if (cli_uint("drill", "--dirty-rate", optarg, 0, 100000000,
                         &v))
                return RM_EXIT_USAGE;
            cfg.dirty_rate = v;
            break;
        case 'w':
            if (cli_uint("drill", "--dirty-wss", optarg, 0, 1000000, &v))
                return RM_EXIT_USAGE;
            cfg.dirty_wss = v;
            break;
        case 'a':
            if (cli_uint("drill", "--after", optarg, 1, 600, &v))
                return RM_EXIT_USAGE;
            cfg.after_ms = (unsigned)v * 1000;
            break;
        case 'u': cfg.compress = false; break;
        case 'I': cfg.image = optarg; break;
        case 'j': json = optarg; break;
        case 'K': cfg.keep_dir = optarg; break;
        case 0x200: cfg.key_file = optarg; break;
        case 0x201: break;   /* --auth: the default now */
        case 0x202: cfg.insecure = true; break;
        case 's':
            if (cli_uint("drill", "--seed", optarg, 1, ULLONG_MAX, &v))
                return RM_EXIT_USAGE;
            cfg.seed = v;
            break;
        case 'q': cfg.quiet = true; break;
        case 'N': cfg.no_buffer = true; break;
        case 'D':
            if (cli_uint("drill", "--disk", optarg, 0, 4096, &v))
                return RM_EXIT_USAGE;
            cfg.disk_mib = (unsigned)v;
            break;
        case 0x203: cfg.no_disk_replication = true; break;
        case 0x204: cfg.colo = true; break;
        case 0x205:
            if (cli_uint("drill", "--compare-timeout", optarg, 1, 60000, &v))
                return RM_EXIT_USAGE;
            cfg.compare_timeout_ms = (unsigned)v;
            break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("drill", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error("drill", "unexpected argument '%s'",
                               argv[optind]);
    if (cfg.hb_timeout_ms <= cfg.hb_interval_ms)
        return cli_usage_error("drill", "the heartbeat timeout must exceed "
                               "the heartbeat");
    if (cfg.compare_timeout_ms && !cfg.colo)
        return cli_usage_error("drill", "--compare-timeout is for COLO: "
                               "add --colo");
    if (cfg.colo && cfg.no_buffer)
        return cli_usage_error("drill", "--colo compares the output: not "
                               "with --no-buffer");
    if (cfg.no_disk_replication && !cfg.disk_mib)
        return cli_usage_error("drill", "--no-disk-replication with --disk "
                               "0: there is no disk");

    rc = rm_drill_run(&cfg, &rep, &err);
    if (rc) {
        if (json) {   /* the verdict for whoever reads the JSON */
            snprintf(rep.why, sizeof(rep.why), "the drill could not run: %s",
                     rm_error_str(&err));
            rep.passed = false;
            (void)rm_drill_report_json(&rep, json, &err);
        }
        return cli_fail("drill", "%s", rm_error_str(&err));
    }
    pass = rep.passed;
    if (!rep.disk_mib)
        snprintf(disk, sizeof(disk), "none");
    else if (rep.disk_checked)
        snprintf(disk, sizeof(disk), "%u MiB: DISKCHECK ok on the replica "
                 "(%" PRIu64 " records); a copy of its image cold-booted in "
                 "%.0f ms with every acked op", rep.disk_mib,
                 rep.disk_records, rep.cold_boot_ms);
    else
        snprintf(disk, sizeof(disk), "%u MiB: NOT verified", rep.disk_mib);
    printf("\n"
           "remus drill report\n"
           "  primary killed after        %.1f s\n"
           "  checkpoints (epochs)        %" PRIu64 " (%.1f/s under load)\n"
           "  checkpoint pause p50/p99/max %.3f / %.3f / %.3f ms\n"
           "  dirty pages per epoch       %.1f\n"
           "  bytes per epoch             %.0f\n"
           "  request latency p50/p99/max %.3f / %.3f / %.3f ms (protected)\n"
           "  guest page-writes/s         %.0f (protected)\n"
           "  CPU under load              primary %.2f, secondary %.2f "
           "cores\n"
           "  replica resumed from epoch  %" PRIu64 "\n"
           "  failover time               %.1f ms (kill -9 to the first "
           "answer from the replica)\n"
           "  operations acknowledged     %" PRIu64 " (%" PRIu64 " before "
           "the kill)\n"
           "  acknowledged ops lost       %" PRIu64 "\n"
           "  guest survived              %s\n"
           "  disk                        %s\n"
           "  logs                        %s\n"
           "  RESULT                      %s%s%s\n",
           rep.kill_after_ms / 1000.0, rep.epochs, rep.epochs_per_s,
           rep.pause_ms_p50, rep.pause_ms_p99, rep.pause_ms_max,
           rep.dirty_per_epoch, rep.bytes_per_epoch, rep.latency_ms_p50,
           rep.latency_ms_p99, rep.latency_ms_max, rep.guest_writes_per_s,
           rep.primary_cpu, rep.secondary_cpu,
           rep.committed_epoch, rep.failover_ms,
           rep.acked_ops, rep.acked_before_kill, rep.lost_ops,
           rep.survived ? "yes" : "NO", disk, rep.logs, pass ? "PASS" : "FAIL",
           rep.why[0] ? ": " : "", rep.why);
    print_pause_parts(&rep.parts);
    if (rep.colo)
        print_colo(&rep);
    if (json && rm_drill_report_json(&rep, json, &err))
        return cli_fail("drill", "%s", rm_error_str(&err));
    return pass ? RM_EXIT_OK : RM_EXIT_FAIL;
}
