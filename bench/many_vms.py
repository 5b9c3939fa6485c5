#!/usr/bin/env python3
"""How protection's cost grows with the number of VMs (#21, goal 6).

bench/many_vms.py BUILD [OUTDIR]  (root, /dev/kvm)

Protects 1, 4 and 16 small VMs at once on this one host, one `remus
protect` and one `remus receive` per VM (keyed, as an operator runs
them), all in one private network namespace, every guest with the same
memory workload.  Over the same measuring window for every VM it reads:

  - checkpoints per second per VM (the primary's --stats-file lines);
  - the pause, p50 and p99 per VM (the same lines' pause_us), and the
    p99 against the single VM's: the goal is <= 2x at 16 VMs;
  - CPU per VM, protect + receive (utime + stime from /proc, in % of one
    core), against the single VM's;
  - the memory protection costs: each process's resident memory outside
    the guest's own RAM mapping (/proc/PID/smaps: the mapping of exactly
    the guest's size is the guest, on the primary, and the replica's, on
    the secondary), per VM, as a ratio of the guest's dirty set (the goal:
    <= 1.5x) and of the guest's memory.

Prints a markdown section (the report's) on stdout; the logs go to
OUTDIR/many-vms/.  MANY_VMS_COUNTS=1,4 and MANY_VMS_WINDOW_S=2 (tests
only: tests/integration/kvm_bench_many.sh) run fewer and shorter.  Exits 1 when a count could not be measured (a pair
that did not reach protection), after printing what it measured.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

COUNTS = tuple(int(c) for c in os.environ.get("MANY_VMS_COUNTS", "1,4,16").split(","))
MEM_MIB = 48               # not the cache's 32 MiB: told apart by size
WSS = 500                 # pages the guest rewrites: its dirty set
RATE = 4000               # page-writes per second
INTERVAL_MS = 25
WARMUP_S = 3.0
WINDOW_S = float(os.environ.get("MANY_VMS_WINDOW_S", "10"))
PAGE = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)


def cpu_ticks(pid):
    """(utime + stime of @pid's threads but the guest's vCPUs, that of the
    vCPUs (named vcpuN by backends/kvm/vmm.c)): what protecting costs, and
    what the guest runs."""
    own = guest = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                vcpu = f.read().startswith("vcpu")
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:      # a thread that ended
            continue
        t = int(fields[11]) + int(fields[12])
        if vcpu:
            guest += t
        else:
            own += t
    return own, guest


def pair_ticks(p):
    po, pg = cpu_ticks(p["pri"].pid)
    so, sg = cpu_ticks(p["rcv"].pid)
    return po + so, pg + sg


CACHE_KIB = 8192 * 4         # the compressor's page cache (common/
                             # compress.h RM_COMPRESS_CACHE_DEFAULT pages,
                             # a mapping of its own)


def rss_parts_kib(pid, guest_kib):
    """Resident KiB of @pid: (buffers, cache), where buffers is every
    anonymous mapping except the guest's RAM (or the replica's) and the
    compressor's cache, and cache is that cache (named mappings, "[anon:
    remus-guest-ram]" and "[anon:remus-compress-cache]"; where the kernel
    does not name them, the guest's is the one of exactly its size and the
    cache's the one of exactly its own).  File-backed mappings
    (the binary, the shared libraries) are left out: shared, and the same
    for any number of VMs."""
    buffers = cache = 0
    size = None
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()[0] if line.strip() else ""
            if "-" in first and ":" not in first:       # a mapping's line
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
            elif line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
                if name.startswith("/"):
                    continue
                # Named mappings (rm_name_mapping), else told by size.
                if name == "[anon:remus-guest-ram]" or (
                        not name.startswith("[anon:") and size == guest_kib):
                    continue
                if name == "[anon:remus-compress-cache]" or (
                        not name.startswith("[anon:") and size == CACHE_KIB):
                    cache += rss
                else:
                    buffers += rss
    return buffers, cache


def stats_lines(path):
    """(time of reading, [(epoch, pause_us)]) of a --stats-file."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0].isdigit():
                    out.append((int(p[0]), int(p[1])))
    except FileNotFoundError:
        pass
    return out


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def run_count(build, n, work, ns):
    remus = os.path.join(build, "remus")
    key = os.path.join(work, "bench.key")
    if not os.path.exists(key):
        sh(remus, "keygen", key)
    env = dict(os.environ, REMUS_RUN_DIR=os.path.join(work, "run"),
               REMUS_KEY_FILE=key)
    procs = []
    pairs = []
    try:
        for i in range(n):
            name = f"vm{i + 1}"
            tp, ts = f"bp{i}", f"bs{i}"
            for t in (tp, ts):
                sh("ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev",
                   t, "mode", "tap")
                sh("ip", "netns", "exec", ns, "ip", "link", "set", t, "up")
            cfg = os.path.join(work, f"{name}.cfg")
            with open(cfg, "w") as f:
                f.write(f"name = {name}\nmemory = {MEM_MIB}\nvcpus = 1\n"
                        f"image = {build}/guest/remus-guest.elf\n"
                        f"ip = 10.79.{i // 200}.{i % 200 + 2}\n"
                        f"netmask = 255.255.0.0\ntap = {tp}\n"
                        f'cmdline = "dirty_rate={RATE} dirty_wss={WSS}"\n')
            port = 7900 + i
            slog = open(os.path.join(work, f"{n}-{name}.sec"), "w")
            rcv = subprocess.Popen(
                ["ip", "netns", "exec", ns, remus, "receive", "--listen",
                 f"127.0.0.1:{port}", "--tap", ts, "--progress", "0",
                 "--heartbeat-timeout", "5000"],
                env=env, stdout=slog, stderr=subprocess.STDOUT)
            procs.append(rcv)
            pairs.append({"name": name, "cfg": cfg, "port": port,
                          "rcv": rcv,
                          "stats": os.path.join(work, f"{n}-{name}.stats")})
        time.sleep(0.5)
        for p in pairs:
            plog = open(os.path.join(work, f"{n}-{p['name']}.pri"), "w")
            p["pri"] = subprocess.Popen(
                ["ip", "netns", "exec", ns, remus, "protect", "-i",
                 str(INTERVAL_MS), "--progress", "0", "--heartbeat-timeout",
                 "5000", "--stats-file", p["stats"], p["cfg"],
                 f"127.0.0.1:{p['port']}"],
                env=env, stdout=plog, stderr=subprocess.STDOUT)
            procs.append(p["pri"])
        # Every pair protecting (a few acknowledged checkpoints each).
        deadline = time.monotonic() + 60 + 5 * n
        while time.monotonic() < deadline:
            if all(len(stats_lines(p["stats"])) >= 5 for p in pairs):
                break
            if any(p["pri"].poll() is not None or p["rcv"].poll() is not None
                   for p in pairs):
                break
            time.sleep(0.2)
        late = [p["name"] for p in pairs if len(stats_lines(p["stats"])) < 5]
        if late:
            return None, f"{len(late)} of {n} pairs did not reach " \
                         f"protection ({', '.join(late[:4])}; logs in {work})"
        time.sleep(WARMUP_S)
        t0 = time.monotonic()
        ep0 = {p["name"]: len(stats_lines(p["stats"])) for p in pairs}
        c0 = {p["name"]: pair_ticks(p) for p in pairs}
        time.sleep(WINDOW_S)
        t1 = time.monotonic()
        c1 = {p["name"]: pair_ticks(p) for p in pairs}
        guest_kib = MEM_MIB * 1024
        for side in ("pri", "rcv"):   # kept for a look at where it goes
            shutil.copy(f"/proc/{pairs[0][side].pid}/smaps",
                        os.path.join(work, f"{n}-vm1.{side}.smaps"))
        mem, cache = [], []
        for p in pairs:
            # The remus processes under `ip netns exec` (it execs remus).
            pb, pc = rss_parts_kib(p["pri"].pid, guest_kib)
            sb, sc = rss_parts_kib(p["rcv"].pid, guest_kib)
            mem.append(pb + sb)
            cache.append(pc + sc)
        rates, pauses, cpus, gcpus = [], [], [], []
        for p in pairs:
            lines = stats_lines(p["stats"])
            window = lines[ep0[p["name"]]:]
            rates.append(len(window) / (t1 - t0))
            pauses.extend(us for _, us in window)
            cpus.append(100.0 * (c1[p["name"]][0] - c0[p["name"]][0]) /
                        CLK_TCK / (t1 - t0))
            gcpus.append(100.0 * (c1[p["name"]][1] - c0[p["name"]][1]) /
                         CLK_TCK / (t1 - t0))
        dead = [p["name"] for p in pairs
                if p["pri"].poll() is not None or p["rcv"].poll() is not None]
        if dead:
            return None, f"{len(dead)} of {n} pairs ended during the " \
                         f"window ({', '.join(dead[:4])}; logs in {work})"
        return {
            "rate": sum(rates) / n,
            "p50": pct(pauses, 0.50) / 1000.0,
            "p99": pct(pauses, 0.99) / 1000.0,
            "cpu": sum(cpus) / n,
            "gcpu": sum(gcpus) / n,
            "mem_kib": sum(mem) / n,
            "cache_kib": sum(cache) / n,
        }, None
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for i in range(n):
            for t in (f"bp{i}", f"bs{i}"):
                sh("ip", "netns", "exec", ns, "ip", "link", "del", t,
                   check=False)


def main():
    if len(sys.argv) < 2:
        print("usage: many_vms.py BUILD [OUTDIR]", file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    outdir = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else \
        os.path.join(build, "bench")
    work = os.path.join(outdir, "many-vms")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ns = f"rmmany{os.getpid()}"
    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    results, failed = {}, []
    try:
        for n in COUNTS:
            r, why = run_count(build, n, work, ns)
            if r is None:
                failed.append((n, why))
            else:
                results[n] = r
    finally:
        sh("ip", "netns", "del", ns, check=False)

    dirty_kib = WSS * PAGE // 1024
    print()
    print("### Many VMs on one pair of hosts (goal 6)")
    print()
    print(f"1, 4 and 16 VMs protected at once on this host (each "
          f"{MEM_MIB} MiB, 1 vCPU, rewriting {WSS} pages at {RATE}/s: a "
          f"dirty set of {dirty_kib / 1024:.1f} MiB), one `remus protect` and "
          f"one `remus receive` per VM, -i {INTERVAL_MS}, keyed; a "
          f"{WINDOW_S:.0f} s window after a {WARMUP_S:.0f} s warm-up. CPU "
          f"is protect + receive per VM, in % of one core, without the "
          f"guest's own vCPU threads (the guest runs in the protect "
          f"process), and apart from it the guest's vCPU, for what the "
          f"host's cores are asked in all. Threads that ended within the "
          f"window are not counted. Memory per VM: "
          f"what both processes hold resident in anonymous memory outside "
          f"the guest's RAM and the replica's (staging, buffers, heaps, "
          f"thread stacks), and apart from it the compressor's page cache "
          f"(a fixed bound of {CACHE_KIB // 1024} MiB, resident as pages "
          f"are sent, as QEMU's XBZRLE cache); the binary and libraries "
          f"(shared) are left out.")
    print()
    print("| VMs | checkpoints/s per VM | pause p50 | pause p99 | p99 vs 1 VM "
          "| CPU per VM | CPU vs 1 VM | guest vCPU per VM | memory per VM "
          "| memory / dirty set | compression cache per VM |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    one = results.get(1)
    for n in COUNTS:
        r = results.get(n)
        if r is None:
            continue
        vs_p99 = f"{r['p99'] / one['p99']:.2f}" if one else "-"
        vs_cpu = f"{r['cpu'] / one['cpu']:.2f}" if one and one["cpu"] else "-"
        print(f"| {n} | {r['rate']:.1f} | {r['p50']:.2f} ms | "
              f"{r['p99']:.2f} ms | {vs_p99} | {r['cpu']:.1f}% | {vs_cpu} | "
              f"{r['gcpu']:.0f}% | "
              f"{r['mem_kib'] / 1024:.1f} MiB | "
              f"{r['mem_kib'] / dirty_kib:.1f} | "
              f"{r['cache_kib'] / 1024:.1f} MiB |")
    for n, why in failed:
        print(f"\nNOT MEASURED: {n} VMs: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
