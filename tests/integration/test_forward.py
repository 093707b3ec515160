# Forwarding end to end: flamegate A (otlp -> batch -> otlphttp) in front of flamegate B
# (otlp -> file); what B writes must carry exactly the data posted to A.
import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"
EBPF_JSON = "pprof/pyroscope_otel_ebpf_v1.10.otlp.json"
CT_PROTO = "application/x-protobuf"
CT_JSON = "application/json"


class ForwardTest(h.FgTestCase):
    def pair(self, encoding="proto", b_format="otlp_proto", compression="gzip"):
        """Starts B then A; returns (A, B, B's output dir)."""
        out = self.out_dir()
        b = self.start(h.sink_config(out, b_format), "B")
        a = self.start(h.forward_config(b.port, encoding=encoding, compression=compression),
                       "A")
        return a, b, out

    def finish(self, a, b, out, want, suffix=".pb"):
        """Waits for want at B, checks the files, then stops A and B cleanly."""
        got, files = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "B's files")
        self.assertFilesObeyRules(files)
        for f in files:
            self.assertTrue(f.endswith(suffix), "unexpected file name %s" % f)
        self.stop_clean(a)
        self.stop_clean(b)
        return files

    def test_a_protobuf_plain_and_gzip(self):
        a, b, out = self.pair()
        r1, r2 = h.synthetic_request(1), h.synthetic_request(2)
        self.assertOk(h.post(a.port, r1.SerializeToString(), CT_PROTO), "plain protobuf")
        self.assertOk(h.post(a.port, r2.SerializeToString(), CT_PROTO, gzip_body=True),
                      "gzip protobuf")
        self.finish(a, b, out, h.canonical_sum([r1, r2]))

    def test_b_json_plain_and_gzip(self):
        a, b, out = self.pair()
        r1, r2 = h.synthetic_request(3), h.synthetic_request(4)
        resp = h.post(a.port, h.to_json(r1), CT_JSON)
        self.assertOk(resp, "plain JSON", CT_JSON)
        ct = (resp.header("Content-Type") or "").split(";")[0].strip()
        self.assertEqual(ct, CT_JSON, "a JSON request gets a JSON response")
        self.assertOk(h.post(a.port, h.to_json(r2), CT_JSON, gzip_body=True), "gzip JSON",
                      CT_JSON)
        self.finish(a, b, out, h.canonical_sum([r1, r2]))

    def test_c_ebpf_payload_intact(self):
        pb_bytes = h.read_file(h.corpus_file(EBPF_PB))
        json_bytes = h.read_file(h.corpus_file(EBPF_JSON))
        want = h.canonical(pb_bytes)
        self.assertEqual(want, h.canonical(json_bytes))
        a, b, out = self.pair()
        self.assertOk(h.post(a.port, pb_bytes, CT_PROTO), "eBPF protobuf")
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "eBPF protobuf through A->B")
        self.assertOk(h.post(a.port, json_bytes, CT_JSON, gzip_body=True), "eBPF JSON",
                      CT_JSON)
        self.finish(a, b, out, want + want)

    def test_d_concurrent_requests_are_batched(self):
        reqs = [h.synthetic_request(100 + i, nsamples=2 + i % 3) for i in range(100)]
        want = h.canonical_sum(reqs)
        a, b, out = self.pair()

        def send(i):
            r = reqs[i]
            if i % 4 == 1:
                return h.post(a.port, h.to_json(r), CT_JSON, gzip_body=bool(i % 8 == 1))
            return h.post(a.port, r.SerializeToString(), CT_PROTO, gzip_body=bool(i % 2))

        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as ex:
            resps = list(ex.map(send, range(100)))
        for i, resp in enumerate(resps):
            self.assertStatus(resp, 200, "request %d" % i)
        files = self.finish(a, b, out, want)
        print("100 concurrent requests -> %d upstream requests" % len(files), flush=True)
        self.assertLess(len(files), 100, "batch did not merge requests: %d upstream "
                        "requests for 100 inputs" % len(files))

    def test_d2_relayout_and_split_payload(self):
        # The same data with shuffled, duplicated dictionaries, split into one request
        # per profile and sent concurrently, must still add up to the original.
        src = h.parse_request(h.read_file(h.corpus_file(EBPF_PB)))
        want = h.canonical(src)
        parts = h.split_request(h.shuffle_dictionary(src, seed=11))
        a, b, out = self.pair()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            resps = list(ex.map(lambda r: h.post(a.port, r.SerializeToString(), CT_PROTO),
                                parts))
        for i, resp in enumerate(resps):
            self.assertStatus(resp, 200, "part %d" % i)
        self.finish(a, b, out, want)

    def test_d3_oversized_request_split_by_max_size(self):
        # One request above send_batch_max_size leaves A as several upstream requests,
        # none above the bound, adding up to the request; the client sees one 200.
        max_size = 100
        req = h.synthetic_request(7, nsamples=200)
        want = h.canonical(req)
        self.assertGreater(h.sample_count(want), 3 * max_size)
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        cfg = h.forward_config(b.port, batch_size=max_size)
        cfg["processors"]["batch"]["send_batch_max_size"] = max_size
        a = self.start(cfg, "A")
        self.assertOk(h.post(a.port, req.SerializeToString(), CT_PROTO), "oversized request")
        files = self.finish(a, b, out, want)
        sizes = [h.sample_count(h.canonical(h.read_file(f))) for f in files]
        print("%d samples -> upstream requests of %s samples" % (h.sample_count(want), sizes),
              flush=True)
        self.assertGreaterEqual(len(files), h.sample_count(want) // max_size)
        self.assertLessEqual(max(sizes), max_size, "an upstream request above the bound")

    def test_e_json_upstream_and_json_files(self):
        a, b, out = self.pair(encoding="json", b_format="otlp_json", compression="none")
        reqs = [h.synthetic_request(50 + i) for i in range(5)]
        for r in reqs:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT_PROTO), "protobuf in")
        want = h.canonical_sum(reqs)
        if h.corpus_dir() is not None:
            pb_bytes = h.read_file(h.corpus_file(EBPF_PB))
            self.assertOk(h.post(a.port, pb_bytes, CT_PROTO), "eBPF protobuf")
            want += h.canonical(pb_bytes)
        self.finish(a, b, out, want, suffix=".json")

    def test_e2_json_upstream_gzip(self):
        a, b, out = self.pair(encoding="json", b_format="otlp_proto", compression="gzip")
        r = h.synthetic_request(77)
        self.assertOk(h.post(a.port, h.to_json(r), CT_JSON), "JSON in", CT_JSON)
        self.finish(a, b, out, h.canonical(r))


if __name__ == "__main__":
    h.main()
