#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""QEMU COLO with the guest's NIC: colo-compare exercised (one run).

The multiboot build of our guest with its e1000 (guest/arch/mb_e1000.c)
under Debian's QEMU/KVM (-machine pc: see MACHINE below), its key-value
service on a tap in a private network namespace (the script re-runs itself under unshare -n,
so it needs root).  A closed-loop load (CLIENTS clients, each one request
in flight: SET, GET, INCR in turn) on the primary's address, measured:

  - unprotected: the same guest alone, no COLO;
  - QEMU COLO (x-colo) with the network set up as in QEMU's
    docs/COLO-FT.txt: primary filter-mirror (tx -> secondary),
    filter-redirector pair and colo-compare (iothread); secondary
    filter-redirector in/out and filter-rewriter.  Per x-checkpoint-delay:
    request latency p50/p99, checkpoints/s (colo_vm_state_change trace
    events, as qemu_bench.py), and the packets colo-compare found
    different (colo_compare_main 'packet different' trace events: each
    one asks for a checkpoint).

    qemu_colo_net.py BUILD-DIR DATA-DIR      (markdown on stdout)

Environment: QEMU_COLO_NET_MACHINE (default pc), QEMU_COLO_NET_DELAYS=MS,MS
(default 100,1000), QEMU_COLO_NET_KEEP=DIR keeps the consoles, stderr and
traces there, QEMU_COLO_NET_DUMP=1 adds a filter-dump (pcap) of each
guest's frames to it.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no bench/__pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_bench import QemuProcess, colo_pauses, pct, start_colo  # noqa: E402

# i440fx (`pc`), not q35: QEMU 7.2's COLO secondary aborts on q35 at its
# first checkpoint (memory_region_add_subregion_common: Assertion
# `!subregion->container' failed, in the reset + device-state load), so the
# driver reaches PCI configuration through ports 0xCF8/0xCFC there.
MACHINE = os.environ.get("QEMU_COLO_NET_MACHINE", "pc")
# x-checkpoint-delay (ms)
DELAYS = tuple(int(x) for x in
               os.environ.get("QEMU_COLO_NET_DELAYS", "100,1000").split(","))
CLIENTS = 4
SECONDS = 8.0
MEM_MIB = 64
HOST_IP, GUEST_IP, PORT = "10.77.0.1", "10.77.0.2", 7000
MAC = "52:54:00:c0:10:01"
# colo-compare's plumbing (loopback inside the private namespace)
P_MIRROR, P_COMPARE1, P_COMPARE0, P_OUT, P_MIG = 9003, 9004, 9001, 9005, 9998
TRACES = ["colo_vm_state_change", "colo_compare_main",
          "colo_compare_udp_miscompare", "colo_compare_icmp_miscompare",
          "colo_old_packet_check_found", "colo_compare_drop_packet"]


def sh(*argv):
    subprocess.run(argv, check=True)


def netns_setup():
    """lo up, no IPv6; tap0 (primary, HOST_IP/24), tap1 (secondary: no
    address: COLO's secondary talks only through the primary's filters)."""
    sh("ip", "link", "set", "lo", "up")
    # no IPv6 chatter from the host side into either guest (the
    # secondary's tap would feed it frames the primary never saw)
    for k in ("all", "default"):
        sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % k)
    sh("ip", "tuntap", "add", "tap0", "mode", "tap")
    sh("ip", "addr", "add", HOST_IP + "/24", "dev", "tap0")
    sh("ip", "link", "set", "tap0", "up")
    sh("ip", "tuntap", "add", "tap1", "mode", "tap")
    sh("ip", "link", "set", "tap1", "up")


class Qemu(QemuProcess):
    """One QEMU running the multiboot guest with an e1000 on a tap."""

    def __init__(self, tmp, name, image, tap, extra=(), trace=False):
        argv = ["qemu-system-x86_64", "-enable-kvm",
                "-cpu", "host,-arch-capabilities",
                "-machine", MACHINE,
                "-smp", "1", "-m", str(MEM_MIB), "-kernel", image,
                "-append", "ip=%s dirty_rate=0 dirty_wss=0" % GUEST_IP,
                "-netdev", "tap,id=hn0,ifname=%s,script=no,downscript=no,"
                "vhost=off" % tap,
                "-device", "e1000,id=e0,netdev=hn0,mac=%s,romfile=" % MAC]
        argv += list(extra)
        super().__init__(tmp, name, argv, TRACES if trace else ())

    def wait_up(self, timeout=30.0):
        self.wait_console("kv on %s:%d" % (GUEST_IP, PORT),
                          "the guest's service did not come up", timeout,
                          (("without network", "the guest found no NIC"),))


def client(cid, until, lat, errs):
    """Closed loop: one request in flight, retransmitted every 0.5 s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    req, ops = 0, ("SET k%d %d", "GET k%d", "INCR k%d")
    while time.time() < until:
        req += 1
        op = ops[req % 3]
        text = op % ((cid, req) if "%d %d" in op else (cid,))
        msg = ("%d %d %s" % (cid, req, text)).encode()
        t0 = time.perf_counter()
        while True:
            s.sendto(msg, (GUEST_IP, PORT))
            try:
                while True:
                    r = s.recv(2048).decode(errors="replace")
                    if r.split(" ", 1)[0] == str(req):
                        break
                break
            except socket.timeout:
                errs["retransmits"] += 1
                if time.time() > until + 5:
                    errs["lost"] += 1
                    s.close()
                    return
        lat.append((time.perf_counter() - t0) * 1000.0)
        if " OK " not in " " + r:
            errs["bad"] += 1
    s.close()


def load(seconds):
    lat, errs = [], {"retransmits": 0, "lost": 0, "bad": 0}
    t0 = time.time()
    until = t0 + seconds
    th = [threading.Thread(target=client, args=(100 + i, until, lat, errs))
          for i in range(CLIENTS)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    t1 = time.time()
    return {"lat": lat, "t0": t0, "t1": t1, "ops": len(lat) / (t1 - t0),
            **errs}


def unprotected(tmp, image):
    g = Qemu(tmp, "unprotected", image, "tap0")
    try:
        g.wait_up()
        load(1.0)                       # warm up (ARP, first replies)
        r = load(SECONDS)
        if not r["lat"]:
            raise RuntimeError("no request answered (%d retransmits)"
                               % r["retransmits"])
        return r
    finally:
        g.stop()


def compare_events(trace, t0, t1):
    """colo-compare's findings in [t0, t1]: packets found different (each
    asks for a checkpoint), primary packets released by timeout."""
    diff = old = 0
    pat = re.compile(r"@(\d+\.\d+):(colo_\w+) (.*)")
    with open(trace, errors="replace") as f:
        for line in f:
            m = pat.search(line)
            if not m or not t0 <= float(m.group(1)) <= t1:
                continue
            ev, rest = m.group(2), m.group(3)
            # "UDP payload size of packets are different" comes before
            # the verdict of the same comparison: count verdicts only
            if ev == "colo_compare_main" and rest.endswith(
                    "packet different"):
                diff += 1
            elif ev == "colo_old_packet_check_found":
                old += 1
    return diff, old


def colo(tmp, image, delay):
    lo = "127.0.0.1"
    pri_extra = [
        "-chardev", "socket,id=mirror0,host=%s,port=%d,server=on,wait=off"
        % (lo, P_MIRROR),
        "-chardev", "socket,id=compare1,host=%s,port=%d,server=on,wait=off"
        % (lo, P_COMPARE1),
        "-chardev", "socket,id=compare0,host=%s,port=%d,server=on,wait=off"
        % (lo, P_COMPARE0),
        "-chardev", "socket,id=compare0-0,host=%s,port=%d" % (lo, P_COMPARE0),
        "-chardev", "socket,id=compare_out,host=%s,port=%d,server=on,"
        "wait=off" % (lo, P_OUT),
        "-chardev", "socket,id=compare_out0,host=%s,port=%d" % (lo, P_OUT),
        "-object", "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0",
        "-object", "filter-redirector,netdev=hn0,id=redire0,queue=rx,"
        "indev=compare_out",
        "-object", "filter-redirector,netdev=hn0,id=redire1,queue=rx,"
        "outdev=compare0",
        "-object", "iothread,id=iothread1",
        "-object", "colo-compare,id=comp0,primary_in=compare0-0,"
        "secondary_in=compare1,outdev=compare_out0,iothread=iothread1"]
    sec_extra = [
        "-chardev", "socket,id=red0,host=%s,port=%d,reconnect=1"
        % (lo, P_MIRROR),
        "-chardev", "socket,id=red1,host=%s,port=%d,reconnect=1"
        % (lo, P_COMPARE1),
        "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
        "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
        "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all",
        "-incoming", "tcp:%s:%d" % (lo, P_MIG)]
    if os.environ.get("QEMU_COLO_NET_DUMP"):
        # every frame each guest sent and received, as pcap, for diagnosis
        pri_extra = ["-object", "filter-dump,id=dump0,netdev=hn0,file=%s" %
                     os.path.join(tmp, "colo%d-primary.pcap" % delay)] + \
            pri_extra
        # last: the guest's own frames meet it before the redirector
        # takes them to colo-compare
        sec_extra = sec_extra[:-2] + [
            "-object", "filter-dump,id=dump0,netdev=hn0,file=%s" %
            os.path.join(tmp, "colo%d-secondary.pcap" % delay)] + \
            sec_extra[-2:]
    pri = Qemu(tmp, "colo%d-primary" % delay, image, "tap0", pri_extra,
               trace=True)
    sec = None
    try:
        pri.wait_up()
        sec = Qemu(tmp, "colo%d-secondary" % delay, image, "tap1", sec_extra,
                   trace=True)
        start_colo(pri, sec, delay, "tcp:%s:%d" % (lo, P_MIG),
                   lambda: "primary: %s; secondary: %s" % (
                       pri.tail_stderr(), sec.tail_stderr()))
        time.sleep(1.0)
        load(1.0)
        r = load(SECONDS)
        if not r["lat"]:
            raise RuntimeError("no request answered under COLO (%d "
                               "retransmits; primary: %s; secondary: %s)" % (
                                   r["retransmits"], pri.tail_stderr(),
                                   sec.tail_stderr()))
        st = pri.qmp.cmd("query-migrate").get("status")
        if st != "colo":
            raise RuntimeError("COLO ended during the measurement (status "
                               "%s; primary: %s; secondary: %s)" % (
                                   st, pri.tail_stderr(), sec.tail_stderr()))
        pauses, stops = colo_pauses(pri.trace, r["t0"], r["t1"])
        diff, old = compare_events(pri.trace, r["t0"], r["t1"])
        r.update(cps=stops / (r["t1"] - r["t0"]), pauses=pauses,
                 diff=diff, old=old, checkpoints=stops)
        return r
    finally:
        pri.stop()
        if sec:
            sec.stop()


def row(name, r):
    cells = [name, "%d" % len(r["lat"]), "%.0f" % r["ops"],
             "%.2f" % pct(r["lat"], 50), "%.2f" % pct(r["lat"], 99),
             "%d" % r["retransmits"]]
    if "cps" in r:
        cells += ["%.1f" % r["cps"], "%.2f" % pct(r["pauses"], 50),
                  "%d" % r["diff"], "%d" % r["old"]]
    else:
        cells += ["-"] * 4
    return "| " + " | ".join(cells) + " |"


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    if not os.environ.get("QEMU_COLO_NET_NETNS"):
        if os.geteuid() != 0:
            print("qemu_colo_net: needs root (a private network namespace)",
                  file=sys.stderr)
            return 1
        env = dict(os.environ, QEMU_COLO_NET_NETNS="1")
        return subprocess.call(["unshare", "-n", sys.executable,
                                os.path.abspath(__file__)] + sys.argv[1:],
                               env=env)
    build = sys.argv[1]
    image = os.path.join(build, "guest", "remus-guest-mb.bin")
    ver = subprocess.run(["qemu-system-x86_64", "--version"],
                         capture_output=True, text=True).stdout.split("\n")[0]
    netns_setup()
    notes, rows = [], []
    with tempfile.TemporaryDirectory(prefix="remus-qemu-colo-net.") as tmp:
        tmp = os.environ.get("QEMU_COLO_NET_KEEP") or tmp
        try:
            rows.append(("unprotected", unprotected(tmp, image)))
        except (RuntimeError, OSError) as e:
            notes.append("unprotected: %s" % e)
        for d in DELAYS:
            try:
                rows.append(("QEMU COLO, x-checkpoint-delay %d ms" % d,
                             colo(tmp, image, d)))
            except (RuntimeError, OSError) as e:
                notes.append("COLO at %d ms: %s" % (d, e))

    print("\n## QEMU COLO with the guest's NIC (colo-compare), side by "
          "side\n")
    print("%s, -machine %s, the multiboot guest with its e1000 on a tap "
          "(private network namespace), 64 MiB, 1 vCPU, no memory "
          "workload.  %d closed-loop UDP clients (SET/GET/INCR in turn, one "
          "request in flight each) for %.0f s against the primary.  COLO: "
          "network as in QEMU's docs/COLO-FT.txt (filter-mirror, "
          "filter-redirector, colo-compare on an iothread; secondary "
          "filter-redirector + filter-rewriter), both VMs on loopback.\n"
          % (ver, MACHINE, CLIENTS, SECONDS))
    print("| run | requests | requests/s | latency p50 (ms) | latency p99 "
          "(ms) | retransmits | checkpoints/s | pause p50 (ms) | "
          "packets found different | primary packets released by "
          "timeout |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(row(name, r))
    print("\nPackets found different: colo-compare's 'packet different' "
          "trace events on the primary (each asks for a checkpoint); "
          "released by timeout: colo_old_packet_check_found (a primary "
          "packet the secondary never matched).  Both QEMUs and the "
          "clients share this machine's 2 cores.  -machine pc (i440fx): on q35 "
          "QEMU 7.2's COLO secondary aborts at its first checkpoint "
          "(memory_region_add_subregion_common: Assertion "
          "`!subregion->container' failed).")
    for n in notes:
        print("- QEMU could not: " + n)
    if notes:
        print("\nNOT MEASURED: " + "; ".join(n.split(":")[0] for n in notes))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
