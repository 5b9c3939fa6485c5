/* SPDX-License-Identifier: MIT */
/*
 * The failover drill (drill.h): the run, phase by phase, and the
 * processes and network it runs in; its clients are drill_clients.c, its
 * report drill_report.c.
 *
 * Topology, inside a network namespace private to the drill process (it
 * vanishes with the process, so a crashed drill leaves nothing behind):
 *
 *     client sockets -- br0 10.77.0.1/24 --+-- tapp -- primary's guest
 *                                          +-- taps -- secondary's replica
 *     primary <-- 127.0.0.1:7790 --> secondary   (control + checkpoints)
 *
 * Both guests have the same MAC and IP; the replica's TAP stays silent
 * until the failover, when the replica announces itself (gratuitous ARP).
 */
#define RM_LOG_PREFIX "drill"
#include "drill/drill.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/io.h"
#include "common/log.h"
#include "drill/drill_run.h"
#include "drill/proc_cpu.h"

#define REPL_ADDR "127.0.0.1:7790"

void rm_drill_cfg_default(struct rm_drill_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory_mib = 64;
    cfg->vcpus = 2;
    cfg->interval_ms = 25;
    cfg->hb_interval_ms = 50;
    cfg->hb_timeout_ms = 500;
    cfg->clients = 4;
    cfg->after_ms = 2000;
    cfg->dirty_rate = 5000;
    cfg->dirty_wss = 2048;
    cfg->compress = true;
    cfg->disk_mib = 16;
}

/* ------------------------------------------------------------ processes */

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDONLY);

        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int run(const char *log, const char *a0, ...)
{
    char *argv[16];
    va_list ap;
    int n = 0, status;
    pid_t pid;

    argv[n++] = (char *)a0;
    va_start(ap, a0);
    while (n < 15 && (argv[n] = va_arg(ap, char *)))
        n++;
    va_end(ap);
    argv[n] = NULL;
    pid = spawn(argv, log);
    if (pid < 0)
        return -errno;
    if (waitpid(pid, &status, 0) < 0)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int setup_network(struct drill *d, struct rm_error *err)
{
    char log[256];
    int rc = 0;

    snprintf(log, sizeof(log), "%s/network.log", d->dir);
    if (unshare(CLONE_NEWNET))
        return rm_error_set(err, -errno, "cannot create a network "
                            "namespace: %s (the drill needs root)",
                            strerror(errno));
    rc |= run(log, "ip", "link", "set", "lo", "up", NULL);
    rc |= run(log, "ip", "link", "add", "br0", "type", "bridge", NULL);
    rc |= run(log, "ip", "link", "set", "br0", "up", NULL);
    rc |= run(log, "ip", "addr", "add", "10.77.0.1/24", "dev", "br0", NULL);
    rc |= run(log, "ip", "tuntap", "add", "dev", "tapp", "mode", "tap", NULL);
    rc |= run(log, "ip", "tuntap", "add", "dev", "taps", "mode", "tap", NULL);
    rc |= run(log, "ip", "link", "set", "tapp", "master", "br0", "up", NULL);
    rc |= run(log, "ip", "link", "set", "taps", "master", "br0", "up", NULL);
    if (rc)
        return rm_error_set(err, -EIO, "setting up the drill's network "
                            "failed (is iproute2 installed?); see %s", log);
    return 0;
}

void drill_progress(struct drill *d, const char *phase)
{
    if (d->cfg->quiet)
        return;
    fprintf(stderr, "remus drill: %5.1fs  %-22s acked ops %" PRIu64 "\n",
            (double)(rm_now_ns() - d->t_start) / 1e9, phase,
            drill_total_acked(d));
}

/* ------------------------------------------------------------ the disk */

/* After the verification: the replica's disk against its memory. */
static void replica_diskcheck(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    struct kv_client kc;
    char why[160];

    if (kv_open(&kc, 888888, DRILL_GUEST_IP, DRILL_GUEST_PORT)) {
        snprintf(rep->why, sizeof(rep->why), "no client for DISKCHECK");
        return;
    }
    if (rm_drill_diskcheck(&kc, &rep->disk_records, why, sizeof(why)))
        snprintf(rep->why, sizeof(rep->why), "after the failover the "
                 "replica's disk does not match its memory: %s", why);
    kv_close(&kc);
}

/* The secondary's host is dead: a guest cold-booted from a copy of its
 * image must find exactly what the replica served. */
static void cold_boot(struct drill *d, unsigned nkeys)
{
    const struct rm_drill_cfg *cfg = d->cfg;
    struct rm_drill_report *rep = d->rep;
    struct rm_drill_cold c = {
        .self = cfg->self, .image = cfg->image, .dir = d->dir,
        .ip = DRILL_GUEST_IP, .port = DRILL_GUEST_PORT, .tap = "taps",
        .memory_mib = cfg->memory_mib, .vcpus = cfg->vcpus,
        .want = d->want, .n = nkeys,
    };
    char why[220];

    drill_progress(d, "cold boot of its disk");
    if (rm_drill_cold_boot(&d->disk, &c, &rep->cold_boot_ms,
                           &rep->cold_records, why, sizeof(why))) {
        snprintf(rep->why, sizeof(rep->why), "%s", why);
        return;
    }
    rep->disk_checked = true;
    drill_progress(d, "cold boot: every op");
}

/* ------------------------------------------------------------ the drill */

/* What the load phase measures from (its probe: a client of its own). */
struct load {
    struct kv_client probe;
    uint64_t t_load;              /* the load began */
    uint64_t writes0;             /* the guest's writes then */
    uint64_t epochs0;             /* checkpoints then */
    uint64_t cpu_p0, cpu_s0;      /* the processes' CPU then (UINT64_MAX:
                                     unknown) */
};

/* Refuse what cannot run before anything is made. */
static int check_cfg(const struct rm_drill_cfg *cfg, struct rm_error *err)
{
    if (geteuid() != 0)
        return rm_error_set(err, -EPERM, "the drill needs root (network "
                            "namespace, TAP devices)");
    if (access("/dev/kvm", R_OK | W_OK))
        return rm_error_set(err, -ENODEV, "/dev/kvm is not usable: %s",
                            strerror(errno));
    if (!cfg->image || access(cfg->image, R_OK))
        return rm_error_set(err, -ENOENT, "guest image '%s' not found "
                            "(run make)", cfg->image ? cfg->image : "");
    if (cfg->clients < 1 || cfg->clients > DRILL_MAX_CLIENTS)
        return rm_error_set(err, -EINVAL, "1..%d clients", DRILL_MAX_CLIENTS);
    if (cfg->insecure && cfg->key_file)
        return rm_error_set(err, -EINVAL, "--insecure and --key-file "
                            "contradict each other");
    if (cfg->colo && (cfg->no_disk_replication || cfg->no_buffer))
        return rm_error_set(err, -EINVAL, "a COLO drill runs with its output "
                            "compared and its disk replicated (not %s)",
                            cfg->no_buffer ? "--no-buffer" :
                            "--no-disk-replication");
    if (cfg->key_file) {
        /* Refuse an unusable key now, not after two failed starts. */
        struct rm_auth_key k;
        int rc = rm_auth_key_load(cfg->key_file, &k, err);

        rm_auth_wipe(&k, sizeof(k));
        if (rc)
            return rc;
    }
    return 0;
}

/* The drill's log directory, key, disk images, guest description and
 * network; then the banner. */
static int prepare(struct drill *d, struct rm_error *err)
{
    const struct rm_drill_cfg *cfg = d->cfg;
    struct rm_drill_report *rep = d->rep;
    uint64_t seed;
    FILE *f;
    int rc;

    seed = cfg->seed ? cfg->seed : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    srandom((unsigned)seed);
    rep->kill_after_ms = cfg->kill_after_ms ? cfg->kill_after_ms
                                            : 2000 + (unsigned)(random() % 3000);
    if (cfg->keep_dir) {
        snprintf(d->dir, sizeof(d->dir), "%s", cfg->keep_dir);
        mkdir(d->dir, 0755);
    } else {
        snprintf(d->dir, sizeof(d->dir), "/tmp/remus-drill.XXXXXX");
        if (!mkdtemp(d->dir))
            return rm_error_set(err, -errno, "mkdtemp: %s", strerror(errno));
    }
    snprintf(rep->logs, sizeof(rep->logs), "%s", d->dir);
    snprintf(d->path_cfg, sizeof(d->path_cfg), "%s/guest.cfg", d->dir);
    snprintf(d->log_p, sizeof(d->log_p), "%s/primary.log", d->dir);
    snprintf(d->log_s, sizeof(d->log_s), "%s/secondary.log", d->dir);
    snprintf(d->epochs, sizeof(d->epochs), "%s/epochs.txt", d->dir);
    snprintf(d->rundir, sizeof(d->rundir), "%s/run", d->dir);
    setenv("REMUS_RUN_DIR", d->rundir, 1);
    d->key = cfg->key_file;
    if (!d->key && !cfg->insecure) {
        /* A key of this drill's own, in its (private) log directory. */
        snprintf(d->keyf, sizeof(d->keyf), "%s/drill.key", d->dir);
        unlink(d->keyf);
        rc = rm_auth_key_generate(d->keyf, err);
        if (rc)
            return rc;
        d->key = d->keyf;
    }
    rep->colo = cfg->colo;
    if (cfg->disk_mib) {
        rc = rm_drill_disk_images(d->dir, cfg->disk_mib, &d->disk, err);
        if (rc)
            return rc;
        rep->disk_mib = cfg->disk_mib;
    }
    f = fopen(d->path_cfg, "w");
    if (!f)
        return rm_error_set(err, -errno, "cannot write %s", d->path_cfg);
    fprintf(f, "name = drillvm\nmemory = %u\nvcpus = %u\nimage = %s\n"
            "ip = " DRILL_GUEST_IP "\nnetmask = 255.255.255.0\ntap = tapp\n"
            "cmdline = \"dirty_rate=%" PRIu64 " dirty_wss=%" PRIu64 "\"\n",
            cfg->memory_mib, cfg->vcpus, cfg->image, cfg->dirty_rate,
            cfg->dirty_wss);
    if (cfg->disk_mib)
        fprintf(f, "disk = %s\n", d->disk.primary);
    if (fclose(f))
        return rm_error_set(err, -EIO, "cannot write %s", d->path_cfg);

    rc = setup_network(d, err);
    if (rc)
        return rc;
    d->t_start = rm_now_ns();
    if (!cfg->quiet)
        fprintf(stderr, "remus drill: guest %u MiB, %u vcpus, workload %"
                PRIu64 " pages/s over %" PRIu64 " pages; checkpoint every "
                "%u ms, heartbeat %u/%u ms, %u clients; the primary dies "
                "after %.1f s (seed %" PRIu64 "); logs in %s\n",
                cfg->memory_mib, cfg->vcpus, cfg->dirty_rate, cfg->dirty_wss,
                cfg->interval_ms, cfg->hb_interval_ms, cfg->hb_timeout_ms,
                cfg->clients, rep->kill_after_ms / 1000.0, seed, d->dir);
    return 0;
}

/* `remus receive` and `remus protect`, as a user runs them. */
static int start_pair(struct drill *d, struct rm_error *err)
{
    const struct rm_drill_cfg *cfg = d->cfg;
    char iv[16], hb[16], hbt[16], ct[16], pcons[256], scons[256];
    char *sargv[20] = { (char *)cfg->self, "receive", "--listen",
                        REPL_ADDR, "--tap", "taps", "--heartbeat", hb,
                        "--heartbeat-timeout", hbt, "--console", scons };
    char *pargv[28];
    int np = 0, ns = 12;

    snprintf(iv, sizeof(iv), "%u", cfg->interval_ms);
    snprintf(ct, sizeof(ct), "%u", cfg->compare_timeout_ms);
    snprintf(hb, sizeof(hb), "%u", cfg->hb_interval_ms);
    snprintf(hbt, sizeof(hbt), "%u", cfg->hb_timeout_ms);
    snprintf(pcons, sizeof(pcons), "%s/primary-console.log", d->dir);
    snprintf(scons, sizeof(scons), "%s/replica-console.log", d->dir);
    if (d->key) {
        sargv[ns++] = "--key-file";
        sargv[ns++] = (char *)d->key;
    } else {
        sargv[ns++] = "--insecure";
    }
    if (cfg->disk_mib) {
        sargv[ns++] = "--disk";
        sargv[ns++] = d->disk.replica;
    }
    if (cfg->colo)
        sargv[ns++] = "--colo";
    sargv[ns] = NULL;
    pargv[np++] = (char *)cfg->self;
    pargv[np++] = "protect";
    if (d->key) {
        pargv[np++] = "--key-file";
        pargv[np++] = (char *)d->key;
    } else {
        pargv[np++] = "--insecure";
    }
    pargv[np++] = "-i";
    pargv[np++] = iv;
    pargv[np++] = "--heartbeat";
    pargv[np++] = hb;
    pargv[np++] = "--heartbeat-timeout";
    pargv[np++] = hbt;
    pargv[np++] = "--stats-file";
    pargv[np++] = d->epochs;
    pargv[np++] = "--progress";
    pargv[np++] = "0";
    pargv[np++] = "--console";
    pargv[np++] = pcons;
    if (!cfg->compress)
        pargv[np++] = "-u";
    if (cfg->no_buffer || cfg->no_disk_replication)
        pargv[np++] = "-F";
    if (cfg->no_buffer)
        pargv[np++] = "-n";
    if (cfg->no_disk_replication)
        pargv[np++] = "-d";
    if (cfg->colo)
        pargv[np++] = "--colo";
    if (cfg->colo && cfg->compare_timeout_ms) {
        pargv[np++] = "--compare-timeout";
        pargv[np++] = ct;
    }
    pargv[np++] = d->path_cfg;
    pargv[np++] = REPL_ADDR;
    pargv[np] = NULL;

    d->secondary = spawn(sargv, d->log_s);
    rm_sleep_ms(200);
    d->primary = spawn(pargv, d->log_p);
    if (d->primary < 0 || d->secondary < 0)
        return rm_error_set(err, -errno, "cannot start remus: %s",
                            strerror(errno));
    return 0;
}

/* Wait for the protected guest to answer; what the load is measured
 * from. */
static int wait_guest(struct drill *d, struct load *ld, struct rm_error *err)
{
    struct kv_reply r;

    if (kv_open(&ld->probe, 999999, DRILL_GUEST_IP, DRILL_GUEST_PORT) ||
        kv_call(&ld->probe, "STATS", &r, 50, rm_now_ns() + 20000000000ull,
                NULL)) {
        kv_close(&ld->probe);
        return rm_error_set(err, -ETIMEDOUT, "the protected guest did not "
                            "answer within 20 s; see %s and %s", d->log_p,
                            d->log_s);
    }
    drill_progress(d, "guest up, protected");
    if (rm_proc_cpu_ns(d->primary, &ld->cpu_p0) ||
        rm_proc_cpu_ns(d->secondary, &ld->cpu_s0))
        ld->cpu_p0 = ld->cpu_s0 = UINT64_MAX;
    ld->t_load = rm_now_ns();
    ld->writes0 = r.value;
    ld->epochs0 = drill_count_lines(d->epochs);
    return 0;
}

/* Run until the kill, with live progress. */
static void run_until_kill(struct drill *d)
{
    uint64_t kill_at = rm_now_ns() +
                       (uint64_t)d->rep->kill_after_ms * 1000000ull;
    /* COLO: its status every 250 ms (queues, mode, causes), from 250 ms
     * into the load on (the status of the probe's STATS, a mismatch, may
     * be published up to 200 ms late) */
    unsigned step = d->cfg->colo ? 250 : 1000, n = 0;

    while (rm_now_ns() < kill_at) {
        uint64_t left = (kill_at - rm_now_ns()) / 1000000;

        rm_sleep_ms(left > step ? step : (unsigned)left + 1);
        if (d->cfg->colo)
            (void)rm_drill_colo_sample(&d->rep->colo_st, d->rundir,
                                       "drillvm");
        if (++n % (1000 / step) == 0 || rm_now_ns() >= kill_at)
            drill_progress(d, "protected, under load");
    }
}

/* Just before the kill: the guest's write rate and the processes' CPU
 * under load; COLO: the replica has written since its checkpoint. */
static void before_kill(struct drill *d, struct load *ld)
{
    struct rm_drill_report *rep = d->rep;
    struct kv_reply r;
    uint64_t p1, s1, dt;

    if (kv_call(&ld->probe, "STATS", &r, 50, rm_now_ns() + 2000000000ull,
                NULL) == 0 && r.value >= ld->writes0)
        rep->guest_writes_per_s = (double)(r.value - ld->writes0) /
                                  ((double)(rm_now_ns() - ld->t_load) / 1e9);
    kv_close(&ld->probe);
    /* COLO: that STATS reply differed (it carries the guest's clock) and
     * asked for a checkpoint; the replica runs on from it a while, on the
     * load, before the primary dies: what it wrote meanwhile must survive
     * the takeover, disk included.  So the kill waits until the secondary
     * committed it and says its replica wrote a sector since, at least
     * 300 ms after the commit (up to 20 s: on a slow machine the
     * replica's pause for a checkpoint can be longer than that). */
    if (d->cfg->colo) {
        struct rm_drill_colo_wait w;
        int wrc = rm_drill_colo_wait_replica(d->rundir, "drillvm", 300,
                                             20000, &w);

        if (wrc == -ETIMEDOUT)
            fprintf(stderr, "remus drill: warning: in %" PRIu64 " ms the "
                    "secondary did not say that its replica wrote a disk "
                    "sector since the primary's checkpoint %" PRIu64 " (its "
                    "last commit %" PRIu64 "): the primary is killed "
                    "anyway\n", w.waited_ms, w.taken, w.committed);
        else if (wrc)
            fprintf(stderr, "remus drill: warning: no status of the primary "
                    "in %s (%s): the primary is killed without waiting for "
                    "the replica's writes\n", d->rundir, strerror(-wrc));
    }
    /* The processes' CPU under load: each runs a VM in COLO mode */
    dt = rm_now_ns() - ld->t_load;
    if (ld->cpu_p0 != UINT64_MAX && dt && !rm_proc_cpu_ns(d->primary, &p1) &&
        !rm_proc_cpu_ns(d->secondary, &s1)) {
        rep->primary_cpu = (double)(p1 - ld->cpu_p0) / (double)dt;
        rep->secondary_cpu = (double)(s1 - ld->cpu_s0) / (double)dt;
    }
}

static void kill_primary(struct drill *d)
{
    int status;

    pthread_mutex_lock(&d->lock);
    d->t_kill = rm_now_ns();
    pthread_mutex_unlock(&d->lock);
    kill(d->primary, SIGKILL);
    waitpid(d->primary, &status, 0);
    d->primary = -1;
    drill_clients_mark_kill(d);
    drill_progress(d, "PRIMARY KILLED (-9)");
}

/* Wait for the replica to answer, then keep the load on a while. */
static void wait_replica(struct drill *d)
{
    uint64_t give_up = rm_now_ns() + 15000000000ull;

    while (rm_now_ns() < give_up) {
        uint64_t t;

        pthread_mutex_lock(&d->lock);
        t = d->t_first_after;
        pthread_mutex_unlock(&d->lock);
        if (t)
            break;
        rm_sleep_ms(5);
    }
    if (d->t_first_after) {
        d->rep->failover_ms = (double)(d->t_first_after - d->t_kill) / 1e6;
        drill_progress(d, "replica answering");
        rm_sleep_ms(d->cfg->after_ms);
        drill_progress(d, "after failover");
    }
}

static void stop_processes(struct drill *d)
{
    int status;

    if (d->primary > 0) {
        kill(d->primary, SIGKILL);
        waitpid(d->primary, &status, 0);
        d->primary = -1;
    }
    if (d->secondary > 0) {
        /* With a disk to check, the secondary's host dies too: nothing
         * but what is on its image survives. */
        kill(d->secondary, d->cfg->disk_mib ? SIGKILL : SIGTERM);
        waitpid(d->secondary, &status, 0);
        d->secondary = -1;
    }
}

/* With both processes gone: the cold boot of the replica's disk, what the
 * logs say, the verdict; a passed drill's logs are removed. */
static void conclude(struct drill *d, const struct load *ld, int rc)
{
    const struct rm_drill_cfg *cfg = d->cfg;
    struct rm_drill_report *rep = d->rep;

    if (!rc && cfg->disk_mib && rep->survived && !rep->why[0])
        cold_boot(d, d->started);
    drill_read_epochs(d);
    if (d->t_kill && ld->t_load && d->t_kill > ld->t_load)
        rep->epochs_per_s = (double)(rep->epochs - ld->epochs0) /
                            ((double)(d->t_kill - ld->t_load) / 1e9);
    drill_read_failover_line(d);
    if (!rc && !rep->why[0]) {
        if (!rep->survived)
            snprintf(rep->why, sizeof(rep->why), "the guest did not survive");
        else if (rep->lost_ops)
            snprintf(rep->why, sizeof(rep->why), "%" PRIu64 " acknowledged "
                     "operation%s lost", rep->lost_ops,
                     rep->lost_ops == 1 ? " was" : "s were");
    }
    rep->passed = !rc && !rep->why[0];
    if (rep->passed && !cfg->keep_dir) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
        if (system(cmd) == 0)
            snprintf(rep->logs, sizeof(rep->logs), "(removed: the drill "
                     "passed)");
    }
}

int rm_drill_run(const struct rm_drill_cfg *cfg,
                 struct rm_drill_report *rep, struct rm_error *err)
{
    struct drill *d;
    struct load ld;
    int rc;

    memset(rep, 0, sizeof(*rep));
    rm_drill_colo_init(&rep->colo_st);
    rc = check_cfg(cfg, err);
    if (rc)
        return rc;
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->cfg = cfg;
    d->rep = rep;
    d->primary = d->secondary = -1;
    pthread_mutex_init(&d->lock, NULL);
    memset(&ld, 0, sizeof(ld));
    ld.probe.fd = -1;
    ld.cpu_p0 = ld.cpu_s0 = UINT64_MAX;

    rc = prepare(d, err);
    if (rc)
        goto out_free;
    rc = start_pair(d, err);
    if (!rc)
        rc = wait_guest(d, &ld, err);
    if (rc)
        goto out_stop;
    rc = drill_clients_start(d, err);
    if (!rc) {
        run_until_kill(d);
        before_kill(d, &ld);
        kill_primary(d);
        wait_replica(d);
    }
    kv_close(&ld.probe);           /* (closed already unless a client
                                      could not start) */
    drill_clients_stop(d);
    if (!rc) {
        /* Verify: every acknowledged increment is in the replica's state. */
        if (d->t_first_after)
            drill_clients_verify(d);
        else
            snprintf(rep->why, sizeof(rep->why), "the replica never "
                     "answered after the primary died");
        drill_clients_judge(d);
        if (cfg->disk_mib && rep->survived && !rep->why[0])
            replica_diskcheck(d);
    }
    drill_clients_end(d);
out_stop:
    stop_processes(d);
    conclude(d, &ld, rc);
out_free:
    pthread_mutex_destroy(&d->lock);
    free(d);
    return rc;
}
