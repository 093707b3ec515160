# The pyroscope exporter end to end: flamegate A (pyroscope receiver -> batch -> pyroscope
# exporter) sends to a recording HTTP sink (tenant pass-through, basic auth, labels) and to
# flamegate B (pyroscope receiver -> file), through both the /ingest and the Push API.
import base64
import http.server
import json
import os
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
from test_pyroscope_ingest import (ingest_config, manifest, resolved, totals_by_type,  # noqa: E402
                                   wait_log_port, want_totals)


class Sink:
    """Records every POST: path, query, headers, body; answers 200."""

    def __init__(self):
        self.requests = []
        self.cv = threading.Condition()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                u = urllib.parse.urlsplit(self.path)
                with sink.cv:
                    sink.requests.append({"path": u.path,
                                          "query": urllib.parse.parse_qs(u.query),
                                          "headers": dict(self.headers.items()),
                                          "body": body})
                    sink.cv.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=15.0):
        with self.cv:
            self.cv.wait_for(lambda: len(self.requests) >= n, timeout)
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def forward_config(endpoint, api="ingest", **extra):
    exp = {"endpoint": endpoint, "api": api,
           "retry_on_failure": {"initial_interval": "50ms"}}
    exp.update(extra)
    return h.config({"pyroscope": {"endpoint": "127.0.0.1:0"}}, {"pyroscope": exp},
                    processors={"batch": {"timeout": "100ms"}}, pipeline_processors=["batch"])


class PyroscopeExportTest(h.FgTestCase):
    def start_a(self, cfg):
        a = self.start(cfg, "A", wait_port=False)
        return a, wait_log_port(a)

    def test_a_tenant_passthrough_auth_labels(self):
        sink = Sink()
        self.addCleanup(sink.close)
        a, port = self.start_a(forward_config(
            "http://127.0.0.1:%d" % sink.port, tenant_id="fallback",
            basic_auth={"username": "alice", "password": "s3cret"},
            external_labels={"cluster": "eu1"}, headers={"X-Extra": "1"}))
        for tenant in ("team-a", "team-b", None):
            hdrs = {"Content-Type": "text/plain"}
            if tenant:
                hdrs["X-Scope-OrgID"] = tenant
            r = h.request(port, "POST", "/ingest?name=%s&from=1700000000" %
                          urllib.parse.quote("svc.cpu{k8s.pod=p1}"), b"main;work 5\n", hdrs)
            self.assertStatus(r, 200, "ingest to A")
        reqs = sink.wait(3)
        self.assertEqual(len(reqs), 3, "one request per tenant" + self.logs())
        tenants = sorted(r["headers"].get("X-Scope-OrgID") for r in reqs)
        self.assertEqual(tenants, ["fallback", "team-a", "team-b"])
        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        for r in reqs:
            self.assertEqual(r["path"], "/ingest")
            self.assertEqual(r["headers"].get("Authorization"), auth)
            self.assertEqual(r["headers"].get("X-Extra"), "1")
            self.assertEqual(r["query"]["name"], ["svc{k8s_pod=p1,cluster=eu1}"])
            self.assertEqual(r["query"]["format"], ["pprof"])
            self.assertEqual(r["query"]["from"], [str(1700000000 * 10**9)])
            self.assertEqual(r["body"][:2], b"\x1f\x8b")
        self.stop_clean(a)

    def test_d_grpc_push_tenant_reaches_the_exporter(self):
        import grpc
        sink = Sink()
        self.addCleanup(sink.close)
        a, port = self.start_a(forward_config("http://127.0.0.1:%d" % sink.port, "push"))
        from test_pyroscope_ingest import push_request
        gz = h.read_file(h.corpus_file("pprof/go119.cpu.pb.gz"))
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            ch.unary_unary("/push.v1.PusherService/Push")(
                push_request([("service_name", "svc"), ("__name__", "process_cpu")], [gz]),
                timeout=10, metadata=[("x-scope-orgid", "tenant-g")])
        reqs = sink.wait(1)
        self.assertEqual(len(reqs), 1, self.logs())
        r = reqs[0]
        self.assertEqual(r["path"], "/push.v1.PusherService/Push")
        self.assertEqual(r["headers"].get("X-Scope-OrgID"), "tenant-g")
        self.assertEqual(r["headers"].get("Content-Type"), "application/proto")
        self.assertIn(b"process_cpu", r["body"])
        self.stop_clean(a)

    def chain(self, api):
        rows = manifest()
        out = self.out_dir()
        b = self.start(ingest_config(out), "B", wait_port=False)
        bport = wait_log_port(b)
        a, aport = self.start_a(forward_config("http://127.0.0.1:%d" % bport, api))
        files = ("go119.heap.pb.gz", "pyroscope_java_asyncprofiler_cpu.pb.gz")
        for name in files:
            data = h.read_file(h.corpus_file("pprof/" + name))
            r = h.request(aport, "POST", "/ingest?name=javaapp%7Benv%3Dprod%7D&format=pprof",
                          data, {"Content-Type": "application/octet-stream",
                                 "X-Scope-OrgID": "t1"})
            self.assertStatus(r, 200, name)
        want = {}
        for name in files:
            for k, v in want_totals(rows[name]).items():
                want[k] = want.get(k, 0) + v
        deadline = __import__("time").monotonic() + 20
        got = {}
        while __import__("time").monotonic() < deadline:
            samples = resolved(h.output_files(out))
            got = totals_by_type(samples)
            if got == want:
                break
            __import__("time").sleep(0.1)
        self.assertEqual(got, want, "totals at B" + self.logs())
        res = resolved(h.output_files(out))[0][0]
        self.assertEqual(res.get("service.name"), "javaapp")
        self.assertEqual(res.get("env"), "prod")
        self.stop_clean(a)
        self.stop_clean(b)

    def test_b_chain_ingest(self):
        self.chain("ingest")

    def test_c_chain_push(self):
        self.chain("push")


if __name__ == "__main__":
    h.main()
