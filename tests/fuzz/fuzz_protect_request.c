/* SPDX-License-Identifier: MIT */
/* libFuzzer: the control socket's "protect" request
 * (primary/protect_request.h) on any line.  Invariants: a line parsed is
 * one that passes the check; written back, it reads as the same request;
 * a refused line says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctlsock.h"
#include "primary/protect_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_protect_request r, back;
    struct rm_error err = { 0 };
    char line[RM_CTLSOCK_REQ_MAX + 1], again[RM_CTLSOCK_REQ_MAX + 1];

    if (size > RM_CTLSOCK_REQ_MAX)
        size = RM_CTLSOCK_REQ_MAX;
    memcpy(line, data, size);
    line[size] = '\0';
    if (rm_protect_request_parse(line, &r, &err)) {
        if (!err.code || !rm_error_str(&err)[0])
            abort();              /* refused without a reason */
        return 0;
    }
    if (rm_protect_request_check(&r, NULL))
        abort();                  /* parsed, yet not a request */
    if (rm_protect_request_format(&r, again, sizeof(again), NULL))
        abort();                  /* parsed, yet cannot be written */
    if (rm_protect_request_parse(again, &back, NULL))
        abort();                  /* written, yet not read back */
    if (strcmp(r.peer, back.peer) || r.interval_ms != back.interval_ms ||
        r.hb_ms != back.hb_ms || r.hb_timeout_ms != back.hb_timeout_ms ||
        r.insecure != back.insecure ||
        r.again.output != back.again.output ||
        r.again.no_disk != back.again.no_disk ||
        r.again.netbuf_max_bytes != back.again.netbuf_max_bytes ||
        r.again.compare_timeout_ms != back.again.compare_timeout_ms ||
        r.no_compress != back.no_compress ||
        r.colo_max_interval_ms != back.colo_max_interval_ms ||
        r.colo_fallback_set != back.colo_fallback_set ||
        r.colo_fallback_rate != back.colo_fallback_rate ||
        r.colo_fallback_hold_ms != back.colo_fallback_hold_ms)
        abort();                  /* read back as another request */
    return 0;
}
