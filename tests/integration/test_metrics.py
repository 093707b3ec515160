# /metrics: the counters equal, exactly, the samples the test sent, that were accepted,
# refused and exported, per receiver and transport, per processor and per exporter.
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
import grpcutil as g  # noqa: E402
import telemetry_util as t  # noqa: E402

CT = "application/x-protobuf"
ACC = "otelcol_receiver_accepted_profile_samples_total"
REF = "otelcol_receiver_refused_profile_samples_total"
REQS = "otelcol_receiver_requests_total"
SENT = "otelcol_exporter_sent_profile_samples_total"
FAILED = "otelcol_exporter_send_failed_profile_samples_total"
ENQ_FAILED = "otelcol_exporter_enqueue_failed_profile_samples_total"


def samples(req):
    return h.sample_count(h.canonical(req))


class MetricsTest(h.FgTestCase):
    def start_with_metrics(self, cfg, name, grpc=False):
        if grpc:
            p = g.start_grpc(self, cfg, name)
        else:
            p = self.start(cfg, name)
        p.metrics_port = t.wait_port(p, t.METRICS_PORT_RE)
        return p

    def test_counts_match_what_was_sent(self):
        out = self.out_dir()
        b = self.start_with_metrics(t.with_telemetry(h.sink_config(out)), "B")
        cfg = h.config({"otlp": g.grpc_receiver(http_endpoint="127.0.0.1:0")},
                       {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % b.port,
                                     "retry_on_failure": {"initial_interval": "100ms"}}},
                       processors={"batch": {"timeout": "100ms"}},
                       pipeline_processors=["batch"])
        a = self.start_with_metrics(t.with_telemetry(cfg), "A", grpc=True)

        m0 = t.scrape(a.metrics_port)
        for name in ("otelcol_process_uptime_total", "otelcol_process_memory_rss",
                     "otelcol_process_cpu_seconds_total"):
            self.assertIn((name, frozenset()), m0, "process metric %s" % name)
        self.assertGreater(t.value(m0, "otelcol_process_memory_rss"), 1 << 20)
        self.assertEqual(t.value(m0, "otelcol_exporter_queue_capacity", exporter="otlphttp"),
                         1000)

        http_reqs = [h.synthetic_request(700 + i) for i in range(4)]
        grpc_reqs = [h.synthetic_request(800 + i, nsamples=5) for i in range(3)]
        for r in http_reqs:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT))
        # a bad request never reaches the pipeline: it is not counted as a request
        self.assertStatus(h.post(a.port, b"\xff\xff\xff", CT), 400)
        stub = g.stubs().ProfilesServiceStub(g.channel(a.grpc_port))
        import grpc
        for r in grpc_reqs:
            code, details, _ = g.export(stub, r)
            self.assertEqual(code, grpc.StatusCode.OK, details)
        n_http = sum(samples(r) for r in http_reqs)
        n_grpc = sum(samples(r) for r in grpc_reqs)
        total = n_http + n_grpc

        m = t.wait_value(a.metrics_port, SENT, total, exporter="otlphttp")
        self.assertEqual(t.value(m, ACC, receiver="otlp", transport="http"), n_http, self.logs())
        self.assertEqual(t.value(m, ACC, receiver="otlp", transport="grpc"), n_grpc)
        self.assertEqual(t.value(m, REF, receiver="otlp", transport="http"), 0)
        self.assertEqual(t.value(m, REQS, receiver="otlp", transport="http"), len(http_reqs))
        self.assertEqual(t.value(m, REQS, receiver="otlp", transport="grpc"), len(grpc_reqs))
        self.assertEqual(t.value(m, "flamegate_receiver_received_bytes_total", receiver="otlp",
                                 transport="http"),
                         sum(len(r.SerializeToString()) for r in http_reqs))
        self.assertEqual(t.value(m, "otelcol_processor_incoming_items_total", processor="batch",
                                 otel_signal="profiles"), total)
        self.assertEqual(t.value(m, "otelcol_processor_outgoing_items_total", processor="batch",
                                 otel_signal="profiles"), total)
        self.assertEqual(t.value(m, SENT, exporter="otlphttp"), total)
        self.assertEqual(t.value(m, FAILED, exporter="otlphttp"), 0)
        self.assertEqual(t.value(m, ENQ_FAILED, exporter="otlphttp"), 0)
        self.assertEqual(t.value(m, "otelcol_exporter_queue_size", exporter="otlphttp"), 0)
        self.assertEqual(t.value(m, "otelcol_exporter_in_flight_requests", exporter="otlphttp"),
                         0)
        self.assertEqual(t.value(m, "flamegate_receiver_request_duration_seconds_count",
                                 receiver="otlp"), len(http_reqs) + len(grpc_reqs))
        self.assertEqual(t.value(m, "flamegate_receiver_request_duration_seconds_bucket",
                                 receiver="otlp", le="+Inf"), len(http_reqs) + len(grpc_reqs))

        # B counted the same samples in, and its file exporter (counted by the service's
        # wrapper, not by the exporter helper) wrote them all
        got, _ = h.collect_dir(out, total)
        self.assertEqual(h.sample_count(got), total)
        mb = t.wait_value(b.metrics_port, SENT, total, exporter="file")
        self.assertEqual(t.value(mb, ACC, receiver="otlp", transport="http"), total)
        self.assertEqual(t.value(mb, SENT, exporter="file"), total)
        self.stop_clean(a)
        self.stop_clean(b)

    def test_refused_and_failed_are_counted(self):
        # Upstream down, one worker, a queue of one batch, long backoff: the first request
        # is taken by the worker (retrying), the second waits in the queue, the third is
        # refused with 503 and counted as refused and enqueue-failed.
        dead = h.free_port()
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % dead,
                                     "retry_on_failure": {"initial_interval": "30s"},
                                     "sending_queue": {"queue_size": 1, "num_consumers": 1}}})
        cfg["service"]["shutdown_timeout"] = "1s"
        a = self.start_with_metrics(t.with_telemetry(cfg), "A")
        reqs = [h.synthetic_request(900 + i) for i in range(3)]
        self.assertOk(h.post(a.port, reqs[0].SerializeToString(), CT))
        m = t.wait_value(a.metrics_port, "otelcol_exporter_in_flight_requests", 0,
                         exporter="otlphttp")
        deadline = time.monotonic() + 10
        while t.value(m, "flamegate_exporter_send_duration_seconds_count",
                      exporter="otlphttp") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            m = t.scrape(a.metrics_port)
        self.assertEqual(t.value(m, "otelcol_exporter_queue_size", exporter="otlphttp"), 0)
        self.assertOk(h.post(a.port, reqs[1].SerializeToString(), CT))
        m = t.scrape(a.metrics_port)
        self.assertEqual(t.value(m, "otelcol_exporter_queue_size", exporter="otlphttp"), 1)
        self.assertStatus(h.post(a.port, reqs[2].SerializeToString(), CT), 503)

        m = t.scrape(a.metrics_port)
        acc = samples(reqs[0]) + samples(reqs[1])
        self.assertEqual(t.value(m, ACC, receiver="otlp", transport="http"), acc, self.logs())
        self.assertEqual(t.value(m, REF, receiver="otlp", transport="http"), samples(reqs[2]))
        self.assertEqual(t.value(m, REQS, receiver="otlp", transport="http"), 3)
        self.assertEqual(t.value(m, ENQ_FAILED, exporter="otlphttp"), samples(reqs[2]))
        self.assertEqual(t.value(m, SENT, exporter="otlphttp"), 0)
        self.assertGreater(t.value(m, "flamegate_exporter_failing_since_seconds",
                                   exporter="otlphttp"), time.time() - 60)
        self.stop_clean(a)

    def test_permanent_failure_counts_send_failed(self):
        # B refuses A's requests with 413 (a permanent error): every sample A accepted is
        # counted as send-failed, none as sent.
        out = self.out_dir()
        b = self.start(h.sink_config(out, max_body="512"), "B")
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % b.port,
                                     "compression": "none"}})
        a = self.start_with_metrics(t.with_telemetry(cfg), "A")
        reqs = [h.synthetic_request(950 + i) for i in range(2)]
        for r in reqs:
            self.assertOk(h.post(a.port, r.SerializeToString(), CT))
        n = sum(samples(r) for r in reqs)
        m = t.wait_value(a.metrics_port, FAILED, n, exporter="otlphttp")
        self.assertEqual(t.value(m, FAILED, exporter="otlphttp"), n, self.logs())
        self.assertEqual(t.value(m, SENT, exporter="otlphttp"), 0)
        self.assertEqual(t.value(m, ACC, receiver="otlp", transport="http"), n)
        self.stop_clean(a)
        self.stop_clean(b)

    def test_counters_survive_reload(self):
        out = self.out_dir()
        cfg = t.with_telemetry(h.sink_config(out))
        a = self.start_with_metrics(cfg, "A")
        r1 = h.synthetic_request(990)
        self.assertOk(h.post(a.port, r1.SerializeToString(), CT))
        import signal
        a.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload: done" not in a.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("reload: done", a.log_text())
        port = [int(x) for x in h.PORT_RE.findall(a.log_text())][-1]
        r2 = h.synthetic_request(991)
        self.assertOk(h.post(port, r2.SerializeToString(), CT))
        m = t.scrape(a.metrics_port)
        self.assertEqual(t.value(m, ACC, receiver="otlp", transport="http"),
                         samples(r1) + samples(r2))
        self.assertEqual(t.value(m, SENT, exporter="file"), samples(r1) + samples(r2))
        self.stop_clean(a)


if __name__ == "__main__":
    h.main()
