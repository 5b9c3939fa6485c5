#!/usr/bin/env python3
"""The same random NBD requests against two servers, read back and compared
after each (tests/integration/nbd_serve.sh): ours and an oracle (nbdkit's
memory plugin).  Usage: nbd_oracle.py URI-OURS URI-ORACLE [OPS] [SEED]
Uses libnbd (python3-libnbd, the library behind nbdsh), an independent
client.  Exit 0 when every read and the final images agree."""
import hashlib
import random
import sys

import nbd


def main():
    ours, oracle = sys.argv[1], sys.argv[2]
    ops = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    hs = []
    for uri in (ours, oracle):
        h = nbd.NBD()
        h.connect_uri(uri)
        hs.append(h)
    size = hs[0].get_size()
    if size != hs[1].get_size():
        sys.exit("sizes differ: %d and %d" % (size, hs[1].get_size()))
    for h in hs:
        if not (h.can_flush() and h.can_fua() and h.can_trim() and
                h.can_zero()):
            sys.exit("a server lacks flush/fua/trim/zero")
    counts = {}
    for i in range(ops):
        blocks = size // 512
        n = rnd.choice([1, 1, 2, 8, 64, 256, 2048])
        off = rnd.randrange(0, blocks - n + 1) * 512
        ln = n * 512
        op = rnd.choice(["write", "write", "write", "write_fua", "trim",
                         "zero", "zero_nohole", "zero_fua", "flush", "read"])
        counts[op] = counts.get(op, 0) + 1
        data = bytes(rnd.getrandbits(8) for _ in range(min(ln, 4096)))
        data = (data * (ln // len(data) + 1))[:ln]
        for h in hs:
            if op == "write":
                h.pwrite(data, off)
            elif op == "write_fua":
                h.pwrite(data, off, nbd.CMD_FLAG_FUA)
            elif op == "trim":
                h.trim(ln, off)
            elif op == "zero":
                h.zero(ln, off)
            elif op == "zero_nohole":
                h.zero(ln, off, nbd.CMD_FLAG_NO_HOLE)
            elif op == "zero_fua":
                h.zero(ln, off, nbd.CMD_FLAG_FUA)
            elif op == "flush":
                h.flush()
        a = hs[0].pread(ln, off)
        b = hs[1].pread(ln, off)
        if a != b:
            sys.exit("op %d (%s of %d bytes at %d): the servers read back "
                     "differently" % (i, op, ln, off))
    digests = []
    for h in hs:
        d = hashlib.sha256()
        for off in range(0, size, 1 << 20):
            d.update(h.pread(min(1 << 20, size - off), off))
        digests.append(d.hexdigest())
        h.shutdown()
    if digests[0] != digests[1]:
        sys.exit("after %d requests the images differ" % ops)
    print("%d requests (%s), every read and the whole images agree with the "
          "oracle" % (ops, ", ".join("%s %d" % kv for kv in
                                       sorted(counts.items()))))


if __name__ == "__main__":
    main()
