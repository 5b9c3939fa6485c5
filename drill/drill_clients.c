/* SPDX-License-Identifier: MIT */
/*
 * The failover drill's clients (drill_run.h): each increments a key of its
 * own on the guest's key-value service, counting what was acknowledged,
 * lost or applied twice; after the failover, the replica's values are
 * checked against what was acknowledged.
 */
#include "drill/drill_run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io.h"

static void *client_main(void *arg)
{
    struct drill_client *c = arg;
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
        if (!d->t_kill && c->lat_us && c->nlat < DRILL_MAX_LAT_SAMPLES) {
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
static void latency_report(struct drill *d)
{
    size_t n = 0, k = 0;
    uint32_t *all;
    unsigned i;

    for (i = 0; i < d->started; i++)
        n += d->clients[i].nlat;
    if (!n || !(all = malloc(n * sizeof(*all))))
        return;
    for (i = 0; i < d->started; i++) {
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

void drill_clients_judge(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    unsigned i;

    for (i = 0; i < d->started && !rep->why[0]; i++) {
        const struct drill_client *c = &d->clients[i];

        if (c->error)
            snprintf(rep->why, sizeof(rep->why), "client %u stopped early "
                     "with an error after %" PRIu64 " acknowledged "
                     "operations: %s", i, c->acked, strerror(-c->error));
    }
    if (!rep->why[0] && d->started && rep->acked_before_kill == 0)
        snprintf(rep->why, sizeof(rep->why), "no operation was acknowledged "
                 "before the kill: the drill tested nothing");
}

uint64_t drill_total_acked(struct drill *d)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < d->cfg->clients; i++)
        n += d->clients[i].acked;
    return n;
}

int drill_clients_start(struct drill *d, struct rm_error *err)
{
    unsigned i;

    for (i = 0; i < d->cfg->clients; i++) {
        struct drill_client *c = &d->clients[i];

        c->d = d;
        c->idx = i;
        c->lat_us = malloc(DRILL_MAX_LAT_SAMPLES * sizeof(*c->lat_us));
        if (kv_open(&c->kc, 1000 + i, DRILL_GUEST_IP, DRILL_GUEST_PORT) ||
            pthread_create(&c->thread, NULL, client_main, c)) {
            kv_close(&c->kc);
            free(c->lat_us);
            c->lat_us = NULL;
            return rm_error_set(err, -EAGAIN, "cannot start client %u", i);
        }
        d->started++;
    }
    return 0;
}

void drill_clients_mark_kill(struct drill *d)
{
    unsigned i;

    d->rep->acked_before_kill = drill_total_acked(d);
    for (i = 0; i < d->started; i++)
        d->clients[i].acked_at_kill = d->clients[i].acked;
}

void drill_clients_stop(struct drill *d)
{
    unsigned i;

    d->stop = 1;
    for (i = 0; i < d->started; i++)
        pthread_join(d->clients[i].thread, NULL);
}

void drill_clients_verify(struct drill *d)
{
    struct rm_drill_report *rep = d->rep;
    struct kv_reply r;
    unsigned i;

    rep->survived = true;
    for (i = 0; i < d->started; i++) {
        struct drill_client *c = &d->clients[i];
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
}

void drill_clients_end(struct drill *d)
{
    unsigned i;

    latency_report(d);
    for (i = 0; i < d->started; i++) {
        kv_close(&d->clients[i].kc);
        free(d->clients[i].lat_us);
        d->clients[i].lat_us = NULL;
    }
}
