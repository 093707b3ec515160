# Raw stack samples end to end: the real binary with receiver "samples" -> file exporter;
# folded text with query metadata and labels, the JSON schema of docs/receivers.md, a
# tenant header, and error statuses.
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
from test_pyroscope_ingest import resolved, wait_log_port  # noqa: E402

SAMPLES_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(samples\)")


class SamplesIngestTest(h.FgTestCase):
    def fg(self):
        out = self.out_dir()
        cfg = h.config({"samples": {"endpoint": "127.0.0.1:0"}},
                       {"file": {"path": out, "format": "otlp_json"}})
        p = self.start(cfg, "samples", wait_port=False)
        return p, wait_log_port(p, SAMPLES_PORT_RE), out

    def files(self, out, n):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            f = h.output_files(out)
            if len(f) >= n:
                time.sleep(0.3)
                return h.output_files(out)
            time.sleep(0.05)
        self.fail("no output" + self.logs())

    def test_a_folded_text(self):
        p, port, out = self.fg()
        body = b"python;main;compute 12\npython;main;io 3\npython;main;compute 4\n"
        r = h.request(port, "POST", "/v1/samples?service=etl&type=cpu&unit=nanoseconds"
                      "&period=10000000&label.env=staging&label.host.name=n1", body,
                      {"Content-Type": "text/plain", "X-Scope-OrgID": "acme"})
        self.assertStatus(r, 200, "folded")
        samples = resolved(self.files(out, 1))
        got = sorted((s[6], s[7]) for s in samples)
        self.assertEqual(got, [("python;main;compute", 16), ("python;main;io", 3)])
        self.assertEqual(samples[0][0], {"service.name": "etl", "env": "staging",
                                         "host.name": "n1"})
        self.assertEqual(samples[0][2], ("cpu", "nanoseconds"))
        self.assertEqual(samples[0][3], 10000000)
        self.stop_clean(p)

    def test_b_json(self):
        p, port, out = self.fg()
        doc = {
            "resource": {"service.name": "scripted", "process.pid": 4242},
            "scope": {"name": "my-sampler", "version": "0.1"},
            "sample_type": {"type": "wall", "unit": "nanoseconds"},
            "period": 1000000,
            "time_unix_nano": 1700000000000000000,
            "stack_order": "root_first",
            "samples": [
                {"stack": ["main", {"function": "serve", "file": "srv.py", "line": 10}],
                 "value": 5000000, "attributes": {"thread.name": "w1"}},
                {"stack": ["main", "sleep"], "value": 2000000,
                 "timestamp_unix_nano": "1700000000500000000"},
            ],
        }
        r = h.request(port, "POST", "/v1/samples", json.dumps(doc).encode(),
                      {"Content-Type": "application/json"})
        self.assertStatus(r, 200, "json")
        files = self.files(out, 1)
        samples = resolved(files)
        self.assertEqual(sorted((s[6], s[7]) for s in samples),
                         [("main;serve", 5000000), ("main;sleep", 2000000)])
        self.assertEqual(samples[0][1], "my-sampler")
        self.assertEqual(samples[0][4], 1700000000000000000)
        req = h.parse_request(h.read_file(files[0]))
        self.assertEqual(h.dictionary_violations(req), [])
        ts = [list(s.timestamps_unix_nano) for s in
              req.resource_profiles[0].scope_profiles[0].profiles[0].samples]
        self.assertIn([1700000000500000000], ts)
        self.stop_clean(p)

    def test_c_errors(self):
        p, port, out = self.fg()
        r = h.request(port, "POST", "/v1/samples", b'{"samples": [{"stack": [1]}]}',
                      {"Content-Type": "application/json"})
        self.assertStatus(r, 400, "bad frame")
        self.assertIn("samples[0].stack[0]", json.loads(r.body)["message"])
        r = h.request(port, "POST", "/v1/samples?srvice=x", b"a 1",
                      {"Content-Type": "text/plain"})
        self.assertStatus(r, 400, "unknown param")
        r = h.request(port, "POST", "/v1/samples", b"a 1", {"Content-Type": "image/png"})
        self.assertStatus(r, 415, "media type")
        r = h.request(port, "GET", "/v1/samples")
        self.assertStatus(r, 405, "method")
        self.assertEqual(h.output_files(out), [])
        self.stop_clean(p)


if __name__ == "__main__":
    h.main()
