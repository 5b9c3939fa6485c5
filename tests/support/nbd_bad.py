#!/usr/bin/env python3
"""Hostile and clumsy NBD clients against a server on a Unix socket
(tests/integration/nbd_serve.sh).  Usage: nbd_bad.py SOCKET CASE
Each CASE speaks raw NBD (fixed newstyle, simple replies) and exits 0 when
the server answered as the protocol says: an error reply where the stream
can go on, a close where it cannot.  It prints what it saw."""
import socket
import struct
import sys
import time

OPTS = 0x49484156454F5054
REQ = 0x25609513
SIMPLE = 0x67446698
REPLY = 0x3E889045565A9


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def closed(s, timeout=5.0):
    """Does the server close the connection (within timeout)?"""
    s.settimeout(timeout)
    try:
        while True:
            c = s.recv(4096)
            if not c:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    magic, opts, flags = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == 0x4E42444D41474943 and opts == OPTS, "bad greeting"
    return s


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", OPTS, opt, len(data)) + data)


def opt_reply(s):
    magic, opt, typ, ln = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == REPLY, "bad option reply magic %x" % magic
    return opt, typ, recv_exact(s, ln)


def go(s, name=b""):
    option(s, 7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    size = None
    while True:
        opt, typ, data = opt_reply(s)
        if typ == 3 and struct.unpack(">H", data[:2])[0] == 0:
            size = struct.unpack(">Q", data[2:10])[0]
        if typ == 1:
            return size
        if typ & 0x80000000:
            return -typ


def transmission(path):
    s = connect(path)
    s.sendall(struct.pack(">I", 3))   # fixed newstyle, no zeroes
    size = go(s)
    assert size and size > 0, "GO failed: %r" % size
    return s, size


def request(s, typ, off, ln, flags=0, cookie=7, data=b""):
    s.sendall(struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, ln) + data)


def simple(s):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == SIMPLE, "bad reply magic %x" % magic
    return err, cookie


def expect(cond, what):
    print(("ok: " if cond else "WRONG: ") + what)
    if not cond:
        sys.exit(1)


def main():
    path, case = sys.argv[1], sys.argv[2]
    if case == "unknown-client-flags":
        s = connect(path)
        s.sendall(struct.pack(">I", 0x80000001))
        expect(closed(s), "unknown client flags: the server closes")
    elif case == "option-bad-magic":
        s = connect(path)
        s.sendall(struct.pack(">I", 1))
        s.sendall(struct.pack(">QII", 0x1122334455667788, 7, 0))
        expect(closed(s), "an option without its magic: the server closes")
    elif case == "option-too-long":
        s = connect(path)
        s.sendall(struct.pack(">I", 1))
        s.sendall(struct.pack(">QII", OPTS, 7, 1 << 30))
        expect(closed(s), "an option of 1 GiB: the server closes")
    elif case == "unknown-export":
        s = connect(path)
        s.sendall(struct.pack(">I", 1))
        r = go(s, b"nosuchdisk")
        expect(r == -(0x80000006), "GO for an unknown export: "
               "NBD_REP_ERR_UNKNOWN (got %r)" % r)
        option(s, 8)   # STRUCTURED_REPLY: we do not do it
        _, typ, _ = opt_reply(s)
        expect(typ == 0x80000001, "STRUCTURED_REPLY: NBD_REP_ERR_UNSUP")
        option(s, 2)   # ABORT
        _, typ, _ = opt_reply(s)
        expect(typ == 1 and closed(s), "ABORT: acknowledged, then closed")
    elif case == "bad-requests":
        s, size = transmission(path)
        request(s, 0, size - 512, 1024, cookie=11)
        err, c = simple(s)
        expect(err == 22 and c == 11, "a read beyond the end: EINVAL (%d)"
               % err)
        request(s, 1, size, 512, cookie=12, data=b"\x55" * 512)
        err, c = simple(s)
        expect(err == 28 and c == 12, "a write beyond the end: ENOSPC, its "
               "data consumed (%d)" % err)
        request(s, 0, 0, 64 << 20, cookie=13)
        err, c = simple(s)
        expect(err == 22 and c == 13, "a read of 64 MiB: EINVAL (%d)" % err)
        request(s, 99, 0, 512, cookie=14)
        err, c = simple(s)
        expect(err == 22 and c == 14, "an unknown command: EINVAL (%d)" % err)
        request(s, 4, 2 ** 63, 512, cookie=15)
        err, c = simple(s)
        expect(err == 22 and c == 15, "a TRIM at 2^63: EINVAL (%d)" % err)
        request(s, 0, 0, 512, cookie=16)
        err, c = simple(s)
        data = recv_exact(s, 512)
        expect(err == 0 and c == 16, "then a good read still works")
        request(s, 2, 0, 0)   # DISC
        expect(closed(s), "DISC: the server closes")
    elif case == "write-too-long":
        s, size = transmission(path)
        request(s, 1, 0, 64 << 20)
        expect(closed(s), "a WRITE of 64 MiB: the server closes (its data "
               "cannot be skipped)")
    elif case == "request-bad-magic":
        s, size = transmission(path)
        s.sendall(b"\x00" * 28)
        expect(closed(s), "a request without its magic: the server closes")
    elif case == "vanish-mid-write":
        s, size = transmission(path)
        request(s, 1, 0, 65536, data=b"\x66" * 1000)
        s.close()
        print("ok: a client that vanished in the middle of a write's data")
    elif case == "stall-mid-request":
        s, size = transmission(path)
        t0 = time.monotonic()
        s.sendall(struct.pack(">IHH", REQ, 0, 0))   # 8 of 28 bytes
        expect(closed(s, timeout=20), "a request cut short: the server "
               "closes after its timeout (%.1f s)" % (time.monotonic() - t0))
    elif case == "reads-nothing":
        s, size = transmission(path)
        n, ln = 64, 1 << 20
        want = n * (16 + ln)
        for i in range(n):
            request(s, 0, 0, min(ln, size), cookie=100 + i)
        time.sleep(3)           # the server's send blocks; its timeout ends it
        got = 0
        s.settimeout(10)
        try:
            while True:
                c = s.recv(1 << 20)
                if not c:
                    break
                got += len(c)
        except (ConnectionResetError, socket.timeout):
            pass
        expect(got < want, "a client that reads no reply: the server gives "
               "up (%d of %d bytes of replies sent)" % (got, want))
    elif case == "read-only-write":
        s, size = transmission(path)
        request(s, 1, 0, 512, cookie=21, data=b"\x77" * 512)
        err, c = simple(s)
        expect(err == 1 and c == 21, "a write to a read-only export: EPERM "
               "(%d)" % err)
        request(s, 6, 0, 512, cookie=22)
        err, c = simple(s)
        expect(err == 1, "WRITE_ZEROES to a read-only export: EPERM (%d)"
               % err)
    else:
        sys.exit("unknown case " + case)


if __name__ == "__main__":
    main()
