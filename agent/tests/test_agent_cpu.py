# CPU profile accuracy: a workload that measures its own split (about 70% of its CPU in
# burn_a, 30% in burn_b, per thread, with CLOCK_THREAD_CPUTIME_ID) runs under the preloaded
# agent; the profile must attribute each function within 5 percentage points, at 99 Hz and
# 999 Hz, with one thread and with several.
import os
import platform
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402


def kernel_at_least(major, minor):
    try:
        parts = platform.release().split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (ValueError, IndexError):
        return False


class CpuAccuracy(a.AgentTestCase):
    def run_burn(self, hz, threads, seconds):
        d, prefix = a.out_prefix("cpu%d" % hz)
        r = a.run([a.bin_path("agent_burn"), str(threads), str(seconds)],
                  {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix, "FLAMEGATE_CPU_HZ": str(hz),
                   "FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_UPLOAD_INTERVAL": "1s"})
        self.assertRan(r, "agent_burn under the agent")
        truth = a.last_json_line(r.stdout)
        reqs = a.read_requests(d)
        self.assertTrue(reqs, "the agent wrote no profile")
        return truth, reqs

    def check_split(self, hz, threads, seconds):
        # CPU-clock timer signals arrive only at scheduler ticks, and on a loaded machine
        # fewer of them reach the process, each standing for more periods (a bigger weight):
        # the estimate stays unbiased but one run can miss by chance. A second run decides;
        # two misses in a row fail.
        try:
            self.check_split_once(hz, threads, seconds)
        except AssertionError as e:
            print("first run missed (%s); running once more" % str(e).splitlines()[0],
                  flush=True)
            self.check_split_once(hz, threads, seconds)

    def check_split_once(self, hz, threads, seconds):
        truth, reqs = self.run_burn(hz, threads, seconds)
        want_a = truth["burn_a_ns"] / (truth["burn_a_ns"] + truth["burn_b_ns"])
        smp = a.samples(reqs, "samples")
        got = a.by_function(smp, ["burn_a", "burn_b"])
        n = got["burn_a"] + got["burn_b"]
        # the expected number of samples: measured CPU seconds x rate (timer overruns are
        # folded into the sample weights)
        expect_n = (truth["burn_a_ns"] + truth["burn_b_ns"]) / 1e9 * hz
        self.assertGreater(n, 0.8 * expect_n, "too few samples: %d of ~%d" % (n, expect_n))
        self.assertLess(n, 1.2 * expect_n, "too many samples: %d of ~%d" % (n, expect_n))
        got_a = got["burn_a"] / n
        print("hz=%d threads=%d: burn_a measured %.1f%%, profiled %.1f%% (%d samples)"
              % (hz, threads, 100 * want_a, 100 * got_a, n), flush=True)
        self.assertLess(abs(got_a - want_a), 0.05,
                        "burn_a share %.3f vs measured %.3f" % (got_a, want_a))
        # the cpu/nanoseconds profile carries the same samples times the period
        ns = a.by_function(a.samples(reqs, "cpu"), ["burn_a", "burn_b"])
        period = 10 ** 9 // hz
        self.assertEqual(ns["burn_a"], got["burn_a"] * period)
        # thread attributes: every worker thread has samples of its own
        tids = {}
        for frames, attrs, v, _ in smp:
            self.assertIn("thread.id", attrs)
            self.assertIn("thread.name", attrs)
            if any(f.func in ("burn_a", "burn_b") for f in frames):
                tids[attrs["thread.id"]] = tids.get(attrs["thread.id"], 0) + v
        if kernel_at_least(6, 3):
            # Linux >= 6.3 delivers process CPU-timer signals to the running thread.
            self.assertEqual(len(tids), threads, "samples per thread: %r" % tids)
            for tid, v in tids.items():
                self.assertGreater(v, 0.5 * n / threads / 2,
                                   "thread %d has too few samples: %r" % (tid, tids))
        else:
            print("SKIP per-thread check: kernel %s < 6.3 biases process timer signals"
                  % platform.release())
        # a stack goes through the workload's caller, not just the leaf
        self.assertTrue(any(len(f) >= 2 and f[0].func == "burn_a" and f[1].func == "worker"
                            for f, _, _, _ in smp), "no burn_a <- worker stack")

    # CPU-clock timers fire at the scheduler tick (CONFIG_HZ, typically 250): above that
    # rate a signal stands for several periods, so the number of independent samples is
    # about min(hz, HZ) per CPU-second. ~800 of them keep the binomial noise near 1.6
    # points, a 5-point bound is then about 3 sigma.
    def test_99hz_two_threads(self):
        self.check_split(99, 2, 4.0)

    def test_999hz_one_thread(self):
        self.check_split(999, 1, 4.0)

    def test_999hz_four_threads(self):
        self.check_split(999, 4, 1.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
