#!/usr/bin/env python3
"""lab/xen/qmp-save.py QMP-SOCKET FILE: save a running QEMU's whole state
(RAM, CPUs, devices) into FILE over QMP, then quit that QEMU.

run-scenario.sh uses it once per lab image: dom0 booted and idle, waiting
for its payload, is saved, and every scenario then starts QEMU from FILE
(-incoming) instead of booting Xen and dom0 again.  Exit 0 when QEMU said
the migration completed; otherwise 1, naming what failed (FILE is then
left for the caller to remove).
"""
import json
import socket
import sys
import time


def main():
    if len(sys.argv) != 3:
        print("usage: qmp-save.py QMP-SOCKET FILE", file=sys.stderr)
        return 2
    path, out = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(path)
    stream = sock.makefile("rw")

    def call(cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        stream.write(json.dumps(msg) + "\n")
        stream.flush()
        while True:   # events ({"event": ...}) may come before the answer
            line = stream.readline()
            if not line:
                raise RuntimeError(f"QEMU closed QMP during {cmd}")
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"{cmd}: {reply['error'].get('desc')}")

    json.loads(stream.readline())          # the greeting
    call("qmp_capabilities")
    # Not stopped first: a state saved from a stopped VM restores stopped;
    # dom0 idles here, so the live migration converges at once.
    call("migrate", uri=f"exec:cat > '{out}'")
    deadline = time.monotonic() + 600
    while True:
        st = call("query-migrate")
        status = st.get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled") or time.monotonic() > deadline:
            print(f"qmp-save: the migration to {out} ended {status}: "
                  f"{st.get('error-desc', 'no reason given')}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    ram = st.get("ram", {})
    print(f"qmp-save: saved to {out} ({ram.get('transferred', 0) >> 20} MiB "
          f"sent, {ram.get('duplicate', 0)} zero pages) in "
          f"{st.get('total-time', 0)} ms")
    try:
        call("quit")
    except RuntimeError:
        pass   # QEMU may close the socket before it answers
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, RuntimeError, ValueError) as e:
        print(f"qmp-save: {e}", file=sys.stderr)
        sys.exit(1)
