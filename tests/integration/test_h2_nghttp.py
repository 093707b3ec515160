# h2c with prior knowledge on the OTLP/HTTP route, driven by Debian's nghttp2-client
# (nghttp and h2load): POST /v1development/profiles works over HTTP/2 exactly as over
# HTTP/1.1, on both listeners, and what arrives is intact.
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402


class H2cTest(h.FgTestCase):
    def start_sink(self):
        out = self.out_dir()
        p = g.start_grpc(self, g.grpc_sink_config(out, http_endpoint="127.0.0.1:0"))
        return p, out

    def test_a_nghttp_post(self):
        p, out = self.start_sink()
        reqs = [h.synthetic_request(900 + i) for i in range(4)]
        for i, port in enumerate((p.port, p.grpc_port)):
            hdrs, text = g.nghttp(port, h.PATH_PROFILES, reqs[2 * i].SerializeToString(),
                                  [("content-type", "application/x-protobuf")], tmp=self.tmp)
            self.assertEqual(g.header(hdrs, ":status"), "200", text[-2000:] + self.logs())
            self.assertEqual(g.header(hdrs, "content-type"), "application/x-protobuf")
            # gzip Content-Encoding and JSON over h2c too
            import gzip
            hdrs, text = g.nghttp(port, h.PATH_PROFILES,
                                  gzip.compress(h.to_json(reqs[2 * i + 1]).encode()),
                                  [("content-type", "application/json"),
                                   ("content-encoding", "gzip")], tmp=self.tmp)
            self.assertEqual(g.header(hdrs, ":status"), "200", text[-2000:] + self.logs())
            self.assertEqual(g.header(hdrs, "content-type"), "application/json")
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "h2c POSTs")
        # The HTTP errors are the same as over HTTP/1.1.
        hdrs, _ = g.nghttp(p.port, "/nope", b"x", [("content-type", "text/plain")], tmp=self.tmp)
        self.assertEqual(g.header(hdrs, ":status"), "404")
        hdrs, _ = g.nghttp(p.port, h.PATH_PROFILES, b"x", [("content-type", "text/plain")],
                           tmp=self.tmp)
        self.assertEqual(g.header(hdrs, ":status"), "415")
        hdrs, _ = g.nghttp(p.port, h.PATH_PROFILES, None, tmp=self.tmp)
        self.assertEqual(g.header(hdrs, ":status"), "405")
        self.stop_clean(p)

    def test_b_h2load(self):
        if shutil.which("h2load") is None:
            raise h.HarnessError("h2load missing (Debian nghttp2-client)")
        p, out = self.start_sink()
        req = h.synthetic_request(950, nsamples=3)
        body = os.path.join(self.tmp, "body.pb")
        with open(body, "wb") as f:
            f.write(req.SerializeToString())
        n = 200
        r = subprocess.run(["h2load", "-n", str(n), "-c", "4", "-m", "10", "-d", body,
                            "-H", "content-type: application/x-protobuf",
                            "http://127.0.0.1:%d%s" % (p.port, h.PATH_PROFILES)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual(int(m.group(3)), n, r.stdout)
        m = re.search(r"status codes: (\d+) 2xx", r.stdout)
        self.assertEqual(int(m.group(1)), n, r.stdout)
        self.assertIn("h2c", r.stdout)
        want = h.canonical_sum([req] * n)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "h2load POSTs")
        self.stop_clean(p)


if __name__ == "__main__":
    h.main()
