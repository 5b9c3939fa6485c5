#!/usr/bin/env python3
"""notify_listen.py SOCKET LOG: a service manager's notification socket
(sd_notify(3)) for tests: binds the datagram socket SOCKET and appends
each field of each datagram to LOG as "MONOTONIC_SECONDS FIELD", one per
line, until killed."""
import os
import socket
import sys
import time

path, log = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "a", buffering=1) as out:
    while True:
        data = s.recv(65536).decode("utf-8", "replace")
        t = time.monotonic()
        for field in data.split("\n"):
            if field:
                out.write("%.3f %s\n" % (t, field))
