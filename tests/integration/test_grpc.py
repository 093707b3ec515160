# OTLP/gRPC interop: Debian's python3-grpcio as the client of flamegate's gRPC server
# (stubs compiled at test time with python3-grpc-tools); what the file exporter writes must
# carry exactly what was sent. Also: both protocols on one process, each port serving both.
import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"


class GrpcInteropTest(h.FgTestCase):
    def setUp(self):
        super().setUp()
        import grpc
        self.grpc = grpc
        self.svc = g.stubs()

    def sink(self, **opts):
        out = self.out_dir()
        p = g.start_grpc(self, g.grpc_sink_config(out, **opts))
        ch = g.channel(p.grpc_port)
        self.addCleanup(ch.close)
        return p, out, self.svc.ProfilesServiceStub(ch)

    def assertCode(self, got, code, what):
        self.assertEqual(got[0], code, "%s: %s %r%s" % (what, got[0], got[1], self.logs()))

    def test_a_plain_and_gzip(self):
        p, out, stub = self.sink()
        r1, r2 = h.synthetic_request(1), h.synthetic_request(2)
        res = g.export(stub, r1)
        self.assertCode(res, self.grpc.StatusCode.OK, "plain")
        self.assertFalse(res[2].HasField("partial_success"), "full success has no partial")
        res = g.export(stub, r2, compression=self.grpc.Compression.Gzip)
        self.assertCode(res, self.grpc.StatusCode.OK, "gzip")
        got, files = h.collect_dir(out, h.sample_count(h.canonical_sum([r1, r2])))
        self.assertSameData(h.canonical_sum([r1, r2]), got, "file exporter output")
        self.assertFilesObeyRules(files)
        self.stop_clean(p)

    def test_b_64_concurrent_calls(self):
        p, out, stub = self.sink()
        reqs = [h.synthetic_request(200 + i, nsamples=1 + i % 4) for i in range(64)]
        gz = self.grpc.Compression.Gzip

        def call(i):
            return g.export(stub, reqs[i], compression=gz if i % 2 else None)
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as ex:
            results = list(ex.map(call, range(64)))
        for i, res in enumerate(results):
            self.assertCode(res, self.grpc.StatusCode.OK, "call %d" % i)
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "64 concurrent calls")
        self.stop_clean(p)

    def test_c_ebpf_payload_intact(self):
        data = h.read_file(h.corpus_file(EBPF_PB))
        req = h.pb().req()
        req.ParseFromString(data)
        p, out, stub = self.sink()
        self.assertCode(g.export(stub, req, compression=self.grpc.Compression.Gzip),
                        self.grpc.StatusCode.OK, "eBPF payload")
        want = h.canonical(data)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "eBPF payload over gRPC")
        self.stop_clean(p)

    def test_d_both_protocols_every_port(self):
        out = self.out_dir()
        p = g.start_grpc(self, g.grpc_sink_config(out, http_endpoint="127.0.0.1:0"))
        self.assertIsNotNone(p.port, "OTLP/HTTP port logged too" + self.logs())
        self.assertNotEqual(p.port, p.grpc_port)
        reqs = [h.synthetic_request(300 + i) for i in range(4)]
        # gRPC on both ports, HTTP/1.1 on both ports.
        for i, port in enumerate((p.grpc_port, p.port)):
            with g.channel(port) as ch:
                stub = self.svc.ProfilesServiceStub(ch)
                self.assertCode(g.export(stub, reqs[i]), self.grpc.StatusCode.OK,
                                "gRPC on port %d" % port)
            self.assertOk(h.post(port, reqs[2 + i].SerializeToString()),
                          "HTTP/1.1 on port %d" % port)
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "both protocols, both ports")
        self.stop_clean(p)

    def test_e_invalid_payload_names_field(self):
        p, out, stub = self.sink()
        bad = h.synthetic_request(5)
        # A stack that points past the location table.
        bad.dictionary.stack_table[1].location_indices.append(10000)
        code, details, _ = g.export(stub, bad)
        self.assertEqual(code, self.grpc.StatusCode.INVALID_ARGUMENT, details + self.logs())
        self.assertIn("location", details.lower(), "message names the field")
        self.assertCode(g.export(stub, h.synthetic_request(6)), self.grpc.StatusCode.OK,
                        "next call")
        self.stop_clean(p)

    def test_f_unknown_and_legacy_methods(self):
        p, out, stub = self.sink()
        with g.channel(p.grpc_port) as ch:
            for path, code, word in ((g.LEGACY, self.grpc.StatusCode.UNIMPLEMENTED,
                                      "v1development"),
                                     ("/foo.Bar/Baz", self.grpc.StatusCode.UNIMPLEMENTED,
                                      "/foo.Bar/Baz")):
                call = ch.unary_unary(path, request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
                try:
                    call(b"", timeout=5)
                    self.fail("%s succeeded" % path)
                except self.grpc.RpcError as e:
                    self.assertEqual(e.code(), code, "%s: %s" % (path, e))
                    self.assertIn(word, e.details())
        self.assertCode(g.export(stub, h.synthetic_request(7)), self.grpc.StatusCode.OK,
                        "next call")
        self.assertTrue(p.alive())
        self.stop_clean(p)


if __name__ == "__main__":
    h.main()
