# health_check: 503 while starting, 200 while running, 503 while shutting down, and 503 once
# the upstream has been down longer than exporter_failure_threshold (200 again after).
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import telemetry_util as t  # noqa: E402

CT = "application/x-protobuf"


def health_config(upstream_port, threshold="5m", shutdown_timeout=None):
    cfg = h.config({"otlp": h.otlp_receiver()},
                   {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % upstream_port,
                                 "retry_on_failure": {"initial_interval": "100ms",
                                                      "max_interval": "200ms"}}})
    cfg["extensions"] = {"health_check": {"endpoint": "127.0.0.1:0",
                                          "exporter_failure_threshold": threshold}}
    cfg["service"]["extensions"] = ["health_check"]
    if shutdown_timeout:
        cfg["service"]["shutdown_timeout"] = shutdown_timeout
    return t.with_telemetry(cfg)


class HealthTest(h.FgTestCase):
    def get(self, p):
        r = h.request(p.health_port, "GET", "/", timeout=5)
        self.assertEqual(r.header("Content-Type"), "application/json")
        return r.status, json.loads(r.body.decode())

    def start_health(self, cfg, name, env_delay_ms=None):
        if env_delay_ms:
            os.environ["FG_FAILPOINT_START_DELAY_MS"] = str(env_delay_ms)
        try:
            p = self.start(cfg, name, wait_port=False)
        finally:
            os.environ.pop("FG_FAILPOINT_START_DELAY_MS", None)
        p.health_port = t.wait_port(p, t.HEALTH_PORT_RE)
        return p

    def wait_status(self, p, status, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            st, body = self.get(p)
            if st == status or time.monotonic() >= deadline:
                return st, body
            time.sleep(0.05)

    def test_starting_running_stopping(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        # The failpoint holds start-up for 1.5 s after the extensions are up.
        a = self.start_health(health_config(b.port, shutdown_timeout="3s"), "A",
                              env_delay_ms=1500)
        st, body = self.get(a)
        self.assertEqual((st, body.get("reason")), (503, "starting"), body)
        st, body = self.wait_status(a, 200)
        self.assertEqual(st, 200, "%r%s" % (body, self.logs()))
        self.assertEqual(body["status"], "Server available")
        self.assertIn("(OTLP/HTTP)", a.log_text())  # the receivers are up by then
        a.wait_port()
        self.assertOk(h.post(a.port, h.synthetic_request(1).SerializeToString(), CT))

        # Shutting down: B is gone, A's exporter retries a batch until shutdown_timeout
        # (10 s), and meanwhile the health check says so.
        self.stop_clean(b)
        self.assertOk(h.post(a.port, h.synthetic_request(2).SerializeToString(), CT))
        time.sleep(0.3)
        a.send_signal(signal.SIGTERM)
        st, body = self.wait_status(a, 503, timeout=5)
        self.assertEqual((st, body.get("reason")), (503, "shutting down"), body)
        a.stop(timeout=20)
        with self.assertRaises(Exception):
            self.get(a)  # and the listener is gone after exit

    def test_upstream_down_past_threshold(self):
        port = h.free_port()
        a = self.start_health(health_config(port, threshold="2s"), "A")
        st, body = self.wait_status(a, 200)
        self.assertEqual(st, 200, body)
        t0 = time.monotonic()
        self.assertOk(h.post(a.port, h.synthetic_request(3).SerializeToString(), CT))
        # failing, but not yet for 2 s
        time.sleep(0.5)
        st, body = self.get(a)
        self.assertEqual(st, 200, body)
        st, body = self.wait_status(a, 503, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(st, 503, "%r%s" % (body, self.logs()))
        self.assertEqual(body["reason"], "exporter failing")
        self.assertEqual(body["exporter"], "otlphttp")
        self.assertGreaterEqual(took, 2.0)
        self.assertGreater(body["failing_seconds"], body["threshold_seconds"])

        # the upstream comes back: the retried batch goes through and health recovers
        out = self.out_dir()
        b = self.start(h.sink_config(out, endpoint="127.0.0.1:%d" % port), "B")
        st, body = self.wait_status(a, 200, timeout=10)
        self.assertEqual(st, 200, "%r%s" % (body, self.logs()))
        got, _ = h.collect_dir(out, 1, timeout=5)
        self.assertEqual(got, h.canonical(h.synthetic_request(3)))
        self.stop_clean(a)
        self.stop_clean(b)

    def test_reload_keeps_the_listener(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        a = self.start_health(health_config(b.port), "A")
        self.assertEqual(self.wait_status(a, 200)[0], 200)
        a.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload: done" not in a.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("reload: done", a.log_text())
        st, body = self.get(a)
        self.assertEqual(st, 200, "%r%s" % (body, self.logs()))
        self.stop_clean(a)
        self.stop_clean(b)


if __name__ == "__main__":
    h.main()
