# pprof extension: a CPU profile of the gateway itself over ?seconds=N while it ingests,
# read back by `go tool pprof -raw`; bad seconds → 400, heap → 501, a second concurrent
# profile → 409.
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import telemetry_util as t  # noqa: E402

CT = "application/x-protobuf"
PPROF_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(pprof\)")


def pprof_config(out_dir):
    cfg = h.sink_config(out_dir)
    cfg["extensions"] = {"pprof": {"endpoint": "127.0.0.1:0"}}
    cfg["service"]["extensions"] = ["pprof"]
    return cfg


class PprofExtensionTest(h.FgTestCase):
    def test_cpu_profile_and_errors(self):
        p = self.start(pprof_config(self.out_dir()), "A")
        port = t.wait_port(p, PPROF_PORT_RE)

        r = h.request(port, "GET", "/debug/pprof/profile?seconds=abc", timeout=5)
        self.assertStatus(r, 400, "seconds=abc")
        r = h.request(port, "GET", "/debug/pprof/profile?seconds=301", timeout=5)
        self.assertStatus(r, 400, "seconds=301")
        r = h.request(port, "GET", "/debug/pprof/heap", timeout=5)
        self.assertStatus(r, 501, "heap")
        self.assertIn(b"needs the preloaded agent", r.body)

        result = {}

        def take():
            result["r"] = h.request(port, "GET", "/debug/pprof/profile?seconds=2", timeout=20)

        th = threading.Thread(target=take)
        th.start()
        time.sleep(0.3)
        busy = h.request(port, "GET", "/debug/pprof/profile?seconds=1", timeout=10)
        self.assertStatus(busy, (409, 503), "concurrent profile")
        # Load, so that the gateway burns CPU while it is sampled.
        seed = 1
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline and th.is_alive():
            self.assertOk(h.post(p.port, h.synthetic_request(seed, nsamples=200)
                                 .SerializeToString(), CT))
            seed += 1
        th.join(20)
        self.assertFalse(th.is_alive())
        r = result["r"]
        self.assertStatus(r, 200, "profile")
        self.assertEqual(r.body[:2], b"\x1f\x8b")  # gzip
        self.assertTrue(p.alive(), self.logs())  # SIGPROF did not kill it afterwards
        self.assertOk(h.post(p.port, h.synthetic_request(seed).SerializeToString(), CT))
        self.stop_clean(p)  # exits 0, and under sanitizers without a report

        go = shutil.which("go")
        if not go:
            raise unittest.SkipTest("go is not installed: cannot run go tool pprof")
        path = os.path.join(self.tmp, "cpu.pb.gz")
        with open(path, "wb") as f:
            f.write(r.body)
        env = dict(os.environ, HOME=self.tmp, GOCACHE=os.path.join(self.tmp, "gocache"),
                   GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
        out = subprocess.run([go, "tool", "pprof", "-raw", path], capture_output=True,
                             text=True, timeout=60, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("samples/count", out.stdout)
        self.assertIn("cpu/nanoseconds", out.stdout)
        # Samples: lines "  count  nanos: loc loc ..." until "Locations"
        body = out.stdout.split("Samples:", 1)[1].split("Locations", 1)[0]
        counts = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+(\d+): ", body, re.M)]
        self.assertGreater(sum(counts), 0, out.stdout[:2000])


if __name__ == "__main__":
    unittest.main()
