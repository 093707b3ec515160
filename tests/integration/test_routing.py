# Connectors end to end: one flamegate whose intake pipeline exports to a routing connector
# and a forward connector; each downstream pipeline writes files, and what every file
# exporter holds must be exactly (sample for sample, no duplicates) the resources routed
# to it. Also `flamegate validate` on connector graphs that are wrong.
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

CT_PROTO = "application/x-protobuf"
SEEDS = range(21)  # services svc-0 .. svc-6, three times each


def service_of(rec):
    for key, value in rec[0][0]:
        if key == "service.name":
            return value[1]
    return None


def pid_of(rec):
    for key, value in rec[0][0]:
        if key == "process.pid":
            return value[1]
    return None


def select(counter, pred):
    return h.collections.Counter({rec: n for rec, n in counter.items() if pred(rec)})


class RoutingTest(h.FgTestCase):
    def routing_config(self, dirs):
        exporters = {"file/%s" % k: {"path": d, "format": "otlp_proto"} for k, d in dirs.items()}
        pipelines = {
            "profiles/in": {"receivers": ["otlp"], "processors": ["batch"],
                            "exporters": ["routing", "forward"]},
        }
        for k in ("a", "b", "e", "t", "d"):
            pipelines["profiles/%s" % k] = {"receivers": ["routing"],
                                            "exporters": ["file/%s" % k]}
        for k in ("f1", "f2"):
            pipelines["profiles/%s" % k] = {"receivers": ["forward"],
                                            "exporters": ["file/%s" % k]}
        routes = """\
connectors:
  forward:
  routing:
    default_pipelines: [profiles/d]
    routes:
      - match: {resource_attribute: service.name, value: svc-1}
        pipelines: [profiles/a, profiles/b]
      - match: {resource_attribute: service.name, regex: '^svc-[123]$'}
        pipelines: [profiles/b]
      - match: {resource_attribute: process.pid, value: '1005'}
        pipelines: [profiles/e]
      - match: {tenant: acme}
        pipelines: [profiles/t]
"""
        cfg = {"receivers": {"otlp": h.otlp_receiver()},
               "processors": {"batch": {"timeout": "100ms", "send_batch_size": 8192}},
               "exporters": exporters,
               "service": {"pipelines": pipelines}}
        return h.to_yaml(cfg) + routes

    def start_routing(self):
        keys = ("a", "b", "e", "t", "d", "f1", "f2")
        dirs = {k: self.out_dir(k) for k in keys}
        fg = self.start(self.routing_config(dirs), "router")
        return fg, dirs

    def wait_all(self, dirs, want):
        """Waits for each directory to hold its expected samples; returns what they hold."""
        got = {}
        for k, d in dirs.items():
            got[k], files = h.collect_dir(d, h.sample_count(want[k]), timeout=20.0,
                                          settle=0.0)
            if want[k]:
                self.assertFilesObeyRules(files)
        time.sleep(0.5)  # late duplicates would land now
        for k, d in dirs.items():
            got[k], _ = h.collect_dir(d, 0, timeout=0.0, settle=0.0)
        return got

    def test_a_routes_defaults_and_forward(self):
        fg, dirs = self.start_routing()
        reqs = [h.synthetic_request(s) for s in SEEDS]
        for r in reqs:
            self.assertOk(h.post(fg.port, r.SerializeToString(), CT_PROTO))
        everything = h.canonical_sum(reqs)
        svc = service_of
        want = {
            # svc-1 matches two routes that both name b: b still gets it once
            "a": select(everything, lambda r: svc(r) == "svc-1"),
            "b": select(everything, lambda r: svc(r) in ("svc-1", "svc-2", "svc-3")),
            "e": select(everything, lambda r: pid_of(r) == 1005),
            "t": h.collections.Counter(),
            # the default gets what matched no route at all
            "d": select(everything, lambda r: svc(r) not in ("svc-1", "svc-2", "svc-3")
                        and pid_of(r) != 1005),
            "f1": everything,
            "f2": everything,
        }
        # the fixture must exercise every route
        for k in ("a", "b", "e", "d"):
            self.assertTrue(want[k], "fixture sends nothing for %s" % k)
        self.assertGreater(h.sample_count(want["b"]), h.sample_count(want["a"]))
        got = self.wait_all(dirs, want)
        for k in dirs:
            self.assertSameData(want[k], got[k], "pipeline profiles/%s" % k)
        # every sample went to the routed pipelines exactly once per matching pipeline
        routed = sum(h.sample_count(got[k]) for k in ("a", "b", "e", "d"))
        self.assertEqual(routed, h.sample_count(want["a"]) + h.sample_count(want["b"])
                         + h.sample_count(want["e"]) + h.sample_count(want["d"]))
        self.stop_clean(fg)

    def test_b_tenant(self):
        fg, dirs = self.start_routing()
        r = h.synthetic_request(0)  # svc-0, pid 1000: only the tenant route can match
        self.assertOk(h.post(fg.port, r.SerializeToString(), CT_PROTO,
                             headers={"X-Scope-OrgID": "acme"}))
        want = h.canonical(r)
        deadline = time.monotonic() + 20
        got_t = got_d = h.collections.Counter()
        while time.monotonic() < deadline:
            got_t, _ = h.collect_dir(dirs["t"], 0, timeout=0.0, settle=0.0)
            got_d, _ = h.collect_dir(dirs["d"], 0, timeout=0.0, settle=0.0)
            if h.sample_count(got_t) + h.sample_count(got_d) >= h.sample_count(want):
                break
            time.sleep(0.05)
        if not got_t and got_d == want:
            self.stop_clean(fg)
            self.skipTest("the OTLP receiver does not set the batch tenant from "
                          "X-Scope-OrgID yet; routing by tenant is checked by "
                          "tests/unit/test_connectors.c")
        time.sleep(0.5)
        got_t, _ = h.collect_dir(dirs["t"], 0, timeout=0.0, settle=0.0)
        got_d, _ = h.collect_dir(dirs["d"], 0, timeout=0.0, settle=0.0)
        self.assertSameData(want, got_t, "tenant pipeline")
        self.assertSameData(h.collections.Counter(), got_d, "default pipeline")
        self.stop_clean(fg)


    def test_f_shutdown_flushes_through_connectors(self):
        # Batches held upstream (intake batch) and downstream (a's batch) with long timeouts:
        # only a stop that goes upstream first delivers them, through the connectors, into
        # exporters still running.
        dirs = {k: self.out_dir(k) for k in ("a", "d", "f")}
        cfg = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  batch/in:
    timeout: 60s
  batch/a:
    timeout: 60s
exporters:
  file/a: {path: %(a)s, format: otlp_proto}
  file/d: {path: %(d)s, format: otlp_proto}
  file/f: {path: %(f)s, format: otlp_proto}
connectors:
  forward:
  routing:
    default_pipelines: [profiles/d]
    routes:
      - match: {resource_attribute: service.name, value: svc-1}
        pipelines: [profiles/a]
service:
  pipelines:
    profiles/in:
      receivers: [otlp]
      processors: [batch/in]
      exporters: [routing]
    profiles/a:
      receivers: [routing]
      processors: [batch/a]
      exporters: [file/a, forward]
    profiles/d:
      receivers: [routing]
      exporters: [file/d]
    profiles/f:
      receivers: [forward]
      exporters: [file/f]
""" % dirs
        fg = self.start(cfg, "held")
        reqs = [h.synthetic_request(s) for s in range(8)]
        for r in reqs:
            self.assertOk(h.post(fg.port, r.SerializeToString(), CT_PROTO))
        time.sleep(0.3)
        for d in dirs.values():
            self.assertEqual(h.output_files(d), [], "nothing is written before the stop")
        self.stop_clean(fg)
        everything = h.canonical_sum(reqs)
        want_a = select(everything, lambda r: service_of(r) == "svc-1")
        want_d = select(everything, lambda r: service_of(r) != "svc-1")
        self.assertTrue(want_a and want_d)
        for k, want in (("a", want_a), ("d", want_d), ("f", want_a)):
            got, _ = h.collect_dir(dirs[k], 0, timeout=0.0, settle=0.0)
            self.assertSameData(want, got, "pipeline profiles/%s after the stop" % k)


BASE = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  debug:
connectors:
  forward/1:
  forward/2:
  routing:
    default_pipelines: [profiles/c]
    routes:
      - match: {resource_attribute: service.name, regex: '^api-'}
        pipelines: [profiles/b]
service:
  pipelines:
    profiles/a:
      receivers: [otlp, forward/2]
      exporters: [forward/1, routing]
    profiles/b:
      receivers: [forward/1, routing]
      exporters: [debug]
    profiles/c:
      receivers: [routing]
      exporters: [debug, forward/2]
"""


def position(text, line_needle, token):
    """(line, col), 1-based, of token in the only line containing line_needle."""
    lines = text.split("\n")
    hits = [i for i, ln in enumerate(lines) if line_needle in ln]
    assert len(hits) == 1, "needle %r not unique" % line_needle
    return hits[0] + 1, lines[hits[0]].index(token) + 1


class ValidateTest(h.FgTestCase):
    def validate(self, text):
        path = os.path.join(self.tmp, "cfg.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = h.run_cli(["validate", "--config", path])
        return path, r

    def test_c_cycle(self):
        # a -> forward/1 -> b; a -> routing -> c -> forward/2 -> a: a cycle through routing
        path, r = self.validate(BASE)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line, col = position(BASE, "exporters: [debug, forward/2]", "forward/2")
        want = ("%s:%d:%d: error: service.pipelines.profiles/c.exporters: connector "
                "\"forward/2\" closes a cycle of pipelines (profiles/a -> routing -> "
                "profiles/c -> forward/2 -> profiles/a)" % (path, line, col))
        self.assertIn(want, r.stderr)

    def test_d_undefined_pipeline(self):
        text = BASE.replace("exporters: [debug, forward/2]", "exporters: [debug]").replace(
            "receivers: [otlp, forward/2]", "receivers: [otlp]").replace(
            "  forward/2:\n", "").replace("pipelines: [profiles/b]",
                                          "pipelines: [profiles/b, profiles/x]")
        path, r = self.validate(text)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line, col = position(text, "pipelines: [profiles/b, profiles/x]", "profiles/x")
        self.assertIn("%s:%d:%d: error: connectors.routing.routes[0].pipelines: pipeline "
                      "\"profiles/x\" is not defined in service.pipelines" % (path, line, col),
                      r.stderr)
        # the same without the bad name is valid
        ok = text.replace("pipelines: [profiles/b, profiles/x]", "pipelines: [profiles/b]")
        _, r = self.validate(ok)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_e_one_sided_connector(self):
        text = BASE.replace("receivers: [forward/1, routing]", "receivers: [routing]").replace(
            "exporters: [debug, forward/2]", "exporters: [debug]").replace(
            "receivers: [otlp, forward/2]", "receivers: [otlp]").replace("  forward/2:\n", "")
        path, r = self.validate(text)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line, col = position(text, "exporters: [forward/1, routing]", "forward/1")
        self.assertIn("%s:%d:%d: error: service.pipelines.profiles/a.exporters: connector "
                      "\"forward/1\" is used as an exporter here but no pipeline lists it "
                      "among its receivers" % (path, line, col), r.stderr)


if __name__ == "__main__":
    h.main()
