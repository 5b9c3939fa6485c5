/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: `remus disk serve` (nbd/) on any bytes from a client.  The
 * first byte chooses the phase: even, the whole connection (negotiation,
 * then transmission: rm_nbd_serve); odd, the transmission alone (what the
 * kernel's client speaks: rm_nbd_serve_transmission).  The rest is what
 * the client sends, over a socketpair whose other end a thread feeds and
 * drains.  Never a crash, a hang, or a read or write outside the 64 KiB
 * export.  Seeds (tests/fuzz/corpus/fuzz_nbd): a GO and one of each
 * request, an EXPORT_NAME session, and a transmission-only session.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "nbd/export.h"
#include "tests/support/fuzz_peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXPORT_BYTES (64u << 10)

static struct rm_nbd_export *export_once(void)
{
    static struct rm_nbd_export *e;
    char path[] = "/dev/shm/remus-fuzz-nbd.XXXXXX";   /* tmpfs: no real syncs */
    struct rm_nbd_params p = { .image = path, .name = "fuzz",
                               .request_timeout_ms = 50 };
    struct rm_error err = { 0 };
    int fd;

    if (e)
        return e;
    rm_log_init(RM_LOG_ERROR, NULL);
    signal(SIGPIPE, SIG_IGN);
    fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, EXPORT_BYTES))
        abort();
    close(fd);
    if (rm_nbd_export_open(&e, &p, &err))
        abort();
    unlink(path);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rm_nbd_export *e = export_once();
    struct rm_fuzz_peer c = { 0 };
    struct rm_error err = { 0 };
    int sv[2];

    if (size < 1)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        abort();
    c.fd = sv[0];
    c.in = data + 1;
    c.len = size - 1;
    rm_fuzz_peer_start(&c);
    if (data[0] & 1)
        rm_nbd_serve_transmission(e, sv[1], NULL, NULL, &err);
    else
        rm_nbd_serve(e, sv[1], NULL, NULL, &err);
    close(sv[1]);
    rm_fuzz_peer_join(&c);
    close(sv[0]);
    return 0;
}
