# Pieces shared by the fault tests (test_faults*.py): an OTLP/HTTP sink that counts samples
# by id and can be taken down or told to answer 429/400, agents that post numbered samples
# and remember which ones were acknowledged, an RSS sampler, and the figures they print.
import collections
import gzip
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import threading
import time

import fgharness as h

PATH = h.PATH_PROFILES


def build_request(ids, pad=0, tag="agent"):
    """One resource/scope/profile; sample k has values [ids[k]] and, with pad > 0, a unique
    string attribute of pad bytes (so batches cannot share it through interning)."""
    b = h.ReqBuilder()
    rp = b.resource([("service.name", tag)])
    sp = b.scope(rp)
    p = b.profile(sp)
    loc = b.location(0x401000, None, [("main", "main.c", 1, 0)])
    st = b.stack([loc])
    for i in ids:
        attrs = [("pad", ("%016x" % i) * (pad // 16))] if pad else ()
        b.sample(p, st, values=[i], attrs=attrs)
    return b.req


def sample_ids(body, content_encoding=None):
    """ids (values[0]) of every sample in an OTLP protobuf request body."""
    if content_encoding == "gzip":
        body = gzip.decompress(body)
    req = h.pb().req()
    req.ParseFromString(body)
    out = []
    for rp in req.resource_profiles:
        for sp in rp.scope_profiles:
            for prof in sp.profiles:
                for s in prof.samples:
                    out.append(s.values[0] if s.values else -1)
    return out


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *a, **kw):
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.closed = False
        super().__init__(*a, **kw)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass  # flamegate cut a connection (killed, timed out): nothing to report

    def kill_connections(self):
        """Keep-alive connections would outlive the listening socket: cut them too."""
        self.closed = True
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Sink:
    """An OTLP/HTTP upstream on a fixed loopback port.

    policy(ids, attempt_time) -> (status, headers) decides each answer (default 200);
    budget() -> how many samples the sink may have taken so far (None: no limit) holds a
    request back until it fits, so the sink keeps pace with what it is offered, whatever the
    machine's speed; down() closes the port (connection refused), up() opens it again.
    received counts every id of every request answered 200."""

    def __init__(self, port=None, budget=None):
        self.port = port or h.free_port()
        self.budget = budget
        self.policy = None
        self.lock = threading.Lock()
        self.received = collections.Counter()
        self.attempts = []  # (time, first id, n, status)
        self._budget_lock = threading.Lock()
        self._taken = 0
        self._srv = None
        self._thread = None

    def _handler(self):
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if self.server.closed:
                    self.close_connection = True
                    return
                try:
                    ids = sample_ids(body, self.headers.get("Content-Encoding"))
                except Exception as e:  # a bad body is flamegate's bug: answer 400 loudly
                    self._reply(400, {}, ("undecodable: %s" % e).encode())
                    return
                status, headers = 200, {}
                if sink.policy:
                    status, headers = sink.policy(ids, time.monotonic())
                if status == 200:
                    sink._wait_budget(len(ids))
                with sink.lock:
                    sink.attempts.append((time.monotonic(), ids[0] if ids else None, len(ids),
                                          status))
                    if status == 200:
                        sink.received.update(ids)
                body_out = h.pb().resp().SerializeToString() if status == 200 else b"no"
                self._reply(status, headers, body_out)

            def _reply(self, status, headers, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
        return H

    def _wait_budget(self, n):
        while True:
            with self._budget_lock:
                fn = self.budget  # the test may lift it at any time
                budget = fn() if fn else None
                if budget is None or self._taken + n <= budget:
                    self._taken += n
                    return
            time.sleep(0.01)

    def up(self):
        for _ in range(100):
            try:
                self._srv = _Server(("127.0.0.1", self.port), self._handler())
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise h.HarnessError("sink cannot bind port %d" % self.port)
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self):
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv.kill_connections()
            self._srv = None

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.received)


class Agents:
    """n threads posting numbered samples to flamegate; acked holds the ids of requests
    answered 200; statuses counts answers (and 'timeout' / 'refused')."""

    def __init__(self, port_fn, n=4, per_request=20, pad=0, interval=0.0, start_id=1,
                 timeout=10.0, retry_refused=True, rate=None):
        self.port_fn = port_fn if callable(port_fn) else (lambda p=port_fn: p)
        self.n, self.per_request, self.pad, self.interval = n, per_request, pad, interval
        self.timeout = timeout
        self.rate = rate
        self.retry_refused = retry_refused
        self.lock = threading.Lock()
        self.next_id = start_id
        self.sent = 0
        self.acked = set()
        self.statuses = collections.Counter()
        self.retry_after_seen = 0
        self._stop = threading.Event()
        self._threads = []

    def _ids(self):
        with self.lock:
            a = self.next_id
            self.next_id += self.per_request
        return list(range(a, a + self.per_request))

    def post_once(self, ids=None):
        ids = ids or self._ids()
        body = build_request(ids, self.pad).SerializeToString()
        with self.lock:
            self.sent += len(ids)
        conn = http.client.HTTPConnection("127.0.0.1", self.port_fn(), timeout=self.timeout)
        try:
            conn.request("POST", PATH, body=body,
                         headers={"Content-Type": "application/x-protobuf"})
            r = conn.getresponse()
            r.read()
            status = r.status
            ra = r.getheader("Retry-After")
        except socket.timeout:
            status, ra = "timeout", None
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected):
            status, ra = "refused", None
        finally:
            conn.close()
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.acked.update(ids)
            if ra:
                self.retry_after_seen += 1
        return status

    def _run(self):
        # With rate (samples/s per agent) posts are paced on a schedule, not back to back.
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.post_once()
            if self.rate:
                next_t += self.per_request / float(self.rate)
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.monotonic()
            elif self.interval:
                self._stop.wait(self.interval)

    def start(self):
        for _ in range(self.n):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self._threads = []


class RssSampler:
    """Peak VmRSS of a process, sampled every period seconds."""

    def __init__(self, pid, period=0.05):
        self.pid, self.period = pid, period
        self.peak_kib = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                with open("/proc/%d/status" % self.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                pass
            self._stop.wait(self.period)

    def stop(self):
        self._stop.set()
        self._t.join(2)
        return self.peak_kib / 1024.0


def wait_received(sink, want_ids, timeout):
    """Waits until every id of want_ids has arrived at the sink; returns the received
    counter."""
    deadline = time.monotonic() + timeout
    while True:
        got = sink.snapshot()
        if all(i in got for i in want_ids) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def figures(test, sent, acked, received, extra=None, peak_rss_mib=None):
    """Prints (and appends to $FG_FAULT_FIGURES as JSON lines) the numbers of one test."""
    unique = len(received)
    total = sum(received.values())
    lost = len(set(acked) - set(received))
    row = {"test": test, "sent": sent, "acknowledged": len(acked), "received": total,
           "received_unique": unique, "duplicates": total - unique,
           "acknowledged_not_received": lost}
    if peak_rss_mib is not None:
        row["peak_rss_mib"] = round(peak_rss_mib, 1)
    row.update(extra or {})
    print("FIGURES " + json.dumps(row), flush=True)
    path = os.environ.get("FG_FAULT_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def sanitized_build():
    """True when the binary under test was built with FG_SANITIZE (RSS is not meaningful)."""
    b = h.build_dir()
    if not b:
        return "asan" in h.binary()
    try:
        with open(os.path.join(b, "CMakeCache.txt")) as f:
            return "FG_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def rng(seed_env="FG_FAULT_SEED"):
    seed = int(os.environ.get(seed_env, "0")) or random.randrange(1, 1 << 30)
    print("random seed %d (set %s to repeat)" % (seed, seed_env), flush=True)
    return random.Random(seed)


def gateway_config(sink_port, port=0, storage=None, fsync=None, batch="100ms", limiter=None,
                   queue=None, retry=None, shutdown_timeout=None, timeout="10s",
                   log_level="info"):
    """flamegate: otlp [-> memory_limiter] [-> batch] -> otlphttp to the sink; with
    storage (a directory), the exporter's queue lives in a file_storage extension."""
    cfg = {"receivers": {"otlp": h.otlp_receiver("127.0.0.1:%d" % port)}}
    procs = {}
    order = []
    if limiter:
        procs["memory_limiter"] = limiter
        order.append("memory_limiter")
    if batch:
        procs["batch"] = {"timeout": batch}
        order.append("batch")
    if procs:
        cfg["processors"] = procs
    q = {"queue_size": 1000, "num_consumers": 4}
    q.update(queue or {})
    r = {"initial_interval": "100ms", "max_interval": "1s", "max_elapsed_time": "0s"}
    r.update(retry or {})
    if storage:
        q["storage"] = "file_storage/q"
        ext = {"directory": storage}
        if fsync:
            ext["fsync"] = fsync
        cfg["extensions"] = {"file_storage/q": ext}
    cfg["exporters"] = {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % sink_port,
                                     "compression": "none", "timeout": timeout,
                                     "retry_on_failure": r, "sending_queue": q}}
    pl = {"receivers": ["otlp"], "exporters": ["otlphttp"]}
    if order:
        pl["processors"] = order
    svc = {"pipelines": {"profiles": pl}, "telemetry": {"logs": {"level": log_level}}}
    if storage:
        svc["extensions"] = ["file_storage/q"]
    if shutdown_timeout:
        svc["shutdown_timeout"] = shutdown_timeout
    cfg["service"] = svc
    return cfg
