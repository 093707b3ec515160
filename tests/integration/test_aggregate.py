# Processor "aggregate" in the real binary: 60 one-second profiles of one service posted
# over HTTP leave as 6 ten-second profiles whose per-stack sums are the sums made by hand
# from what was posted; the window's timer sends a profile without a shutdown.
import collections
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

CT_PROTO = "application/x-protobuf"
SEC = 10**9
T0 = 1700000000 * SEC  # a multiple of 10 s


def second(rng, sec, service="checkout"):
    """One 1 s CPU profile: 100 observations over 12 stacks, folded; returns (body,
    {(stack names): weight})."""
    b = h.ReqBuilder()
    rp = b.resource([("service.name", service), ("service.instance.id", "i-1")])
    sp = b.scope(rp, name="agent", version="1")
    p = b.profile(sp, sample_type=("cpu", "nanoseconds"), period=10**7,
                  time_unix_nano=T0 + sec * SEC, duration_nano=SEC)
    counts = collections.Counter(rng.randrange(12) for _ in range(100))
    sums = {}
    for k, n in counts.items():
        names = ("leaf_%d" % k, "mid_%d" % (k % 3), "main")
        locs = [b.location(address=0x1000 + 16 * i + k, lines=[(nm, "x.go", 5, 0)])
                for i, nm in enumerate(names)]
        b.sample(p, b.stack(locs), values=[n * 10**7], attrs=[("thread.id", k % 2)])
        sums[names] = n * 10**7
    return b.bytes(), sums


def stacks_by_window(out_dir):
    """{window index: {(stack names): weight}} and the profile headers seen."""
    m = h.pb()
    got = collections.defaultdict(collections.Counter)
    headers = []
    for f in h.output_files(out_dir):
        req = m.req()
        req.ParseFromString(h.read_file(f))
        d = req.dictionary
        for rp in req.resource_profiles:
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    headers.append((p.time_unix_nano, p.duration_nano, len(p.samples)))
                    w = (p.time_unix_nano - T0) // (10 * SEC)
                    for s in p.samples:
                        st = d.stack_table[s.stack_index]
                        names = tuple(
                            d.string_table[d.function_table[
                                d.location_table[li].lines[0].function_index].name_strindex]
                            for li in st.location_indices)
                        got[w][names] += sum(s.values)
    return got, headers


class AggregateTest(h.FgTestCase):
    def gateway(self, window):
        out = self.out_dir()
        cfg = h.config({"otlp": h.otlp_receiver()},
                       {"file": {"path": out, "format": "otlp_proto"}},
                       processors={"aggregate": {"window": window}},
                       pipeline_processors=["aggregate"])
        return self.start(cfg, "agg"), out

    def test_sixty_seconds_make_six_profiles(self):
        fg, out = self.gateway("10s")
        rng = random.Random(5)
        want = collections.defaultdict(collections.Counter)
        in_bytes = 0
        for sec in range(60):
            body, sums = second(rng, sec)
            in_bytes += len(body)
            want[sec // 10].update(sums)
            self.assertOk(h.post(fg.port, body, CT_PROTO), "second %d" % sec)
        self.assertEqual(fg.stop(), 0, self.logs())  # shutdown flushes every window
        got, headers = stacks_by_window(out)
        self.assertEqual(len(headers), 6, headers)
        for t, d, _ in headers:
            self.assertEqual((t - T0) % (10 * SEC), 0)
            self.assertEqual(d, 10 * SEC)
        self.assertEqual(dict(got), dict(want))
        out_bytes = sum(os.path.getsize(f) for f in h.output_files(out))
        self.assertLess(out_bytes, in_bytes / 5, "aggregated output should be far smaller")

    def test_window_timer_sends_without_shutdown(self):
        fg, out = self.gateway("1s")
        now = time.time_ns()
        body, sums = second(random.Random(1), 0)
        # re-time the profile to now: rebuild with the current second
        m = h.pb()
        req = m.req()
        req.ParseFromString(body)
        req.resource_profiles[0].scope_profiles[0].profiles[0].time_unix_nano = now
        self.assertOk(h.post(fg.port, req.SerializeToString(), CT_PROTO), "post")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not h.output_files(out):
            time.sleep(0.05)
        files = h.output_files(out)
        self.assertTrue(files, "no output 10 s after a 1 s window" + self.logs())
        got, headers = stacks_by_window(out)
        self.assertEqual(len(headers), 1)
        self.assertEqual(headers[0][0] % SEC, 0)
        self.assertEqual(sum(sum(c.values()) for c in got.values()), sum(sums.values()))
        self.assertEqual(fg.stop(), 0, self.logs())


if __name__ == "__main__":
    h.main()
