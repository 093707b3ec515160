# No configured secret ever reaches a log: header values and tokens (also from ${env:...})
# are scrubbed even when an upstream echoes them back in an error a component logs. And the
# JSON log encoding: one object per line with ts, level, component, msg.
import base64
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import telemetry_util as t  # noqa: E402

CT = "application/x-protobuf"
SECRETS = ["Bearer tok-7f3a9c1e5b2d-SECRET", "apikey-9d8c7b6a5f4e-SECRET",
           "env-3e2d1c0b9a8f-SECRET", "pyro-5a4b3c2d1e0f-SECRET", "pw-0f1e2d3c4b5a-SECRET",
           "recv-1b2c3d4e5f6a-SECRET", "client-6f5e4d3c2b1a-SECRET"]

BASIC = base64.b64encode(("fg:" + SECRETS[4]).encode()).decode()
CLIENT_BASIC = base64.b64encode(("cl:" + SECRETS[6]).encode()).decode()
AUTH = {"Authorization": "Bearer " + SECRETS[5]}


class EchoHeaders(http.server.BaseHTTPRequestHandler):
    """An upstream that refuses every export with 400 and quotes the request's headers in
    the google.rpc.Status message, so the exporter's error log would carry them."""
    seen = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        EchoHeaders.seen.append(dict(self.headers))
        text = "bad request; you sent " + "; ".join("%s: %s" % kv for kv in self.headers.items())
        st = h.pb().status(code=3, message=text)
        body = st.SerializeToString()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class SecretsTest(h.FgTestCase):
    def secret_config(self, upstream_port, encoding=None):
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % upstream_port,
                                     "compression": "none",
                                     "headers": {"Authorization": SECRETS[0],
                                                 "X-Api-Key": SECRETS[1],
                                                 "X-Env-Token": "${env:FG_TEST_SECRET}"}},
                        "pyroscope": {"endpoint": "http://127.0.0.1:%d" % upstream_port,
                                      "bearer_token": SECRETS[3],
                                      "retry_on_failure": {"enabled": False}},
                        "pyroscope/basic": {"endpoint": "http://127.0.0.1:%d" % upstream_port,
                                            "basic_auth": {"username": "fg",
                                                           "password": SECRETS[4]},
                                            "retry_on_failure": {"enabled": False}},
                        "debug": {"verbosity": "detailed"}},
                       log_level="debug")
        # the receiver wants a bearer token; a second otlphttp sends basic credentials
        cfg["receivers"]["otlp"]["protocols"]["http"]["auth"] = {
            "authenticator": "bearertokenauth"}
        cfg["exporters"]["otlphttp/basic"] = {
            "endpoint": "http://127.0.0.1:%d" % upstream_port, "compression": "none",
            "auth": {"authenticator": "basicauth/client"},
            "retry_on_failure": {"enabled": False}}
        cfg["service"]["pipelines"]["profiles"]["exporters"].append("otlphttp/basic")
        cfg["extensions"] = {"bearertokenauth": {"token": SECRETS[5]},
                             "basicauth/client": {"client_auth": {"username": "cl",
                                                                  "password": SECRETS[6]}}}
        cfg["service"]["extensions"] = ["bearertokenauth", "basicauth/client"]
        return t.with_telemetry(cfg, log_level="debug", encoding=encoding)

    def assertNoSecret(self, text, where):
        for s in SECRETS + [SECRETS[0].split(" ", 1)[1], BASIC, CLIENT_BASIC]:
            self.assertNotIn(s, text, "%s contains the secret %r" % (where, s))
            if "-" in s:
                self.assertNotIn(s.split("-")[1], text, "%s contains part of %r" % (where, s))
            # nor the start of one that a component cut short
            self.assertNotIn(s[:10], text, "%s contains the start of %r" % (where, s))

    def test_no_secret_in_logs(self):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHeaders)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        EchoHeaders.seen = []
        os.environ["FG_TEST_SECRET"] = SECRETS[2]
        try:
            cfg = self.secret_config(srv.server_address[1])
            a = self.start(cfg, "A")
            # validate reads the same file: its output is checked too
            r = h.run_cli(["validate", "--config", a.config_path])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNoSecret(r.stdout + r.stderr, "flamegate validate output")
            # wrong and missing tokens are refused (and logged without the right one)
            body = h.synthetic_request(59).SerializeToString()
            self.assertStatus(h.post(a.port, body, CT), 401)
            self.assertStatus(h.post(a.port, body, CT, headers={
                "Authorization": "Bearer " + SECRETS[5][:12] + "-wrong"}), 401)
            for i in range(3):
                self.assertOk(h.post(a.port, h.synthetic_request(60 + i).SerializeToString(), CT,
                                     headers=AUTH))
            deadline = time.monotonic() + 10
            while len(EchoHeaders.seen) < 12 and time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + 5
            while "HTTP 400" not in a.log_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            a.send_signal(signal.SIGHUP)  # a reload logs its own lines
            deadline = time.monotonic() + 10
            while "reload: done" not in a.log_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stop_clean(a)
        finally:
            os.environ.pop("FG_TEST_SECRET", None)
            srv.shutdown()
            srv.server_close()
        # the secrets were really in play: the upstream got them
        self.assertTrue(EchoHeaders.seen, "upstream saw no request" + self.logs())
        auths = set(r.get("Authorization") for r in EchoHeaders.seen)
        self.assertIn(SECRETS[0], auths)
        self.assertIn("Bearer " + SECRETS[3], auths)
        self.assertIn("Basic " + BASIC, auths)
        self.assertIn("Basic " + CLIENT_BASIC, auths)
        otlp = [r for r in EchoHeaders.seen if r.get("X-Api-Key")]
        self.assertTrue(otlp)
        self.assertEqual(otlp[0].get("X-Api-Key"), SECRETS[1])
        self.assertEqual(otlp[0].get("X-Env-Token"), SECRETS[2])
        log = a.log_text()
        self.assertIn("HTTP 400", log)  # the echoing error was logged ...
        self.assertIn("***", log)       # ... with the secrets scrubbed
        self.assertIn("reload: done", log)
        self.assertNoSecret(log, "log of A")

    def test_json_encoding(self):
        out = self.out_dir()
        cfg = t.with_telemetry(h.sink_config(out), encoding="json")
        a = self.start(cfg, "A")
        self.assertOk(h.post(a.port, b"", CT))
        self.assertStatus(h.post(a.port, b"\xff", CT), 400)
        self.stop_clean(a)
        lines = [ln for ln in a.log_text().splitlines() if ln.strip()]
        self.assertGreater(len(lines), 3)
        comps = set()
        for ln in lines:
            rec = json.loads(ln)  # every line is one JSON object
            self.assertEqual(sorted(rec), ["component", "level", "msg", "ts"], ln)
            self.assertIn(rec["level"], ("debug", "info", "warn", "error"))
            self.assertRegex(rec["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            comps.add(rec["component"])
        self.assertIn("otlp", comps)
        self.assertIn("service", comps)
        msgs = [json.loads(ln)["msg"] for ln in lines]
        self.assertTrue(any(m.startswith("listening on 127.0.0.1:") and m.endswith("(OTLP/HTTP)")
                            for m in msgs), msgs)

    def test_console_encoding_is_default(self):
        out = self.out_dir()
        a = self.start(h.sink_config(out), "A")
        self.stop_clean(a)
        for ln in a.log_text().splitlines():
            if ln.strip():
                self.assertRegex(ln, r"^\d{4}-\d\d-\d\dT[\d:.]+Z (debug|info |warn |error) \S+: ")

    def test_bad_encoding_is_a_config_error(self):
        cfg = h.sink_config(self.out_dir())
        cfg["service"]["telemetry"]["logs"]["encoding"] = "xml"
        path = os.path.join(self.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(h.to_yaml(cfg))
        r = h.run_cli(["validate", "--config", path])
        self.assertEqual(r.returncode, 1)
        self.assertIn("service.telemetry.logs.encoding: invalid value \"xml\" (allowed: console, "
                      "json)", r.stderr)


if __name__ == "__main__":
    h.main()
