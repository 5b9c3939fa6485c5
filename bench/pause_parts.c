/* SPDX-License-Identifier: MIT */
#include "bench/pause_parts.h"

#include <stdio.h>

void pause_parts_add(struct pause_parts *pp, const struct rm_epoch_stats *st)
{
    unsigned k;

    for (k = 0; k < RM_PAUSE_PHASES; k++)
        pp->sum_ns[k] += st->phase_ns[k];
    pp->pause_sum_ns += st->pause_ns;
    pp->n++;
}

void pause_parts_merge(struct pause_parts *dst, const struct pause_parts *src)
{
    unsigned k;

    for (k = 0; k < RM_PAUSE_PHASES; k++)
        dst->sum_ns[k] += src->sum_ns[k];
    dst->pause_sum_ns += src->pause_sum_ns;
    dst->n += src->n;
}

double pause_parts_mean_us(const struct pause_parts *pp, unsigned phase)
{
    if (!pp->n || phase >= RM_PAUSE_PHASES)
        return 0;
    return (double)pp->sum_ns[phase] / (double)pp->n / 1e3;
}

double pause_parts_pause_us(const struct pause_parts *pp)
{
    return pp->n ? (double)pp->pause_sum_ns / (double)pp->n / 1e3 : 0;
}

void pause_parts_header(const char *what)
{
    unsigned k;

    printf("| %s | checkpoints | pause mean (us) |", what);
    for (k = 0; k < RM_PAUSE_PHASES; k++)
        printf(" %s (us, share) |", rm_pause_phase_name(k));
    printf("\n|---|---|---|");
    for (k = 0; k < RM_PAUSE_PHASES; k++)
        printf("---|");
    printf("\n");
}

void pause_parts_row(const char *label, const struct pause_parts *pp)
{
    double pause = pause_parts_pause_us(pp);
    unsigned k;

    printf("| %s | %llu | %.1f |", label, (unsigned long long)pp->n, pause);
    for (k = 0; k < RM_PAUSE_PHASES; k++) {
        double us = pause_parts_mean_us(pp, k);

        printf(" %.1f (%.1f%%) |", us, pause > 0 ? 100 * us / pause : 0);
    }
    printf("\n");
}
