# pprof → model → pprof and pprof → model → OTLP → model → pprof over every protobuf pprof
# of the real corpus, read back by the independent reader `go tool pprof -raw`: same sample
# types, totals (also against manifest.csv), distinct stacks, function names and samples.
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402


def go_or_skip():
    if shutil.which("go") is None:
        msg = "SKIP: go is missing (Debian golang-go; `make test` installs it)"
        print(msg, flush=True)
        raise unittest.SkipTest(msg)


def pprof_tool():
    b = h.build_dir()
    if b is None:
        b = os.path.join(h.source_dir(), "build")
    t = os.path.join(b, "tests", "fg-pprof-tool")
    if not os.access(t, os.X_OK):
        raise h.HarnessError("fg-pprof-tool not built: %s" % t)
    return t


def go_raw(path):
    """`go tool pprof -raw` text of a file; fails the caller's test if go cannot read it."""
    env = dict(os.environ, HOME=os.environ.get("HOME", "/tmp"), PPROF_TMPDIR="/tmp")
    r = subprocess.run(["go", "tool", "pprof", "-raw", path], capture_output=True,
                       timeout=120, env=env)
    if r.returncode != 0:
        raise AssertionError("go tool pprof -raw %s failed: %s"
                             % (path, r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8", "replace")


_SAMPLE = re.compile(r"^\s*(-?\d+(?:\s+-?\d+)*):((?:\s+\d+)*)\s*$")
_LOC = re.compile(r"^\s*(\d+): (0x[0-9a-f]+)(?: M=\d+)?(.*)$")


class Raw:
    """What `go tool pprof -raw` prints, with location ids resolved to their text (ids and
    mapping ids are the writer's choice, so they are not compared)."""

    def __init__(self, text):
        self.types = []
        self.default = []
        self.samples = []  # (values tuple, location ids tuple, labels text)
        self.locations = {}  # id -> tuple of frame texts (address first)
        section = None
        cur_loc = None
        for line in text.splitlines():
            if line == "Samples:":
                section = "types"
                continue
            if line == "Locations":
                section = "loc"
                continue
            if line == "Mappings":
                section = "map"
                continue
            if section == "types":
                # "[dflt]" marks default_sample_type
                self.types = [t.replace("[dflt]", "") for t in line.split()]
                self.default = [t for t in line.split() if t.endswith("[dflt]")]
                section = "samples"
            elif section == "samples":
                m = _SAMPLE.match(line)
                if m:
                    vals = tuple(int(v) for v in m.group(1).split())
                    ids = tuple(int(v) for v in m.group(2).split())
                    self.samples.append([vals, ids, ""])
                elif line.strip() and self.samples:
                    # label lines; google/pprof sorts keys, values keep their order
                    self.samples[-1][2] += line.strip() + "|"
            elif section == "loc":
                m = _LOC.match(line)
                if m:
                    cur_loc = int(m.group(1))
                    self.locations[cur_loc] = [m.group(2), m.group(3).strip()]
                elif line.strip() and cur_loc is not None:
                    self.locations[cur_loc].append(line.strip())
        self.locations = {k: tuple(v) for k, v in self.locations.items()}

    def stack(self, ids):
        return tuple(self.locations[i] for i in ids)

    def totals(self):
        t = [0] * len(self.types)
        for vals, _, _ in self.samples:
            for i, v in enumerate(vals):
                t[i] += v
        return t

    def stacks(self):
        return {self.stack(ids) for _, ids, _ in self.samples}

    def functions(self):
        """Function names: the first word of every frame text (inline frames included)."""
        names = set()
        for frames in self.locations.values():
            for f in frames[1:]:
                if f:
                    names.add(f.split(" ")[0])
        return names

    def sample_multiset(self):
        out = {}
        for vals, ids, labels in self.samples:
            k = (vals, self.stack(ids), labels)
            out[k] = out.get(k, 0) + 1
        return out


def manifest_rows():
    path = h.corpus_file("pprof/manifest.csv")
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["format"] == "pprof-proto"]


class PprofRoundTrip(unittest.TestCase):
    def setUp(self):
        go_or_skip()
        self.tool = pprof_tool()
        self.tmp = tempfile.mkdtemp(prefix="fg-pprof-rt-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, row, mode):
        name = row["file"]
        src = h.corpus_file("pprof/" + name)
        out = os.path.join(self.tmp, "%s.%s.pb.gz" % (name, mode))
        r = subprocess.run([self.tool, mode, src, out], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, "%s %s: %s" % (mode, name, r.stderr.decode()))
        self.assertIn(b"pprofs: 1\n", r.stdout, "%s %s: want one pprof" % (mode, name))
        want, got = Raw(go_raw(src)), Raw(go_raw(out))
        what = "%s (%s)" % (name, mode)
        types = row["sample_types"].split(";")
        self.assertEqual(got.types, types, what + ": sample types vs manifest")
        self.assertEqual(got.types, want.types, what + ": sample types")
        self.assertEqual(got.default, want.default, what + ": default sample type")
        totals = [int(x) for x in row["totals"].split(";")]
        self.assertEqual(got.totals(), totals, what + ": totals vs manifest")
        self.assertEqual(got.totals(), want.totals(), what + ": totals")
        self.assertEqual(len(got.stacks()), len(want.stacks()), what + ": distinct stacks")
        self.assertEqual(got.stacks(), want.stacks(), what + ": stacks")
        self.assertEqual(got.functions(), want.functions(), what + ": function names")
        self.assertEqual(got.sample_multiset(), want.sample_multiset(),
                         what + ": samples (values, stack, labels)")
        return got

    def test_roundtrip(self):
        rows = manifest_rows()
        self.assertGreaterEqual(len(rows), 18)
        for row in rows:
            with self.subTest(file=row["file"]):
                self.check(row, "roundtrip")

    def test_via_otlp(self):
        for row in manifest_rows():
            with self.subTest(file=row["file"]):
                self.check(row, "via-otlp")

    def test_legacy_formats_are_named(self):
        with open(h.corpus_file("pprof/manifest.csv"), newline="") as f:
            legacy = [r for r in csv.DictReader(f) if r["format"].startswith("pprof-legacy")]
        self.assertTrue(legacy)
        for row in legacy:
            src = h.corpus_file("pprof/" + row["file"])
            r = subprocess.run([self.tool, "roundtrip", src, os.path.join(self.tmp, "x")],
                               capture_output=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, row["file"])
            kind = "gperftools CPU" if "cpu" in row["format"] else "heap text"
            self.assertIn("unsupported pprof format (legacy %s" % kind, r.stderr.decode(),
                          row["file"])


if __name__ == "__main__":
    h.main()
