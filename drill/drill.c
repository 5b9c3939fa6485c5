/* SPDX-License-Identifier: MIT */
/*
 * The failover drill (drill.h).
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
#include "drill/drill_disk.h"
#include "drill/proc_cpu.h"
#include "drill/kvclient.h"

#define GUEST_IP "10.77.0.2"
#define GUEST_PORT 7000
#define REPL_ADDR "127.0.0.1:7790"
#define MAX_CLIENTS 64

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

struct drill;

struct client {
    struct drill *d;
    unsigned idx;
    pthread_t thread;
    struct kv_client kc;
    uint64_t acked;
    uint64_t acked_at_kill;
    uint64_t lost;
    uint64_t doubled;
    bool interrupted;            /* stopped with a request that the guest
                                    may have applied, unanswered */
    int error;
    uint32_t *lat_us;            /* request latencies while protected */
    size_t nlat;
};

#define MAX_LAT_SAMPLES 262144

struct drill {
    const struct rm_drill_cfg *cfg;
    struct rm_drill_report *rep;
    char dir[128];
    pid_t primary, secondary;
    volatile int stop;
    uint64_t t_kill;              /* 0 until the kill */
    uint64_t t_first_after;       /* first reply to a request sent later */
    uint64_t t_start;
    struct client clients[MAX_CLIENTS];
    uint64_t want[MAX_CLIENTS];   /* each key's value on the replica */
    struct rm_drill_disk disk;
    pthread_mutex_t lock;
};

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

/* ------------------------------------------------------------ clients */

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct drill *d = c->d;
    char cmd[32];

    snprintf(cmd, sizeof(cmd), "INCR k%u", c->idx);
    while (!d->stop) {
        struct kv_reply r;
        uint64_t sent = rm_now_ns();
        uint64_t expected;
        int rc = kv_call(&c->kc, cmd, &r, 20, sent + 30000000000ull,
                         &d->stop);

        if (rc == -EINTR) {
            c->interrupted = true;
            break;
        }
        if (rc) {
            c->error = rc;
            break;
        }
        if (!r.ok) {
            c->error = -EPROTO;
            break;
        }
        if (!d->t_kill && c->lat_us && c->nlat < MAX_LAT_SAMPLES) {
            uint64_t us = (rm_now_ns() - sent) / 1000;

            c->lat_us[c->nlat++] = us > UINT32_MAX ? UINT32_MAX
                                                   : (uint32_t)us;
        }
        expected = c->acked + 1;
        if (r.value < expected)
            c->lost += expected - r.value;      /* acked state vanished */
        else if (r.value > expected)
            c->doubled += r.value - expected;   /* applied twice */
        c->acked = r.value;
        pthread_mutex_lock(&d->lock);
        if (d->t_kill && sent > d->t_kill && !d->t_first_after)
            d->t_first_after = rm_now_ns();
        pthread_mutex_unlock(&d->lock);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Request latency percentiles over every client's samples. */
static void latency_report(struct drill *d, unsigned nclients)
{
    size_t n = 0, k = 0;
    uint32_t *all;
    unsigned i;

    for (i = 0; i < nclients; i++)
        n += d->clients[i].nlat;
    if (!n || !(all = malloc(n * sizeof(*all))))
        return;
    for (i = 0; i < nclients; i++) {
        memcpy(all + k, d->clients[i].lat_us,
               d->clients[i].nlat * sizeof(*all));
        k += d->clients[i].nlat;
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    d->rep->latency_ms_p50 = all[n / 2] / 1000.0;
    d->rep->latency_ms_p99 = all[(n * 99) / 100] / 1000.0;
    d->rep->latency_ms_max = all[n - 1] / 1000.0;
    free(all);
}

/* A client that stopped with an error, or a drill in which nothing was
 * acknowledged before the kill, fails the drill (rep->why, if not set). */
static void judge_clients(struct drill *d, unsigned started)
{
    struct rm_drill_report *rep = d->rep;
    unsigned i;

    for (i = 0; i < started && !rep->why[0]; i++) {
        const struct client *c = &d->clients[i];

        if (c->error)
            snprintf(rep->why, sizeof(rep->why), "client %u stopped early "
                     "with an error after %" PRIu64 " acknowledged "
                     "operations: %s", i, c->acked, strerror(-c->error));
    }
    if (!rep->why[0] && started && rep->acked_before_kill == 0)
        snprintf(rep->why, sizeof(rep->why), "no operation was acknowledged "
                 "before the kill: the drill tested nothing");
}

static uint64_t total_acked(struct drill *d)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < d->cfg->clients; i++)
        n += d->clients[i].acked;
    return n;
}

/* ------------------------------------------------------------ analysis */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    uint64_t n = 0;
    int c;

    if (!f)
        return 0;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void read_epochs(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    char path[256], line[256];
    uint64_t *pause = NULL, n = 0, cap = 0, bytes = 0, dirty = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/epochs.txt", d->dir);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long e, p, dp, b;

        if (sscanf(line, "%llu %llu %llu %llu", &e, &p, &dp, &b) != 4)
            continue;
        if (n == cap) {
            uint64_t *np = realloc(pause, (cap ? cap * 2 : 1024) *
                                   sizeof(*np));

            if (!np)
                break;
            pause = np;
            cap = cap ? cap * 2 : 1024;
        }
        pause[n++] = p;
        bytes += b;
        dirty += dp;
    }
    fclose(f);
    rep->epochs = n;
    if (n) {
        qsort(pause, n, sizeof(*pause), cmp_u64);
        rep->pause_ms_p50 = (double)pause[n / 2] / 1000.0;
        rep->pause_ms_p99 = (double)pause[(n * 99) / 100] / 1000.0;
        rep->pause_ms_max = (double)pause[n - 1] / 1000.0;
        rep->bytes_per_epoch = (double)bytes / (double)n;
        rep->dirty_per_epoch = (double)dirty / (double)n;
    }
    free(pause);
    if (rm_drill_pause_parts_read(path, &rep->parts))
        memset(&rep->parts, 0, sizeof(rep->parts));
}

static void read_failover_line(struct drill *d)
{
    char path[256], line[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/secondary.log", d->dir);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "resumed from checkpoint ");
        const char *c = strstr(line, "it ran from checkpoint ");  /* COLO */

        if (p)
            d->rep->committed_epoch = strtoull(p + 24, NULL, 10);
        else if (c)
            d->rep->committed_epoch = strtoull(c + 23, NULL, 10);
        rm_drill_colo_log_line(&d->rep->colo_st, line);
    }
    fclose(f);
}

static void progress(struct drill *d, const char *phase)
{
    if (d->cfg->quiet)
        return;
    fprintf(stderr, "remus drill: %5.1fs  %-22s acked ops %" PRIu64 "\n",
            (double)(rm_now_ns() - d->t_start) / 1e9, phase, total_acked(d));
}

/* ------------------------------------------------------------ the disk */

/* After the verification: the replica's disk against its memory. */
static void replica_diskcheck(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    struct kv_client kc;
    char why[160];

    if (kv_open(&kc, 888888, GUEST_IP, GUEST_PORT)) {
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
        .ip = GUEST_IP, .port = GUEST_PORT, .tap = "taps",
        .memory_mib = cfg->memory_mib, .vcpus = cfg->vcpus,
        .want = d->want, .n = nkeys,
    };
    char why[220];

    progress(d, "cold boot of its disk");
    if (rm_drill_cold_boot(&d->disk, &c, &rep->cold_boot_ms,
                           &rep->cold_records, why, sizeof(why))) {
        snprintf(rep->why, sizeof(rep->why), "%s", why);
        return;
    }
    rep->disk_checked = true;
    progress(d, "cold boot: every op");
}

/* ------------------------------------------------------------ the drill */

int rm_drill_run(const struct rm_drill_cfg *cfg,
                 struct rm_drill_report *rep, struct rm_error *err)
{
    struct drill *d;
    char gcfg[256], log_p[256], log_s[256], epochs[256], pcons[256];
    char scons[256], rundir[256], iv[16], hb[16], hbt[16], keyf[256];
    char ct[16];
    const char *key = cfg->key_file;
    unsigned i, started = 0;
    struct kv_client probe;
    struct kv_reply r;
    uint64_t seed, t_load = 0, writes0 = 0, epochs0 = 0;
    uint64_t cpu_p0 = UINT64_MAX, cpu_s0 = UINT64_MAX;
    FILE *f;
    int rc = 0, status;

    memset(rep, 0, sizeof(*rep));
    rm_drill_colo_init(&rep->colo_st);
    if (geteuid() != 0)
        return rm_error_set(err, -EPERM, "the drill needs root (network "
                            "namespace, TAP devices)");
    if (access("/dev/kvm", R_OK | W_OK))
        return rm_error_set(err, -ENODEV, "/dev/kvm is not usable: %s",
                            strerror(errno));
    if (!cfg->image || access(cfg->image, R_OK))
        return rm_error_set(err, -ENOENT, "guest image '%s' not found "
                            "(run make)", cfg->image ? cfg->image : "");
    if (cfg->clients < 1 || cfg->clients > MAX_CLIENTS)
        return rm_error_set(err, -EINVAL, "1..%d clients", MAX_CLIENTS);
    if (cfg->key_file) {
        /* Refuse an unusable key now, not after two failed starts. */
        struct rm_auth_key k;

        rc = rm_auth_key_load(cfg->key_file, &k, err);
        rm_auth_wipe(&k, sizeof(k));
        if (rc)
            return rc;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->cfg = cfg;
    d->rep = rep;
    d->primary = d->secondary = -1;
    pthread_mutex_init(&d->lock, NULL);
    seed = cfg->seed ? cfg->seed : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    srandom((unsigned)seed);
    rep->kill_after_ms = cfg->kill_after_ms ? cfg->kill_after_ms
                                            : 2000 + (unsigned)(random() % 3000);

    if (cfg->keep_dir) {
        snprintf(d->dir, sizeof(d->dir), "%s", cfg->keep_dir);
        mkdir(d->dir, 0755);
    } else {
        snprintf(d->dir, sizeof(d->dir), "/tmp/remus-drill.XXXXXX");
        if (!mkdtemp(d->dir)) {
            rc = rm_error_set(err, -errno, "mkdtemp: %s", strerror(errno));
            goto out_free;
        }
    }
    snprintf(rep->logs, sizeof(rep->logs), "%s", d->dir);
    snprintf(gcfg, sizeof(gcfg), "%s/guest.cfg", d->dir);
    snprintf(log_p, sizeof(log_p), "%s/primary.log", d->dir);
    snprintf(log_s, sizeof(log_s), "%s/secondary.log", d->dir);
    snprintf(epochs, sizeof(epochs), "%s/epochs.txt", d->dir);
    snprintf(pcons, sizeof(pcons), "%s/primary-console.log", d->dir);
    snprintf(scons, sizeof(scons), "%s/replica-console.log", d->dir);
    snprintf(rundir, sizeof(rundir), "%s/run", d->dir);
    snprintf(iv, sizeof(iv), "%u", cfg->interval_ms);
    snprintf(ct, sizeof(ct), "%u", cfg->compare_timeout_ms);
    snprintf(hb, sizeof(hb), "%u", cfg->hb_interval_ms);
    snprintf(hbt, sizeof(hbt), "%u", cfg->hb_timeout_ms);
    setenv("REMUS_RUN_DIR", rundir, 1);
    if (cfg->insecure && cfg->key_file) {
        rc = rm_error_set(err, -EINVAL, "--insecure and --key-file "
                          "contradict each other");
        goto out_free;
    }
    if (!key && !cfg->insecure) {
        /* A key of this drill's own, in its (private) log directory. */
        snprintf(keyf, sizeof(keyf), "%s/drill.key", d->dir);
        unlink(keyf);
        rc = rm_auth_key_generate(keyf, err);
        if (rc)
            goto out_free;
        key = keyf;
    }

    if (cfg->colo && (cfg->no_disk_replication || cfg->no_buffer)) {
        rc = rm_error_set(err, -EINVAL, "a COLO drill runs with its output "
                          "compared and its disk replicated (not %s)",
                          cfg->no_buffer ? "--no-buffer" :
                          "--no-disk-replication");
        goto out_free;
    }
    rep->colo = cfg->colo;
    if (cfg->disk_mib) {
        rc = rm_drill_disk_images(d->dir, cfg->disk_mib, &d->disk, err);
        if (rc)
            goto out_free;
        rep->disk_mib = cfg->disk_mib;
    }
    f = fopen(gcfg, "w");
    if (!f) {
        rc = rm_error_set(err, -errno, "cannot write %s", gcfg);
        goto out_free;
    }
    fprintf(f, "name = drillvm\nmemory = %u\nvcpus = %u\nimage = %s\n"
            "ip = " GUEST_IP "\nnetmask = 255.255.255.0\ntap = tapp\n"
            "cmdline = \"dirty_rate=%" PRIu64 " dirty_wss=%" PRIu64 "\"\n",
            cfg->memory_mib, cfg->vcpus, cfg->image, cfg->dirty_rate,
            cfg->dirty_wss);
    if (cfg->disk_mib)
        fprintf(f, "disk = %s\n", d->disk.primary);
    if (fclose(f)) {
        rc = rm_error_set(err, -EIO, "cannot write %s", gcfg);
        goto out_free;
    }

    rc = setup_network(d, err);
    if (rc)
        goto out_free;
    d->t_start = rm_now_ns();
    if (!cfg->quiet)
        fprintf(stderr, "remus drill: guest %u MiB, %u vcpus, workload %"
                PRIu64 " pages/s over %" PRIu64 " pages; checkpoint every "
                "%u ms, heartbeat %u/%u ms, %u clients; the primary dies "
                "after %.1f s (seed %" PRIu64 "); logs in %s\n",
                cfg->memory_mib, cfg->vcpus, cfg->dirty_rate, cfg->dirty_wss,
                cfg->interval_ms, cfg->hb_interval_ms, cfg->hb_timeout_ms,
                cfg->clients, rep->kill_after_ms / 1000.0, seed, d->dir);
    {
        char *sargv[20] = { (char *)cfg->self, "receive", "--listen",
                            REPL_ADDR, "--tap", "taps", "--heartbeat", hb,
                            "--heartbeat-timeout", hbt, "--console", scons,
                            "--insecure" };
        char *pargv[28];
        int np = 0, ns = 12;

        if (key) {
            sargv[ns++] = "--key-file";
            sargv[ns++] = (char *)key;
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
        if (key) {
            pargv[np++] = (char *)cfg->self;
            pargv[np++] = "protect";
            pargv[np++] = "--key-file";
            pargv[np++] = (char *)key;
        } else {
            pargv[np++] = (char *)cfg->self;
            pargv[np++] = "protect";
            pargv[np++] = "--insecure";
        }

        pargv[np++] = "-i";
        pargv[np++] = iv;
        pargv[np++] = "--heartbeat";
        pargv[np++] = hb;
        pargv[np++] = "--heartbeat-timeout";
        pargv[np++] = hbt;
        pargv[np++] = "--stats-file";
        pargv[np++] = epochs;
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
        pargv[np++] = gcfg;
        pargv[np++] = REPL_ADDR;
        pargv[np] = NULL;

        d->secondary = spawn(sargv, log_s);
        rm_sleep_ms(200);
        d->primary = spawn(pargv, log_p);
    }
    if (d->primary < 0 || d->secondary < 0) {
        rc = rm_error_set(err, -errno, "cannot start remus: %s",
                          strerror(errno));
        goto out_stop;
    }

    /* Wait for the protected guest to answer. */
    if (kv_open(&probe, 999999, GUEST_IP, GUEST_PORT) ||
        kv_call(&probe, "STATS", &r, 50, rm_now_ns() + 20000000000ull,
                NULL)) {
        rc = rm_error_set(err, -ETIMEDOUT, "the protected guest did not "
                          "answer within 20 s; see %s and %s", log_p, log_s);
        kv_close(&probe);
        goto out_stop;
    }
    progress(d, "guest up, protected");
    if (rm_proc_cpu_ns(d->primary, &cpu_p0) || rm_proc_cpu_ns(d->secondary,
                                                              &cpu_s0))
        cpu_p0 = cpu_s0 = UINT64_MAX;
    t_load = rm_now_ns();
    writes0 = r.value;
    epochs0 = count_lines(epochs);

    for (i = 0; i < cfg->clients; i++) {
        struct client *c = &d->clients[i];

        c->d = d;
        c->idx = i;
        c->lat_us = malloc(MAX_LAT_SAMPLES * sizeof(*c->lat_us));
        if (kv_open(&c->kc, 1000 + i, GUEST_IP, GUEST_PORT) ||
            pthread_create(&c->thread, NULL, client_main, c)) {
            rc = rm_error_set(err, -EAGAIN, "cannot start client %u", i);
            goto out_clients;
        }
        started++;
    }

    /* Run until the kill, with live progress. */
    {
        uint64_t kill_at = rm_now_ns() +
                           (uint64_t)rep->kill_after_ms * 1000000ull;

        /* COLO: its status every 250 ms (queues, mode, causes), from
         * 250 ms into the load on (the status of the probe's STATS, a
         * mismatch, may be published up to 200 ms late) */
        unsigned step = cfg->colo ? 250 : 1000, n = 0;

        while (rm_now_ns() < kill_at) {
            uint64_t left = (kill_at - rm_now_ns()) / 1000000;

            rm_sleep_ms(left > step ? step : (unsigned)left + 1);
            if (cfg->colo)
                (void)rm_drill_colo_sample(&rep->colo_st, rundir, "drillvm");
            if (++n % (1000 / step) == 0 || rm_now_ns() >= kill_at)
                progress(d, "protected, under load");
        }
    }
    if (kv_call(&probe, "STATS", &r, 50, rm_now_ns() + 2000000000ull,
                NULL) == 0 && r.value >= writes0)
        rep->guest_writes_per_s = (double)(r.value - writes0) /
                                  ((double)(rm_now_ns() - t_load) / 1e9);
    kv_close(&probe);
    /* COLO: that STATS reply differed (it carries the guest's clock) and
     * asked for a checkpoint; the replica runs on from it a while, on the
     * load, before the primary dies: what it wrote meanwhile must survive
     * the takeover, disk included.  So the kill waits until the secondary
     * committed it and says its replica wrote a sector since, at least
     * 300 ms after the commit (up to 20 s: on a slow machine the
     * replica's pause for a checkpoint can be longer than that). */
    if (cfg->colo) {
        struct rm_drill_colo_wait w;
        int wrc = rm_drill_colo_wait_replica(rundir, "drillvm", 300, 20000,
                                             &w);

        if (wrc == -ETIMEDOUT)
            fprintf(stderr, "remus drill: warning: in %" PRIu64 " ms the "
                    "secondary did not say that its replica wrote a disk "
                    "sector since the primary's checkpoint %" PRIu64 " (its "
                    "last commit %" PRIu64 "): the primary is killed "
                    "anyway\n", w.waited_ms, w.taken, w.committed);
        else if (wrc)
            fprintf(stderr, "remus drill: warning: no status of the primary "
                    "in %s (%s): the primary is killed without waiting for "
                    "the replica's writes\n", rundir, strerror(-wrc));
    }
    {
        /* The processes' CPU under load: each runs a VM in COLO mode */
        uint64_t p1, s1, dt = rm_now_ns() - t_load;

        if (cpu_p0 != UINT64_MAX && dt && !rm_proc_cpu_ns(d->primary, &p1) &&
            !rm_proc_cpu_ns(d->secondary, &s1)) {
            rep->primary_cpu = (double)(p1 - cpu_p0) / (double)dt;
            rep->secondary_cpu = (double)(s1 - cpu_s0) / (double)dt;
        }
    }
    pthread_mutex_lock(&d->lock);
    d->t_kill = rm_now_ns();
    pthread_mutex_unlock(&d->lock);
    kill(d->primary, SIGKILL);
    waitpid(d->primary, &status, 0);
    d->primary = -1;
    rep->acked_before_kill = total_acked(d);
    for (i = 0; i < started; i++)
        d->clients[i].acked_at_kill = d->clients[i].acked;
    progress(d, "PRIMARY KILLED (-9)");

    /* Wait for the replica to answer, then keep the load on a while. */
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
    }
    if (d->t_first_after) {
        rep->failover_ms = (double)(d->t_first_after - d->t_kill) / 1e6;
        progress(d, "replica answering");
        rm_sleep_ms(cfg->after_ms);
        progress(d, "after failover");
    }

out_clients:
    d->stop = 1;
    for (i = 0; i < started; i++)
        pthread_join(d->clients[i].thread, NULL);

    /* Verify: every acknowledged increment is in the replica's state. */
    if (!rc && d->t_first_after) {
        rep->survived = true;
        for (i = 0; i < started; i++) {
            struct client *c = &d->clients[i];
            char cmd[32];

            rep->acked_ops += c->acked;
            rep->lost_ops += c->lost;
            snprintf(cmd, sizeof(cmd), "GET k%u", i);
            if (kv_call(&c->kc, cmd, &r, 50, rm_now_ns() + 5000000000ull,
                        NULL) || !r.ok) {
                rep->survived = false;
                snprintf(rep->why, sizeof(rep->why), "the replica stopped "
                         "answering during verification");
                break;
            }
            d->want[i] = r.value;
            if (r.value < c->acked)
                rep->lost_ops += c->acked - r.value;
            /* One increment beyond the acknowledged ones is the request
             * the drill's end interrupted; more is a double application. */
            if (c->doubled || r.value > c->acked + (c->interrupted ? 1 : 0))
                snprintf(rep->why, sizeof(rep->why), "client %u: an "
                         "operation was applied twice", i);
        }
    } else if (!rc) {
        snprintf(rep->why, sizeof(rep->why), "the replica never answered "
                 "after the primary died");
    }
    if (!rc)
        judge_clients(d, started);
    if (!rc && cfg->disk_mib && rep->survived && !rep->why[0])
        replica_diskcheck(d);
    latency_report(d, started);
    for (i = 0; i < started; i++) {
        kv_close(&d->clients[i].kc);
        free(d->clients[i].lat_us);
        d->clients[i].lat_us = NULL;
    }

out_stop:
    if (d->primary > 0) {
        kill(d->primary, SIGKILL);
        waitpid(d->primary, &status, 0);
    }
    if (d->secondary > 0) {
        /* With a disk to check, the secondary's host dies too: nothing
         * but what is on its image survives. */
        kill(d->secondary, cfg->disk_mib ? SIGKILL : SIGTERM);
        waitpid(d->secondary, &status, 0);
        d->secondary = -1;
    }
    if (!rc && cfg->disk_mib && rep->survived && !rep->why[0])
        cold_boot(d, started);
    read_epochs(d);
    if (d->t_kill && t_load && d->t_kill > t_load)
        rep->epochs_per_s = (double)(rep->epochs - epochs0) /
                            ((double)(d->t_kill - t_load) / 1e9);
    read_failover_line(d);
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
out_free:
    pthread_mutex_destroy(&d->lock);
    free(d);
    return rc;
}

int rm_drill_report_json(const struct rm_drill_report *rep, const char *path,
                         struct rm_error *err)
{
    FILE *f = fopen(path, "w");
    const char *p;

    if (!f)
        return rm_error_set(err, -errno, "cannot write %s: %s", path,
                            strerror(errno));
    fprintf(f, "{\n  \"result\": \"%s\",\n  \"why\": \"",
            rep->passed ? "PASS" : "FAIL");
    for (p = rep->why; *p; p++) {         /* a JSON string */
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*p);
        else
            fputc(*p, f);
    }
    fprintf(f, "\",\n"
            "  \"epochs\": %" PRIu64 ",\n"
            "  \"pause_ms_p50\": %.3f,\n"
            "  \"pause_ms_p99\": %.3f,\n"
            "  \"pause_ms_max\": %.3f,\n"
            "  \"bytes_per_epoch\": %.0f,\n"
            "  \"dirty_pages_per_epoch\": %.1f,\n"
            "  \"failover_ms\": %.1f,\n"
            "  \"acked_ops\": %" PRIu64 ",\n"
            "  \"acked_before_kill\": %" PRIu64 ",\n"
            "  \"lost_ops\": %" PRIu64 ",\n"
            "  \"replica_checkpoint\": %" PRIu64 ",\n"
            "  \"kill_after_ms\": %u,\n"
            "  \"epochs_per_s\": %.1f,\n"
            "  \"latency_ms_p50\": %.3f,\n"
            "  \"latency_ms_p99\": %.3f,\n"
            "  \"latency_ms_max\": %.3f,\n"
            "  \"guest_writes_per_s\": %.0f,\n"
            "  \"primary_cpu\": %.3f,\n"
            "  \"secondary_cpu\": %.3f,\n"
            "  \"disk_mib\": %u,\n"
            "  \"disk_records\": %" PRIu64 ",\n"
            "  \"cold_boot_records\": %" PRIu64 ",\n"
            "  \"cold_boot_ms\": %.1f,\n"
            "  \"disk_checked\": %s,\n"
            "  \"survived\": %s", rep->epochs, rep->pause_ms_p50, rep->pause_ms_p99,
            rep->pause_ms_max, rep->bytes_per_epoch, rep->dirty_per_epoch,
            rep->failover_ms, rep->acked_ops, rep->acked_before_kill,
            rep->lost_ops, rep->committed_epoch, rep->kill_after_ms,
            rep->epochs_per_s, rep->latency_ms_p50, rep->latency_ms_p99,
            rep->latency_ms_max, rep->guest_writes_per_s, rep->primary_cpu,
            rep->secondary_cpu, rep->disk_mib,
            rep->disk_records, rep->cold_records, rep->cold_boot_ms,
            rep->disk_checked ? "true" : "false",
            rep->survived ? "true" : "false");
    if (rep->parts.n) {
        const struct rm_drill_pause_parts *pp = &rep->parts;
        unsigned i;
        const char *s;

        /* "pause_parts": {"suspend": [p50, p99, max], ...} in ms; the
         * part names as common/save.c says them, blanks as '_'. */
        fprintf(f, ",\n  \"pause_parts\": {");
        for (i = 0; i < RM_PAUSE_PHASES; i++) {
            fprintf(f, "%s\"", i ? ", " : "");
            for (s = rm_pause_phase_name(i); *s; s++)
                fputc(*s == ' ' ? '_' : *s, f);
            fprintf(f, "\": [%.3f, %.3f, %.3f]", pp->p50_ms[i],
                    pp->p99_ms[i], pp->max_ms[i]);
        }
        fprintf(f, "},\n  \"pause_tail\": {\"checkpoints\": %" PRIu64
                ", \"pause_ms_p50\": %.3f, \"pause_ms_p99\": %.3f, "
                "\"slowest\": %" PRIu64 ", \"part\": \"", pp->n,
                pp->pause_ms_p50, pp->pause_ms_p99, pp->tail_n);
        for (s = rm_pause_phase_name(pp->tail_part); *s; s++)
            fputc(*s == ' ' ? '_' : *s, f);
        fprintf(f, "\", \"share\": %.3f}", pp->tail_share);
    }
    if (rep->colo) {
        const struct rm_drill_colo *c = &rep->colo_st;

        fprintf(f, ",\n  \"colo\": {\"sampled\": %s, \"mode\": \"%s\", "
                "\"ever_buffered\": %s, \"checkpoints\": {\"mismatch\": %"
                PRIu64 ", \"timeout\": %" PRIu64 ", \"overflow\": %" PRIu64
                ", \"periodic\": %" PRIu64 "}, \"per_s_under_load\": "
                "{\"mismatch\": %.3f, \"timeout\": %.3f, \"overflow\": %.3f, "
                "\"periodic\": %.3f}, \"fallbacks\": %" PRIu64 ", "
                "\"buffered_checkpoints\": %" PRIu64 ", \"held_max_vm\": %"
                PRIu64 ", \"held_max_replica\": %" PRIu64 ", "
                "\"replica_pause_mean_ms\": %.3f, \"replica_pause_max_ms\": "
                "%.3f, \"takeover_sectors_folded\": %" PRId64 ", "
                "\"takeover_sectors_dropped\": %" PRIu64 "}",
                c->sampled ? "true" : "false", c->mode,
                c->ever_buffered ? "true" : "false", c->last[0], c->last[1],
                c->last[2], c->last[3], rm_drill_colo_rate(c, 0),
                rm_drill_colo_rate(c, 1), rm_drill_colo_rate(c, 2),
                rm_drill_colo_rate(c, 3), c->fallbacks,
                c->buffered_checkpoints, c->held_max_vm,
                c->held_max_replica, c->replica_pause_mean_ms,
                c->replica_pause_max_ms, c->takeover_folded,
                c->takeover_dropped);
    }
    fprintf(f, "\n}\n");
    if (fclose(f))
        return rm_error_set(err, -EIO, "writing %s failed", path);
    return 0;
}
