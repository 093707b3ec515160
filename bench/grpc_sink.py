# The benchmark's gRPC upstream for the otlp exporter: a python3-grpcio ProfilesService
# that counts calls, message bytes and samples, behind a pass-through that counts the bytes
# flamegate puts on the wire.
import concurrent.futures
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import fgharness as h  # noqa: E402

SERVICE = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"


class GrpcSink:
    def __init__(self):
        import grpc  # python3-grpcio
        self.req_cls = h.pb().req
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "plain_bytes": 0, "samples": 0, "bad": 0}
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Export": grpc.unary_unary_rpc_method_handler(self._export)})
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_receive_message_length", 64 << 20)])
        self.server.add_generic_rpc_handlers((handler,))
        self.grpc_port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.proxy = CountingProxy(self.grpc_port)
        self.port = self.proxy.port

    def _export(self, raw, context):
        # raw: the request message bytes (grpcio has already undone grpc-encoding)
        try:
            req = self.req_cls.FromString(raw)
            n = sum(len(p.samples) for rp in req.resource_profiles
                    for sp in rp.scope_profiles for p in sp.profiles)
            bad = 0
        except Exception:  # noqa: BLE001 - a bad message is counted, not fatal
            n, bad = 0, 1
        with self.lock:
            self.counts["requests"] += 1
            self.counts["plain_bytes"] += len(raw)
            self.counts["samples"] += n
            self.counts["bad"] += bad
        return b""  # an empty ExportProfilesServiceResponse: full success

    def stats(self):
        with self.lock:
            c = dict(self.counts)
        c["wire_bytes"] = self.proxy.bytes_in()
        return c

    def stop(self):
        self.proxy.stop()
        self.server.stop(0)


class CountingProxy:
    """TCP pass-through to 127.0.0.1:upstream_port counting the client's bytes."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.count = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def bytes_in(self):
        with self.lock:
            return self.count

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src, dst, count):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.count += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.sock.close()
