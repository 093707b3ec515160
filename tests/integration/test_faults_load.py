# Fault tests of load and lifecycle: a flood four times what the upstream takes (memory
# limiter, 503s, bounded RSS), and SIGHUP reloads with invalid and valid configurations
# while data is queued.
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultkit as fk  # noqa: E402
import fgharness as h  # noqa: E402

FLOOD_S = float(os.environ.get("FG_FAULT_FLOOD_S", "10"))  # at least this long
FLOOD_MIN_REFUSED = 100  # ... and until this many requests were refused
FLOOD_MAX_SAMPLES = 600000  # a limiter that never trips: stop before the machine swaps
LIMIT_MIB = 48
SPIKE_MIB = 12


def wait_log(p, text, timeout=30.0, count=1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.log_text().count(text) >= count:
            return True
        time.sleep(0.05)
    return False


class LoadFaults(h.FgTestCase):
    def test_a_flood(self):
        """Agents offer 4x what the sink takes: the memory limiter keeps RSS under
        limit_mib + 10%, agents get 503 with Retry-After (no timeouts), and every acknowledged
        sample arrives. The sink takes a quarter of what has been offered rather than a fixed
        rate, and the flood lasts until the limiter has refused FLOOD_MIN_REFUSED requests:
        on a loaded machine the agents are slower, not the overload smaller."""
        agents = None
        sink = fk.Sink(budget=lambda: agents.sent // 4 if agents else 0).up()
        limiter = {"check_interval": "50ms", "limit_mib": LIMIT_MIB,
                   "spike_limit_mib": SPIKE_MIB}
        g = self.start(fk.gateway_config(sink.port, limiter=limiter, timeout="60s",
                                         queue={"queue_size": 10000000, "sizer": "samples",
                                                "num_consumers": 4}), "gw")
        rss = fk.RssSampler(g.proc.pid, period=0.02)
        n_agents, per_request = 4, 100
        # paced to 24k samples/s at most, the figure docs/reliability.md reports
        agents = fk.Agents(g.port, n=n_agents, per_request=per_request, pad=512, timeout=10,
                           rate=24000 / n_agents)
        t0 = time.monotonic()
        agents.start()
        runaway_kib = None if fk.sanitized_build() else 4 * LIMIT_MIB * 1024
        while agents.sent < FLOOD_MAX_SAMPLES:
            if runaway_kib and rss.peak_kib > runaway_kib:
                break  # the limiter does not hold: the RSS assertion below says so
            if (time.monotonic() - t0 >= FLOOD_S and
                    agents.statuses.get(503, 0) >= FLOOD_MIN_REFUSED):
                break
            time.sleep(0.1)
        agents.stop()
        flood_s = time.monotonic() - t0
        taken_in_flood = sum(sink.snapshot().values())
        sink.budget = None
        got = fk.wait_received(sink, agents.acked, 90)
        peak = rss.stop()
        st = dict((str(k), v) for k, v in agents.statuses.items())
        fk.figures("flood_4x", agents.sent, agents.acked, got,
                   {"statuses": st, "flood_s": round(flood_s, 1),
                    "offered_samples_per_s": round(agents.sent / flood_s),
                    "taken_in_flood_samples_per_s": round(taken_in_flood / flood_s),
                    "limit_mib": LIMIT_MIB, "retry_after_headers": agents.retry_after_seen},
                   peak)
        missing = agents.acked - set(got)
        self.assertFalse(missing, "%d acknowledged samples lost%s" % (len(missing), self.logs()))
        self.assertEqual(agents.statuses.get("timeout", 0), 0, "agents timed out: %s" % st)
        self.assertEqual(agents.retry_after_seen, agents.statuses.get(503, 0),
                         "every 503 carries Retry-After")
        self.assertGreaterEqual(agents.statuses.get(503, 0), FLOOD_MIN_REFUSED,
                                "too few refusals in %d samples offered: %s%s"
                                % (agents.sent, st, self.logs()))
        if fk.sanitized_build():
            print("sanitizer build: peak RSS %.1f MiB not checked" % peak)
        else:
            self.assertLess(peak, LIMIT_MIB * 1.1, "peak RSS %.1f MiB over %d MiB + 10%%%s"
                            % (peak, LIMIT_MIB, self.logs()))
        self.assertTrue(wait_log(g, "refusing new data"), self.logs())
        self.stop_clean(g)
        sink.down()

    def reload_run(self, storage):
        sink = fk.Sink()
        port = h.free_port()
        qdir = os.path.join(self.tmp, "queue") if storage else None
        cfg = fk.gateway_config(sink.port, port=port, storage=qdir, shutdown_timeout="20s",
                                queue={"queue_size": 100000})
        g = self.start(cfg, "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(port, n=2, per_request=10, interval=0.01).start()
        time.sleep(1.0)
        # 1. an invalid configuration: errors logged, the old pipeline keeps taking data
        with open(g.config_path, "w") as f:
            f.write("receivers:\n  otlp:\n    protocols: {http: {endpoint: 'x'}}\n"
                    "exporters:\n  nosuch:\nservice: {pipelines: {profiles: {}}}\n")
        before = agents.statuses.get(200, 0)
        g.send_signal(signal.SIGHUP)
        self.assertTrue(wait_log(g, "keeping the running one"), self.logs())
        self.assertIn("unknown exporter type", g.log_text())
        time.sleep(0.5)
        self.assertAlive(g, "after an invalid reload")
        self.assertGreater(agents.statuses.get(200, 0), before, "no data taken after it")
        # 2. a valid one (batch timeout changed) while the upstream is down: queued data
        # survives the switch
        cfg2 = fk.gateway_config(sink.port, port=port, storage=qdir, batch="150ms",
                                 shutdown_timeout="20s", queue={"queue_size": 100000})
        with open(g.config_path, "w") as f:
            f.write(h.to_yaml(cfg2))
        g.send_signal(signal.SIGHUP)
        self.assertTrue(wait_log(g, "reload: new configuration running"), self.logs())
        if storage:
            self.assertTrue(wait_log(g, "reload: done", 5), "handover not immediate"
                            + self.logs())
        time.sleep(1.0)
        sink.up()
        self.assertTrue(wait_log(g, "reload: done", 25), self.logs())
        time.sleep(0.5)
        agents.stop()
        got = fk.wait_received(sink, agents.acked, 30)
        st = dict((str(k), v) for k, v in agents.statuses.items())
        fk.figures("reload_%s" % ("persistent" if storage else "memory"), agents.sent,
                   agents.acked, got, {"statuses": st}, rss.stop())
        missing = agents.acked - set(got)
        self.assertFalse(missing, "%d acknowledged samples lost across the reload%s"
                         % (len(missing), self.logs()))
        if storage:
            self.assertIn("persistent queue handed over", g.log_text())
        self.stop_clean(g)
        sink.down()

    def test_b_reload_memory_queue(self):
        self.reload_run(storage=False)

    def test_c_reload_persistent_queue(self):
        self.reload_run(storage=True)

    def test_d_drain_timeout_memory_queue(self):
        """SIGTERM with the upstream down and a memory queue: flamegate drains until
        shutdown_timeout, then logs exactly how many batches and samples it lost."""
        sink = fk.Sink()
        g = self.start(fk.gateway_config(sink.port, shutdown_timeout="2s",
                                         queue={"queue_size": 100000}), "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(g.port, n=2, per_request=10, interval=0.01).start()
        time.sleep(1.0)
        agents.stop()
        time.sleep(0.3)  # the batch processor hands everything to the exporter
        t0 = time.monotonic()
        self.stop_clean(g)
        took = time.monotonic() - t0
        m = re.search(r"lost (\d+) batches \((\d+) samples\)", g.log_text())
        self.assertTrue(m, "no loss line" + self.logs())
        fk.figures("drain_timeout_memory", agents.sent, agents.acked, sink.snapshot(),
                   {"logged_lost_batches": int(m.group(1)),
                    "logged_lost_samples": int(m.group(2)), "shutdown_s": round(took, 2)},
                   rss.stop())
        self.assertEqual(int(m.group(2)), len(agents.acked), "the loss line is exact")
        self.assertGreaterEqual(took, 1.9, "did not wait for shutdown_timeout")
        self.assertLess(took, 8.0)

    def test_e_drain_timeout_persistent_queue(self):
        """The same with file_storage: nothing is lost, the log says what stays on disk, and
        the next start delivers it."""
        sink = fk.Sink()
        port = h.free_port()
        qdir = os.path.join(self.tmp, "queue")
        cfg = fk.gateway_config(sink.port, port=port, storage=qdir, batch=None,
                                shutdown_timeout="1s")
        g = self.start(cfg, "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(port, n=2, per_request=10, interval=0.01).start()
        time.sleep(1.0)
        agents.stop()
        self.stop_clean(g)
        peak = rss.stop()
        m = re.search(r"shutdown: (\d+) batches \((\d+) samples\) stay in the persistent",
                      g.log_text())
        self.assertTrue(m, "no 'stay on disk' line" + self.logs())
        self.assertEqual(int(m.group(2)), len(agents.acked))
        self.assertNotIn("lost", g.log_text())
        sink.up()
        g2 = self.start(cfg, "gw2")
        got = fk.wait_received(sink, agents.acked, 30)
        fk.figures("drain_timeout_persistent", agents.sent, agents.acked, got,
                   {"kept_on_disk_samples": int(m.group(2))}, peak)
        self.assertFalse(agents.acked - set(got), "samples kept on disk not delivered"
                         + self.logs())
        self.stop_clean(g2)
        sink.down()

    def test_f_reload_that_cannot_start(self):
        """A valid configuration whose receiver cannot bind (port taken): the old
        configuration is started again and nothing acknowledged is lost."""
        sink = fk.Sink()
        port = h.free_port()
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        cfg = fk.gateway_config(sink.port, port=port, shutdown_timeout="20s",
                                queue={"queue_size": 100000})
        g = self.start(cfg, "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(port, n=2, per_request=10, interval=0.01).start()
        time.sleep(1.0)
        with open(g.config_path, "w") as f:
            f.write(h.to_yaml(fk.gateway_config(sink.port, port=taken)))
        g.send_signal(signal.SIGHUP)
        self.assertTrue(wait_log(g, "restarting the old one"), self.logs())
        time.sleep(1.0)
        sink.up()
        time.sleep(1.0)
        agents.stop()
        blocker.close()
        self.assertAlive(g, "after the failed reload")
        got = fk.wait_received(sink, agents.acked, 30)
        st = dict((str(k), v) for k, v in agents.statuses.items())
        fk.figures("reload_start_failure", agents.sent, agents.acked, got, {"statuses": st},
                   rss.stop())
        self.assertFalse(agents.acked - set(got), "acknowledged samples lost" + self.logs())
        self.assertGreater(agents.statuses.get(200, 0), 100)
        self.stop_clean(g)
        sink.down()


if __name__ == "__main__":
    h.main()
