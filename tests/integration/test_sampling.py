# Processor "sampling" in the real binary: two gateways with the same seed keep the same
# profiles, preserve_totals keeps totals exact end to end, and `flamegate validate` points
# at bad sampling settings with FILE:LINE:COL.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

CT_PROTO = "application/x-protobuf"
N_PROFILES = 400


def requests(n, per_request=20):
    """n one-sample profiles of 4 services with distinct start times, in requests of
    per_request profiles; returns (bodies, total weight)."""
    bodies, total = [], 0
    for start in range(0, n, per_request):
        b = h.ReqBuilder()
        for k in range(start, min(n, start + per_request)):
            rp = b.resource([("service.name", "svc-%d" % (k % 4)),
                             ("service.instance.id", "i-%d" % (k % 3))])
            sp = b.scope(rp, name="agent", version="1")
            p = b.profile(sp, time_unix_nano=1700000000000000000 + k * 1000003)
            loc = b.location(address=0x1000 + k % 7, lines=[("fn_%d" % (k % 7), "a.c", 3, 0)])
            b.sample(p, b.stack([loc]), values=[k % 13 + 1])
            total += k % 13 + 1
        bodies.append(b.bytes())
    return bodies, total


def profiles_of(out_dir):
    """[(start time, total, sampled flag)] of every profile in the file exporter's output."""
    m = h.pb()
    out = []
    for f in h.output_files(out_dir):
        req = m.req()
        req.ParseFromString(h.read_file(f))
        strings = req.dictionary.string_table
        attrs = req.dictionary.attribute_table
        for rp in req.resource_profiles:
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    sampled = any(strings[attrs[i].key_strindex] == "flamegate.sampled" and
                                  attrs[i].value.bool_value for i in p.attribute_indices)
                    total = sum(sum(s.values) for s in p.samples)
                    out.append((p.time_unix_nano, total, sampled))
    return out


class SamplingTest(h.FgTestCase):
    def gateway(self, name, sampling):
        out = self.out_dir("out-" + name)
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"file": {"path": out, "format": "otlp_proto"}},
                       processors={"sampling": sampling}, pipeline_processors=["sampling"])
        return self.start(cfg, name), out

    def run_through(self, name, sampling):
        fg, out = self.gateway(name, sampling)
        bodies, total = requests(N_PROFILES)
        for body in bodies:
            self.assertOk(h.post(fg.port, body, CT_PROTO), "post to %s" % name)
        self.assertEqual(fg.stop(), 0, self.logs())
        return profiles_of(out), total

    def test_same_seed_same_decisions(self):
        cfg = {"strategy": "probabilistic", "percentage": 25, "hash_seed": 1234}
        a, _ = self.run_through("a", cfg)
        b, _ = self.run_through("b", cfg)
        kept_a = sorted(t for t, _, _ in a)
        kept_b = sorted(t for t, _, _ in b)
        self.assertEqual(kept_a, kept_b, "two gateways with one seed decided differently")
        # 25% of 400: a binomial count well inside 60..140
        self.assertTrue(60 <= len(kept_a) <= 140, "kept %d of %d" % (len(kept_a), N_PROFILES))
        c, _ = self.run_through("c", dict(cfg, hash_seed=99))
        self.assertNotEqual(kept_a, sorted(t for t, _, _ in c))

    def test_preserve_totals(self):
        got, total = self.run_through("p", {"strategy": "probabilistic", "percentage": 10,
                                             "preserve_totals": True})
        self.assertEqual(len(got), N_PROFILES)
        self.assertEqual(sum(t for _, t, _ in got), total)
        stripped = sum(1 for _, _, s in got if s)
        self.assertTrue(300 <= stripped <= 390, "stripped %d" % stripped)

    def test_validate_points_at_bad_values(self):
        text = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  sampling:
    strategy: policy
    rules:
      - match: {resource_attribute: service.name, regex: "checkout("}
        strategy: probabilistic
        percentage: 50
      - strategy: probabilistic
        percentage: -10
    default: {strategy: probabilistic, percentage: 100}
  sampling/b:
    strategy: sometimes
exporters:
  debug:
service:
  pipelines:
    profiles:
      receivers: [otlp]
      processors: [sampling, sampling/b]
      exporters: [debug]
"""
        path = os.path.join(self.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = h.run_cli(["validate", "--config", path])
        self.assertEqual(r.returncode, 1, r.stderr)
        for marker in h.SANITIZER_MARKERS:
            self.assertNotIn(marker, r.stderr)
        lines = text.split("\n")

        def pos(needle, value):
            ln = [i for i, l in enumerate(lines) if needle in l]
            self.assertEqual(len(ln), 1, needle)
            return "%s:%d:%d: error: " % (path, ln[0] + 1, lines[ln[0]].index(value) + 1)

        for needle, value, what in [
                ('regex: "checkout("', '"checkout("', "invalid regular expression"),
                ("percentage: -10", "-10", "out of range"),
                ("strategy: sometimes", "sometimes", "invalid value")]:
            want = pos(needle, value)
            self.assertTrue(re.search(re.escape(want) + ".*" + what, r.stderr),
                            "want %s... %s in:\n%s" % (want, what, r.stderr))


if __name__ == "__main__":
    h.main()
