# Fault tests against a misbehaving upstream, counting samples end to end: the upstream is
# down for a while, throttles with 429 + Retry-After, or rejects one batch for good.
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultkit as fk  # noqa: E402
import fgharness as h  # noqa: E402

DOWN_S = float(os.environ.get("FG_FAULT_DOWN_S", "20"))


class UpstreamFaults(h.FgTestCase):
    def test_a_upstream_down(self):
        """The sink is down for DOWN_S seconds while agents keep sending; with a memory queue
        large enough every acknowledged sample arrives afterwards."""
        sink = fk.Sink().up()
        g = self.start(fk.gateway_config(sink.port, queue={"queue_size": 100000}), "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(g.port, n=3, per_request=20, interval=0.01).start()
        time.sleep(1.5)
        sink.down()
        time.sleep(DOWN_S)
        self.assertAlive(g, "while the upstream is down")
        sink.up()
        time.sleep(1.0)
        agents.stop()
        got = fk.wait_received(sink, agents.acked, 60)
        peak = rss.stop()
        fk.figures("upstream_down_%ds" % DOWN_S, agents.sent, agents.acked, got,
                   {"statuses": dict((str(k), v) for k, v in agents.statuses.items())}, peak)
        missing = agents.acked - set(got)
        self.assertFalse(missing, "%d acknowledged samples never arrived%s"
                         % (len(missing), self.logs()))
        self.assertGreater(len(agents.acked), 1000)
        self.assertIn("retrying", g.log_text())
        self.stop_clean(g)
        sink.down()

    def test_b_throttling(self):
        """429 with Retry-After: 2 for a while: flamegate waits at least 2 s between
        attempts at a batch (its own backoff is 100 ms), then delivers everything."""
        sink = fk.Sink().up()
        throttle_until = [0.0]

        def policy(ids, now):
            if now < throttle_until[0]:
                return 429, {"Retry-After": "2"}
            return 200, {}
        sink.policy = policy
        g = self.start(fk.gateway_config(sink.port, batch="50ms",
                                         queue={"num_consumers": 2}), "gw")
        rss = fk.RssSampler(g.proc.pid)
        throttle_until[0] = time.monotonic() + 5.0
        agents = fk.Agents(g.port, n=2, per_request=10, interval=0.2).start()
        time.sleep(6.0)
        agents.stop()
        got = fk.wait_received(sink, agents.acked, 30)
        fk.figures("throttling", agents.sent, agents.acked, got, None, rss.stop())
        missing = agents.acked - set(got)
        self.assertFalse(missing, "%d acknowledged samples never arrived%s"
                         % (len(missing), self.logs()))
        # Every batch answered 429 was not tried again within 2 s.
        with sink.lock:
            attempts = list(sink.attempts)
        throttled = [a for a in attempts if a[3] == 429]
        self.assertTrue(throttled, "the sink never throttled")
        gaps = []
        for t, first, n, status in throttled:
            later = [a[0] for a in attempts if a[1] == first and a[0] > t]
            self.assertTrue(later, "batch starting at id %s never retried" % first)
            gaps.append(min(later) - t)
        print("retry gaps after 429: min %.2f s, max %.2f s over %d throttled attempts"
              % (min(gaps), max(gaps), len(gaps)))
        self.assertGreaterEqual(min(gaps), 1.95, "retried before Retry-After elapsed")
        self.stop_clean(g)
        sink.down()

    def test_c_poison_batch(self):
        """The sink answers 400 to one batch: it is dropped and counted, the single worker is
        not stuck on it, and the batches after it arrive."""
        sink = fk.Sink().up()
        poison_id = 1001  # first id of the 51st request (20 samples each)
        sink.policy = lambda ids, now: (400, {}) if poison_id in ids else (200, {})
        g = self.start(fk.gateway_config(sink.port, batch=None, queue={"num_consumers": 1}),
                       "gw")
        rss = fk.RssSampler(g.proc.pid)
        agents = fk.Agents(g.port, n=1, per_request=20)
        for _ in range(100):
            self.assertEqual(agents.post_once(), 200, self.logs())
        poison = set(range(poison_id, poison_id + 20))
        want = agents.acked - poison
        got = fk.wait_received(sink, want, 20)
        fk.figures("poison", agents.sent, agents.acked, got, {"dropped": len(poison)},
                   rss.stop())
        self.assertFalse(want - set(got), "samples after the poison batch missing" + self.logs())
        self.assertFalse(poison & set(got), "the poison batch was accepted?")
        log = g.log_text()
        self.assertIn("dropping batch of 20 samples", log)
        self.assertIn("HTTP 400", log)
        self.stop_clean(g)
        sink.down()

    def test_d_full_queue_behind_batch_processor(self):
        """The batch processor acknowledges data before the exporter queue has room: when a
        flush finds the queue full it keeps the batch, offers it again, and refuses new data
        meanwhile. Sink down + a 5-batch queue: nothing acknowledged is lost."""
        sink = fk.Sink()
        g = self.start(fk.gateway_config(sink.port, batch="50ms",
                                         queue={"queue_size": 5, "num_consumers": 1}), "gw")
        agents = fk.Agents(g.port, n=2, per_request=10, interval=0.01).start()
        time.sleep(2.0)
        agents.stop()
        sink.up()
        got = fk.wait_received(sink, agents.acked, 4)
        fk.figures("full_queue_behind_batch", agents.sent, agents.acked, got)
        held = g.log_text().count("holding it and refusing new data")
        print("batch processor held %d refused flushes" % held)
        self.assertNotIn("dropped a batch", g.log_text())
        self.stop_clean(g)
        sink.down()
        self.assertFalse(agents.acked - set(got), "acknowledged samples lost")


if __name__ == "__main__":
    h.main()
