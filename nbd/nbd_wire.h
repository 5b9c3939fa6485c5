/* SPDX-License-Identifier: MIT */
/*
 * The NBD protocol's wire constants (the protocol document of the NBD
 * project, "fixed newstyle" negotiation and simple replies): what
 * `remus disk serve` speaks to the kernel's nbd client, qemu and libnbd.
 * Every integer on the wire is big-endian.
 */
#ifndef REMUS_NBD_WIRE_H
#define REMUS_NBD_WIRE_H

#include <stdint.h>

/* Negotiation: the server's greeting. */
#define NBD_MAGIC_INIT 0x4e42444d41474943ull     /* "NBDMAGIC" */
#define NBD_MAGIC_OPTS 0x49484156454f5054ull     /* "IHAVEOPT" */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)        /* handshake flags */
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)      /* client flags */
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* Options (client: IHAVEOPT, option, length, data). */
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_MAX_LEN 4096u          /* ours: longer option data refused */

/* Option replies (server: magic, option, type, length, data). */
#define NBD_MAGIC_REPLY 0x3e889045565a9ull
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_ERR (1u << 31)
#define NBD_REP_ERR_UNSUP (NBD_REP_ERR | 1u)
#define NBD_REP_ERR_POLICY (NBD_REP_ERR | 2u)
#define NBD_REP_ERR_INVALID (NBD_REP_ERR | 3u)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_ERR | 6u)
#define NBD_INFO_EXPORT 0u
#define NBD_INFO_BLOCK_SIZE 3u

/* Transmission flags (with the export's size). */
#define NBD_TFLAG_HAS_FLAGS (1u << 0)
#define NBD_TFLAG_READ_ONLY (1u << 1)
#define NBD_TFLAG_SEND_FLUSH (1u << 2)
#define NBD_TFLAG_SEND_FUA (1u << 3)
#define NBD_TFLAG_SEND_TRIM (1u << 5)
#define NBD_TFLAG_SEND_WRITE_ZEROES (1u << 6)

/* Requests: magic, flags (16), type (16), cookie (64), offset (64),
 * length (32), then for a write its data. */
#define NBD_MAGIC_REQUEST 0x25609513u
#define NBD_REQUEST_BYTES 28u
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)

/* Simple replies: magic, error (32), cookie (64), then a read's data. */
#define NBD_MAGIC_SIMPLE_REPLY 0x67446698u
#define NBD_SIMPLE_REPLY_BYTES 16u

/* Errors in replies (the protocol's own numbers, not the host's errno). */
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

#endif
