# Extension "liveview" in the real binary: synthetic OTLP profiles posted over HTTP (several
# services, two sample types, inlined and unsymbolized frames, timestamps-only samples)
# show in GET /api/flamegraph as trees whose every frame path has exactly the value summed
# here from what was sent; folded stacks, services, overview and errors agree, and the data
# path is unchanged (the file exporter writes exactly what was posted).
import collections
import json
import os
import random
import re
import signal
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

LV_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(live view\)")
SERVICES = ("checkout", "cart", "search engine/β")  # a space, a slash and UTF-8 on purpose
FUNCS = ["main", "run", "parse", "lex", "eval", "add", "mul", "gc", "alloc", "syscall",
         "read", "write", "hash", "sort"]


def liveview_port(p, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = LV_PORT_RE.search(p.log_text())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise h.HarnessError("no live view port in the log:\n" + p.log_tail())


def liveview_config(out_dir, window="5m", max_stacks=50000, batch=True):
    cfg = h.config({"otlp": h.otlp_receiver()},
                   {"file": {"path": out_dir, "format": "otlp_proto"}},
                   processors={"batch": {"timeout": "50ms"}} if batch else None,
                   pipeline_processors=["batch"] if batch else ())
    cfg["extensions"] = {"liveview": {"endpoint": "127.0.0.1:0", "window": window,
                                      "max_stacks": max_stacks}}
    cfg["service"]["extensions"] = ["liveview"]
    return cfg


class Expected:
    """Sums made here from what was sent: per (service, type), every root-first path."""

    def __init__(self):
        self.paths = collections.defaultdict(collections.Counter)
        self.stacks = collections.defaultdict(collections.Counter)
        self.samples = 0

    def add(self, service, typ, frames, weight):
        key = (service, typ)
        self.paths[key][("all",)] += weight
        for i in range(len(frames)):
            self.paths[key][("all",) + tuple(frames[:i + 1])] += weight
        if frames:
            self.stacks[key][tuple(frames)] += weight


def request(rng, seq, exp):
    """One request of 1-3 resources; returns its bytes and sample count."""
    b = h.ReqBuilder()
    n = 0
    for r in range(rng.randint(1, 3)):
        service = SERVICES[(seq + r) % len(SERVICES)]
        rp = b.resource([("service.name", service), ("host.name", "h%d" % r)],
                        strindex=bool(seq % 2))
        sp = b.scope(rp)
        for typ in (("samples", "count"), ("alloc_space", "bytes")):
            p = b.profile(sp, sample_type=typ)
            for _ in range(rng.randint(1, 12)):
                depth = rng.randint(0, 7)
                locs, frames = [], []  # locs leaf first; frames root first
                for d in range(depth):
                    kind = rng.random()
                    if kind < 0.15:  # unsymbolized: mapping basename + address
                        addr = rng.choice([0x1a2b, 0x77f0, 0x4000])
                        locs.append(b.location(addr, {"filename": "/usr/lib/libfoo.so.1"}))
                        frames.append("libfoo.so.1+0x%x" % addr)
                    elif kind < 0.3:  # inlined: callee first in lines, caller first in frames
                        f1, f2 = rng.choice(FUNCS), rng.choice(FUNCS)
                        locs.append(b.location(0x9000 + d, None, [(f1 + "_inl", "a.c", 3, 0),
                                                                  (f2, "a.c", 9, 0)]))
                        frames.extend([f2, f1 + "_inl"])
                    else:
                        f = rng.choice(FUNCS)
                        locs.append(b.location(0x5000 + FUNCS.index(f), None,
                                               [(f, "m.c", 1, 0)]))
                        frames.append(f)
                # locations were appended root first; the wire wants leaf first
                st = b.stack(list(reversed(locs))) if locs else 0
                if rng.random() < 0.2:
                    ts = [1700000000000000000 + k for k in range(rng.randint(1, 4))]
                    b.sample(p, st, timestamps=ts)
                    w = len(ts)
                else:
                    vals = [rng.randint(1, 10**6)]
                    b.sample(p, st, values=vals)
                    w = sum(vals)
                exp.add(service, "%s/%s" % typ, frames, w)
                exp.samples += 1
                n += 1
    return b.bytes(), n


def flatten(node, prefix=()):
    out = {}
    path = prefix + (node["name"],)
    out[path] = node["value"]
    self_sum = sum(c["value"] for c in node["children"])
    assert node["self"] == node["value"] - self_sum, "self of %r" % (path,)
    names = [c["name"] for c in node["children"]]
    assert names == sorted(names, key=lambda s: s.encode()), "children sorted by name"
    for c in node["children"]:
        out.update(flatten(c, path))
    return out


def get_json(port, path):
    r = h.request(port, "GET", path)
    if r.status != 200:
        raise AssertionError("GET %s: %d %r" % (path, r.status, r.body[:300]))
    return json.loads(r.body.decode("utf-8"))


def q(service, typ, **extra):
    d = {"service": service, "type": typ}
    d.update(extra)
    return urllib.parse.urlencode(d)


class LiveViewTest(h.FgTestCase):
    def test_tree_values_equal_what_was_sent(self):
        out = self.out_dir()
        fg = self.start(liveview_config(out), "lv")
        lv = liveview_port(fg)
        rng = random.Random(9)
        exp = Expected()
        want_canon = collections.Counter()
        for seq in range(40):
            body, _ = request(rng, seq, exp)
            want_canon.update(h.canonical(body))
            self.assertOk(h.post(fg.port, body), "post %d" % seq)

        # the aggregate catches up asynchronously: wait for every sample
        deadline = time.monotonic() + 20
        while True:
            o = get_json(lv, "/api/overview")
            if o["aggregate"]["samples"] >= exp.samples or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(o["aggregate"]["samples"], exp.samples, self.logs())
        self.assertEqual(o["tap"]["dropped_batches"], 0)
        self.assertEqual([p["name"] for p in o["pipelines"]], ["profiles"])
        self.assertEqual(o["pipelines"][0]["samples"], exp.samples)
        self.assertEqual(o["pipelines"][0]["processors"], ["batch"])

        services = get_json(lv, "/api/services")
        seen = {(s["name"], t["type"]): t for s in services["services"] for t in s["types"]}
        self.assertEqual(set(seen), set(exp.paths))
        for key, paths in sorted(exp.paths.items()):
            service, typ = key
            self.assertEqual(seen[key]["value"], paths[("all",)], key)
            tree = get_json(lv, "/api/flamegraph?" + q(service, typ))
            self.assertEqual(tree["service"], service)
            self.assertEqual(tree["total"], paths[("all",)])
            got = flatten(tree["root"])
            self.assertEqual(got, dict(paths), "frame paths of %r" % (key,))

            r = h.request(lv, "GET", "/api/flamegraph.folded?" + q(service, typ))
            self.assertEqual(r.status, 200)
            folded = collections.Counter()
            for line in r.body.decode("utf-8").splitlines():
                stack, _, v = line.rpartition(" ")
                folded[tuple(stack.split(";"))] += int(v)
            self.assertEqual(folded, exp.stacks[key], "folded %r" % (key,))

            # a range in the past that holds nothing yet: no value
            tree = get_json(lv, "/api/flamegraph?" + q(service, typ, **{"from": 300, "to": 120}))
            self.assertEqual(tree["total"], 0)

        self.assertStatus(h.request(lv, "GET", "/api/flamegraph?" + q("nobody", "x/y")), 404)
        self.assertStatus(h.request(lv, "GET", "/api/flamegraph?service=cart"), 400)
        self.assertStatus(h.request(lv, "POST", "/api/services", b"x"), 405)
        for page in ("/", "/flamegraph?" + q("cart", "samples/count"), "/diff"):
            r = h.request(lv, "GET", page)
            self.assertEqual(r.status, 200, page)
            self.assertIn("text/html", r.header("Content-Type"))
            text = r.body.decode("utf-8")
            self.assertNotRegex(text, r"(src|href)=\"https?://", "no external assets")
        self.assertIn('data-pipeline="profiles"', h.request(lv, "GET", "/").body.decode())

        # the tap changed nothing on the data path
        got_canon, files = h.collect_dir(out, h.sample_count(want_canon))
        self.assertSameData(want_canon, got_canon, "file exporter output")
        self.stop_clean(fg)

    def test_max_stacks_says_so(self):
        fg = self.start(liveview_config(self.out_dir(), max_stacks=16, batch=False), "lv")
        lv = liveview_port(fg)
        b = h.ReqBuilder()
        p = b.profile(b.scope(b.resource([("service.name", "many")])))
        for i in range(40):
            loc = b.location(0x100 + i, None, [("f%02d" % i, "x.c", 1, 0)])
            b.sample(p, b.stack([loc]), values=[i + 1])
        self.assertOk(h.post(fg.port, b.bytes()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = get_json(lv, "/api/services")
            if s["services"] and s["services"][0]["types"][0]["samples"] == 40:
                break
            time.sleep(0.05)
        t = s["services"][0]["types"][0]
        self.assertGreater(t["dropped_stacks"], 0)
        self.assertLessEqual(t["stacks"], 16)
        self.assertEqual(t["stacks"] + t["dropped_stacks"], 40)
        # the smallest went: what is left are the largest stacks, with their exact values
        tree = get_json(lv, "/api/flamegraph?" + q("many", "samples/count"))
        kept = {c["name"]: c["value"] for c in tree["root"]["children"]}
        self.assertEqual(kept, {"f%02d" % i: i + 1 for i in range(40 - len(kept), 40)})
        self.assertEqual(tree["dropped_stacks"], t["dropped_stacks"])
        self.assertEqual(tree["dropped_value"], sum(range(1, 41)) - sum(kept.values()))
        self.stop_clean(fg)

    def test_exporter_counters_in_overview(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        cfg = h.forward_config(b.port)
        cfg["extensions"] = {"liveview": {"endpoint": "127.0.0.1:0"}}
        cfg["service"]["extensions"] = ["liveview"]
        a = self.start(cfg, "A")
        lv = liveview_port(a)
        deadline = time.monotonic() + 10
        while True:  # the service publishes its config as it starts
            o = get_json(lv, "/api/overview")
            if o["exporters"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual([e["id"] for e in o["exporters"]], ["otlphttp"])
        self.assertEqual(o["exporters"][0]["sent_samples"], 0)
        rng = random.Random(3)
        exp = Expected()
        for seq in range(10):
            body, _ = request(rng, seq, exp)
            self.assertOk(h.post(a.port, body))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            e = get_json(lv, "/api/overview")["exporters"][0]
            if e["sent_samples"] >= exp.samples:
                break
            time.sleep(0.1)
        self.assertEqual(e["sent_samples"], exp.samples, self.logs())
        self.assertEqual((e["failed_samples"], e["refused_samples"], e["queue"]), (0, 0, 0))
        self.assertEqual(e["queue_capacity"], 1000)
        self.assertGreaterEqual(e["sent_batches"], 1)
        self.stop_clean(a)
        self.stop_clean(b)

    def test_pipelines_option(self):
        """One receiver feeding two pipelines: both are counted on the overview, the flame
        graphs show the one chosen (so nothing is counted twice)."""
        cfg = liveview_config(self.out_dir(), batch=False)
        cfg["exporters"]["debug"] = {"verbosity": "basic"}
        cfg["service"]["pipelines"]["profiles/copy"] = {"receivers": ["otlp"],
                                                         "exporters": ["debug"]}
        cfg["extensions"]["liveview"]["pipelines"] = ["profiles"]
        fg = self.start(cfg, "lv")
        lv = liveview_port(fg)
        exp = Expected()
        body, _ = request(random.Random(11), 0, exp)
        self.assertOk(h.post(fg.port, body))
        deadline = time.monotonic() + 10
        while True:
            o = get_json(lv, "/api/overview")
            if all(p["samples"] == exp.samples for p in o["pipelines"]):
                break
            self.assertLess(time.monotonic(), deadline, repr(o) + self.logs())
            time.sleep(0.05)
        self.assertEqual([(p["name"], p["in_view"]) for p in o["pipelines"]],
                         [("profiles", True), ("profiles/copy", False)])
        self.assertEqual(o["aggregate"]["samples"], exp.samples)
        for (service, typ), paths in exp.paths.items():
            tree = get_json(lv, "/api/flamegraph?" + q(service, typ))
            self.assertEqual(flatten(tree["root"]), dict(paths))
        self.stop_clean(fg)

    def test_reload_keeps_the_page(self):
        """SIGHUP: the new service's live view takes over the old one's listener (the old
        one stops last and still holds the port), the page keeps answering on the same port
        with the new config, and the gateway stays up."""
        port = h.free_port()
        cfg = liveview_config(self.out_dir())
        cfg["extensions"]["liveview"]["endpoint"] = "127.0.0.1:%d" % port
        cfg["receivers"]["otlp"] = h.otlp_receiver("127.0.0.1:%d" % h.free_port())
        fg = self.start(cfg, "lv")
        self.assertEqual(liveview_port(fg), port)
        rng = random.Random(5)
        exp = Expected()
        body, _ = request(rng, 0, exp)
        self.assertOk(h.post(fg.port, body))
        cfg["service"]["pipelines"]["profiles/second"] = dict(cfg["service"]["pipelines"]
                                                              ["profiles"])
        with open(fg.config_path, "w") as f:
            f.write(h.to_yaml(cfg))
        fg.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reload: new configuration running" not in fg.log_text():
            self.assertLess(time.monotonic(), deadline, "no reload" + self.logs())
            time.sleep(0.05)
        self.assertIn("took over the live view", fg.log_text())
        o = get_json(port, "/api/overview")
        self.assertEqual([p["name"] for p in o["pipelines"]], ["profiles", "profiles/second"])
        # data posted after the reload shows in the new instance
        deadline = time.monotonic() + 20
        while True:
            try:
                r = h.post(fg.port, body)
            except OSError:
                r = None
            if r is not None and r.status == 200:
                break
            self.assertLess(time.monotonic(), deadline, "no OTLP after reload" + self.logs())
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while get_json(port, "/api/overview")["aggregate"]["samples"] < 2 * exp.samples:
            self.assertLess(time.monotonic(), deadline, "no data after reload" + self.logs())
            time.sleep(0.1)
        time.sleep(1.0)  # the old service retires in the background
        self.assertAlive(fg, "after the reload")
        self.assertEqual(h.request(port, "GET", "/api/services").status, 200)
        self.stop_clean(fg)


if __name__ == "__main__":
    h.main()
