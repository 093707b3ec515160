# Pyroscope ingest end to end: the real binary with receiver "pyroscope" -> file exporter;
# folded, lines and pprof bodies (raw, gzip, multipart with sample_type_config, Connect
# Push), legacy formats and every error status, checking what the file exporter writes.
import csv
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

PYRO_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(Pyroscope\)")


def wait_log_port(p, regex=PYRO_PORT_RE, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = regex.search(p.log_text())
        if m:
            return int(m.group(1))
        if not p.alive():
            break
        time.sleep(0.05)
    raise h.HarnessError("%s: no listening line; log:\n%s" % (p.name, p.log_tail()))


def ingest_config(out_dir, fmt="otlp_proto", max_body=None):
    recv = {"endpoint": "127.0.0.1:0"}
    if max_body:
        recv["max_request_body_size"] = max_body
    return h.config({"pyroscope": recv}, {"file": {"path": out_dir, "format": fmt}})


def resolved(files):
    """Every sample of the file exporter's output as (resource dict, scope name,
    (type, unit), period, time, duration, root-first frame names, value)."""
    out = []
    for f in files:
        req = h.parse_request(h.read_file(f))
        strings = list(req.dictionary.string_table)
        d = req.dictionary
        for rp in req.resource_profiles:
            res = {kv.key: kv.value.string_value for kv in rp.resource.attributes}
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    st = (strings[p.sample_type.type_strindex], strings[p.sample_type.unit_strindex])
                    for s in p.samples:
                        frames = []
                        for li in d.stack_table[s.stack_index].location_indices:
                            loc = d.location_table[li]
                            for ln in loc.lines:
                                frames.append(strings[d.function_table[ln.function_index].name_strindex])
                        frames.reverse()
                        out.append((res, sp.scope.name, st, p.period, p.time_unix_nano,
                                    p.duration_nano, ";".join(frames),
                                    sum(s.values) if s.values else len(s.timestamps_unix_nano)))
    return out


def totals_by_type(samples):
    t = {}
    for rec in samples:
        key = "%s/%s" % rec[2]
        t[key] = t.get(key, 0) + rec[7]
    return t


def manifest():
    rows = {}
    with open(h.corpus_file("pprof/manifest.csv"), newline="") as f:
        for row in csv.DictReader(f):
            rows[row["file"]] = row
    return rows


def want_totals(row):
    types = row["sample_types"].split(";")
    totals = [int(x) for x in row["totals"].split(";")]
    return dict(zip(types, totals))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def push_request(labels, profiles):
    """push.v1.PushRequest{series: [RawProfileSeries{labels, samples}]}, hand-encoded (the
    Python name of package types.v1 would shadow the standard library's types module)."""
    series = b"".join(ld(1, ld(1, k) + ld(2, v)) for k, v in labels)
    series += b"".join(ld(2, ld(1, p)) for p in profiles)
    return ld(1, series)


def multipart(fields, boundary="----fgboundary7MA4YWxk"):
    body = b""
    for name, filename, data in fields:
        body += b"--" + boundary.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        body += b"Content-Disposition: " + disp.encode() + b"\r\n"
        body += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, "multipart/form-data; boundary=" + boundary


class PyroscopeIngestTest(h.FgTestCase):
    def fg(self, fmt="otlp_proto", max_body=None):
        out = self.out_dir()
        p = self.start(ingest_config(out, fmt, max_body), "pyro", wait_port=False)
        port = wait_log_port(p)
        return p, port, out

    def ingest(self, port, query, body, ctype="application/octet-stream", headers=None):
        hdrs = {"Content-Type": ctype}
        hdrs.update(headers or {})
        return h.request(port, "POST", "/ingest?" + query, body, hdrs)

    def wait_files(self, out, n, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = h.output_files(out)
            if len(files) >= n:
                time.sleep(0.3)
                return h.output_files(out)
            time.sleep(0.05)
        self.fail("expected %d output files%s" % (n, self.logs()))

    def error(self, resp, status, needle):
        self.assertStatus(resp, status, needle)
        body = json.loads(resp.body.decode())
        self.assertIn(needle, body["message"], resp)
        self.assertIn("code", body)

    def test_a_folded_with_labels(self):
        p, port, out = self.fg()
        name = urllib.parse.quote("shop.cpu{env=prod, region=eu-1}")
        body = b"main;handle;parse 3\nmain;handle;parse 1\nmain;idle 6\n"
        r = self.ingest(port, "name=%s&from=1700000000&until=1700000010&sampleRate=100"
                        "&spyName=rbspy" % name, body, "text/plain")
        self.assertStatus(r, 200, "folded")
        self.assertEqual(r.body, b"")
        samples = resolved(self.wait_files(out, 1))
        self.assertEqual(len(samples), 2)
        by_stack = {s[6]: s for s in samples}
        res, scope, st, period, t, dur, _, v = by_stack["main;handle;parse"]
        self.assertEqual(res, {"service.name": "shop", "env": "prod", "region": "eu-1"})
        self.assertEqual(scope, "rbspy")
        self.assertEqual(st, ("cpu", "nanoseconds"))
        self.assertEqual(period, 10000000)
        self.assertEqual((t, dur), (1700000000 * 10**9, 10 * 10**9))
        self.assertEqual(v, 4 * 10000000)
        self.assertEqual(by_stack["main;idle"][7], 6 * 10000000)
        self.stop_clean(p)

    def test_b_lines_and_memory_type(self):
        p, port, out = self.fg()
        r = self.ingest(port, "name=worker.inuse_objects%7Bpod%3Dw1%7D&format=lines&units="
                        "objects&from=1700000000123", b"a;b\na;b\na;c\n", "text/plain")
        self.assertStatus(r, 200, "lines")
        samples = resolved(self.wait_files(out, 1))
        self.assertEqual(sorted((s[6], s[7]) for s in samples), [("a;b", 2), ("a;c", 1)])
        self.assertEqual(samples[0][2], ("inuse_objects", "count"))
        self.assertEqual(samples[0][4], 1700000000123 * 10**6)
        self.assertEqual(samples[0][0], {"service.name": "worker", "pod": "w1"})
        self.stop_clean(p)

    def test_c_errors(self):
        p, port, out = self.fg(max_body="64KiB")
        body = b"a;b 1\n"
        self.error(self.ingest(port, "from=1", body), 400, "name")
        self.error(self.ingest(port, "name=app%7Bk%3Dv", body), 400, "unclosed")
        self.error(self.ingest(port, "name=app.nosuchtype", body), 400, "suffix")
        self.error(self.ingest(port, "name=app&format=jfr", body), 415, "JFR is not supported")
        self.error(self.ingest(port, "name=app&format=speedscope", body), 415, "not supported")
        self.error(self.ingest(port, "name=app&format=nonsense", body), 415, "unknown format")
        self.error(self.ingest(port, "name=app", b"a;b many\n"), 400, "line 1")
        self.error(self.ingest(port, "name=app&format=pprof", b"\x0a\x05\x08"), 400, "pprof")
        # a well-formed protobuf whose sample points at a location that does not exist
        vt = ld(1, varint(1 << 3) + varint(1) + varint(2 << 3) + varint(2))
        sample = ld(2, ld(1, varint(99)) + ld(2, varint(1)))
        strings = ld(6, b"") + ld(6, b"samples") + ld(6, b"count")
        r = self.ingest(port, "name=app&format=pprof", vt + sample + strings)
        self.error(r, 400, "99")
        self.assertIn("location", json.loads(r.body)["message"])
        r = self.ingest(port, "name=app", b"a;b 1\n" * 20000)
        self.assertStatus(r, 413, "over max_request_body_size")
        self.assertAlive(p)
        self.assertEqual(h.output_files(out), [])
        self.stop_clean(p)

    def test_d_legacy_formats_are_refused(self):
        p, port, out = self.fg()
        for name, needle in (("pprof/gperftools-2.10.c.cpu.prof", "gperftools"),
                             ("pprof/pprof_cppbench.cpu", "gperftools"),
                             ("pprof/pprof_cppbench.heap", "heap")):
            data = h.read_file(h.corpus_file(name))
            for fmt in ("pprof", "folded"):
                r = self.ingest(port, "name=legacy&format=%s" % fmt, data)
                self.error(r, 400, needle)
                self.assertIn("unsupported", json.loads(r.body)["message"])
        self.stop_clean(p)

    def check_pprof_totals(self, out, nfiles, files_rows):
        samples = resolved(self.wait_files(out, nfiles))
        want = {}
        for row in files_rows:
            for k, v in want_totals(row).items():
                want[k] = want.get(k, 0) + v
        self.assertEqual(totals_by_type(samples), want)
        return samples

    def test_e_pprof_raw_and_gzip(self):
        rows = manifest()
        p, port, out = self.fg()
        gz = h.read_file(h.corpus_file("pprof/go119.cpu.pb.gz"))
        r = self.ingest(port, "name=%s&format=pprof" % urllib.parse.quote("goapp{pod=a}"), gz)
        self.assertStatus(r, 200, "gzip pprof")
        samples = self.check_pprof_totals(out, 1, [rows["go119.cpu.pb.gz"]])
        self.assertEqual(samples[0][0], {"service.name": "goapp", "pod": "a"})
        raw = h.read_file(h.corpus_file("pprof/pyroscope_go_heap.pb"))
        r = self.ingest(port, "name=goapp.inuse_space&format=pprof", raw,
                        headers={"X-Scope-OrgID": "t1"})
        self.assertStatus(r, 200, "raw pprof")
        self.check_pprof_totals(out, 2, [rows["go119.cpu.pb.gz"], rows["pyroscope_go_heap.pb"]])
        self.stop_clean(p)

    def test_f_pprof_multipart_sample_type_config(self):
        rows = manifest()
        p, port, out = self.fg()
        gz = h.read_file(h.corpus_file("pprof/go119.block.pb.gz"))
        cfg = json.dumps({"contentions": {"units": "lock_samples", "display-name":
                                          "block_count"},
                          "delay": {"units": "lock_nanoseconds", "display-name":
                                    "block_duration"}}).encode()
        body, ctype = multipart([("profile", "profile.pprof", gz),
                                 ("sample_type_config", "sample_type_config.json", cfg)])
        r = self.ingest(port, "name=goapp&spyName=gospy", body, ctype)
        self.assertStatus(r, 200, "multipart")
        samples = resolved(self.wait_files(out, 1))
        want = want_totals(rows["go119.block.pb.gz"])
        self.assertEqual(totals_by_type(samples),
                         {"block_count/count": want["contentions/count"],
                          "block_duration/nanoseconds": want["delay/nanoseconds"]})
        self.assertEqual(samples[0][1], "gospy")
        body, ctype = multipart([("profile", "p", gz), ("prev_profile", "p", gz)])
        self.error(self.ingest(port, "name=goapp", body, ctype), 400, "prev_profile")
        self.stop_clean(p)

    def test_g_push_connect(self):
        rows = manifest()
        p, port, out = self.fg()
        gz = h.read_file(h.corpus_file("pprof/go119.mutex.pb.gz"))
        labels = [("__name__", "mutex"), ("service_name", "pushed"), ("team", "core"),
                  ("__delta__", "false")]
        body = push_request(labels, [gz])
        r = h.request(port, "POST", "/push.v1.PusherService/Push", body,
                      {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"})
        self.assertStatus(r, 200, "Connect proto")
        self.assertEqual(r.body, b"")
        jbody = json.dumps({"series": [{"labels": [{"name": k, "value": v} for k, v in labels],
                                        "samples": [{"rawProfile": __import__("base64")
                                                     .b64encode(gz).decode()}]}]})
        r = h.request(port, "POST", "/push.v1.PusherService/Push", gzip.compress(jbody.encode()),
                      {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        self.assertStatus(r, 200, "Connect JSON gzip")
        self.assertEqual(json.loads(r.body), {})
        samples = self.check_pprof_totals(out, 2, [rows["go119.mutex.pb.gz"]] * 2)
        self.assertEqual(samples[0][0], {"service.name": "pushed", "team": "core",
                                         "pyroscope.profile.family": "mutex"})
        r = h.request(port, "POST", "/push.v1.PusherService/Push", b"\xff\xff",
                      {"Content-Type": "application/proto"})
        self.error(r, 400, "PushRequest")
        self.stop_clean(p)

    def test_i_push_grpc(self):
        """push.v1.PusherService/Push with gRPC framing over h2c (python3-grpcio)."""
        try:
            import grpc
        except ImportError as e:
            raise h.HarnessError("python3-grpcio missing: %s" % e)
        rows = manifest()
        p, port, out = self.fg()
        gz = h.read_file(h.corpus_file("pprof/go119.goroutine.pb.gz"))
        body = push_request([("service_name", "grpcsvc"), ("__name__", "goroutine")], [gz])
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            push = ch.unary_unary("/push.v1.PusherService/Push")
            resp = push(body, timeout=10, metadata=[("x-scope-orgid", "t-grpc")])
            self.assertEqual(resp, b"")  # an empty PushResponse
            with self.assertRaises(grpc.RpcError) as cm:
                push(b"\xff\xff", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("PushRequest", cm.exception.details())
            legacy = h.read_file(h.corpus_file("pprof/pprof_cppbench.heap"))
            with self.assertRaises(grpc.RpcError) as cm:
                push(push_request([("service_name", "x")], [legacy]), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("unsupported profile format", cm.exception.details())
        samples = self.check_pprof_totals(out, 1, [rows["go119.goroutine.pb.gz"]])
        self.assertEqual(samples[0][0], {"service.name": "grpcsvc",
                                         "pyroscope.profile.family": "goroutine"})
        self.stop_clean(p)

    def test_h_pprof_output_read_by_go(self):
        """Every ingest body kind through the file exporter's pprof format, read back by
        `go tool pprof -raw`: sample types, per-type totals, stacks and function names."""
        from test_pprof_roundtrip import Raw, go_or_skip, go_raw
        go_or_skip()
        rows = manifest()
        p, port, out = self.fg("pprof")

        def files_of(service, n):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                fs = sorted(f for f in os.listdir(out)
                            if f.endswith(".pb.gz") and "-%s-" % service in f)
                if len(fs) >= n:
                    time.sleep(0.2)
                    return [Raw(go_raw(os.path.join(out, f))) for f in fs]
                time.sleep(0.05)
            self.fail("no pprof for %s in %s%s" % (service, os.listdir(out), self.logs()))

        def totals(raws):
            t = {}
            for raw in raws:
                for ty, v in zip(raw.types, raw.totals()):
                    t[ty] = t.get(ty, 0) + v
            return t

        # folded with labels in the name
        body = b"main;handle;parse 3\nmain;idle 6\n"
        self.assertStatus(self.ingest(port, "name=foldsvc.cpu%7Benv%3Dprod%7D", body,
                                      "text/plain"), 200, "folded")
        raws = files_of("foldsvc", 1)
        self.assertEqual(totals(raws), {"cpu/nanoseconds": 9 * 10000000})
        self.assertEqual(raws[0].functions(), {"main", "handle", "parse", "idle"})
        self.assertEqual(len(raws[0].stacks()), 2)
        # lines
        self.assertStatus(self.ingest(port, "name=linesvc.alloc_space&format=lines&units=bytes",
                                      b"a;b\na;b\na;c\n", "text/plain"), 200, "lines")
        self.assertEqual(totals(files_of("linesvc", 1)), {"alloc_space/bytes": 3})
        # raw pprof, gzip pprof, multipart with sample_type_config
        cases = [("rawsvc", "pyroscope_go_heap.pb", None),
                 ("gzsvc", "go119.cpu.pb.gz", None),
                 ("mpsvc", "go119.block.pb.gz",
                  {"contentions": {"units": "lock_samples", "display-name": "block_count"},
                   "delay": {"units": "lock_nanoseconds", "display-name": "block_duration"}})]
        for svc, fname, stc in cases:
            data = h.read_file(h.corpus_file("pprof/" + fname))
            if stc is None:
                r = self.ingest(port, "name=%s%%7Bpod%%3Dx%%7D&format=pprof" % svc, data)
            else:
                body, ctype = multipart([("profile", "profile.pprof", data),
                                         ("sample_type_config", "c.json",
                                          json.dumps(stc).encode())])
                r = self.ingest(port, "name=%s" % svc, body, ctype)
            self.assertStatus(r, 200, fname)
            row = rows[fname]
            want = want_totals(row)
            if stc:
                want = {"%s/%s" % (stc[k.split("/")[0]]["display-name"], k.split("/")[1]): v
                        for k, v in want.items()}
            raws = files_of(svc, 1)
            self.assertEqual(totals(raws), want, fname)
            orig = Raw(go_raw(h.corpus_file("pprof/" + fname)))
            got_stacks = set().union(*(r.stacks() for r in raws))
            self.assertEqual(len(got_stacks), len(orig.stacks()), fname)
            self.assertEqual(set().union(*(r.functions() for r in raws)), orig.functions(),
                             fname)
        self.stop_clean(p)

if __name__ == "__main__":
    h.main()
