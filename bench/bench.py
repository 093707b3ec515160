#!/usr/bin/python3
# `make bench`: loads flamegate A (otlp -> batch -> otlphttp) with h2load over HTTP/1.1, h2c
# and gRPC, the upstream being bench/fg_sink (counts what arrives); prints one table.
"""Usage: /usr/bin/python3 bench/bench.py [--build DIR] [--seconds T] [--no-perf]

Per protocol, a fresh flamegate A and sink: idle RSS after start-up, then T seconds of
h2load with 8 requests in flight (HTTP/1.1: 8 connections; h2c and gRPC: 2 connections x 4
streams), then a wait until the sink has every sample. Reports requests/s and samples/s
accepted by A, A's CPU seconds per million samples (utime+stime from /proc/PID/stat, counted until the
sink has every sample, so queued work is included), peak
RSS (VmHWM), idle RSS (VmRSS before load), p50/p99 request latency (h2load --log-file),
and upstream bytes per input byte (sink wire bytes / request bytes sent to A).
Also the codec ceiling (bench/fg_codec_ceiling) and a perf profile of A when perf works.
Not a test: it never fails on numbers. Needs h2load (Debian nghttp2-client).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
PATH_HTTP = "/v1development/profiles"
PATH_GRPC = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
LISTEN_RE = re.compile(r"listening on [^ ]*:(\d+) \(([^)]*)\)")
SAMPLES_PER_REQUEST = 1000
# (protocol into A, A's exporter)
ROWS = (("http1", "otlphttp"), ("h2c", "otlphttp"), ("grpc", "otlphttp"), ("http1", "otlp"))


def row_name(key):
    proto, upstream = key
    name = {"http1": "HTTP/1.1", "h2c": "h2c", "grpc": "gRPC"}[proto]
    return "%s → %s" % (name, "OTLP/HTTP" if upstream == "otlphttp" else "OTLP/gRPC")


class BenchError(Exception):
    pass


def clk_tck():
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / clk_tck()


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": load,
            "kernel": os.uname().release}


class Proc:
    """A child process whose stderr+stdout lines are kept and scanned for ports."""

    def __init__(self, argv, name, cwd):
        self.name = name
        self.lines = []
        self.ports = {}
        self.lock = threading.Lock()
        self.ev = threading.Event()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=cwd)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in iter(self.p.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self.lock:
                self.lines.append(line)
                m = LISTEN_RE.search(line)
                if m:
                    self.ports[m.group(2)] = int(m.group(1))
                    self.ev.set()
                elif line.startswith("listening on 127.0.0.1:"):
                    self.ports["sink"] = int(line.rsplit(":", 1)[1])
                    self.ev.set()
        self.ev.set()

    def wait_ports(self, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(any(w in k for k in self.ports) for w in want):
                    return dict(self.ports)
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise BenchError("%s: no listening line for %s (exit %s):\n%s"
                         % (self.name, want, self.p.poll(), "".join(self.lines[-20:])))

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.t.join(2)


def yaml_config(sink_port, grpc, upstream="otlphttp"):
    protocols = "      http:\n        endpoint: 127.0.0.1:0\n"
    if grpc:
        protocols += "      grpc:\n        endpoint: 127.0.0.1:0\n"
    return ("receivers:\n  otlp:\n    protocols:\n" + protocols +
            "processors:\n  batch:\n    timeout: 200ms\n    send_batch_size: 8192\n"
            "exporters:\n  %s:\n    endpoint: http://127.0.0.1:%d\n"
            "    compression: gzip\n"
            "service:\n  telemetry:\n    logs:\n      level: info\n"
            "  pipelines:\n    profiles:\n      receivers: [otlp]\n"
            "      processors: [batch]\n      exporters: [%s]\n"
            % (upstream, sink_port, upstream))


def sink_stats(port):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/stats")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    return {k: int(v) for k, v in (line.split() for line in body.splitlines() if line)}


def h2load_argv(proto, port, work, seconds=None, n=None):
    if proto == "grpc":
        url = "http://127.0.0.1:%d%s" % (port, PATH_GRPC)
        data = os.path.join(work, "payload.grpc")
        hdrs = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        url = "http://127.0.0.1:%d%s" % (port, PATH_HTTP)
        data = os.path.join(work, "payload.pb")
        hdrs = ["-H", "content-type: application/x-protobuf"]
    argv = ["h2load", "-d", data] + hdrs
    argv += ["--h1", "-c", "8", "-m", "1"] if proto == "http1" else ["-c", "2", "-m", "4"]
    if seconds:
        argv += ["-D", str(seconds)]
    else:
        argv += ["-n", str(n)]
    return argv + [url]


def probe(proto, port, work):
    """One short h2load run; None when the protocol works, else the reason."""
    argv = h2load_argv(proto, port, work, n=8)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    m = re.search(r"status codes: (\d+) 2xx", r.stdout)
    if r.returncode == 0 and m and int(m.group(1)) == 8:
        return None
    m = re.search(r"requests: .*", r.stdout)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()][-1:]
    return "h2load: %s" % (m.group(0) if m else " ".join(err) or "exit %d" % r.returncode)


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


class HttpSink:
    """fg_sink in its own process."""

    def __init__(self, tools, work):
        self.proc = Proc([tools["fg_sink"]], "sink", work)
        self.port = self.proc.wait_ports(["sink"])["sink"]

    def stats(self):
        return sink_stats(self.port)

    def stop(self):
        self.proc.stop()


class FlamegateGrpcSink:
    """Flamegate B (OTLP/gRPC receiver -> debug exporter) as the gRPC upstream. Nothing
    slow sits in the data path: B logs to a file, samples come from its "batch: ... N
    samples" lines, wire bytes from the kernel's per-socket counters (ss -ti)."""

    BATCH_RE = re.compile(r"debug: batch: \d+ resources, \d+ profiles, (\d+) samples")

    def __init__(self, tools, work):
        cfg = os.path.join(work, "b.yaml")
        with open(cfg, "w") as f:
            f.write("receivers:\n  otlp:\n    protocols:\n      grpc:\n"
                    "        endpoint: 127.0.0.1:0\n        max_recv_msg_size_mib: 64\n"
                    "exporters:\n  debug:\n    verbosity: basic\n"
                    "service:\n  telemetry:\n    metrics:\n      level: none\n"
                    "  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                    "      exporters: [debug]\n")
        self.log_path = os.path.join(work, "b.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen([tools["flamegate"], "--config", cfg], cwd=work,
                                  stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        self.port = None
        deadline = time.monotonic() + 10
        while self.port is None and time.monotonic() < deadline and self.p.poll() is None:
            with open(self.log_path) as f:
                for m in LISTEN_RE.finditer(f.read()):
                    if "gRPC" in m.group(2):
                        self.port = int(m.group(1))
            time.sleep(0.02)
        if self.port is None:
            self.stop()
            raise BenchError("flamegate B: no gRPC listener:\n" + open(self.log_path).read())
        self.proxy = None
        if shutil.which("ss") is None:  # iproute2 missing: count in a pass-through
            import grpc_sink
            self.proxy = grpc_sink.CountingProxy(self.port)
            self.port = self.proxy.port
        self.b_port = self.port if not self.proxy else self.proxy.upstream_port

    def wire_bytes(self):
        if self.proxy:
            return self.proxy.bytes_in()
        r = subprocess.run(["ss", "-tinH", "state", "established",
                            "( sport = :%d )" % self.b_port], capture_output=True, text=True)
        return sum(int(m) for m in re.findall(r"bytes_received:(\d+)", r.stdout))

    def stats(self):
        samples = requests = 0
        with open(self.log_path, errors="replace") as f:
            for m in self.BATCH_RE.finditer(f.read()):
                requests += 1
                samples += int(m.group(1))
        return {"requests": requests, "samples": samples, "wire_bytes": self.wire_bytes()}

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def run_protocol(proto, tools, work, seconds, grpc_ok, upstream="otlphttp"):
    """Returns a result dict, or {"na": reason}."""
    if upstream == "otlp" and grpc_ok:
        sink = FlamegateGrpcSink(tools, work)
    elif upstream == "otlp":
        import grpc_sink
        sink = grpc_sink.GrpcSink()
    else:
        sink = HttpSink(tools, work)
    a = None
    try:
        sport = sink.port
        cfg = os.path.join(work, "a-%s-%s.yaml" % (proto, upstream))
        with open(cfg, "w") as f:
            f.write(yaml_config(sport, grpc_ok, upstream))
        a = Proc([tools["flamegate"], "--config", cfg], "A", work)
        ports = a.wait_ports(["HTTP"] + (["gRPC"] if grpc_ok else []))
        http_port = next(p for k, p in ports.items() if "HTTP" in k)
        grpc_port = next((p for k, p in ports.items() if "gRPC" in k), None)
        port = grpc_port if proto == "grpc" else http_port
        time.sleep(1.0)
        idle_kb = status_kb(a.pid, "VmRSS")
        why = probe(proto, port, work)
        if why:
            return {"na": "receiver has no %s yet" % ("gRPC" if proto == "grpc" else proto),
                    "detail": why}
        # The probe's samples must have left A before the counters are read.
        deadline = time.monotonic() + 15
        while (sink.stats()["samples"] < 8 * SAMPLES_PER_REQUEST and
               time.monotonic() < deadline):
            time.sleep(0.05)
        before = sink.stats()
        # One file per row: h2load appends to an existing log file.
        log = os.path.join(work, "lat-%s-%s.tsv" % (proto, upstream))
        if os.path.exists(log):
            os.unlink(log)
        cpu0 = cpu_seconds(a.pid)
        t0 = time.monotonic()
        r = subprocess.run(h2load_argv(proto, port, work, seconds=seconds) +
                           ["--log-file", log], capture_output=True, text=True,
                           timeout=seconds + 60)
        elapsed = time.monotonic() - t0
        lat, ok = [], 0
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1].startswith("2"):
                    ok += 1
                    lat.append(int(parts[2]) / 1000.0)
        lat.sort()
        sent = ok * SAMPLES_PER_REQUEST
        # Wait for the batches still in A's pipeline to reach the sink: A's CPU is counted
        # until then, so work deferred in the queue is not left out.
        deadline = time.monotonic() + 30
        while True:
            after = sink.stats()
            got = after["samples"] - before["samples"]
            if got >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        drain = time.monotonic() - t0 - elapsed
        cpu = cpu_seconds(a.pid) - cpu0
        hwm_kb = status_kb(a.pid, "VmHWM")
        in_bytes = ok * os.path.getsize(os.path.join(
            work, "payload.grpc" if proto == "grpc" else "payload.pb"))
        res = {
            "requests": ok, "elapsed": elapsed, "rps": ok / elapsed,
            "sps": sent / elapsed, "cpu": cpu,
            "cpu_per_m": cpu / (sent / 1e6) if sent else float("nan"),
            "hwm_mb": hwm_kb / 1024.0, "idle_mb": idle_kb / 1024.0,
            "p50": percentile(lat, 0.50), "p99": percentile(lat, 0.99),
            "up_ratio": (after["wire_bytes"] - before["wire_bytes"]) / in_bytes
            if in_bytes else float("nan"),
            "up_requests": after["requests"] - before["requests"],
            "delivered": got / sent if sent else float("nan"),
            "h2load_rc": r.returncode,
            "cpu_share": cpu / (elapsed + drain), "drain": drain,
        }
        if r.returncode != 0:
            res["note"] = "h2load exit %d" % r.returncode
        with a.lock:
            warns = [ln.strip() for ln in a.lines if " warn " in ln or " error " in ln]
        if warns:
            res["warnings"] = (len(warns), warns[0][:300])
        return res
    finally:
        if a:
            a.stop()
        sink.stop()


def perf_profile(proto, tools, work, seconds, grpc_ok):
    """Flat perf profile of A under load: [(percent, symbol, dso)], or a reason string."""
    if shutil.which("perf") is None:
        return "perf not installed (Debian linux-perf)"
    sink = Proc([tools["fg_sink"]], "sink", work)
    a = None
    try:
        sport = sink.wait_ports(["sink"])["sink"]
        cfg = os.path.join(work, "a-perf.yaml")
        with open(cfg, "w") as f:
            f.write(yaml_config(sport, grpc_ok))
        a = Proc([tools["flamegate"], "--config", cfg], "A", work)
        ports = a.wait_ports(["HTTP"] + (["gRPC"] if grpc_ok else []))
        port = next(p for k, p in ports.items()
                    if ("gRPC" in k) == (proto == "grpc") and ("HTTP" in k or "gRPC" in k))
        data = os.path.join(work, "perf.data")
        rec = subprocess.Popen(["perf", "record", "-F", "499", "-o", data, "-p", str(a.pid),
                                "--", "sleep", str(seconds)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        subprocess.run(h2load_argv(proto, port, work, seconds=seconds), capture_output=True,
                       timeout=seconds + 60)
        _, err = rec.communicate(timeout=seconds + 30)
        if rec.returncode != 0:
            return "perf record failed: %s" % err.decode(errors="replace").strip()[-200:]
        def report(sort):
            rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                  "--sort", sort, "--percent-limit", "0.5"],
                                 capture_output=True, text=True, timeout=120)
            rows = []
            for line in rep.stdout.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
                if m:
                    rows.append((float(m.group(1)), m.group(2)))
            return rows
        dsos = report("dso")
        syms = [(p, re.split(r"\s{2,}", re.sub(r"^\[[.k]\]\s+", "", s))[0])
                for p, s in report("symbol")]
        if not dsos:
            return "perf report gave no rows"
        return {"dso": dsos, "symbol": syms}
    finally:
        if a:
            a.stop()
        sink.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--no-perf", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 60:
        ap.error("--seconds: 1..60")
    if shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install nghttp2-client (scripts/install-deps.sh "
                 "--test)")
    args.build = os.path.abspath(args.build)
    tools = {"flamegate": os.path.join(args.build, "flamegate")}
    for t in ("fg_sink", "fg_payload", "fg_codec_ceiling"):
        tools[t] = os.path.join(args.build, "bench", t)
    for t, p in tools.items():
        if not os.access(p, os.X_OK):
            sys.exit("%s not built: %s (make bench builds it)" % (t, p))

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="fg-bench-", dir=base)
    t_start = time.monotonic()
    try:
        m0 = machine()
        print("machine: %d cores, %s, kernel %s, load average before: %s"
              % (m0["nproc"], m0["cpu"], m0["kernel"], m0["loadavg"]), flush=True)
        out = subprocess.run([tools["fg_payload"], work], capture_output=True, text=True,
                             check=True).stdout.strip()
        print(out, flush=True)
        ceil = subprocess.run([tools["fg_codec_ceiling"], "2"], capture_output=True,
                              text=True, check=True).stdout
        ceilings = {}
        for line in ceil.splitlines():
            mm = re.match(r"ceiling (.+?)\s+([\d.]+) requests/s\s+([\d.]+) samples/s", line)
            if mm:
                ceilings[mm.group(1)] = float(mm.group(3))
        for k, v in ceilings.items():
            print("codec ceiling (1 core): %-30s %10.0f samples/s" % (k, v), flush=True)

        # Does this flamegate's receiver take a grpc protocol block at all?
        chk = os.path.join(work, "chk.yaml")
        with open(chk, "w") as f:
            f.write(yaml_config(9, True))
        v = subprocess.run([tools["flamegate"], "validate", "--config", chk],
                           capture_output=True, text=True, timeout=30)
        grpc_ok = v.returncode == 0
        results = {}
        for key in ROWS:
            proto, upstream = key
            if proto == "grpc" and not grpc_ok:
                results[key] = {"na": "receiver has no gRPC yet"}
                continue
            try:
                results[key] = run_protocol(proto, tools, work, args.seconds, grpc_ok,
                                            upstream)
            except BenchError as e:
                if proto != "grpc":
                    raise
                results[key] = {"na": "receiver has no gRPC yet (%s)"
                                % str(e).splitlines()[0][:80]}
                grpc_ok = False
            r = results[key]
            if "na" in r:
                print("%-22s n/a: %s %s" % (row_name(key), r["na"], r.get("detail", "")),
                      flush=True)
            else:
                print("%-22s %.0f requests/s, %.0f samples/s" % (row_name(key), r["rps"],
                                                                 r["sps"]), flush=True)

        prof = None
        if not args.no_perf:
            pp = "grpc" if "na" not in results[("grpc", "otlphttp")] else "http1"
            prof = (pp, perf_profile(pp, tools, work, min(args.seconds, 5), grpc_ok))
        m1 = machine()

        names = {"http1": "HTTP/1.1", "h2c": "h2c", "grpc": "gRPC"}
        print()
        print("| protocol in → out | requests/s | samples/s | CPU s / M samples | "
              "peak RSS MiB | idle RSS MiB | p50 ms | p99 ms | upstream B / input B | "
              "delivered |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in ROWS:
            r = results[key]
            if "na" in r:
                print("| %s | n/a: %s | | | | | | | | |" % (row_name(key), r["na"]))
                continue
            print("| %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.1f | %.1f | %.3f | %.1f%% |"
                  % (row_name(key), r["rps"], r["sps"], r["cpu_per_m"], r["hwm_mb"],
                     r["idle_mb"], r["p50"], r["p99"], r["up_ratio"], 100 * r["delivered"]))
        # Only rows whose upstream took everything count as end-to-end throughput.
        best = max((r["sps"] for r in results.values()
                    if "na" not in r and r["delivered"] >= 0.99), default=0)
        fc = ceilings.get("flamegate decode+encode")
        pc = ceilings.get("protobuf-c unpack+pack")
        print()
        print("codec ceiling (one core, one process): protobuf-c unpack+pack %.0f samples/s; "
              "flamegate decode+encode %.0f; + gzip %.0f"
              % (pc or 0, fc or 0, ceilings.get("flamegate decode+encode+gzip", 0)))
        if pc:
            g = results[("grpc", "otlphttp")]
            if "na" not in g:
                print("gRPC end to end: %.0f%% of the protobuf-c ceiling (target >= 50%%)"
                      % (100 * g["sps"] / pc))
            print("best end to end: %.0f%% of the protobuf-c ceiling" % (100 * best / pc))
        for key in ROWS:
            r = results[key]
            if "na" not in r:
                if r["delivered"] >= 0.99:
                    tail = "the sink had everything %.1f s after the load ended" % r["drain"]
                else:
                    tail = ("the sink had only %.0f%% of the samples %.0f s after the load "
                            "ended: the upstream was slower than A's intake"
                            % (100 * r["delivered"], r["drain"]))
                print("%s: A used %.0f%% of one core; %d upstream requests for %d inputs; %s"
                      % (row_name(key), 100 * r["cpu_share"], r["up_requests"],
                         r["requests"], tail))
                if "warnings" in r:
                    print("  A logged %d warnings/errors, the first: %s" % r["warnings"])
        if prof:
            pp, rows = prof
            print()
            if isinstance(rows, str):
                print("profile: %s" % rows)
            else:
                print("where A's time goes (%s load, perf, self time):" % names[pp])
                print("  by object: " + ", ".join("%s %.1f%%" % (d, p)
                                               for p, d in rows["dso"][:6]))
                for pct, sym in rows["symbol"][:15]:
                    print("  %5.1f%%  %s" % (pct, sym[:70]))
        print()
        print("load: 8 requests in flight (HTTP/1.1: 8 connections; h2c/gRPC: 2 x 4 streams), "
              "%d s per row; A = otlp -> batch -> otlphttp (gzip) -> fg_sink, or -> otlp "
              "(gRPC, gzip) -> %s for the last row"
              % (args.seconds, "flamegate B (gRPC receiver -> debug)" if grpc_ok
                 else "grpcio sink"))
        print("load average after: %s; total bench time %.0f s"
              % (m1["loadavg"], time.monotonic() - t_start))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
