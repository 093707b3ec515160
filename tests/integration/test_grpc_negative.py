# OTLP/gRPC error handling: over-limit messages, broken framing, compressed flag without
# grpc-encoding, wrong content type, unknown method and encoding. After each, the process is
# alive and the next valid call succeeds.
import gzip
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

MIB = 1 << 20


def big_request(size, compressible=False):
    req = h.synthetic_request(42)
    filler = b"a" * size if compressible else os.urandom(size // 4 * 3)
    # A string nobody references: decoders keep it, the size is what matters here.
    req.dictionary.string_table.append(filler.hex()[:size] if not compressible
                                       else filler.decode())
    return req


class GrpcNegativeTest(h.FgTestCase):
    def setUp(self):
        super().setUp()
        import grpc
        self.grpc = grpc
        self.svc = g.stubs()
        self.out = self.out_dir()
        self.p = g.start_grpc(self, g.grpc_sink_config(self.out))
        self.ch = g.channel(self.p.grpc_port)
        self.addCleanup(self.ch.close)
        self.stub = self.svc.ProfilesServiceStub(self.ch)
        self.n_ok = 0

    def assertNextCallOk(self, what):
        self.assertTrue(self.p.alive(), "%s: process died%s" % (what, self.logs()))
        code, details, _ = g.export(self.stub, h.synthetic_request(1000 + self.n_ok))
        self.n_ok += 1
        self.assertEqual(code, self.grpc.StatusCode.OK, "after %s: %s %s%s"
                         % (what, code, details, self.logs()))

    def raw(self, body, extra=(), path=g.EXPORT):
        hdrs = [("content-type", "application/grpc"), ("te", "trailers")] + list(extra)
        return g.nghttp(self.p.grpc_port, path, body, hdrs, tmp=self.tmp)

    def assertGrpcStatus(self, got, code, word=None, what=""):
        hdrs, text = got
        st = g.header(hdrs, "grpc-status")
        self.assertEqual(st, str(code), "%s: grpc-status %r; nghttp output:\n%s%s"
                         % (what, st, text[-3000:], self.logs()))
        if word:
            self.assertIn(word, g.header(hdrs, "grpc-message") or "", what)

    def test_a_too_large_keeps_connection(self):
        req = big_request(5 * MIB)
        self.assertGreater(req.ByteSize(), 5 * MIB - 1000)
        code, details, _ = g.export(self.stub, req)
        self.assertEqual(code, self.grpc.StatusCode.RESOURCE_EXHAUSTED, details + self.logs())
        self.assertIn("larger than max", details)
        # The same channel (same HTTP/2 connection) still works.
        self.assertNextCallOk("5 MiB message")
        # Compressed small, 5 MiB after decompression.
        req = big_request(5 * MIB, compressible=True)
        code, details, _ = g.export(self.stub, req, compression=self.grpc.Compression.Gzip)
        self.assertEqual(code, self.grpc.StatusCode.RESOURCE_EXHAUSTED, details + self.logs())
        self.assertNextCallOk("5 MiB after decompression")
        # Just under the limit passes.
        code, details, _ = g.export(self.stub, big_request(3 * MIB))
        self.assertEqual(code, self.grpc.StatusCode.OK, details + self.logs())
        self.stop_clean(self.p)

    def test_b_malformed_framing(self):
        msg = h.synthetic_request(3).SerializeToString()
        cases = [
            ("truncated message", b"\x00" + struct.pack(">I", len(msg) + 100) + msg, 13,
             "truncated"),
            ("short prefix", b"\x00\x00\x01", 13, "prefix"),
            ("no message", b"", 13, "no request message"),
            ("bad flag", b"\x07" + struct.pack(">I", len(msg)) + msg, 13, "flag"),
            ("two messages", (b"\x00" + struct.pack(">I", len(msg)) + msg) * 2, 12, "more than one"),
            ("garbage protobuf", b"\x00" + struct.pack(">I", 5) + b"\xff\xff\xff\xff\xff", 3,
             None),
        ]
        for what, body, code, word in cases:
            self.assertGrpcStatus(self.raw(body), code, word, what)
            self.assertNextCallOk(what)
        self.stop_clean(self.p)

    def test_c_compressed_flag_without_encoding(self):
        z = gzip.compress(h.synthetic_request(4).SerializeToString())
        body = b"\x01" + struct.pack(">I", len(z)) + z
        self.assertGrpcStatus(self.raw(body), 13, "compressed flag", "no grpc-encoding")
        self.assertGrpcStatus(self.raw(body, [("grpc-encoding", "identity")]), 13,
                              "compressed flag", "identity")
        # The same bytes with grpc-encoding: gzip are fine.
        self.assertGrpcStatus(self.raw(body, [("grpc-encoding", "gzip")]), 0, None, "gzip")
        # An encoding we do not have: UNIMPLEMENTED, naming what we accept.
        got = self.raw(body, [("grpc-encoding", "snappy")])
        self.assertGrpcStatus(got, 12, "snappy", "snappy")
        self.assertIn("gzip", g.header(got[0], "grpc-accept-encoding") or "")
        self.assertNextCallOk("compressed flag")
        self.stop_clean(self.p)

    def test_d_wrong_content_type_and_unknown_method(self):
        msg = h.synthetic_request(5).SerializeToString()
        hdrs, text = g.nghttp(self.p.grpc_port, g.EXPORT, msg,
                              [("content-type", "application/json")], tmp=self.tmp)
        self.assertEqual(g.header(hdrs, ":status"), "415", text[-2000:] + self.logs())
        self.assertNextCallOk("wrong content-type")
        framed = b"\x00" + struct.pack(">I", len(msg)) + msg
        self.assertGrpcStatus(self.raw(framed, path="/foo.Bar/Baz"), 12, "/foo.Bar/Baz",
                              "unknown method")
        self.assertNextCallOk("unknown method")
        # grpc+proto is a gRPC content type too
        hdrs, text = g.nghttp(self.p.grpc_port, g.EXPORT, framed,
                              [("content-type", "application/grpc+proto")], tmp=self.tmp)
        self.assertEqual(g.header(hdrs, "grpc-status"), "0", text[-2000:])
        self.stop_clean(self.p)

    def test_e_deadline_header_parsed(self):
        msg = h.synthetic_request(6).SerializeToString()
        framed = b"\x00" + struct.pack(">I", len(msg)) + msg
        self.assertGrpcStatus(self.raw(framed, [("grpc-timeout", "5S")]), 0, None, "5S")
        self.assertGrpcStatus(self.raw(framed, [("grpc-timeout", "bogus")]), 13, "grpc-timeout",
                              "bogus timeout")
        # grpcio's own deadline header on a normal call
        code, details, _ = g.export(self.stub, h.synthetic_request(7), timeout=3)
        self.assertEqual(code, self.grpc.StatusCode.OK, details)
        self.assertNextCallOk("timeouts")
        self.stop_clean(self.p)


if __name__ == "__main__":
    h.main()
