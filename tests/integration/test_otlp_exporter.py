# The otlp (OTLP/gRPC) exporter against a real gRPC server: Debian's python3-grpcio serving
# ProfilesService/Export (stubs compiled at test time with python3-grpc-tools), behind a
# TCP pass-through that records the HTTP/2 bytes so the test can see the message framing.
import concurrent.futures
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"
SERVICE = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"

try:
    import grpc
except ImportError as e:  # a missing test dependency is an error, not a skip
    raise h.HarnessError("python3-grpcio missing (scripts/install-deps.sh --test): %s" % e)

def stubs():
    """(message classes, generated ProfilesService servicer module)."""
    return h.pb(), g.stubs()


def status_details(code, message, retry_delay=None):
    """google.rpc.Status bytes for grpc-status-details-bin, with RetryInfo when asked."""
    m = h.pb()
    from google.protobuf import any_pb2, duration_pb2
    rpc = sys.modules[m.status.__module__]
    st = m.status(code=code, message=message)
    if retry_delay is not None:
        ri = rpc.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(retry_delay), nanos=int((retry_delay % 1) * 1e9)))
        st.details.append(any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo",
                                      value=ri.SerializeToString()))
    return st.SerializeToString()


class Upstream:
    """A grpcio ProfilesService. script: answers for the first calls, each one of
    "ok", "partial", ("unavailable", delay|None), ("exhausted", delay|None), "invalid";
    later calls get "ok"."""

    def __init__(self, script=(), port=0):
        m, mod = stubs()
        self.m = m
        self.lock = threading.Lock()
        self.calls = []  # dicts: time, answer, request bytes, metadata, peer, remaining
        self.script = list(script)
        up = self

        class Servicer(mod.ProfilesServiceServicer):
            def Export(self, request, context):
                return up.export(request, context)

        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
        mod.add_ProfilesServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:%d" % port)
        if self.port == 0:
            raise h.HarnessError("grpc server could not bind 127.0.0.1:%d" % port)
        self.server.start()

    def export(self, request, context):
        with self.lock:
            answer = self.script.pop(0) if self.script else "ok"
            self.calls.append({"time": time.monotonic(), "answer": answer,
                               "body": request.SerializeToString(),
                               "metadata": dict(context.invocation_metadata()),
                               "peer": context.peer(),
                               "remaining": context.time_remaining()})
        if answer == "ok":
            return self.m.resp()
        if answer == "partial":
            r = self.m.resp()
            r.partial_success.rejected_profiles = 2
            r.partial_success.error_message = "two profiles had no samples"
            return r
        kind, delay = (answer, None) if isinstance(answer, str) else answer
        code, text = {"unavailable": (grpc.StatusCode.UNAVAILABLE, "try later"),
                      "exhausted": (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down"),
                      "invalid": (grpc.StatusCode.INVALID_ARGUMENT, "bad stack index 7")}[kind]
        context.set_trailing_metadata(
            (("grpc-status-details-bin", status_details(code.value[0], text, delay)),))
        context.abort(code, text)

    def wait_calls(self, n, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls) >= n:
                    return list(self.calls)
            time.sleep(0.02)
        with self.lock:
            return list(self.calls)

    def stop(self):
        self.server.stop(0)


class WireTap:
    """TCP pass-through to 127.0.0.1:upstream_port recording the client's bytes per
    connection, so the test can read the HTTP/2 DATA frames flamegate sent."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.streams = []  # bytearray per accepted connection
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream_port))
            rec = bytearray()
            with self.lock:
                self.streams.append(rec)
            threading.Thread(target=self._pump, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, None), daemon=True).start()

    def _pump(self, src, dst, rec):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if rec is not None:
                    with self.lock:
                        rec.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if rec is None:  # the other pump has stopped too, or will on the shutdown
            time.sleep(0.1)
            src.close()
            dst.close()

    def grpc_messages(self):
        """(compressed_flag, payload) of every gRPC message in the recorded DATA frames."""
        out = []
        with self.lock:
            streams = [bytes(s) for s in self.streams]
        for raw in streams:
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            if not raw.startswith(preface):
                raise AssertionError("connection did not start with the HTTP/2 preface "
                                     "(h2c prior knowledge expected): %r" % raw[:24])
            data = {}  # stream id -> bytes
            i = len(preface)
            while i + 9 <= len(raw):
                n = int.from_bytes(raw[i:i + 3], "big")
                ftype, flags = raw[i + 3], raw[i + 4]
                sid = int.from_bytes(raw[i + 5:i + 9], "big") & 0x7fffffff
                payload = raw[i + 9:i + 9 + n]
                i += 9 + n
                if ftype == 0:  # DATA
                    if flags & 0x8:  # PADDED
                        payload = payload[1:len(payload) - payload[0]]
                    data[sid] = data.get(sid, b"") + payload
            for body in data.values():
                j = 0
                while j + 5 <= len(body):
                    ln = int.from_bytes(body[j + 1:j + 5], "big")
                    out.append((body[j], body[j + 5:j + 5 + ln]))
                    j += 5 + ln
        return out

    def stop(self):
        self.sock.close()


def exporter_config(port, compression="gzip", headers=None, timeout="7s", consumers=2,
                    scheme="http://", insecure=None, log_level="info", extra=None):
    exp = {"endpoint": "%s127.0.0.1:%d" % (scheme, port), "compression": compression,
           "timeout": timeout,
           "retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms",
                                "max_elapsed_time": "20s"},
           "sending_queue": {"num_consumers": consumers, "queue_size": 100}}
    if headers:
        exp["headers"] = headers
    if insecure is not None:
        exp["tls"] = {"insecure": insecure}
    exp.update(extra or {})
    return h.config({"otlp": h.otlp_receiver()}, {"otlp": exp}, log_level=log_level)


class OtlpExporterTest(h.FgTestCase):
    def setUp(self):
        super().setUp()
        self.ups = []

    def tearDown(self):
        for u in self.ups:
            u.stop()
        super().tearDown()

    def upstream(self, script=(), port=0):
        u = Upstream(script, port)
        self.ups.append(u)
        return u

    def post(self, a, req):
        body = req if isinstance(req, bytes) else req.SerializeToString()
        self.assertOk(h.post(a.port, body), "POST to A")

    def received(self, calls):
        total = h.canonical_sum([c["body"] for c in calls if c["answer"] in ("ok", "partial")])
        return total

    def wait_samples(self, up, want, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(up.wait_calls(0))
            if h.sample_count(got) >= h.sample_count(want):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        return self.received(up.wait_calls(0))

    def test_a_intact_gzip_metadata(self):
        up = self.upstream()
        tap = WireTap(up.port)
        self.addCleanup(tap.stop)
        a = self.start(exporter_config(tap.port, headers={"X-Tenant": "team-a",
                                                          "authorization": "Bearer t0k"}),
                       "A")
        reqs = [h.synthetic_request(i, nsamples=4) for i in range(1, 4)]
        for r in reqs:
            self.post(a, r)
        want = h.canonical_sum(reqs)
        if h.corpus_dir() is not None:
            ebpf = h.read_file(h.corpus_file(EBPF_PB))
            self.post(a, ebpf)
            want += h.canonical(ebpf)
        got = self.wait_samples(up, want)
        self.assertSameData(want, got, "what the gRPC server received")
        calls = up.wait_calls(0)
        for c in calls:
            md = c["metadata"]
            self.assertEqual(md.get("x-tenant"), "team-a", "metadata %r" % md)
            self.assertEqual(md.get("authorization"), "Bearer t0k")
            self.assertIn("flamegate/", md.get("user-agent", ""))
            # grpc-timeout 7s reached the server as the call's deadline
            self.assertIsNotNone(c["remaining"], "no deadline on the call")
            self.assertTrue(0 < c["remaining"] <= 7.0, "deadline %r" % c["remaining"])
        msgs = tap.grpc_messages()
        self.assertEqual(len(msgs), len(calls), "one gRPC message per Export call")
        for flag, payload in msgs:
            self.assertEqual(flag, 1, "compressed flag not set (gzip is the default)")
            self.assertEqual(payload[:2], b"\x1f\x8b", "message is not gzip")
        self.stop_clean(a)

    def test_b_no_compression_and_insecure_endpoint(self):
        up = self.upstream()
        tap = WireTap(up.port)
        self.addCleanup(tap.stop)
        a = self.start(exporter_config(tap.port, compression="none", scheme="",
                                       insecure=True), "A")
        r = h.synthetic_request(9)
        self.post(a, r)
        want = h.canonical(r)
        self.assertSameData(want, self.wait_samples(up, want), "plain message")
        msgs = tap.grpc_messages()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0][0], 0, "compressed flag set with compression: none")
        self.assertEqual(h.canonical(msgs[0][1]), want, "the message on the wire")
        self.stop_clean(a)

    def test_c_unavailable_is_retried(self):
        up = self.upstream(["unavailable", "unavailable", ("unavailable", 1.0)])
        a = self.start(exporter_config(up.port, consumers=1), "A")
        r = h.synthetic_request(21)
        self.post(a, r)
        calls = up.wait_calls(4)
        self.assertEqual(len(calls), 4, "UNAVAILABLE x3 then OK: want 4 calls" + self.logs())
        self.assertEqual(calls[3]["answer"], "ok")
        for c in calls:
            self.assertEqual(c["body"], calls[0]["body"], "a retry resends the same request")
        self.assertSameData(h.canonical(r), h.canonical(calls[3]["body"]), "retried data")
        # RetryInfo 1 s on the third answer: waited at least that, not the 100-200 ms backoff
        gap = calls[3]["time"] - calls[2]["time"]
        self.assertGreaterEqual(gap, 0.95, "RetryInfo.retry_delay ignored (gap %.2fs)" % gap)
        self.assertLess(calls[1]["time"] - calls[0]["time"], 0.9, "backoff too long")
        self.stop_clean(a)

    def test_d_resource_exhausted_needs_retry_info(self):
        up = self.upstream([("exhausted", None), ("exhausted", 0.5)])
        a = self.start(exporter_config(up.port, consumers=1), "A")
        r1, r2 = h.synthetic_request(31), h.synthetic_request(32)
        self.post(a, r1)
        up.wait_calls(1)
        time.sleep(0.8)  # a retry would come within 200 ms
        calls = up.wait_calls(1)
        self.assertEqual(len(calls), 1, "RESOURCE_EXHAUSTED without RetryInfo was retried")
        self.post(a, r2)
        calls = up.wait_calls(3)
        self.assertEqual(len(calls), 3, "RESOURCE_EXHAUSTED with RetryInfo not retried"
                         + self.logs())
        self.assertEqual(calls[2]["answer"], "ok")
        self.assertSameData(h.canonical(r2), h.canonical(calls[2]["body"]), "retried data")
        self.assertGreaterEqual(calls[2]["time"] - calls[1]["time"], 0.45)
        self.assertIn("RESOURCE_EXHAUSTED", a.log_text())
        self.stop_clean(a)

    def test_e_invalid_argument_is_dropped(self):
        up = self.upstream(["invalid"])
        a = self.start(exporter_config(up.port, consumers=1), "A")
        self.post(a, h.synthetic_request(41))
        up.wait_calls(1)
        time.sleep(0.8)
        self.assertEqual(len(up.wait_calls(1)), 1, "INVALID_ARGUMENT was retried")
        log = a.log_text()
        self.assertIn("INVALID_ARGUMENT", log)
        self.assertIn("bad stack index 7", log, "grpc-message not reported")
        # the exporter goes on with the next batch
        r = h.synthetic_request(42)
        self.post(a, r)
        calls = up.wait_calls(2)
        self.assertEqual(len(calls), 2)
        self.assertSameData(h.canonical(r), h.canonical(calls[1]["body"]), "next batch")
        self.stop_clean(a)

    def test_f_partial_success_is_logged(self):
        up = self.upstream(["partial"])
        a = self.start(exporter_config(up.port), "A")
        self.post(a, h.synthetic_request(51))
        up.wait_calls(1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "rejected 2" not in a.log_text():
            time.sleep(0.05)
        self.assertIn("server rejected 2 profiles: two profiles had no samples", a.log_text())
        time.sleep(0.4)
        self.assertEqual(len(up.wait_calls(1)), 1, "partial success must not be retried")
        self.stop_clean(a)

    def test_g_server_down_then_up(self):
        port = h.free_port()
        a = self.start(exporter_config(port), "A")
        r = h.synthetic_request(61)
        self.post(a, r)
        time.sleep(0.6)  # connection refused a few times meanwhile
        up = self.upstream(port=port)
        want = h.canonical(r)
        self.assertSameData(want, self.wait_samples(up, want), "after the server came up")
        self.stop_clean(a)

    def test_h_connections_are_reused(self):
        up = self.upstream()
        a = self.start(exporter_config(up.port, consumers=2), "A")
        reqs = [h.synthetic_request(70 + i) for i in range(24)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            list(ex.map(lambda r: self.post(a, r), reqs))
        want = h.canonical_sum(reqs)
        self.assertSameData(want, self.wait_samples(up, want), "24 requests")
        peers = {c["peer"] for c in up.wait_calls(0)}
        self.assertLessEqual(len(peers), 2, "more connections than workers: %s" % peers)
        self.stop_clean(a)

    def test_h2_reconnect_after_server_restart(self):
        # The worker's warm connection dies with the server; the next call must connect
        # anew with prior knowledge, without a failed attempt (no "send failed" in the log).
        up = self.upstream()
        a = self.start(exporter_config(up.port, consumers=1, log_level="debug"), "A")
        r1, r2 = h.synthetic_request(81), h.synthetic_request(82)
        self.post(a, r1)
        self.assertEqual(len(up.wait_calls(1)), 1)
        self.post(a, h.synthetic_request(83))  # now the handle is warm
        self.assertEqual(len(up.wait_calls(2)), 2)
        up.stop()
        self.ups.remove(up)
        time.sleep(0.3)
        up2 = self.upstream(port=up.port)
        self.post(a, r2)
        calls = up2.wait_calls(1)
        self.assertEqual(len(calls), 1, "nothing arrived after the restart" + self.logs())
        self.assertSameData(h.canonical(r2), h.canonical(calls[0]["body"]), "after restart")
        log = a.log_text()
        self.assertNotIn("send failed", log, "a failed attempt after the restart")
        self.assertIn("connection gone", log, "the reconnect path was not taken")
        self.stop_clean(a)

    def test_h3_include_original_payload(self):
        up = self.upstream()
        a = self.start(exporter_config(up.port, extra={"include_original_payload": True}), "A")
        r = h.synthetic_request(91)
        self.post(a, r)
        want = h.canonical(r)
        calls = up.wait_calls(1)
        self.assertEqual(len(calls), 1)
        got = h.parse_request(calls[0]["body"])
        n = 0
        for rp in got.resource_profiles:
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    n += len(p.samples)
                    self.assertEqual(p.original_payload_format, "pprof")
                    self.assertEqual(p.original_payload[:2], b"\x1f\x8b", "pprof not gzip")
                    p.original_payload_format = ""
                    p.ClearField("original_payload")
        self.assertEqual(n, h.sample_count(want))
        self.assertSameData(want, h.canonical(got), "data beside the pprof payloads")
        self.stop_clean(a)

    def test_h4_flamegate_to_flamegate(self):
        # Our own gRPC server as the upstream: flamegate A (HTTP in, otlp out, gzip) to
        # flamegate B (OTLP/gRPC in, file out); B restarts on its port in between, so A's
        # warm connection dies and the reconnect meets B's preface-sniffing listener.
        port = h.free_port()
        out = self.out_dir()
        b = g.start_grpc(self, g.grpc_sink_config(out, endpoint="127.0.0.1:%d" % port), "B")
        a = self.start(exporter_config(port, consumers=1, log_level="debug"), "A")
        reqs = [h.synthetic_request(100 + i, nsamples=3) for i in range(4)]
        for r in reqs[:2]:
            self.post(a, r)
        want = h.canonical_sum(reqs[:2])
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "B's files before the restart")
        self.stop_clean(b)
        b2 = g.start_grpc(self, g.grpc_sink_config(out, endpoint="127.0.0.1:%d" % port), "B2")
        if h.corpus_dir() is not None:
            reqs.append(h.read_file(h.corpus_file(EBPF_PB)))
        for r in reqs[2:]:
            self.post(a, r)
        want = h.canonical_sum(reqs)
        got, files = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "B's files after the restart")
        self.assertFilesObeyRules(files)
        log = a.log_text()
        self.assertNotIn("send failed", log, "a failed attempt" + self.logs())
        self.assertIn("connection gone", log, "the reconnect path was not taken")
        self.stop_clean(a)
        self.stop_clean(b2)

    def test_i_bad_config(self):
        for exp, what in (({"endpoint": "ftp://x:1"}, "scheme"),
                          ({"endpoint": "http://x:1/some/path"}, "path"),
                          ({}, "endpoint"),
                          ({"endpoint": "x:1", "headers": {"grpc-timeout": "1S"}}, "reserved")):
            cfg = h.config({"otlp": h.otlp_receiver()}, {"otlp": exp})
            path = os.path.join(self.tmp, "bad.yaml")
            with open(path, "w") as f:
                f.write(h.to_yaml(cfg))
            r = h.run_cli(["--config", path])
            self.assertNotEqual(r.returncode, 0, "%s: accepted %r" % (what, exp))
            self.assertIn("otlp", r.stderr, "%s: message %r" % (what, r.stderr))


if __name__ == "__main__":
    h.main()
