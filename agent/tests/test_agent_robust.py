# Robustness: fork, 1000 threads, dlopen/dlclose and frees of memory handed out by the
# bootstrap arena all run to completion under the agent; a gateway that refuses or never
# answers changes nothing for the program; bad settings leave the program unprofiled with a
# clear message; losses are reported in a later successful upload.
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402
h = a.h


class Robustness(a.AgentTestCase):
    def test_fork_threads_dlopen_bootstrap(self):
        self.fork_threads_dlopen_bootstrap({}, 1)

    def test_fork_threads_dlopen_bootstrap_follow_fork(self):
        # the 3 children restart the agent and upload too
        self.fork_threads_dlopen_bootstrap({"FLAMEGATE_FOLLOW_FORK": "1"}, 4)

    def fork_threads_dlopen_bootstrap(self, extra_env, want_pids):
        d, prefix = a.out_prefix("robust")
        env = {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix, "FLAMEGATE_CPU_HZ": "999",
               "FLAMEGATE_HEAP_SAMPLE_BYTES": "4096", "FLAMEGATE_UPLOAD_INTERVAL": "100ms",
               "FLAMEGATE_DEBUG_BOOTSTRAP": "64"}
        env.update(extra_env)
        r = a.run([a.bin_path("agent_robust"), a.plugin_path()], env, timeout=120)
        self.assertRan(r, "agent_robust under the agent")
        lines = r.stdout.split()
        self.assertEqual(lines[-1], "ok")
        # the perf sampler opens one fd per thread: all 1000 are closed again (a file
        # being written by the agent at that moment may account for one more)
        before, after = int(lines[1]), int(lines[2])
        self.assertLessEqual(after, before + 1, "fds leaked across 1000 threads")
        self.assertLess(after, 32)
        reqs = a.read_requests(d)
        self.assertTrue(reqs)
        pids = {a.resource_attrs(q)["process.pid"] for q in reqs}
        self.assertEqual(len(pids), want_pids, "pids that uploaded: %r" % pids)
        parent = max(pids, key=lambda p: sum(a.resource_attrs(q)["process.pid"] == p
                                             for q in reqs))
        reqs = [q for q in reqs if a.resource_attrs(q)["process.pid"] == parent]
        smp = a.samples(reqs, "samples")
        funcs = {f[0].func for f, _, _, _ in smp if f}
        # code of the dlclose'd module is still named
        self.assertIn("plugin_burn", funcs)
        self.assertIn("spin", funcs)

    def test_same_output_without_agent(self):
        plain = a.run([a.bin_path("agent_robust"), a.plugin_path()], {}, preload=False)
        self.assertRan(plain, "agent_robust without the agent")
        self.assertEqual(plain.stdout.split()[-1], "ok")

    def timed(self, env):
        """Runs agent_burn; returns (stdout, stderr, wall seconds, exit lag): the lag is the
        time from its last output line (flushed before exit) to the end of the process, i.e.
        what the agent's exit handler added, whatever the load on the machine."""
        full = {k: v for k, v in os.environ.items()
                if not k.startswith("FLAMEGATE_") and k != "LD_PRELOAD"}
        full["LD_PRELOAD"] = a.agent_so()
        full.update(env)
        t0 = time.monotonic()
        p = subprocess.Popen([a.bin_path("agent_burn"), "1", "0.5"], env=full,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        err = []
        reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        reader.start()
        out = p.stdout.readline()
        t_line = time.monotonic()
        out += p.stdout.read()
        p.wait(timeout=120)
        t_end = time.monotonic()
        reader.join(10)
        self.assertEqual(p.returncode, 0, "".join(err))
        # the helper process speaks for the program: its messages carry the program's pid
        for line in "".join(err).splitlines():
            if line.startswith("flamegate-agent["):
                self.assertTrue(line.startswith("flamegate-agent[%d]: " % p.pid), line)
        return out, "".join(err), t_end - t0, t_end - t_line

    def test_gateway_refusing(self):
        port = h.free_port()  # nobody listens there
        _, _, t_plain, _ = self.timed({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_OUTPUT":
                                       "pprof-file:" + a.out_prefix("plain")[1]})
        out, err, t, lag = self.timed({"FLAMEGATE_ENDPOINT": "http://127.0.0.1:%d" % port,
                                       "FLAMEGATE_UPLOAD_INTERVAL": "100ms",
                                       "FLAMEGATE_CPU_HZ": "999"})
        self.assertIn("burn_a_ns", out)
        self.assertIn("upload failed", err)
        # the final upload gets at most the exit budget (2 s); a blocked program would take
        # far longer than a run that writes files (a generous bound: the machine may be busy)
        self.assertLess(lag, 3.5, "exit delayed by %.1fs" % lag)
        self.assertLess(t, 2 * t_plain + 5.0, "run took %.1fs vs %.1fs" % (t, t_plain))

    def test_gateway_never_answers(self):
        # A listener that never accepts: connect succeeds (backlog), the reply never comes.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            port = s.getsockname()[1]
            out, err, t, lag = self.timed({"FLAMEGATE_ENDPOINT": "http://127.0.0.1:%d" % port,
                                           "FLAMEGATE_UPLOAD_INTERVAL": "100ms"})
        self.assertIn("burn_a_ns", out)
        # the final upload gets at most the exit budget (2 s)
        self.assertLess(lag, 3.5, "exit delayed by %.1fs" % lag)

    def test_bad_settings_run_unprofiled(self):
        cases = [("FLAMEGATE_CPU_HZ", "fast"), ("FLAMEGATE_CPU_HZ", "5000"),
                 ("FLAMEGATE_HEAP_SAMPLE_BYTES", "-1"), ("FLAMEGATE_UPLOAD_INTERVAL", "soon"),
                 ("FLAMEGATE_PROFILES", "gpu"), ("FLAMEGATE_ENDPOINT", "https://x:4318"),
                 ("FLAMEGATE_HEADERS", "broken"), ("FLAMEGATE_OUTPUT", "carrier-pigeon"),
                 ("FLAMEGATE_CPU_SAMPLER", "hrtimer"), ("FLAMEGATE_FOLLOW_FORK", "yes")]
        for var, val in cases:
            d, prefix = a.out_prefix("bad")
            env = {var: val}
            if var != "FLAMEGATE_OUTPUT":
                env["FLAMEGATE_OUTPUT"] = "otlp-file:" + prefix
            r = a.run([a.bin_path("agent_burn"), "1", "0.1"], env)
            self.assertRan(r, "agent_burn with %s=%s" % (var, val))
            self.assertIn("burn_a_ns", r.stdout)
            self.assertIn(var, r.stderr, "the message names the variable")
            self.assertIn("without profiling", r.stderr)
            self.assertEqual(os.listdir(d), [], "%s=%s: nothing may be written" % (var, val))

    def test_drops_reported_after_recovery(self):
        port = h.free_port()
        out = h.tempfile.mkdtemp(prefix="fg-agent-recover-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLAMEGATE_")}
        env.update({"LD_PRELOAD": a.agent_so(),
                    "FLAMEGATE_ENDPOINT": "http://127.0.0.1:%d" % port,
                    "FLAMEGATE_UPLOAD_INTERVAL": "100ms", "FLAMEGATE_PROFILES": "cpu"})
        proc = h.subprocess.Popen([a.bin_path("agent_burn"), "1", "3.5"], env=env,
                                  stdout=h.subprocess.PIPE, stderr=h.subprocess.PIPE,
                                  text=True)
        try:
            time.sleep(2.0)  # ~20 uploads fail; the queue holds 8, the rest are dropped
            cfg = h.sink_config(out, endpoint="127.0.0.1:%d" % port)
            with h.Flamegate(cfg, "sink") as fg:
                stdout, stderr = proc.communicate(timeout=120)
                self.assertEqual(proc.returncode, 0, stderr)
                files = []
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    files = h.output_files(out)
                    reqs = [h.parse_request(h.read_file(f)) for f in files]
                    drops = [s[3].get("flamegate.agent.dropped_uploads", 0)
                             for s in a.samples(reqs, "samples")]
                    if drops and max(drops) > 0:
                        break
                    time.sleep(0.3)
                fg.stop()
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertTrue(files, "nothing arrived after the gateway came up")
        self.assertGreater(max(drops), 0, "dropped uploads were not reported")
        print("reported dropped_uploads: %d" % max(drops), flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
