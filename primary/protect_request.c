/* SPDX-License-Identifier: MIT */
/*
 * The control socket's "protect" request, both ways (protect_request.h).
 */
#include "primary/protect_request.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctlsock.h"
#include "primary/protect.h"
#include "proto/timing.h"

#define MS_MAX 3600000u          /* an hour: the longest, as the CLI's */
#define FALLBACK_MAX 100000u     /* as `remus protect --colo-fallback` */
#define NETBUF_MIN 4096u         /* as `remus protect --netbuf-max-bytes` */

void rm_protect_request_init(struct rm_protect_request *r)
{
    memset(r, 0, sizeof(*r));
    r->interval_ms = 200;
    r->hb_ms = 100;
    r->hb_timeout_ms = rm_timing_default_timeout(r->interval_ms, r->hb_ms);
    r->again.output = RM_AGAIN_BUFFERED;
}

static bool colo_option_set(const struct rm_protect_request *r,
                            const char **which)
{
    *which = r->again.compare_timeout_ms ? "compare-timeout" :
             r->colo_max_interval_ms ? "colo-max-interval" :
             r->colo_fallback_set ? "colo-fallback" :
             r->colo_fallback_hold_ms ? "colo-fallback-hold" : NULL;
    return *which != NULL;
}

int rm_protect_request_check(const struct rm_protect_request *r,
                             struct rm_error *err)
{
    bool colo = r->again.output == RM_AGAIN_COLO;
    const char *which;

    if (!r->peer[0] || strpbrk(r->peer, " \t\r\n"))
        return rm_error_set(err, -EINVAL, "no peer, or one with a space");
    if (!r->interval_ms || r->interval_ms > MS_MAX)
        return rm_error_set(err, -EINVAL, "interval %u ms out of range "
                            "(1-%u)", r->interval_ms, MS_MAX);
    if (!r->hb_ms || r->hb_ms > MS_MAX || r->hb_timeout_ms > MS_MAX)
        return rm_error_set(err, -EINVAL, "heartbeat %u ms or its timeout "
                            "%u ms out of range (1-%u)", r->hb_ms,
                            r->hb_timeout_ms, MS_MAX);
    if (r->hb_timeout_ms <= r->hb_ms)
        return rm_error_set(err, -EINVAL, "heartbeat timeout %u ms must "
                            "exceed the heartbeat %u ms", r->hb_timeout_ms,
                            r->hb_ms);
    if (colo && r->again.no_disk)
        return rm_error_set(err, -EINVAL, "colo with nodisk: the replica's "
                            "disk would not be the primary's");
    if (!colo && colo_option_set(r, &which))
        return rm_error_set(err, -EINVAL, "%s is for COLO: colo not asked",
                            which);
    if (r->again.netbuf_max_bytes &&
        r->again.output == RM_AGAIN_DIRECT)
        return rm_error_set(err, -EINVAL, "netbuf-max with the output not "
                            "held");
    if (r->again.netbuf_max_bytes && r->again.netbuf_max_bytes < NETBUF_MIN)
        return rm_error_set(err, -EINVAL, "netbuf-max %llu below %u bytes",
                            (unsigned long long)r->again.netbuf_max_bytes,
                            NETBUF_MIN);
    if (r->again.compare_timeout_ms > MS_MAX ||
        r->colo_max_interval_ms > MS_MAX ||
        r->colo_fallback_hold_ms > MS_MAX)
        return rm_error_set(err, -EINVAL, "a COLO time out of range "
                            "(1-%u ms)", MS_MAX);
    if (r->colo_fallback_rate > FALLBACK_MAX ||
        (!r->colo_fallback_set && r->colo_fallback_rate))
        return rm_error_set(err, -EINVAL, "colo-fallback %u out of range "
                            "(0-%u)", r->colo_fallback_rate, FALLBACK_MAX);
    return 0;
}

/* Append " NAME=VALUE" when @set. */
static void put_opt(char *buf, size_t len, size_t *at, bool set,
                    const char *name, unsigned long long v)
{
    int n;

    if (!set || *at >= len)
        return;
    n = snprintf(buf + *at, len - *at, " %s=%llu", name, v);
    *at += n < 0 ? len : (size_t)n;
}

int rm_protect_request_format(const struct rm_protect_request *r, char *buf,
                              size_t len, struct rm_error *err)
{
    size_t at;
    int n, rc;

    rc = rm_protect_request_check(r, err);
    if (rc)
        return rc;
    n = snprintf(buf, len, "protect %s %u %u %u %d %s%s%s%s", r->peer,
                 r->interval_ms, r->hb_ms, r->hb_timeout_ms,
                 r->again.output != RM_AGAIN_DIRECT,
                 r->insecure ? "insecure" : "keyed",
                 r->again.output == RM_AGAIN_COLO ? " colo" : "",
                 r->again.no_disk ? " nodisk" : "",
                 r->no_compress ? " nocompress" : "");
    at = n < 0 ? len : (size_t)n;
    put_opt(buf, len, &at, r->again.netbuf_max_bytes, "netbuf-max",
            r->again.netbuf_max_bytes);
    put_opt(buf, len, &at, r->again.compare_timeout_ms, "compare-timeout",
            r->again.compare_timeout_ms);
    put_opt(buf, len, &at, r->colo_max_interval_ms, "colo-max-interval",
            r->colo_max_interval_ms);
    put_opt(buf, len, &at, r->colo_fallback_set, "colo-fallback",
            r->colo_fallback_rate);
    put_opt(buf, len, &at, r->colo_fallback_hold_ms, "colo-fallback-hold",
            r->colo_fallback_hold_ms);
    if (at >= len)
        return rm_error_set(err, -ENOSPC, "the protect request does not "
                            "fit in %zu bytes", len);
    return 0;
}

/* "NAME=DIGITS" with NAME @name: 1 with the value in @v; 0: another word;
 * -1: NAME= with no number, or one past @max. */
static int opt_value(const char *word, const char *name,
                     unsigned long long max, unsigned long long *v)
{
    size_t n = strlen(name);
    char *end;

    if (strncmp(word, name, n) || word[n] != '=')
        return 0;
    word += n + 1;
    if (*word < '0' || *word > '9')
        return -1;
    errno = 0;
    *v = strtoull(word, &end, 10);
    return *end || errno || *v > max ? -1 : 1;
}

/* One FLAG word into @r; @seen: the flags read so far (bit per flag). */
static int parse_flag(const char *w, struct rm_protect_request *r,
                      unsigned *seen, bool buffer, struct rm_error *err)
{
    static const char *const names[] = {
        "colo", "nodisk", "nocompress", "netbuf-max", "compare-timeout",
        "colo-max-interval", "colo-fallback", "colo-fallback-hold",
    };
    unsigned long long v = 0;
    unsigned i;
    int got = 0;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (i < 3)
            got = !strcmp(w, names[i]);
        else
            got = opt_value(w, names[i], i == 3 ? UINT64_MAX :
                            i == 6 ? FALLBACK_MAX : MS_MAX, &v);
        if (got)
            break;
    }
    if (!got)
        return rm_error_set(err, -EINVAL, "unknown flag '%.40s'", w);
    if (got < 0 || (i >= 4 && i != 6 && !v))
        return rm_error_set(err, -EINVAL, "'%.40s': not a value %s takes",
                            w, names[i]);
    if (*seen & (1u << i))
        return rm_error_set(err, -EINVAL, "%s given twice", names[i]);
    *seen |= 1u << i;
    switch (i) {
    case 0:
        if (!buffer)
            return rm_error_set(err, -EINVAL, "colo with the output not "
                                "held");
        r->again.output = RM_AGAIN_COLO;
        break;
    case 1: r->again.no_disk = true; break;
    case 2: r->no_compress = true; break;
    case 3: r->again.netbuf_max_bytes = v; break;
    case 4: r->again.compare_timeout_ms = (unsigned)v; break;
    case 5: r->colo_max_interval_ms = (unsigned)v; break;
    case 6:
        r->colo_fallback_set = true;
        r->colo_fallback_rate = (unsigned)v;
        break;
    default: r->colo_fallback_hold_ms = (unsigned)v; break;
    }
    return 0;
}

int rm_protect_request_parse(const char *line, struct rm_protect_request *r,
                             struct rm_error *err)
{
    char copy[RM_CTLSOCK_REQ_MAX + 1], mode[16] = "", *save = NULL, *w;
    unsigned buffer = 2, seen = 0;
    int rest = -1, rc;

    rm_protect_request_init(r);
    if (strlen(line) >= sizeof(copy))
        return rm_error_set(err, -EINVAL, "longer than %zu bytes",
                            sizeof(copy) - 1);
    if (sscanf(line, "protect %63s %u %u %u %u %15s %n", r->peer,
               &r->interval_ms, &r->hb_ms, &r->hb_timeout_ms, &buffer, mode,
               &rest) < 6 || rest < 0 || buffer > 1 ||
        (strcmp(mode, "keyed") && strcmp(mode, "insecure")))
        return rm_error_set(err, -EINVAL, "not 'protect HOST:PORT INTERVAL "
                            "HB HB_TIMEOUT 0|1 keyed|insecure [FLAG...]'");
    r->insecure = !strcmp(mode, "insecure");
    r->again.output = buffer ? RM_AGAIN_BUFFERED : RM_AGAIN_DIRECT;
    strcpy(copy, line + rest);
    for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        rc = parse_flag(w, r, &seen, buffer, err);
        if (rc)
            return rc;
    }
    return rm_protect_request_check(r, err);
}

void rm_protect_request_apply(const struct rm_protect_request *r,
                              struct rm_protect_cfg *pc)
{
    pc->interval_ms = r->interval_ms;
    pc->hb_interval_ms = r->hb_ms;
    pc->hb_timeout_ms = r->hb_timeout_ms;
    pc->compress = !r->no_compress;
    if (r->again.output != RM_AGAIN_COLO)
        return;
    /* As protect --colo (cli/protect_opts.c): the replica runs between
     * checkpoints, its memory no reference for the compressor's deltas;
     * by default it falls back once divergences ask for as many
     * checkpoints as buffered mode takes. */
    pc->colo = true;
    pc->compress = false;
    pc->colo_max_interval_ms = r->colo_max_interval_ms;
    pc->colo_fallback_rate = r->colo_fallback_set ? r->colo_fallback_rate :
                             r->interval_ms >= 1000 ? 1 :
                             1000 / r->interval_ms;
    pc->colo_fallback_hold_ms = r->colo_fallback_hold_ms;
}
