#!/usr/bin/python3
# Aggregation benchmark: 60 s of 100 Hz CPU profiles from 20 services x 10 instances,
# posted as 1 s profiles through otlp -> aggregate (10 s window) -> file sink, against the
# same load through otlp -> batch -> file; prints bytes in and out, the ratio and samples/s.
"""Usage: /usr/bin/python3 bench/aggregate_bench.py [--seconds 60] [--services 20]
                                                  [--instances 10] [--threads 2]
                                                  [--mode both|aggregate|batch]
                                                  [--sample-timestamps]
                                                  [--dump-requests FILE]

Each instance sends one request per second of data time: one CPU profile (cpu/nanoseconds,
period 10 ms) whose start time is that second, holding 100 stack observations drawn from
its service's stack pool (Zipf-weighted, depths 8-32) and folded into samples, with its own
dictionary, like an agent upload. --sample-timestamps also gives each observation a
timestamp (the eBPF profiler's shape). Requests are generated up front, then posted as fast
as flamegate takes them from --threads keep-alive connections. The sink is the file
exporter (otlp_proto) on tmpfs: output bytes are the bytes of the requests it wrote.
Input and output are both uncompressed protobuf. Not a test: it never fails on numbers.
--dump-requests writes the requests (each a 4-byte little-endian length, then the body)
for the in-process bench bench/aggregate_bench.c, and posts nothing.
"""
import argparse
import zlib
import http.client
import os
import pickle
import random
import shutil
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import fgharness as h  # noqa: E402

T0 = 1700000000 * 10**9 - (1700000000 * 10**9) % (10 * 10**9)  # on a 10 s boundary
PERIOD = 10**7  # 100 Hz


def stack_pools(services, rng, stacks_per_service=300, funcs_per_service=400):
    """Per service: a list of stacks, each a list of (function, file, line) leaf-first,
    sharing prefixes the way real call trees do, and Zipf weights."""
    pools = []
    for s in range(services):
        funcs = [("svc%d::mod%d::fn_%d" % (s, i % 17, i), "src/svc%d/mod%d.go" % (s, i % 17),
                  10 + i) for i in range(funcs_per_service)]
        roots = [[funcs[rng.randrange(40)] for _ in range(rng.randint(4, 10))]
                 for _ in range(12)]
        stacks = []
        for _ in range(stacks_per_service):
            base = list(rng.choice(roots))
            depth = rng.randint(8, 32)
            while len(base) < depth:
                base.append(funcs[rng.randrange(funcs_per_service)])
            stacks.append(list(reversed(base)))  # leaf first
        weights = [1.0 / (i + 1) for i in range(stacks_per_service)]
        pools.append((stacks, weights))
    return pools


def one_request(service, instance, sec, pool, rng, sample_ts):
    stacks, weights = pool
    b = h.ReqBuilder()
    rp = b.resource([("service.name", "service-%d" % service),
                     ("service.instance.id", "service-%d-%d" % (service, instance)),
                     ("host.name", "host-%d" % (instance % 5)),
                     ("process.pid", 1000 + instance)])
    sp = b.scope(rp, name="bench-agent", version="1.0")
    start = T0 + sec * 10**9
    p = b.profile(sp, sample_type=("cpu", "nanoseconds"), period_type=("cpu", "nanoseconds"),
                  period=PERIOD, time_unix_nano=start, duration_nano=10**9)
    mapping = {"filename": "/usr/bin/service-%d" % service,
               "attrs": (("process.executable.build_id.gnu", "b%08x" % service),)}
    picks = rng.choices(range(len(stacks)), weights=weights, k=100)
    folded = {}
    for tick, k in enumerate(picks):
        folded.setdefault(k, []).append(start + tick * PERIOD)
    for k, ticks in folded.items():
        locs = [b.location(address=0x401000 + 16 * (zlib.crc32(fr[0].encode()) % 0x10000), mapping=mapping,
                           lines=[(fr[0], fr[1], fr[2], 0)]) for fr in stacks[k]]
        b.sample(p, b.stack(locs), values=[len(ticks) * PERIOD],
                 timestamps=ticks if sample_ts else ())
    return b.bytes(), len(folded)


def generate(args):
    rng = random.Random(1)
    pools = stack_pools(args.services, rng)
    reqs = []
    records = 0
    for sec in range(args.seconds):
        for s in range(args.services):
            for i in range(args.instances):
                body, n = one_request(s, i, sec, pools[s], rng, args.sample_timestamps)
                reqs.append(body)
                records += n
    return reqs, records


def poster(port, bodies, counts, lock):
    conn = None
    ok = bad = 0
    for body in bodies:
        for attempt in range(20):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", h.PATH_PROFILES, body,
                             {"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    ok += 1
                    break
                if r.status not in (429, 503):
                    bad += 1
                    break
                time.sleep(0.05 * (attempt + 1))
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        else:
            bad += 1
    if conn is not None:
        conn.close()
    with lock:
        counts["ok"] += ok
        counts["bad"] += bad


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return line.split(":", 1)[1].strip()
    return "?"


def run(mode, reqs, records, observations, args, work):
    out_dir = os.path.join(work, "out-" + mode)
    if mode == "aggregate":
        processors = {"aggregate": {"window": "10s"}}
    else:
        processors = {"batch": {"timeout": "200ms", "send_batch_size": 8192}}
    cfg = h.config({"otlp": h.otlp_receiver(max_body="64MiB")},
                   {"file": {"path": out_dir, "format": "otlp_proto"}},
                   processors=processors, pipeline_processors=list(processors),
                   log_level="info")
    fg = h.Flamegate(cfg, mode, workdir=work)
    in_bytes = sum(len(r) for r in reqs)
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()
    try:
        cpu0 = proc_cpu_seconds(fg.proc.pid)
        t0 = time.monotonic()
        # data time in order: thread k takes every k-th request of the sorted list
        ts = [threading.Thread(target=poster, args=(fg.port, reqs[k::args.threads], counts,
                                                    lock)) for k in range(args.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        posted = time.monotonic() - t0
        cpu = proc_cpu_seconds(fg.proc.pid) - cpu0
        hwm = proc_hwm(fg.proc.pid)
        rc = fg.stop(timeout=120)  # flushes what aggregate still holds
        total = time.monotonic() - t0
    finally:
        fg.kill()
    files = [os.path.join(out_dir, f) for f in os.listdir(out_dir)] if os.path.isdir(out_dir) \
        else []
    out_bytes = sum(os.path.getsize(f) for f in files)
    out_records = 0
    out_profiles = 0
    m = h.pb()
    for f in files:
        req = m.req()
        req.ParseFromString(h.read_file(f))
        for rp in req.resource_profiles:
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    out_profiles += 1
                    out_records += len(p.samples)
    print("%-9s  %d requests ok, %d failed; exit %d" % (mode, counts["ok"], counts["bad"], rc))
    print("  in       %d bytes, %d profiles, %d sample records, %d observations"
          % (in_bytes, len(reqs), records, observations))
    print("  out      %d bytes in %d files, %d profiles, %d sample records"
          % (out_bytes, len(files), out_profiles, out_records))
    if out_bytes:
        print("  ratio    %.1f : 1 (out = %.2f%% of in)" % (in_bytes / out_bytes,
                                                           100.0 * out_bytes / in_bytes))
    print("  rate     %.0f sample records/s, %.0f observations/s, %.1f MB/s in "
          "(posting took %.1f s; %.1f s to shutdown incl. flush)"
          % (records / posted, observations / posted, in_bytes / posted / 1e6, posted, total))
    print("  flamegate CPU %.2f s while posting (%.0f sample records per CPU-second), "
          "peak RSS %s" % (cpu, records / cpu if cpu > 0 else 0, hwm))
    return in_bytes, out_bytes


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=("both", "aggregate", "batch"), default="both")
    ap.add_argument("--sample-timestamps", action="store_true")
    ap.add_argument("--cache", help="pickle of the generated requests: read when present, "
                    "written otherwise (generation takes minutes)")
    ap.add_argument("--dump-requests", metavar="FILE",
                    help="write the requests for bench/aggregate_bench.c and stop")
    args = ap.parse_args()
    if args.seconds > 600 or args.services * args.instances > 2000 or args.threads > 16:
        ap.error("keep it bounded: --seconds <= 600, services x instances <= 2000, "
                 "--threads <= 16")
    t = time.monotonic()
    key = (args.seconds, args.services, args.instances, args.sample_timestamps)
    cached = None
    if args.cache and os.path.isfile(args.cache):
        with open(args.cache, "rb") as f:
            cached = pickle.load(f)
    if cached and cached[0] == key:
        reqs, records = cached[1], cached[2]
    else:
        reqs, records = generate(args)
        if args.cache:
            with open(args.cache, "wb") as f:
                pickle.dump((key, reqs, records), f)
    observations = 100 * len(reqs)
    if args.dump_requests:
        with open(args.dump_requests, "wb") as f:
            for body in reqs:
                f.write(struct.pack("<I", len(body)))
                f.write(body)
        print("wrote %d requests (%d sample records) to %s" % (len(reqs), records,
                                                              args.dump_requests))
        return
    print("binary     %s" % h.binary())
    print("load       %d s x %d services x %d instances = %d one-second profiles, 100 Hz, "
          "ready in %.1f s%s" % (args.seconds, args.services, args.instances, len(reqs),
                                     time.monotonic() - t,
                                     ", with sample timestamps" if args.sample_timestamps
                                     else ""))
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="fg-aggbench-", dir=base)
    try:
        modes = ("aggregate", "batch") if args.mode == "both" else (args.mode,)
        for mode in modes:
            run(mode, reqs, records, observations, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
