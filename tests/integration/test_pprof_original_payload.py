# otlphttp's include_original_payload: A (otlp → otlphttp) forwards the eBPF corpus payload
# to B (otlp → file); every profile B stores carries a gzip pprof in original_payload that
# `go tool pprof -raw` reads, with the totals of manifest.csv; without the option, none.
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
from test_pprof_roundtrip import Raw, go_or_skip, go_raw  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"
WANT_TOTALS = {"off_cpu/nanoseconds": 267302249331, "samples/count": 10}
WANT_PROFILES = 82
WANT_SAMPLES = 317


class OriginalPayload(h.FgTestCase):
    def forward(self, include):
        out = self.out_dir("out-%s" % include)
        b = self.start(h.sink_config(out), "b")
        cfg = h.forward_config(b.port)
        if include is not None:
            cfg["exporters"]["otlphttp"]["include_original_payload"] = include
        a = self.start(cfg, "a")
        self.assertOk(h.post(a.port, h.read_file(h.corpus_file(EBPF_PB))), "post to A")
        got, files = h.collect_dir(out, WANT_SAMPLES)
        self.assertEqual(h.sample_count(got), WANT_SAMPLES, self.logs())
        profiles = []
        for f in files:
            req = h.parse_request(h.read_file(f))
            for rp in req.resource_profiles:
                for sp in rp.scope_profiles:
                    profiles.extend(sp.profiles)
        self.stop_clean(a)
        self.stop_clean(b)
        return profiles

    def test_payload_is_a_pprof_go_reads(self):
        go_or_skip()
        profiles = self.forward(True)
        self.assertEqual(len(profiles), WANT_PROFILES)
        totals = {}
        for i, prof in enumerate(profiles):
            self.assertEqual(prof.original_payload_format, "pprof")
            self.assertEqual(prof.original_payload[:2], b"\x1f\x8b", "gzip")
            path = os.path.join(self.tmp, "payload-%d.pb.gz" % i)
            with open(path, "wb") as f:
                f.write(prof.original_payload)
            raw = Raw(go_raw(path))
            self.assertEqual(len(raw.types), 1)
            totals[raw.types[0]] = totals.get(raw.types[0], 0) + raw.totals()[0]
        self.assertEqual(totals, WANT_TOTALS)

    def test_off_by_default(self):
        for include in (None, False):
            profiles = self.forward(include)
            self.assertEqual(len(profiles), WANT_PROFILES)
            self.assertTrue(all(p.original_payload == b"" and p.original_payload_format == ""
                                for p in profiles))


if __name__ == "__main__":
    h.main()
