# Abuse resistance of a listener: HTTP/2 rapid reset and stream floods, oversized headers,
# the connection limit, and slowloris clients over HTTP/1.1, the preface sniffer and HTTP/2.
# Each is cut off, the process stays up, and the next valid call succeeds.
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402

ENHANCE_YOUR_CALM = 0xb
IDLE = "2s"
IDLE_S = 2.0


def is_goaway(f):
    return f[0] == g.GOAWAY


class H2AbuseTest(h.FgTestCase):
    def setUp(self):
        super().setUp()
        import grpc
        self.grpc = grpc
        self.svc = g.stubs()
        self.out = self.out_dir()
        cfg = g.grpc_sink_config(
            self.out, max_resets_per_second=50, max_streams_per_second=500,
            max_connections=8, max_header_list_size="8KiB",
            keepalive={"server_parameters": {"max_connection_idle": IDLE}})
        cfg["receivers"]["otlp"]["protocols"]["http"] = {
            "endpoint": "127.0.0.1:0", "idle_timeout": IDLE}
        self.p = g.start_grpc(self, cfg)
        self.n = 0

    def assertNextCallOk(self, what, port=None):
        self.assertTrue(self.p.alive(), "%s: process died%s" % (what, self.logs()))
        with g.channel(port or self.p.grpc_port) as ch:
            stub = self.svc.ProfilesServiceStub(ch)
            code, details, _ = g.export(stub, h.synthetic_request(500 + self.n))
        self.n += 1
        self.assertEqual(code, self.grpc.StatusCode.OK, "after %s: %s %s%s"
                         % (what, code, details, self.logs()))
        self.assertOk(h.post(self.p.port, h.synthetic_request(600 + self.n)
                             .SerializeToString()), "HTTP/1.1 after %s" % what)

    def goaway_code(self, frames):
        for f in frames:
            if f[0] == g.GOAWAY:
                return struct.unpack(">I", f[3][4:8])[0]
        return None

    def storm_until_goaway(self, items, chunk):
        """Sends the pre-built frames items[0], items[1], ... chunk by chunk on a fresh
        connection, until the server answers GOAWAY, cuts the connection or all went out;
        returns the frames read. Counting items rather than timing a burst: the server's
        limits are per second, and a loaded machine may spread any fixed burst over several
        seconds (it has to go on until the limit trips however slowly it is read).
        The server's SETTINGS stay unacknowledged, as in a burst sent blind: nghttp2 then
        refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS (they count toward the stream
        rate) rather than closing with PROTOCOL_ERROR once a slow server has 100 open."""
        chunks = [b"".join(items[i:i + chunk]) for i in range(0, len(items), chunk)]
        c = g.RawH2(self.p.grpc_port)
        c.start()
        frames = []
        try:
            for data in chunks:
                try:
                    c.send(data)
                except (BrokenPipeError, ConnectionResetError):
                    break  # cut off while we were still writing: fine
                got, eof = c.read_frames(until=is_goaway, timeout=0.01, ack_settings=False)
                frames += got
                if eof or self.goaway_code(frames) is not None:
                    break
            if self.goaway_code(frames) is None:
                got, _ = c.read_frames(until=is_goaway, timeout=30, ack_settings=False)
                frames += got
        finally:
            c.close()
        return frames

    def wait_log(self, text, timeout=30.0):
        # The harness relays the process's stderr through a thread: a line logged before
        # the GOAWAY went out can reach the log file after the client has read the GOAWAY.
        deadline = time.monotonic() + timeout
        while text not in self.p.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.p.log_text()

    def test_a_rapid_reset(self):
        # Streams opened and cancelled at once, up to 4000 (80 times the reset limit, under
        # the stream limit until 500): the reset limit must be what trips.
        req = g.grpc_request_headers(self.p.grpc_port)
        pairs = [g.RawH2.headers(None, 1 + 2 * i, req) +
                 g.frame(g.RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 8))  # CANCEL
                 for i in range(4000)]
        frames = self.storm_until_goaway(pairs, chunk=20)
        self.assertEqual(self.goaway_code(frames), ENHANCE_YOUR_CALM,
                         "GOAWAY ENHANCE_YOUR_CALM after a reset storm; frames %s%s"
                         % ([f[0] for f in frames][:20], self.logs()))
        log = self.wait_log("stream resets per second")
        self.assertIn("stream resets per second", log)
        self.assertNotIn("new streams per second", log, "the stream limit tripped first")
        self.assertNextCallOk("rapid reset")

    def test_b_stream_flood(self):
        req = g.grpc_request_headers(self.p.grpc_port)
        streams = [g.RawH2.headers(None, 1 + 2 * i, req, end_stream=True)
                   for i in range(20000)]
        frames = self.storm_until_goaway(streams, chunk=100)
        self.assertEqual(self.goaway_code(frames), ENHANCE_YOUR_CALM,
                         "GOAWAY after a stream flood" + self.logs())
        self.assertIn("new streams per second", self.wait_log("new streams per second"))
        self.assertNextCallOk("stream flood")

    def test_c_header_list_too_large(self):
        extra = [("x-big", "v" * 12000)]
        hdrs, text = g.nghttp(self.p.grpc_port, h.PATH_PROFILES, b"",
                              [("content-type", "application/x-protobuf")] + extra, tmp=self.tmp)
        self.assertEqual(g.header(hdrs, ":status"), "431", text[-2000:] + self.logs())
        self.assertNextCallOk("header list too large")

    def test_d_connection_limit(self):
        socks = []
        try:
            for _ in range(8):
                c = g.RawH2(self.p.grpc_port)
                c.start()
                c.read_frames(until=lambda f: f[0] == g.SETTINGS, timeout=2)
                socks.append(c)
            extra = socket.create_connection(("127.0.0.1", self.p.grpc_port), timeout=3)
            extra.sendall(g.PREFACE)
            try:
                data = extra.recv(100)
            except ConnectionResetError:
                data = b""
            extra.close()
            self.assertEqual(data, b"", "the 9th connection is closed at once")
        finally:
            for c in socks:
                c.close()
        time.sleep(0.3)
        self.assertNextCallOk("connection limit")

    def slow_writer(self, port, data, per_byte=1.0):
        """Sends data one byte every per_byte seconds; returns seconds until the server
        closed the connection, or None if it never did."""
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        t0 = time.monotonic()
        try:
            for b in data:
                try:
                    s.sendall(bytes([b]))
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0
                end = time.monotonic() + per_byte
                while time.monotonic() < end:
                    s.settimeout(max(0.01, end - time.monotonic()))
                    try:
                        got = s.recv(4096)
                    except socket.timeout:
                        continue
                    except ConnectionResetError:
                        return time.monotonic() - t0
                    if not got:
                        return time.monotonic() - t0
                    # HTTP/2: the server's SETTINGS; keep trickling
            return None
        finally:
            s.close()

    def test_e_slowloris_http1(self):
        req = (b"POST /v1development/profiles HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/x-protobuf\r\nContent-Length: 10\r\n\r\n")
        t = self.slow_writer(self.p.port, req)
        self.assertIsNotNone(t, "HTTP/1.1 slowloris never cut off" + self.logs())
        self.assertLess(t, IDLE_S + 4.0, "cut off after the idle timeout")
        self.assertGreater(t, IDLE_S - 0.5)
        self.assertNextCallOk("HTTP/1.1 slowloris")

    def test_f_slowloris_preface(self):
        t = self.slow_writer(self.p.grpc_port, g.PREFACE)
        self.assertIsNotNone(t, "preface slowloris never cut off" + self.logs())
        self.assertLess(t, IDLE_S + 4.0)
        self.assertNextCallOk("preface slowloris")

    def test_g_slowloris_h2_headers(self):
        # A complete preface at once, then a HEADERS frame one byte a second.
        hdr = g.RawH2.headers(None, 1, g.grpc_request_headers(self.p.grpc_port))
        s = socket.create_connection(("127.0.0.1", self.p.grpc_port), timeout=1)
        s.sendall(g.PREFACE + g.frame(g.SETTINGS, 0, 0))
        closed = None
        t0 = time.monotonic()
        for b in hdr:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - t0
                break
            end = time.monotonic() + 1.0
            while time.monotonic() < end and closed is None:
                s.settimeout(max(0.01, end - time.monotonic()))
                try:
                    got = s.recv(4096)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    got = b""
                if not got:
                    closed = time.monotonic() - t0
            if closed is not None:
                break
        s.close()
        self.assertIsNotNone(closed, "HTTP/2 slowloris never cut off" + self.logs())
        self.assertLess(closed, IDLE_S + 4.0)
        self.assertNextCallOk("HTTP/2 slowloris")

    def test_h_idle_connection_closed_busy_not(self):
        # A gRPC channel that is used keeps working across the idle timeout: the client
        # reconnects after our GOAWAY.
        with g.channel(self.p.grpc_port) as ch:
            stub = self.svc.ProfilesServiceStub(ch)
            for i in range(3):
                code, details, _ = g.export(stub, h.synthetic_request(700 + i))
                self.assertEqual(code, self.grpc.StatusCode.OK, details)
                time.sleep(IDLE_S + 0.5)
        self.assertTrue(self.p.alive())


if __name__ == "__main__":
    h.main()
