# Helpers for the HTTP/2 and gRPC integration tests: gRPC stubs compiled at test time with
# python3-grpc-tools, flamegate configs with protocols.grpc, the gRPC port from the log, a
# tiny raw HTTP/2 client (hand-encoded HPACK literals) and the nghttp CLI.
import importlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

import fgharness as h

GRPC_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/gRPC\)")
HTTP_PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/HTTP\)")
EXPORT = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
LEGACY = "/opentelemetry.proto.collector.profiles.v1experimental.ProfilesService/Export"

_STUBS = None


def stubs():
    """The generated profiles_service_pb2_grpc module (ProfilesServiceStub)."""
    global _STUBS
    if _STUBS is not None:
        return _STUBS
    try:
        import grpc  # noqa: F401
        import grpc_tools.protoc  # noqa: F401
    except ImportError as e:
        raise h.HarnessError("python3-grpcio / python3-grpc-tools missing: %s" % e)
    h.pb()  # the message classes, from the harness's protoc output
    proto_root = os.path.join(h.source_dir(), "pipeline", "proto")
    rel = "opentelemetry/proto/collector/profiles/v1development/profiles_service.proto"
    base = h.build_dir() or "/tmp"
    out = os.path.join(base, "fg-integ-grpc-%d" % os.getpid())
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", proto_root,
                        "--grpc_python_out=" + out, rel], capture_output=True, text=True)
    if r.returncode != 0:
        raise h.HarnessError("grpc_tools.protoc failed: %s" % r.stderr)
    # Only the _grpc module lives here; the message modules come from the harness dir
    # (namespace packages merge both).
    sys.path.append(out)
    importlib.invalidate_caches()
    _STUBS = importlib.import_module(
        "opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2_grpc")
    shutil.rmtree(out, ignore_errors=True)
    return _STUBS


def grpc_receiver(endpoint="127.0.0.1:0", http_endpoint=None, **opts):
    g = {"endpoint": endpoint}
    g.update(opts)
    protos = {"grpc": g}
    if http_endpoint:
        protos["http"] = {"endpoint": http_endpoint}
    return {"protocols": protos}


def grpc_sink_config(out_dir, http_endpoint=None, fmt="otlp_proto", **opts):
    return h.config({"otlp": grpc_receiver(http_endpoint=http_endpoint, **opts)},
                    {"file": {"path": out_dir, "format": fmt}})


def wait_log_port(p, regex, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = regex.search(p.log_text())
        if m:
            return int(m.group(1))
        if not p.alive():
            break
        time.sleep(0.05)
    raise h.HarnessError("%s: no port line %r; log:\n%s" % (p.name, regex.pattern,
                                                            p.log_tail()))


def start_grpc(tc, cfg, name="fg"):
    """Starts flamegate; returns the process with .grpc_port (and .port when http is on)."""
    p = tc.start(cfg, name, wait_port=False)
    p.grpc_port = wait_log_port(p, GRPC_PORT_RE)
    # The HTTP listener starts just after the gRPC one: wait for its line as well.
    if any("http" in (r or {}).get("protocols", {}) for r in cfg.get("receivers", {}).values()):
        p.port = wait_log_port(p, HTTP_PORT_RE)
    return p


def channel(port):
    import grpc
    return grpc.insecure_channel("127.0.0.1:%d" % port)


def export(stub, req, compression=None, timeout=10.0, metadata=None):
    """Returns (code, details, response or None)."""
    import grpc
    kw = {"timeout": timeout}
    if compression:
        kw["compression"] = compression
    if metadata:
        kw["metadata"] = metadata
    try:
        resp = stub.Export(req, **kw)
        return grpc.StatusCode.OK, "", resp
    except grpc.RpcError as e:
        return e.code(), e.details(), None


# ---------------------------------------------------------------------------------------
# Raw HTTP/2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literals(headers):
    """Header block of literal fields without indexing, new names, no Huffman: no
    dynamic table state, so every block decodes on its own."""
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return out


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream_id & 0x7fffffff) + payload


class RawH2:
    """Just enough HTTP/2 to misbehave: frames are written as given; reading returns frames
    (type, flags, stream, payload) without decoding headers."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def start(self):
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data):
        self.sock.sendall(data)

    def headers(self, sid, hdrs, end_stream=False):
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, sid, hpack_literals(hdrs))

    def read_frames(self, until=None, timeout=5.0, ack_settings=True):
        """Reads frames until until(frame) is true, EOF or timeout. Returns (frames, eof).
        ack_settings=False leaves the server's SETTINGS unacknowledged."""
        frames = []
        deadline = time.monotonic() + timeout
        eof = False
        while time.monotonic() < deadline:
            while len(self.buf) >= 9:
                ln = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
                if len(self.buf) < 9 + ln:
                    break
                f = (self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7fffffff,
                     self.buf[9:9 + ln])
                self.buf = self.buf[9 + ln:]
                if f[0] == SETTINGS and not f[1] & ACK and ack_settings:
                    try:
                        self.sock.sendall(frame(SETTINGS, ACK, 0))
                    except OSError:
                        pass
                frames.append(f)
                if until and until(f):
                    return frames, eof
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                eof = True
                break
            if not data:
                eof = True
                break
            self.buf += data
        return frames, eof

    def close(self):
        self.sock.close()


def grpc_request_headers(port, path=EXPORT, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
            ("te", "trailers")] + list(extra)


# ---------------------------------------------------------------------------------------
# nghttp (Debian nghttp2-client)

def nghttp(port, path, body=None, headers=(), tmp="/tmp", timeout=20):
    """One h2c request with prior knowledge; returns (response headers + trailers as a list
    of (name, value), body bytes)."""
    if shutil.which("nghttp") is None:
        raise h.HarnessError("nghttp missing (Debian nghttp2-client)")
    args = ["nghttp", "-v", "-n", "--no-dep"]
    if body is not None:
        path_in = os.path.join(tmp, "nghttp-body-%d" % os.getpid())
        with open(path_in, "wb") as f:
            f.write(body)
        args += ["-d", path_in]
    for k, v in headers:
        args += ["-H", "%s: %s" % (k, v)]
    args.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(args, capture_output=True, timeout=timeout)
    text = r.stdout.decode("utf-8", "replace")
    got = []
    # -v prints received header fields as "[  0.001] recv (stream_id=13) name: value"
    for m in re.finditer(r"recv \(stream_id=\d+\) ([^:\s][^:]*|:[a-z]+): (.*)", text):
        got.append((m.group(1), m.group(2).strip()))
    return got, text


def header(hdrs, name):
    for k, v in hdrs:
        if k == name:
            return v
    return None
