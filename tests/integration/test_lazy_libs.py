# libcurl and OpenSSL are loaded on first use: a gateway without an HTTP exporter and
# without a TLS listener never maps them; an otlphttp exporter maps them at its first send,
# a `tls:` receiver at start. Read from /proc/PID/maps of the real binary.
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

LAZY = ("libcurl.so", "libssl.so", "libcrypto.so")
TLS_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/HTTP\) with TLS")


def hiding_binary(tmp, soname):
    """A stand-in for the binary that runs it in a mount namespace where soname's file is
    /dev/null (dlopen then fails), or None when namespaces are not available here."""
    lib = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"\s%s \(libc6,x86-64\) => (\S+)" % re.escape(soname), lib)
    if not m or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        return None
    path = os.path.join(tmp, "flamegate-without-" + soname)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec unshare -m /bin/sh -c 'mount --bind /dev/null \"$0\" && "
                "exec \"$@\"' %s %s \"$@\"\n" % (os.path.realpath(m.group(1)), h.binary()))
    os.chmod(path, 0o755)
    return path


def wait_log(p, text, timeout=20.0):
    deadline = time.monotonic() + timeout
    while text not in p.log_text() and time.monotonic() < deadline and p.alive():
        time.sleep(0.05)
    return text in p.log_text()


def mapped(p):
    """The lazily loaded libraries p has mapped (by file name)."""
    with open("/proc/%d/maps" % p.proc.pid) as f:
        names = {os.path.basename(line.split()[-1]) for line in f if "/" in line}
    return sorted(n for n in names if n.startswith(LAZY))


class LazyLibsTest(h.FgTestCase):
    def test_a_binary_does_not_link_them(self):
        out = subprocess.run(["readelf", "-d", h.binary()], capture_output=True, text=True,
                             check=True).stdout
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
        self.assertTrue(needed, "readelf printed no NEEDED entries")
        self.assertEqual([n for n in needed if n.startswith(LAZY)], [],
                         "NEEDED: %s" % needed)

    def test_b_file_exporter_never_loads_them(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        self.assertEqual(mapped(b), [], "idle gateway (otlp -> file)")
        req = h.synthetic_request(1)
        self.assertOk(h.post(b.port, req.SerializeToString()), "post")
        h.collect_dir(out, h.sample_count(h.canonical(req)))
        self.assertEqual(mapped(b), [], "after receiving and writing a batch")
        self.stop_clean(b)

    def test_c_otlphttp_loads_them_at_first_send(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        a = self.start(h.forward_config(b.port), "A")
        self.assertEqual(mapped(a), [], "otlphttp gateway before its first send")
        req = h.synthetic_request(2)
        want = h.canonical(req)
        self.assertOk(h.post(a.port, req.SerializeToString()), "post to A")
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "B's files")
        libs = mapped(a)
        for lib in LAZY:
            self.assertTrue(any(n.startswith(lib) for n in libs),
                            "%s not mapped after the first send: %s" % (lib, libs))
        self.assertEqual(mapped(b), [], "B (otlp -> file) still without them")
        self.stop_clean(a)
        self.stop_clean(b)

    def test_d_tls_receiver_loads_openssl_at_start(self):
        key, cert = os.path.join(self.tmp, "key.pem"), os.path.join(self.tmp, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            cert, "-days", "1", "-subj", "/CN=localhost"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        tls = {"protocols": {"http": {"endpoint": "127.0.0.1:0",
                                      "tls": {"cert_file": cert, "key_file": key}}}}
        p = self.start(h.config({"otlp": tls}, {"debug": {}}), "T", wait_port=False)
        g.wait_log_port(p, TLS_PORT_RE)
        libs = mapped(p)
        self.assertTrue(any(n.startswith("libssl.so") for n in libs), libs)
        self.assertFalse(any(n.startswith("libcurl.so") for n in libs), libs)
        self.stop_clean(p)

    def start_without(self, soname, cfg, name, **kw):
        fake = hiding_binary(self.tmp, soname)
        if not fake:
            raise unittest.SkipTest("no mount namespaces here (unshare -m)")
        real = os.environ.get("FG_BINARY")
        os.environ["FG_BINARY"] = fake
        try:
            return self.start(cfg, name, **kw)
        finally:
            if real is None:
                del os.environ["FG_BINARY"]
            else:
                os.environ["FG_BINARY"] = real

    def test_e_missing_libcurl_is_an_error_at_first_send(self):
        out = self.out_dir()
        b = self.start(h.sink_config(out), "B")
        a = self.start_without("libcurl.so.4", h.forward_config(b.port), "A")
        self.assertOk(h.post(a.port, h.synthetic_request(3).SerializeToString()), "post to A")
        self.assertTrue(wait_log(a, "install the Debian package libcurl4"), a.log_text())
        self.assertIn("cannot load libcurl", a.log_text())
        self.stop_clean(a)
        self.stop_clean(b)

    def test_f_missing_openssl_fails_a_tls_start(self):
        tls = {"protocols": {"http": {"endpoint": "127.0.0.1:0",
                                      "tls": {"cert_file": "c.pem", "key_file": "k.pem"}}}}
        p = self.start_without("libssl.so.3", h.config({"otlp": tls}, {"debug": {}}), "T",
                               wait_port=False)
        rc = p.proc.wait(20)
        self.assertNotEqual(rc, 0)
        self.assertIn("install the Debian package libssl3", p.log_text())


if __name__ == "__main__":
    h.main()
