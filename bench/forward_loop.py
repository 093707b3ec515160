#!/usr/bin/python3
# Forwarding benchmark: flamegate A (otlp -> batch -> otlphttp) in front of flamegate B,
# loaded from N client threads for T seconds; prints throughput and A's RSS and CPU.
"""Usage: /usr/bin/python3 bench/forward_loop.py [--threads N] [--seconds T]
                                              [--sink debug|file] [--payload FILE]

Posts the corpus eBPF payload ($FG_CORPUS/pprof/pyroscope_otel_ebpf_v1.10.otlp.pb), or a
synthetic request when the corpus is absent, over keep-alive connections. Reports
requests/s and samples/s accepted by A, A's peak RSS (VmHWM) and CPU seconds
(utime+stime), and samples per CPU-second. Not a test: it never fails on numbers.
"""
import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import fgharness as h  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # Fields after the ")" that closes comm; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def payload(path):
    if path:
        return h.read_file(path), "file %s" % path
    d = h.corpus_dir()
    if d is not None:
        p = os.path.join(d, EBPF_PB)
        if os.path.isfile(p):
            return h.read_file(p), "corpus eBPF payload"
    reqs = [h.synthetic_request(s, nsamples=20) for s in range(1)]
    return reqs[0].SerializeToString(), "synthetic request (corpus absent)"


def client(port, body, deadline, counts, lock):
    conn = None
    ok = bad = errors = 0
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", h.PATH_PROFILES, body,
                         {"Content-Type": "application/x-protobuf"})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                ok += 1
            else:
                bad += 1
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            errors += 1
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    with lock:
        counts["ok"] += ok
        counts["bad"] += bad
        counts["errors"] += errors


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sink", choices=("debug", "file"), default="debug",
                    help="B's exporter: debug (nothing kept) or file (in a tmpfs dir)")
    ap.add_argument("--payload", help="an ExportProfilesServiceRequest protobuf file")
    ap.add_argument("--liveview", action="store_true",
                    help="run A with the liveview extension (on a free port): its tap sees "
                         "every batch A forwards")
    args = ap.parse_args()
    if args.seconds > 300 or args.threads > 64:
        ap.error("keep it bounded: --seconds <= 300, --threads <= 64")

    body, what = payload(args.payload)
    samples = h.sample_count(h.canonical(body))
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="fg-bench-", dir=base)
    if args.sink == "file":
        b_cfg = h.sink_config(os.path.join(work, "out"))
    else:
        b_cfg = h.config({"otlp": h.otlp_receiver()}, {"debug": {"verbosity": "basic"}})
    b = h.Flamegate(b_cfg, "B", workdir=work)
    a_cfg = h.forward_config(b.port)
    if args.liveview:
        a_cfg["extensions"] = {"liveview": {"endpoint": "127.0.0.1:0"}}
        a_cfg["service"]["extensions"] = ["liveview"]
    a = h.Flamegate(a_cfg, "A", workdir=work)
    print("binary     %s" % h.binary())
    print("payload    %s: %d bytes, %d samples" % (what, len(body), samples))
    print("load       %d threads x %.0f s, B sink %s (%s)%s"
          % (args.threads, args.seconds, args.sink, work,
             ", A with liveview" if args.liveview else ""))
    try:
        counts = {"ok": 0, "bad": 0, "errors": 0}
        lock = threading.Lock()
        cpu0 = proc_cpu_seconds(a.proc.pid)
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        ts = [threading.Thread(target=client, args=(a.port, body, deadline, counts, lock))
              for _ in range(args.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        cpu = proc_cpu_seconds(a.proc.pid) - cpu0
        hwm = proc_status(a.proc.pid, "VmHWM")
        rps = counts["ok"] / elapsed
        print("requests   %d ok, %d non-200, %d connection errors in %.1f s"
              % (counts["ok"], counts["bad"], counts["errors"], elapsed))
        print("rate       %.1f requests/s, %.0f samples/s, %.1f MB/s in"
              % (rps, rps * samples, rps * len(body) / 1e6))
        print("A peak RSS %s" % hwm)
        print("A CPU      %.2f s (%.0f%% of one core)" % (cpu, 100 * cpu / elapsed))
        if cpu > 0:
            print("efficiency %.0f samples per CPU-second of A" % (counts["ok"] * samples / cpu))
        if args.liveview:
            lv_cpu = 0.0
            for tid in os.listdir("/proc/%d/task" % a.proc.pid):
                try:
                    with open("/proc/%d/task/%s/comm" % (a.proc.pid, tid)) as f:
                        if f.read().strip() != "fg-liveview":
                            continue
                    with open("/proc/%d/task/%s/stat" % (a.proc.pid, tid)) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    lv_cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                except OSError:
                    pass
            print("liveview   aggregator thread CPU %.2f s (%.1f%% of A's CPU)"
                  % (lv_cpu, 100 * lv_cpu / cpu if cpu else 0))
            m = re.search(r"listening on [^ ]*:(\d+) \(live view\)", a.log_text())
            o = json.loads(h.request(int(m.group(1)), "GET", "/api/overview").body)
            print("liveview   aggregated %d batches, %d samples; tap dropped %d batches"
                  % (o["aggregate"]["batches"], o["aggregate"]["samples"],
                     o["tap"]["dropped_batches"]))
        rc_a = a.stop(timeout=60)
        rc_b = b.stop(timeout=60)
        print("shutdown   A exit %d, B exit %d" % (rc_a, rc_b))
    finally:
        a.kill()
        b.kill()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
