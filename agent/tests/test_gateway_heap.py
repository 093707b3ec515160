# The pprof extension's /debug/pprof/heap: 501 naming the LD_PRELOAD line when the agent is
# not preloaded (or its heap profiler is off); with flamegate started under
# LD_PRELOAD=libflamegate-agent.so FLAMEGATE_PROFILES=heap, a gzip pprof with Go's four heap
# sample types that `go tool pprof` reads, inuse_space > 0 and flamegate's decode path in it.
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402
import telemetry_util as t  # noqa: E402

h = a.h
CT = "application/x-protobuf"
PPROF_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(pprof\)")
AGENT_ENV = ("LD_PRELOAD", "FLAMEGATE_PROFILES", "FLAMEGATE_HEAP_SAMPLE_BYTES",
             "FLAMEGATE_OUTPUT")


class GatewayHeapTest(h.FgTestCase):
    def start_gateway(self, name, agent_env):
        """Starts flamegate with the pprof extension, with agent_env added to (and every
        other agent variable removed from) its environment."""
        cfg = h.sink_config(self.out_dir(name))
        cfg["extensions"] = {"pprof": {"endpoint": "127.0.0.1:0"}}
        cfg["service"]["extensions"] = ["pprof"]
        saved = {k: os.environ.pop(k) for k in AGENT_ENV if k in os.environ}
        os.environ.update(agent_env)
        try:
            p = self.start(cfg, name)
        finally:
            for k in agent_env:
                os.environ.pop(k, None)
            os.environ.update(saved)
        return p, t.wait_port(p, PPROF_PORT_RE)

    def heap(self, port):
        return h.request(port, "GET", "/debug/pprof/heap", timeout=30)

    def test_without_agent_501(self):
        p, port = self.start_gateway("plain", {})
        r = self.heap(port)
        self.assertStatus(r, 501, "heap without the agent")
        self.assertIn(b"needs the preloaded agent", r.body)
        if b"AddressSanitizer" not in r.body:
            self.assertIn(b"LD_PRELOAD=", r.body)
            self.assertIn(b"FLAMEGATE_PROFILES=heap", r.body)
        self.stop_clean(p)

    def asan_build(self):
        p, port = self.start_gateway("probe", {})
        r = self.heap(port)
        self.stop_clean(p)
        return b"AddressSanitizer" in r.body

    def test_agent_heap_off_501(self):
        if self.asan_build():
            raise unittest.SkipTest("ASan build: the agent cannot be preloaded")
        out = os.path.join(self.tmp, "agent-out")
        p, port = self.start_gateway("cpuonly", {
            "LD_PRELOAD": a.agent_so(), "FLAMEGATE_PROFILES": "cpu",
            "FLAMEGATE_OUTPUT": "otlp-file:" + out})
        r = self.heap(port)
        self.assertStatus(r, 501, "heap with the agent's heap profiler off")
        self.assertIn(b"heap profiler is off", r.body)
        self.assertIn(b"FLAMEGATE_PROFILES=heap", r.body)
        self.stop_clean(p)

    def test_preloaded_heap_profile(self):
        if self.asan_build():
            raise unittest.SkipTest("ASan build: the agent cannot be preloaded")
        go = shutil.which("go")
        if not go:
            raise unittest.SkipTest("go is not installed: cannot run go tool pprof")
        out = os.path.join(self.tmp, "agent-out")
        p, port = self.start_gateway("preloaded", {
            "LD_PRELOAD": a.agent_so(), "FLAMEGATE_PROFILES": "heap",
            "FLAMEGATE_HEAP_SAMPLE_BYTES": "4096", "FLAMEGATE_OUTPUT": "otlp-file:" + out})
        for seed in range(1, 41):  # ~1 MB decoded: a few hundred samples at 4 KiB
            self.assertOk(h.post(p.port, h.synthetic_request(seed, nsamples=200)
                                 .SerializeToString(), CT))
        r = self.heap(port)
        self.assertStatus(r, 200, "heap with the agent preloaded")
        self.assertEqual(r.body[:2], b"\x1f\x8b")  # gzip
        self.assertOk(h.post(p.port, h.synthetic_request(99).SerializeToString(), CT))
        self.stop_clean(p)

        path = os.path.join(self.tmp, "heap.pb.gz")
        with open(path, "wb") as f:
            f.write(r.body)
        env = dict(os.environ, HOME=self.tmp, GOCACHE=os.path.join(self.tmp, "gocache"),
                   GOFLAGS="-mod=mod", GOTOOLCHAIN="local")

        def pprof(*args):
            res = subprocess.run([go, "tool", "pprof"] + list(args) + [path],
                                 capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            return res.stdout

        raw = pprof("-raw")
        self.assertIn("alloc_objects/count alloc_space/bytes inuse_objects/count "
                      "inuse_space/bytes", raw)
        body = raw.split("Samples:", 1)[1].split("Locations", 1)[0]
        rows = [tuple(int(v) for v in m.groups())
                for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+): ", body, re.M)]
        self.assertTrue(rows, raw[:2000])
        self.assertGreater(sum(r[3] for r in rows), 0, "inuse_space")
        self.assertGreater(sum(r[1] for r in rows), 0, "alloc_space")
        # The OTLP decode path allocated most of the bytes posted: it is named; the samples
        # receiver's functions, never run here, are not (they were, when go tool pprof
        # re-symbolized the agent's addresses against the local binary).
        top = pprof("-sample_index=alloc_space", "-top", "-nodefraction=0")
        self.assertRegex(top, r"\b(fg_otlp_decode_proto|scan_dictionary)\b", top)
        self.assertNotRegex(top, r"\b(text_param|fg_samples_json_decode)\b", top)


if __name__ == "__main__":
    unittest.main()
