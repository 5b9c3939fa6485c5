/* SPDX-License-Identifier: MIT */
/*
 * mem_pair [-n primary|secondary] [-s EPOCH:MS] [-t SECONDS]
 *          [-m ADDR:PORT] [-M ADDR:PORT]
 * A protect/receive pair in one process on the memory-only backend
 * (tests/support/mem_backend.h), over TCP on 127.0.0.1, for the tests of
 * what operates them without KVM: -n gives that side the service
 * manager's notifications (common/notify.h, from $NOTIFY_SOCKET);
 * -s stalls the checkpoint loop once, for MS ms, at the resume after
 * checkpoint EPOCH; -t stops the protection cleanly after SECONDS
 * (default 3); -m / -M serve the primary's / secondary's metrics
 * (common/metrics.h) at ADDR:PORT (port 0: any; "metrics primary|secondary
 * PORT" is printed, flushed, once it listens).  Prints "epochs N" at the
 * end and exits 0 when both sides ended cleanly, 1 otherwise (the reason
 * on stderr).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/metrics.h"
#include "common/metrics_http.h"
#include "common/net.h"
#include "common/notify.h"
#include "common/stream.h"
#include "primary/protect.h"
#include "secondary/receive.h"
#include "tests/support/mem_backend.h"

struct pair {
    struct rm_receive_cfg rcfg;
    struct rm_receive_result rres;
    struct rm_error rerr;
    int rrc;
    struct rm_protect_cfg pcfg;
    struct rm_protect_result pres;
    struct rm_error perr;
    int prc;
    uint64_t stall_epoch;
    unsigned stall_ms;
    bool stalled;
};

static void *receive_main(void *arg)
{
    struct pair *p = arg;

    p->rrc = rm_receive_run(&p->rcfg, &p->rres, &p->rerr);
    return NULL;
}

static void *protect_main(void *arg)
{
    struct pair *p = arg;

    p->prc = rm_protect_run(&p->pcfg, &p->pres, &p->perr);
    return NULL;
}

/* The guest "runs" at every resume: a few pages written; once, a stall. */
static void workload(struct mem_guest *g, void *opaque)
{
    struct pair *p = opaque;

    mem_guest_scribble(g, 16);
    if (p->stall_ms && !p->stalled && g->resumes >= p->stall_epoch) {
        p->stalled = true;
        fprintf(stderr, "mem_pair: stalling the loop %u ms\n", p->stall_ms);
        usleep(p->stall_ms * 1000u);
    }
}

/* -m/-M: a registry and its endpoint, before @next in the observers. */
static int serve(const char *side, const char *arg, struct rm_metrics *m,
                 struct rm_metrics_http **h,
                 const struct rm_status_observer **obs)
{
    struct rm_hostport hp;
    struct rm_error err = { 0 };

    if (rm_parse_hostport(arg, &hp, &err) ||
        rm_metrics_init(m, *obs, obs) ||
        rm_metrics_http_start(m, &hp, h, &err)) {
        fprintf(stderr, "mem_pair: metrics %s: %s\n", side,
                rm_error_str(&err));
        return -1;
    }
    printf("metrics %s %d\n", side, rm_metrics_http_port(*h));
    fflush(stdout);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: mem_pair [-n primary|secondary] [-s EPOCH:MS] "
            "[-t SECONDS] [-m ADDR:PORT] [-M ADDR:PORT]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static volatile sig_atomic_t stop;
    static struct pair p;
    struct rm_error err = { 0 };
    struct rm_hostport any = { .host = "127.0.0.1", .port = 0 };
    struct rm_notify notify;
    struct mem_guest *g;
    struct mem_replica *rep;
    const char *notify_side = NULL, *mp = NULL, *ms = NULL;
    static struct rm_metrics pm, sm;
    struct rm_metrics_http *ph = NULL, *sh = NULL;
    unsigned long stall_epoch;
    unsigned seconds = 3;
    pthread_t rt, pt;
    int c, lfd, ret = 1;

    while ((c = getopt(argc, argv, "n:s:t:m:M:")) != -1) {
        switch (c) {
        case 'n': notify_side = optarg; break;
        case 's':
            if (sscanf(optarg, "%lu:%u", &stall_epoch, &p.stall_ms) != 2)
                return usage();
            p.stall_epoch = stall_epoch;
            break;
        case 't': seconds = (unsigned)atoi(optarg); break;
        case 'm': mp = optarg; break;
        case 'M': ms = optarg; break;
        default: return usage();
        }
    }
    if (optind != argc || (notify_side && strcmp(notify_side, "primary") &&
                           strcmp(notify_side, "secondary")))
        return usage();

    g = mem_guest_new(256, RM_DHDR_TYPE_REMUS_KVM, 7);
    rep = mem_replica_new();
    g->workload = workload;
    g->workload_opaque = &p;
    lfd = rm_tcp_listen(&any, &err);
    if (lfd < 0) {
        fprintf(stderr, "mem_pair: %s\n", rm_error_str(&err));
        return 1;
    }

    rm_receive_cfg_init(&p.rcfg);
    p.rcfg.name = "mem";
    p.rcfg.backend_name = "kvm";
    p.rcfg.listen_fd = lfd;
    p.rcfg.ops = &mem_restore_ops;
    p.rcfg.backend_arg = rep;
    rm_protect_cfg_init(&p.pcfg);
    p.pcfg.name = "mem";
    p.pcfg.backend_name = "kvm";
    snprintf(p.pcfg.peer.host, sizeof(p.pcfg.peer.host), "127.0.0.1");
    p.pcfg.peer.port = (uint16_t)rm_tcp_local_port(lfd);
    p.pcfg.interval_ms = 20;
    p.pcfg.hb_timeout_ms = 10000;      /* a stall is no lost peer */
    p.pcfg.ops = &mem_save_ops;
    p.pcfg.backend_arg = g;
    p.pcfg.guest_bytes = g->nr_pfns * RM_PAGE_SIZE;
    p.pcfg.nr_vcpus = 1;
    p.pcfg.stop_requested = &stop;
    if (notify_side && !strcmp(notify_side, "primary"))
        p.pcfg.observers = rm_notify_init(&notify, NULL);
    else if (notify_side)
        p.rcfg.observers = rm_notify_init(&notify, NULL);

    if ((mp && serve("primary", mp, &pm, &ph, &p.pcfg.observers)) ||
        (ms && serve("secondary", ms, &sm, &sh, &p.rcfg.observers)))
        return 1;
    if (pthread_create(&rt, NULL, receive_main, &p) ||
        pthread_create(&pt, NULL, protect_main, &p)) {
        fprintf(stderr, "mem_pair: cannot start the pair\n");
        return 1;
    }
    sleep(seconds);
    stop = 1;
    pthread_join(pt, NULL);
    pthread_join(rt, NULL);
    if (notify_side)
        rm_notify_stopping(&notify);
    if (p.prc)
        fprintf(stderr, "mem_pair: protect: %s\n", rm_error_str(&p.perr));
    else if (p.pres.end != RM_PROTECT_STOPPED)
        fprintf(stderr, "mem_pair: protection ended: %s\n",
                rm_error_str(&p.pres.why));
    else if (p.rrc)
        fprintf(stderr, "mem_pair: receive: %s\n", rm_error_str(&p.rerr));
    else if (p.rres.end != RM_RECEIVE_STOPPED)
        fprintf(stderr, "mem_pair: the replica did not stop cleanly\n");
    else
        ret = 0;
    printf("epochs %llu\n", (unsigned long long)p.pres.epochs);
    rm_metrics_http_stop(ph);
    rm_metrics_http_stop(sh);
    close(lfd);
    mem_guest_free(g);
    mem_replica_free(rep);
    return ret;
}
