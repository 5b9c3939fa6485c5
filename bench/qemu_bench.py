#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The same guest under QEMU, side by side with remus (one run).

Boots the multiboot build of our guest (build/guest/remus-guest-mb.bin)
with Debian's qemu-system-x86_64 and KVM acceleration, running the same
memory workload as remus's busy guest (flat out over 2,048 pages), and
measures QEMU's own checkpointing of it:

  - COLO (x-colo migration capability, checkpoint every 10/25/100 ms):
    pause per checkpoint (from QEMU's colo_vm_state_change trace events:
    'run' => 'stop' .. 'stop' => 'run'), checkpoints/s, and the guest's
    page-writes/s against the unprotected guest;
  - a plain live migration to a second QEMU on loopback: its reported
    downtime and total time, and the guest's page-writes/s meanwhile.

The guest's page-writes counter is read from guest memory over QMP
(`xp` at the address of the symbol guest_page_writes), so nothing in the
guest has to talk while it is measured.  remus's numbers for the same
intervals come from DATA-DIR/throughput.dat, written by kvm_bench in the
same `make bench` run.

    qemu_bench.py BUILD-DIR DATA-DIR      (markdown on stdout)
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

INTERVALS = (10, 25, 100)
WSS = 2048
MEM_MIB = 64


class QMP:
    def __init__(self, path, timeout=20.0):
        self.sock = socket.socket(socket.AF_UNIX)
        deadline = time.time() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("QMP socket %s did not appear" % path)
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.f = self.sock.makefile("rw")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP connection closed during " + name)
            r = json.loads(line)
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"]["desc"]))
            if "return" in r:
                return r["return"]

    def close(self):
        self.sock.close()


class QemuProcess:
    """One QEMU process running the multiboot guest: @argv is its command
    line but for the console, QMP and trace options, which this adds
    (trace: @traces to NAME.trace, with timestamps)."""

    def __init__(self, tmp, name, argv, traces=()):
        self.name = name
        self.serial = os.path.join(tmp, name + ".serial")
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        self.trace = os.path.join(tmp, name + ".trace")
        self.stderr = os.path.join(tmp, name + ".stderr")
        argv = list(argv) + [
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", "file:" + self.serial,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if traces:
            argv += ["-D", self.trace, "-msg", "timestamp=on"]
            for t in traces:
                argv += ["-trace", t]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr, "w"))
        self.qmp = QMP(self.qmp_path)

    def wait_console(self, ready, what, timeout, fail=()):
        """Until the console shows @ready; a CPU exception, one of @fail
        (pairs of text and what it means) or QEMU's end is an error."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(self.serial, errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            if "CPU exception" in text:
                raise RuntimeError("%s: the guest faulted: %s"
                                   % (self.name, text.strip()[-200:]))
            for bad, why in fail:
                if bad in text:
                    raise RuntimeError("%s: %s" % (self.name, why))
            if ready in text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("%s: %s (%s)" % (self.name, what,
                                           self.tail_stderr()))

    def tail_stderr(self):
        try:
            with open(self.stderr, errors="replace") as f:
                return f.read().strip()[-400:] or "no message"
        except OSError:
            return "no message"

    def stop(self):
        try:
            self.qmp.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Guest(QemuProcess):
    """The guest with its memory workload, no network."""

    def __init__(self, tmp, name, image, incoming=None, trace=False):
        argv = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
                "-smp", "1", "-m", str(MEM_MIB), "-kernel", image,
                "-append", "dirty_rate=0 dirty_wss=%d" % WSS]
        if incoming:
            argv += ["-incoming", incoming]
        super().__init__(tmp, name, argv,
                         ("colo_vm_state_change",) if trace else ())

    def wait_workload(self, timeout=20.0):
        self.wait_console("page-writes/s", "the guest's workload did not "
                          "start", timeout)

    def read_u64(self, addr):
        out = self.qmp.cmd("human-monitor-command",
                           **{"command-line": "xp /1gx 0x%x" % addr})
        m = re.search(r":\s*0x([0-9a-fA-F]+)", out)
        if not m:
            raise RuntimeError("xp answered %r" % out)
        return int(m.group(1), 16)


def rate(g, addr, secs):
    c0, t0 = g.read_u64(addr), time.time()
    time.sleep(secs)
    c1, t1 = g.read_u64(addr), time.time()
    return (c1 - c0) / (t1 - t0), t0, t1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, (len(xs) * p) // 100)] if xs else 0.0


def colo_pauses(trace, t0, t1):
    """Pauses (ms) and checkpoints in [t0, t1] from the trace log."""
    pauses, stops, stopped_at = [], 0, None
    pat = re.compile(r"@(\d+\.\d+):colo_vm_state_change Change '(\w+)' => "
                     r"'(\w+)'")
    with open(trace, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if not m:
                continue
            t, a, b = float(m.group(1)), m.group(2), m.group(3)
            if a == "run" and b == "stop":
                stopped_at = t
                if t0 <= t <= t1:
                    stops += 1
            elif a == "stop" and b == "run" and stopped_at is not None:
                if t0 <= stopped_at <= t1:
                    pauses.append((t - stopped_at) * 1000.0)
                stopped_at = None
    return pauses, stops


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_colo(pri, sec, delay, uri, who):
    """Turn on x-colo on both QEMUs, migrate pri to sec's incoming URI and
    wait (60 s at most) until the migration is in COLO.  who() says the
    QEMUs' last words for the error when it does not get there."""
    caps = [{"capability": "x-colo", "state": True}]
    sec.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    pri.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    pri.qmp.cmd("migrate-set-parameters", **{"x-checkpoint-delay": delay})
    pri.qmp.cmd("migrate", uri=uri)
    deadline = time.time() + 60
    while True:
        st = pri.qmp.cmd("query-migrate").get("status")
        if st == "colo":
            return
        if st in ("failed", "cancelled") or time.time() > deadline:
            raise RuntimeError("COLO did not start (migration status %s; %s)"
                               % (st, who()))
        time.sleep(0.1)


def colo_run(tmp, image, addr, interval):
    port = free_port()
    sec = Guest(tmp, "colo%d-secondary" % interval, image,
                incoming="tcp:127.0.0.1:%d" % port)
    pri = Guest(tmp, "colo%d-primary" % interval, image, trace=True)
    try:
        pri.wait_workload()
        start_colo(pri, sec, interval, "tcp:127.0.0.1:%d" % port,
                   pri.tail_stderr)
        time.sleep(1.0)
        r, t0, t1 = rate(pri, addr, 4.0)
        st = pri.qmp.cmd("query-migrate").get("status")
        if st != "colo":
            raise RuntimeError("COLO ended during the measurement (status "
                               "%s)" % st)
        pauses, stops = colo_pauses(pri.trace, t0, t1)
        return {"rate": r, "pauses": pauses, "cps": stops / (t1 - t0)}
    finally:
        pri.stop()
        sec.stop()


def migrate_run(tmp, image, addr):
    port = free_port()
    dst = Guest(tmp, "mig-dest", image, incoming="tcp:127.0.0.1:%d" % port)
    src = Guest(tmp, "mig-source", image)
    try:
        src.wait_workload()
        c0, t0 = src.read_u64(addr), time.time()
        src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
        deadline = time.time() + 90
        while True:
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled") or time.time() > deadline:
                raise RuntimeError("migration did not complete (status %s)"
                                   % st)
            time.sleep(0.05)
        t1 = time.time()
        c1 = dst.read_u64(addr)
        return {"downtime": info.get("downtime", 0),
                "total": info.get("total-time", 0),
                "bytes": info.get("ram", {}).get("transferred", 0),
                "rate": (c1 - c0) / (t1 - t0)}
    finally:
        src.stop()
        dst.stop()


def remus_numbers(data_dir):
    rows = {}
    try:
        with open(os.path.join(data_dir, "throughput.dat")) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                v = line.split()
                rows[int(v[0])] = {"rate": float(v[1]), "base": float(v[2]),
                                   "ratio": float(v[3]), "cps": float(v[4]),
                                   "p50": float(v[5]), "p99": float(v[6])}
    except (OSError, ValueError, IndexError):
        pass
    return rows


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    build, data_dir = sys.argv[1], sys.argv[2]
    image = os.path.join(build, "guest", "remus-guest-mb.bin")
    elf = os.path.join(build, "guest", "remus-guest-mb.elf")
    nm = subprocess.run(["nm", elf], capture_output=True, text=True,
                        check=True).stdout
    m = re.search(r"^([0-9a-f]+) [BbDd] guest_page_writes$", nm, re.M)
    if not m:
        print("qemu_bench: no symbol guest_page_writes in " + elf,
              file=sys.stderr)
        return 1
    addr = int(m.group(1), 16)
    ver = subprocess.run(["qemu-system-x86_64", "--version"],
                         capture_output=True, text=True).stdout.split("\n")[0]

    # The version in the text, not the heading: bench/report_json.py names
    # the table by its heading, the same from one QEMU to the next.
    print("\n## The same guest under QEMU (KVM), side by side\n")
    print("%s.  The multiboot build of the guest, 64 MiB, 1 vCPU, the busy "
          "workload (flat out over %d pages); its page-writes counter is "
          "read from guest memory over QMP.  remus: the same workload in "
          "the drill's guest (its writer vCPU), from the table above.\n"
          % (ver, WSS))
    notes = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="remus-qemu-bench.") as tmp:
        g = Guest(tmp, "unprotected", image)
        try:
            g.wait_workload()
            time.sleep(0.5)
            base, _, _ = rate(g, addr, 3.0)
        finally:
            g.stop()
        for iv in INTERVALS:
            try:
                results[iv] = colo_run(tmp, image, addr, iv)
            except (RuntimeError, OSError) as e:
                notes.append("COLO at %d ms: %s" % (iv, e))
        try:
            mig = migrate_run(tmp, image, addr)
        except (RuntimeError, OSError) as e:
            mig = None
            notes.append("migration: %s" % e)

    ours = remus_numbers(data_dir)
    print("Unprotected under QEMU/KVM: %.0f page-writes/s.\n" % base)
    print("| interval (ms) | QEMU COLO checkpoints/s | COLO pause p50 (ms) | "
          "COLO pause p99 (ms) | COLO page-writes/s vs unprotected | "
          "remus checkpoints/s | remus pause p50 (ms) | remus pause p99 "
          "(ms) | remus page-writes/s vs unprotected | pause p50 COLO / "
          "remus |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    dat = open(os.path.join(data_dir, "qemu.dat"), "w")
    dat.write("# interval_ms colo_ratio remus_ratio colo_p50 remus_p50\n")
    for iv in INTERVALS:
        c, o = results.get(iv), ours.get(iv)
        cells = [str(iv)]
        if c:
            cells += ["%.1f" % c["cps"], "%.2f" % pct(c["pauses"], 50),
                      "%.2f" % pct(c["pauses"], 99),
                      "%.4f" % (c["rate"] / base if base else 0)]
        else:
            cells += ["-"] * 4
        if o:
            cells += ["%.1f" % o["cps"], "%.2f" % o["p50"], "%.2f" % o["p99"],
                      "%.4f" % o["ratio"]]
        else:
            cells += ["-"] * 4
        if c and o and o["p50"] > 0 and c["pauses"]:
            cells.append("%.1f" % (pct(c["pauses"], 50) / o["p50"]))
        else:
            cells.append("-")
        print("| " + " | ".join(cells) + " |")
        if c and o:
            dat.write("%d %.5f %.5f %.3f %.3f\n" % (
                iv, c["rate"] / base if base else 0, o["ratio"],
                pct(c["pauses"], 50), o["p50"]))
    dat.close()
    if mig:
        print("\nPlain live migration of the same busy guest to a second "
              "QEMU on loopback: downtime %d ms (QEMU's own figure), total "
              "%d ms, %.1f MB sent, guest page-writes/s meanwhile %.0f "
              "(%.3f of unprotected)." % (
                  mig["downtime"], mig["total"], mig["bytes"] / 1e6,
                  mig["rate"], mig["rate"] / base if base else 0))
    print("\nNotes: QEMU's COLO secondary runs the guest too (both VMs "
          "execute, on this 2-core machine they share the cores); this "
          "guest has no disk and no NIC, so COLO needs neither block "
          "replication nor colo-compare here, and its checkpoints are "
          "driven by x-checkpoint-delay alone.")
    for n in notes:
        print("- QEMU could not: " + n)
    # A row that could not be measured fails the run (make bench fails).
    missing = [iv for iv in INTERVALS if not results.get(iv) or
               not ours.get(iv)] + ([] if mig else ["migration"])
    if missing:
        print("\nNOT MEASURED: %s" % ", ".join(
            "interval %s ms" % m if m != "migration" else m for m in missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
