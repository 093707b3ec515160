# TLS on the OTLP listeners and on the otlphttp exporter, with certificates made here by the
# openssl CLI: HTTP/1.1 and HTTP/2 (ALPN h2) and gRPC over TLS, mTLS (no certificate,
# an expired one, one from another CA are refused), min_version, a plaintext client on a TLS
# port, certificates reloaded on SIGHUP, and flamegate → flamegate over mTLS.
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

TLS_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/HTTP\) with TLS")
TLS_GRPC_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/gRPC\) with TLS")
CT = {"Content-Type": "application/x-protobuf"}

CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
copy_extensions = copy
[policy_any]
commonName = supplied
"""


def openssl(cwd, *args):
    if shutil.which("openssl") is None:
        raise h.HarnessError("openssl CLI missing (Debian openssl)")
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise h.HarnessError("openssl %s failed: %s" % (" ".join(args), r.stderr))


class Pki:
    """A CA in dir/name and certificates it signs."""

    def __init__(self, d, name="ca"):
        self.d = d
        self.name = name
        os.makedirs(d, exist_ok=True)
        self.key = os.path.join(d, name + ".key")
        self.crt = os.path.join(d, name + ".crt")
        openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", self.key, "-out", self.crt, "-days", "2",
                "-subj", "/CN=flamegate test %s" % name)
        self.cnf = os.path.join(d, name + ".cnf")
        with open(self.cnf, "w") as f:
            f.write(CA_CNF)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")

    def issue(self, cn, server=False, start=None, end=None,
              sans="DNS:localhost,IP:127.0.0.1"):
        """(cert, key) signed by this CA; start/end as YYYYMMDDHHMMSSZ."""
        key = os.path.join(self.d, cn + ".key")
        csr = os.path.join(self.d, cn + ".csr")
        crt = os.path.join(self.d, cn + ".crt")
        args = ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn]
        if server:
            args += ["-addext", "subjectAltName=" + sans]
        openssl(self.d, *args)
        args = ["ca", "-batch", "-config", self.cnf, "-cert", self.crt, "-keyfile", self.key,
                "-in", csr, "-out", crt, "-notext"]
        args += ["-startdate", start] if start else []
        args += ["-enddate", end] if end else ["-days", "2"]
        openssl(self.d, *args)
        return crt, key


def tls_receiver(cert, key, client_ca=None, min_version=None, port=0, grpc=False):
    tls = {"cert_file": cert, "key_file": key}
    if client_ca:
        tls["client_ca_file"] = client_ca
    if min_version:
        tls["min_version"] = min_version
    proto = "grpc" if grpc else "http"
    return {"protocols": {proto: {"endpoint": "127.0.0.1:%d" % port, "tls": tls}}}


def client_ctx(ca, cert=None, key=None, max_version=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def post_tls(port, ctx, body, host="localhost", timeout=10):
    """Returns (status, body) or raises ssl.SSLError / OSError."""
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        c.request("POST", h.PATH_PROFILES, body=body, headers=CT)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class TlsTest(h.FgTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.pki_dir = tempfile.mkdtemp(prefix="fg-pki-")
        cls.ca = Pki(cls.pki_dir)
        cls.srv = cls.ca.issue("localhost", server=True)
        cls.cli = cls.ca.issue("client")
        cls.expired = cls.ca.issue("expired", start="20200101000000Z", end="20200102000000Z")
        cls.other = Pki(os.path.join(cls.pki_dir, "other"), "other")
        cls.stranger = cls.other.issue("stranger")
        # names flamegate.test only: reached at 127.0.0.1 through server_name_override
        cls.named = cls.ca.issue("flamegate.test", server=True, sans="DNS:flamegate.test")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def start_tls(self, receiver, name="fg"):
        out = self.out_dir(name + "-out")
        cfg = h.config({"otlp": receiver}, {"file": {"path": out, "format": "otlp_proto"}})
        p = self.start(cfg, name, wait_port=False)
        grpc = "grpc" in receiver["protocols"]
        p.port = g.wait_log_port(p, TLS_GRPC_PORT_RE if grpc else TLS_PORT_RE)
        return p, out

    def assertRefused(self, port, ctx, what):
        try:
            status, _ = post_tls(port, ctx, h.synthetic_request(9).SerializeToString())
        except (ssl.SSLError, OSError):
            return
        self.fail("%s: request got HTTP %d instead of a refused handshake%s"
                  % (what, status, self.logs()))

    def test_a_http1_and_h2_over_tls(self):
        p, out = self.start_tls(tls_receiver(*self.srv))
        reqs = [h.synthetic_request(1), h.synthetic_request(2)]
        status, body = post_tls(p.port, client_ctx(self.ca.crt), reqs[0].SerializeToString())
        self.assertEqual(status, 200, "HTTP/1.1 over TLS: %r%s" % (body, self.logs()))
        # curl negotiates h2 through ALPN
        path = os.path.join(self.tmp, "req2.pb")
        with open(path, "wb") as f:
            f.write(reqs[1].SerializeToString())
        r = subprocess.run(["curl", "-sS", "--http2", "--cacert", self.ca.crt, "-o", "/dev/null",
                            "-w", "%{http_code} %{http_version}", "-H",
                            "Content-Type: application/x-protobuf", "--data-binary", "@" + path,
                            "https://localhost:%d%s" % (p.port, h.PATH_PROFILES)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "200 2", "curl h2: %s %s%s"
                         % (r.stdout, r.stderr, self.logs()))
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "data sent over TLS")
        # a plaintext client on the TLS port gets nothing useful
        try:
            c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5)
            c.request("POST", h.PATH_PROFILES, body=b"", headers=CT)
            st = c.getresponse().status
            self.fail("plaintext request on a TLS port answered %d" % st)
        except (http.client.HTTPException, OSError):
            pass
        self.assertAlive(p)
        self.stop_clean(p)

    def test_b_grpc_over_tls(self):
        import grpc
        p, out = self.start_tls(tls_receiver(*self.srv, grpc=True))
        with open(self.ca.crt, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel("localhost:%d" % p.port, creds)
        self.addCleanup(ch.close)
        stub = g.stubs().ProfilesServiceStub(ch)
        req = h.synthetic_request(3)
        res = g.export(stub, req)
        self.assertEqual(res[0], grpc.StatusCode.OK, "gRPC over TLS: %r%s" % (res, self.logs()))
        got, _ = h.collect_dir(out, h.sample_count(h.canonical(req)))
        self.assertSameData(h.canonical(req), got, "gRPC over TLS")
        self.stop_clean(p)

    def test_c_mtls(self):
        p, out = self.start_tls(tls_receiver(*self.srv, client_ca=self.ca.crt))
        body = h.synthetic_request(4).SerializeToString()
        status, resp = post_tls(p.port, client_ctx(self.ca.crt, *self.cli), body)
        self.assertEqual(status, 200, "mTLS with a valid client certificate: %r%s"
                         % (resp, self.logs()))
        self.assertRefused(p.port, client_ctx(self.ca.crt), "no client certificate")
        self.assertRefused(p.port, client_ctx(self.ca.crt, *self.expired),
                           "expired client certificate")
        self.assertRefused(p.port, client_ctx(self.ca.crt, *self.stranger),
                           "client certificate of another CA")
        self.assertIn("certificate has expired", p.log_text(), "the log says why")
        # the listener still serves after the refusals
        status, _ = post_tls(p.port, client_ctx(self.ca.crt, *self.cli), body)
        self.assertEqual(status, 200, self.logs())
        self.stop_clean(p)

    def test_d_min_version(self):
        p, _ = self.start_tls(tls_receiver(*self.srv, min_version="1.3"))
        self.assertRefused(p.port, client_ctx(self.ca.crt, max_version=ssl.TLSVersion.TLSv1_2),
                           "TLS 1.2 client with min_version 1.3")
        status, _ = post_tls(p.port, client_ctx(self.ca.crt),
                             h.synthetic_request(5).SerializeToString())
        self.assertEqual(status, 200, self.logs())
        self.stop_clean(p)

    def test_e_sighup_reloads_certificates(self):
        d = os.path.join(self.tmp, "certs")
        os.makedirs(d)
        cert, key = os.path.join(d, "srv.crt"), os.path.join(d, "srv.key")
        shutil.copy(self.srv[0], cert)
        shutil.copy(self.srv[1], key)
        port = h.free_port()
        p, _ = self.start_tls(tls_receiver(cert, key, port=port))
        body = h.synthetic_request(6).SerializeToString()
        self.assertEqual(post_tls(port, client_ctx(self.ca.crt), body)[0], 200, self.logs())
        # renew: a certificate from the other CA replaces the files, then SIGHUP
        renewed = self.other.issue("localhost", server=True)
        shutil.copy(renewed[0], cert)
        shutil.copy(renewed[1], key)
        p.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "reload: new configuration running" not in p.log_text():
            self.assertLess(time.monotonic(), deadline, "no reload%s" % self.logs())
            time.sleep(0.05)
        self.assertEqual(post_tls(port, client_ctx(self.other.crt), body)[0], 200, self.logs())
        self.assertRefused(port, client_ctx(self.ca.crt), "old CA after the renewal")
        self.stop_clean(p)

    def test_f_bad_files_fail_start(self):
        cfg = h.config({"otlp": tls_receiver(self.srv[0], self.cli[1])},
                       {"debug": {}})
        p = self.start(cfg, "badkey", wait_port=False)
        rc = p.proc.wait(15)
        self.assertNotEqual(rc, 0, "a key that does not match the certificate must fail")
        self.assertRegex(p.log_text(), r"tls: .*key_file.*(mismatch|does not match)")

    def test_g_exporter_mtls_and_token(self):
        """flamegate A (otlphttp, https, client certificate, bearer token) → B (TLS + mTLS +
        bearertokenauth) → file."""
        out = self.out_dir("b-out")
        token = "tls-test-token-9f2c"
        b_cfg = h.config(
            {"otlp": {"protocols": {"http": {
                "endpoint": "127.0.0.1:0",
                "tls": {"cert_file": self.named[0], "key_file": self.named[1],
                        "client_ca_file": self.ca.crt},
                "auth": {"authenticator": "bearertokenauth"}}}}},
            {"file": {"path": out, "format": "otlp_proto"}})
        b_cfg["extensions"] = {"bearertokenauth": {"token": token}}
        b_cfg["service"]["extensions"] = ["bearertokenauth"]
        b = self.start(b_cfg, "b", wait_port=False)
        b.port = g.wait_log_port(b, TLS_PORT_RE)
        a_cfg = h.forward_config(b.port)
        exp = a_cfg["exporters"]["otlphttp"]
        # the certificate names flamegate.test; the connection goes to 127.0.0.1
        exp["endpoint"] = "https://127.0.0.1:%d" % b.port
        exp["tls"] = {"ca_file": self.ca.crt, "cert_file": self.cli[0], "key_file": self.cli[1],
                      "server_name_override": "flamegate.test"}
        exp["auth"] = {"authenticator": "bearertokenauth/out"}
        a_cfg["extensions"] = {"bearertokenauth/out": {"token": token}}
        a_cfg["service"]["extensions"] = ["bearertokenauth/out"]
        a = self.start(a_cfg, "a")
        reqs = [h.synthetic_request(10 + i) for i in range(3)]
        for r in reqs:
            resp = h.post(a.port, r.SerializeToString())
            self.assertStatus(resp, 200, "post to A")
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "A → B over mTLS with a token")
        for p in (a, b):
            self.assertNotIn(token, p.log_text(), "the token leaked into the log of %s" % p.name)
        self.stop_clean(a)
        self.stop_clean(b)

    def test_h_grpc_exporter_tls_and_basic_auth(self):
        """flamegate A (otlp gRPC exporter, TLS with ca_file, basicauth client) → B (gRPC
        listener with TLS + basicauth) → file."""
        out = self.out_dir("b-out")
        password = "grpc-basic-pw-51a"
        b_cfg = h.config(
            {"otlp": {"protocols": {"grpc": {
                "endpoint": "127.0.0.1:0",
                "tls": {"cert_file": self.srv[0], "key_file": self.srv[1]},
                "auth": {"authenticator": "basicauth/in"}}}}},
            {"file": {"path": out, "format": "otlp_proto"}})
        b_cfg["extensions"] = {"basicauth/in": {"htpasswd": {"inline": "agent:" + password}}}
        b_cfg["service"]["extensions"] = ["basicauth/in"]
        b = self.start(b_cfg, "b", wait_port=False)
        b.port = g.wait_log_port(b, TLS_GRPC_PORT_RE)
        a_cfg = h.config(
            {"otlp": h.otlp_receiver()},
            {"otlp": {"endpoint": "localhost:%d" % b.port,
                      "tls": {"ca_file": self.ca.crt},
                      "auth": {"authenticator": "basicauth/out"},
                      "retry_on_failure": {"initial_interval": "100ms"}}})
        a_cfg["extensions"] = {"basicauth/out": {"client_auth": {"username": "agent",
                                                                 "password": password}}}
        a_cfg["service"]["extensions"] = ["basicauth/out"]
        a = self.start(a_cfg, "a")
        reqs = [h.synthetic_request(20 + i) for i in range(3)]
        for r in reqs:
            self.assertStatus(h.post(a.port, r.SerializeToString()), 200, "post to A")
        want = h.canonical_sum(reqs)
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "A → B over gRPC with TLS and basic auth")
        for p in (a, b):
            self.assertNotIn(password, p.log_text(), "the password leaked into %s" % p.name)
        self.stop_clean(a)
        self.stop_clean(b)


if __name__ == "__main__":
    h.main()
