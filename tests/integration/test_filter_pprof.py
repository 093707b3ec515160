# The filter processor's drop_frames/keep_frames against `go tool pprof` itself: a real corpus
# pprof is posted as OTLP (converted here in Python, not by flamegate), pruned by flamegate and
# written back as pprof by the file exporter; the same pprof with its own drop_frames/
# keep_frames fields set is read by go tool pprof, which prunes it with google/pprof's
# Prune. Both `go tool pprof -traces` outputs must hold the same stacks with the same values.
import collections
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

GO_CPU = "pprof/go119.cpu.pb.gz"
JAVA_CPU = "pprof/pyroscope_java_asyncprofiler_cpu.pb.gz"


# ---- a minimal pprof reader (WIRE.md §4) ----

def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def _ints(wt, v):
    """A repeated integer field, packed or not."""
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _signed(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def parse_pprof(raw):
    p = {"strings": [], "sample_type": [], "samples": [], "mappings": {}, "locations": {},
         "functions": {}, "period_type": (0, 0), "period": 0, "time": 0, "duration": 0}
    for num, wt, v in _fields(raw):
        if num == 6:
            p["strings"].append(v.decode("utf-8", "replace"))
        elif num == 1:
            d = dict((n, x) for n, _, x in _fields(v))
            p["sample_type"].append((d.get(1, 0), d.get(2, 0)))
        elif num == 11:
            d = dict((n, x) for n, _, x in _fields(v))
            p["period_type"] = (d.get(1, 0), d.get(2, 0))
        elif num == 12:
            p["period"] = _signed(v)
        elif num == 9:
            p["time"] = _signed(v)
        elif num == 10:
            p["duration"] = _signed(v)
        elif num == 2:
            s = {"locs": [], "values": [], "labels": []}
            for n, w, x in _fields(v):
                if n == 1:
                    s["locs"] += _ints(w, x)
                elif n == 2:
                    s["values"] += [_signed(y) for y in _ints(w, x)]
                elif n == 3:
                    s["labels"].append(dict((a, b) for a, _, b in _fields(x)))
            p["samples"].append(s)
        elif num == 3:
            d = dict((n, x) for n, _, x in _fields(v))
            p["mappings"][d.get(1, 0)] = d
        elif num == 4:
            loc = {"lines": []}
            for n, _, x in _fields(v):
                if n == 4:
                    loc["lines"].append(dict((a, b) for a, _, b in _fields(x)))
                else:
                    loc[n] = x
            p["locations"][loc.get(1, 0)] = loc
        elif num == 5:
            d = dict((n, x) for n, _, x in _fields(v))
            p["functions"][d.get(1, 0)] = d
    return p


def _field_varint(num, value):
    out = bytearray()
    key = num << 3
    for x in (key, value):
        while True:
            b = x & 0x7F
            x >>= 7
            out.append(b | (0x80 if x else 0))
            if not x:
                break
    return bytes(out)


def _field_bytes(num, data):
    return bytes(_key_len(num, len(data))) + data


def _key_len(num, n):
    out = bytearray()
    for x in ((num << 3) | 2, n):
        while True:
            b = x & 0x7F
            x >>= 7
            out.append(b | (0x80 if x else 0))
            if not x:
                break
    return out


def with_prune_fields(raw, drop, keep):
    """The same pprof with drop_frames (7) / keep_frames (8) set: appended strings take the
    next string-table indices, and a field appended to a message is read like any other."""
    n = len(parse_pprof(raw)["strings"])
    out = raw + _field_bytes(6, drop.encode()) + _field_varint(7, n)
    if keep:
        out += _field_bytes(6, keep.encode()) + _field_varint(8, n + 1)
    return out


def pprof_to_otlp(p):
    """One resource, one scope, one profile per sample type, stacks shared."""
    b = h.ReqBuilder()
    S = p["strings"]
    rp = b.resource([("service.name", "filter-pprof-test")])
    sp = b.scope(rp, name="pprof-corpus")
    profs = []
    for t, u in p["sample_type"]:
        profs.append(b.profile(sp, sample_type=(S[t], S[u]),
                               period_type=(S[p["period_type"][0]], S[p["period_type"][1]]),
                               period=p["period"], time_unix_nano=p["time"],
                               duration_nano=p["duration"]))
    d = b.req.dictionary
    loc_index = {}
    for lid, loc in p["locations"].items():
        ol = d.location_table.add()
        ol.address = loc.get(3, 0)
        mp = p["mappings"].get(loc.get(2, 0))
        if mp:
            ol.mapping_index = b.mapping(S[mp.get(5, 0)], mp.get(2, 0), mp.get(3, 0), mp.get(4, 0))
        for ln in loc["lines"]:
            fn = p["functions"][ln.get(1, 0)]
            nl = ol.lines.add()
            nl.function_index = b.function(S[fn.get(2, 0)], S[fn.get(3, 0)], S[fn.get(4, 0)],
                                           _signed(fn.get(5, 0)))
            nl.line = _signed(ln.get(2, 0))
        loc_index[lid] = len(d.location_table) - 1
    for s in p["samples"]:
        st = b.stack([loc_index[x] for x in s["locs"]])
        attrs = [(S[lb[1]], S[lb.get(2, 0)]) for lb in s["labels"] if lb.get(2)]
        for i, prof in enumerate(profs):
            b.sample(prof, st, values=[s["values"][i]], attrs=attrs)
    return b.bytes()


# ---- go tool pprof ----

def go_or_skip():
    if not shutil.which("go"):
        raise unittest.SkipTest("go tool pprof not installed (Debian golang-go)")


LABEL_RE = re.compile(r"^ *(\S+):  (.*)$")
VALUE_RE = re.compile(r"^ *(\S+)   (.*)$")


UNITS = {"": 1, "ns": 1, "us": 1e3, "\u00b5s": 1e3, "ms": 1e6, "s": 1e9, "mins": 6e10,
         "hrs": 3.6e12, "B": 1, "kB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
NUM_RE = re.compile(r"^(-?[0-9.]+)(\D*)$")


def _value(text):
    m = NUM_RE.match(text)
    if not m or m.group(2) not in UNITS:
        raise AssertionError("cannot read value %r" % text)
    return float(m.group(1)) * UNITS[m.group(2)]


def traces(path, sample_index, unit, tmp):
    """What `go tool pprof -traces` shows for one sample type: the total value per
    (labels, stack). Totals, because samples with the same stack and labels may be merged
    on the way through flamegate (they mean the same to every pprof view)."""
    env = dict(os.environ, HOME=tmp, PPROF_TMPDIR=tmp, GOCACHE=tmp)
    # values in the base unit, so totals are exact rather than sums of rounded numbers
    base = {"nanoseconds": ["-unit=ns"], "bytes": ["-unit=B"]}.get(unit, [])
    out = subprocess.run(["go", "tool", "pprof", "-traces", "-symbolize=none",
                          "-sample_index=%d" % sample_index] + base + [path],
                         capture_output=True, text=True, env=env, timeout=120)
    if out.returncode != 0:
        raise AssertionError("go tool pprof failed on %s: %s" % (path, out.stderr))
    totals = collections.defaultdict(float)
    chunks = out.stdout.split("-----------+-------------------------------------------------------\n")
    for chunk in chunks[1:]:
        labels, value, frames = [], None, []
        for line in chunk.splitlines():
            if not line.strip():
                continue
            if value is None:
                m = LABEL_RE.match(line)
                if m:
                    labels.append((m.group(1), m.group(2).strip()))
                    continue
                m = VALUE_RE.match(line)
                if not m:
                    raise AssertionError("unexpected -traces line %r" % line)
                value = _value(m.group(1))
                frames.append(m.group(2).strip())
            else:
                frames.append(line.strip())
        if value is not None:  # the output ends with a separator
            totals[(tuple(sorted(labels)), tuple(frames))] += value
    return dict((k, round(v)) for k, v in totals.items())


def wait_files(pattern, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(glob.glob(pattern))
        if files:
            time.sleep(0.3)
            return sorted(glob.glob(pattern))
        time.sleep(0.05)
    return []


class FilterAgainstPprof(h.FgTestCase):
    def run_case(self, corpus, drop, keep=None):
        go_or_skip()
        raw = h.read_file(h.corpus_file(corpus))
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        parsed = parse_pprof(raw)
        out = self.out_dir()
        tmp = os.path.join(out, "go")
        os.makedirs(tmp)
        ref = os.path.join(tmp, "reference.pb")
        with open(ref, "wb") as f:
            f.write(with_prune_fields(raw, drop, keep))
        orig = os.path.join(tmp, "original.pb")
        with open(orig, "wb") as f:
            f.write(raw)

        filt = {"drop_frames": drop}
        if keep:
            filt["keep_frames"] = keep
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"file": {"path": os.path.join(out, "pprof"), "format": "pprof"}},
                       processors={"filter": filt}, pipeline_processors=["filter"])
        p = self.start(cfg, "filter")
        self.assertOk(h.post(p.port, pprof_to_otlp(parsed)), "post")
        files = wait_files(os.path.join(out, "pprof", "pprof-*.pb.gz"))
        self.assertEqual(len(files), 1, "one pprof out: %s%s" % (files, self.logs()))
        pruned_any = False
        for i, (_, unit) in enumerate(parsed["sample_type"]):
            unit = parsed["strings"][unit]
            want = traces(ref, i, unit, tmp)
            got = traces(files[0], i, unit, tmp)
            before = traces(orig, i, unit, tmp)
            self.assertTrue(want, "go tool pprof shows no samples")
            pruned_any |= want != before
            if got != want:
                diff_w = [(k, v) for k, v in want.items() if got.get(k) != v][:3]
                diff_g = [(k, v) for k, v in got.items() if want.get(k) != v][:3]
                self.fail("sample type %d: go tool pprof prunes differently.\n"
                          "only pprof: %s\nonly flamegate: %s" % (i, diff_w, diff_g))
        self.assertTrue(pruned_any, "the regex %r pruned nothing: a useless case" % drop)
        self.stop_clean(p)

    def test_drop_runtime_allocation(self):
        # everything a Go program's allocations and GC do below the allocator
        self.run_case(GO_CPU, r"runtime\.(mallocgc|gcDrain|gcBgMarkWorker)")

    def test_drop_with_keep(self):
        self.run_case(GO_CPU, r"runtime\..*", keep=r"runtime\.(main|goexit|mcall|systemstack)")

    def test_drop_user_code(self):
        self.run_case(GO_CPU, r"main\..*")

    def test_java_names_simplified(self):
        # "StubRoutines (2)" is matched as pprof simplifies it: "StubRoutines "
        self.run_case(JAVA_CPU, r"java/io/.*|StubRoutines ",
                      keep=r"java/io/FileOutputStream\.<init>")


if __name__ == "__main__":
    h.main()
