# Lifecycle: SIGTERM/SIGINT flush the batch and drain exporters before exit 0; an
# exporter whose upstream is down retries until the upstream comes up.
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

CT_PROTO = "application/x-protobuf"


class LifecycleTest(h.FgTestCase):
    def shutdown_flushes(self, sig):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        # A 5 s batch timeout: only the shutdown flush can deliver within the test window.
        a = self.start(h.forward_config(b.port, batch_timeout="5s"), "A")
        reqs = [h.synthetic_request(300 + i) for i in range(3)]
        for r in reqs:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT_PROTO))
        t0 = time.monotonic()
        rc = a.stop(sig, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "A exit code after signal %d%s" % (sig, self.logs()))
        self.assertLess(took, 4.5, "A took %.1fs to exit: it waited for the batch timeout "
                        "instead of flushing" % took)
        want = h.canonical_sum(reqs)
        got, files = h.collect_dir(out, h.sample_count(want), timeout=5)
        self.assertSameData(want, got, "data flushed on shutdown")
        self.assertFilesObeyRules(files)
        self.stop_clean(b)

    def test_sigterm_flushes_batch(self):
        self.shutdown_flushes(signal.SIGTERM)

    def test_sigint_flushes_batch(self):
        self.shutdown_flushes(signal.SIGINT)

    def test_idle_sigterm_exits_zero(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        t0 = time.monotonic()
        self.stop_clean(b)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(h.output_files(out), [])

    def test_retry_until_upstream_comes_up(self):
        port = h.free_port()
        a = self.start(h.forward_config(port, batch_timeout="100ms", initial_interval="100ms"),
                       "A")
        reqs = [h.synthetic_request(400 + i) for i in range(4)]
        for r in reqs[:2]:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT_PROTO),
                          "accepted while upstream is down")
        time.sleep(1.0)  # several failed attempts
        for r in reqs[2:]:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT_PROTO),
                          "accepted while upstream is down")
        self.assertAlive(a, "upstream down")
        out = self.out_dir()
        b = self.start(h.sink_config(out, endpoint="127.0.0.1:%d" % port), "B")
        self.assertEqual(b.port, port)
        want = h.canonical_sum(reqs)
        got, files = h.collect_dir(out, h.sample_count(want), timeout=20)
        self.assertSameData(want, got, "data delivered after retry")
        self.assertFilesObeyRules(files)
        self.stop_clean(a)
        self.stop_clean(b)

    def test_default_config_runs(self):
        # Without --config the embedded default listens on 127.0.0.1:4318; only run it
        # when that port is free, since another service may own it.
        import socket
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 4318))
            except OSError as e:
                self.fail("127.0.0.1:4318 is busy (%s): cannot check the default config" % e)
        p = self.start(None, "default")
        self.assertEqual(p.port, 4318)
        r = h.synthetic_request(500)
        self.assertOk(h.post(p.port, r.SerializeToString(), CT_PROTO), "default config")
        self.stop_clean(p)
        got, _ = h.collect_dir(os.path.join(self.tmp, "flamegate-data"),
                               h.sample_count(h.canonical(r)), timeout=5)
        self.assertSameData(h.canonical(r), got, "default config file exporter")


if __name__ == "__main__":
    h.main()
