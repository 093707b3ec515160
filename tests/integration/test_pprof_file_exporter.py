# The file exporter's pprof and folded output for a real eBPF OTLP payload: every pprof is
# read by `go tool pprof -raw`, and the per-type totals match manifest.csv.
import glob
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
from test_pprof_roundtrip import Raw, go_or_skip, go_raw  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"
# manifest.csv: 77 resources, 82 profiles (none of them line up with another, so each is
# a pprof of its own), sample types off_cpu/nanoseconds;samples/count, totals, samples
WANT_FILES = 82
WANT_TOTALS = {"off_cpu/nanoseconds": 267302249331, "samples/count": 10}
WANT_SAMPLES = {"off_cpu/nanoseconds": 307, "samples/count": 10}


def wait_files(pattern, count, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(glob.glob(pattern))
        if len(files) >= count or time.monotonic() >= deadline:
            time.sleep(0.2)  # stragglers would show up as extra files
            return sorted(glob.glob(pattern))
        time.sleep(0.05)


class FileExporterPprof(h.FgTestCase):
    def post_ebpf(self, fmt):
        body = h.read_file(h.corpus_file(EBPF_PB))
        out = self.out_dir()
        p = self.start(h.sink_config(out, fmt=fmt), "sink")
        self.assertOk(h.post(p.port, body), "post eBPF payload")
        return p, out

    def test_pprof_files_read_by_go(self):
        go_or_skip()
        p, out = self.post_ebpf("pprof")
        files = wait_files(os.path.join(out, "pprof-*.pb.gz"), WANT_FILES)
        self.assertEqual(len(files), WANT_FILES, "one pprof per profile: %s%s"
                         % (files, self.logs()))
        self.assertEqual([f for f in os.listdir(out) if f.startswith(".")], [])
        totals, samples = {}, {}
        for f in files:
            raw = Raw(go_raw(f))
            self.assertEqual(len(raw.types), 1, f)
            t = raw.types[0]
            self.assertIn("-%s-" % t.split("/")[0], os.path.basename(f), "type in the name")
            totals[t] = totals.get(t, 0) + raw.totals()[0]
            samples[t] = samples.get(t, 0) + len(raw.samples)
            self.assertTrue(raw.functions(), "%s: no function names" % f)
            # sample attributes became labels
            self.assertTrue(all("thread.name:[" in lbl for _, _, lbl in raw.samples), f)
        self.assertEqual(totals, WANT_TOTALS)
        self.assertEqual(samples, WANT_SAMPLES)
        self.stop_clean(p)

    def test_folded_files(self):
        p, out = self.post_ebpf("folded")
        files = wait_files(os.path.join(out, "folded-*.folded"), WANT_FILES)
        self.assertEqual(len(files), WANT_FILES, "%s%s" % (files, self.logs()))
        totals = {}
        for f in files:
            kind = "off_cpu/nanoseconds" if "-off_cpu-" in f else "samples/count"
            with open(f) as fh:
                for line in fh:
                    stack, _, count = line.rstrip("\n").rpartition(" ")
                    self.assertTrue(stack, line)
                    self.assertFalse(stack.startswith(";") or stack.endswith(";"), line)
                    totals[kind] = totals.get(kind, 0) + int(count)
        self.assertEqual(totals, WANT_TOTALS)
        self.stop_clean(p)

    def test_bad_format_is_a_config_error(self):
        cfg = h.sink_config(self.out_dir(), fmt="pprofz")
        p = self.start(cfg, "bad", wait_port=False)
        rc = p.proc.wait(timeout=15)
        self.assertNotEqual(rc, 0)
        self.assertIn("pprof", p.log_text())


if __name__ == "__main__":
    h.main()
