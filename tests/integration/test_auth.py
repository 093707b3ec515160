# Receiver authentication through the bearertokenauth and basicauth extensions: no
# credentials → 401, wrong → 401, right → 200 over HTTP/1.1, h2c (nghttp) and gRPC
# (UNAUTHENTICATED / OK); the check runs before the body is decoded; htpasswd hashes made
# here by openssl passwd ({SHA}, $6$, $5$, $1$, plain); $apr1$ is refused at start; and no
# configured secret shows up in any log.
import base64
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

TOKEN = "auth-test-token-71d3e0"


def openssl_passwd(flag, password, salt):
    r = subprocess.run(["openssl", "passwd", flag, "-salt", salt, password],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise h.HarnessError("openssl passwd %s: %s" % (flag, r.stderr))
    return r.stdout.strip()


def bcrypt_hash(password):
    """A $2b$ hash from Python's crypt module (Python 3.11 in Debian 12), or None."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
        try:
            return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        except (ValueError, OSError):
            return None


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def receiver(auth_id):
    return {"protocols": {
        "grpc": {"endpoint": "127.0.0.1:0", "auth": {"authenticator": auth_id}},
        "http": {"endpoint": "127.0.0.1:0", "auth": {"authenticator": auth_id}}}}


class AuthTest(h.FgTestCase):
    def start_auth(self, ext_id, ext_cfg, name="fg"):
        out = self.out_dir(name + "-out")
        cfg = h.config({"otlp": receiver(ext_id)},
                       {"file": {"path": out, "format": "otlp_proto"}})
        cfg["extensions"] = {ext_id: ext_cfg}
        cfg["service"]["extensions"] = [ext_id]
        p = g.start_grpc(self, cfg, name)
        p.port = g.wait_log_port(p, g.HTTP_PORT_RE)
        return p, out

    def http_status(self, p, authorization, body=None):
        hdrs = {"Authorization": authorization} if authorization is not None else {}
        body = body if body is not None else h.synthetic_request(1).SerializeToString()
        return h.post(p.port, body, headers=hdrs).status

    def h2c_status(self, p, authorization):
        hdrs = [("content-type", "application/x-protobuf")]
        if authorization is not None:
            hdrs.append(("authorization", authorization))
        got, text = g.nghttp(p.port, h.PATH_PROFILES,
                             body=h.synthetic_request(2).SerializeToString(), headers=hdrs,
                             tmp=self.tmp)
        st = g.header(got, ":status")
        self.assertIsNotNone(st, "nghttp got no status: %s%s" % (text[-2000:], self.logs()))
        return int(st)

    def grpc_code(self, p, authorization):
        ch = g.channel(p.grpc_port)
        try:
            stub = g.stubs().ProfilesServiceStub(ch)
            md = [("authorization", authorization)] if authorization is not None else None
            return g.export(stub, h.synthetic_request(3), metadata=md)[0]
        finally:
            ch.close()

    def check_all(self, p, good, bad):
        import grpc
        for proto, fn, ok, denied in (
                ("HTTP/1.1", self.http_status, 200, 401),
                ("h2c", self.h2c_status, 200, 401),
                ("gRPC", self.grpc_code, grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED)):
            self.assertEqual(fn(p, None), denied, "%s without credentials%s"
                             % (proto, self.logs()))
            for b in bad:
                self.assertEqual(fn(p, b), denied, "%s with wrong credentials %r%s"
                                 % (proto, b, self.logs()))
            for gd in good:
                self.assertEqual(fn(p, gd), ok, "%s with right credentials %r%s"
                                 % (proto, gd, self.logs()))

    def test_a_bearer_token(self):
        p, out = self.start_auth("bearertokenauth/in", {"token": TOKEN})
        self.check_all(p, ["Bearer " + TOKEN],
                       ["Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x", "Basic " + TOKEN,
                        TOKEN, "Bearer x"])
        # only the accepted requests reached the pipeline: one per protocol
        want = h.canonical_sum([h.synthetic_request(i) for i in (1, 2, 3)])
        got, _ = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "accepted requests")
        # authentication comes before decoding: garbage without a token is a 401, not a 400
        self.assertEqual(self.http_status(p, None, body=b"\xff not protobuf"), 401)
        self.assertEqual(self.http_status(p, "Bearer " + TOKEN, body=b"\xff not protobuf"), 400)
        self.stop_clean(p)
        self.assertNotIn(TOKEN, p.log_text(), "the token leaked into the log")

    def test_b_token_file(self):
        path = os.path.join(self.tmp, "token")
        with open(path, "w") as f:
            f.write("  %s\n" % TOKEN)
        p, _ = self.start_auth("bearertokenauth", {"filename": path, "scheme": "Token"})
        self.assertEqual(self.http_status(p, "Token " + TOKEN), 200, self.logs())
        self.assertEqual(self.http_status(p, "Bearer " + TOKEN), 401, self.logs())
        self.stop_clean(p)
        self.assertNotIn(TOKEN, p.log_text())

    def test_c_basicauth_htpasswd(self):
        users = {"sha": "pw-sha-1", "six": "pw-six-2", "five": "pw-five-3", "md5": "pw-md5-4",
                 "plain": "pw-plain-5"}
        sha = "{SHA}" + base64.b64encode(hashlib.sha1(users["sha"].encode()).digest()).decode()
        lines = ["sha:" + sha,
                 "six:" + openssl_passwd("-6", users["six"], "s6saltxy"),
                 "five:" + openssl_passwd("-5", users["five"], "s5saltxy"),
                 "md5:" + openssl_passwd("-1", users["md5"], "s1saltxy")]
        bcrypt = bcrypt_hash("pw-bcrypt-6")
        if bcrypt:  # htpasswd -B; Python's crypt module is the generator we have
            users["bcrypt"] = "pw-bcrypt-6"
            lines.append("bcrypt:" + bcrypt)
        htpasswd = os.path.join(self.tmp, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write("# users\n" + "\n".join(lines) + "\n")
        p, _ = self.start_auth("basicauth", {"htpasswd": {
            "file": htpasswd, "inline": "plain:%s\n" % users["plain"]}})
        good = [basic(u, pw) for u, pw in users.items()]
        bad = [basic(u, pw + "x") for u, pw in users.items()]
        bad += [basic("nobody", "pw-sha-1"), "Basic !!!notbase64", "Bearer " + TOKEN,
                basic("six", users["five"])]
        self.check_all(p, good[:2], bad)
        for gd in good:  # every hash kind, twice (the second hits the cache)
            for _ in range(2):
                self.assertEqual(self.http_status(p, gd), 200, "%r%s" % (gd, self.logs()))
        self.stop_clean(p)
        text = p.log_text()
        for pw in users.values():
            self.assertNotIn(pw, text, "a password leaked into the log")

    def test_d_apr1_refused_at_start(self):
        htpasswd = os.path.join(self.tmp, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write("apache:%s\n" % openssl_passwd("-apr1", "pw", "aprsalt1"))
        cfg = h.config({"otlp": receiver("basicauth")}, {"debug": {}})
        cfg["extensions"] = {"basicauth": {"htpasswd": {"file": htpasswd}}}
        cfg["service"]["extensions"] = ["basicauth"]
        p = self.start(cfg, "apr1", wait_port=False)
        self.assertNotEqual(p.proc.wait(15), 0)
        self.assertIn("$apr1$ is not supported", p.log_text())

    def test_e_unknown_authenticator(self):
        cfg = h.config({"otlp": receiver("bearertokenauth/missing")}, {"debug": {}})
        p = self.start(cfg, "missing", wait_port=False)
        self.assertNotEqual(p.proc.wait(15), 0)
        self.assertIn("bearertokenauth/missing", p.log_text())


if __name__ == "__main__":
    h.main()
