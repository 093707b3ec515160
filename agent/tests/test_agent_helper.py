# The agent's helper process: the program keeps its one thread and has no child; the
# helper uploads what it has when the program is killed, leaves without uploading when the
# program execs another binary (not when the program's file is replaced on disk), and its
# own death changes nothing for the program.
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402


def helpers_tagged(tag):
    """Pids of agent helper processes whose environment holds FG_TEST_TAG=tag (the helper
    is a fork of the program: it keeps the program's environment)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "flamegate-agent":
                    continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                if ("FG_TEST_TAG=" + tag).encode() not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        found.append(int(pid))
    return found


def wait_until(pred, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class Helper(a.AgentTestCase):
    def start(self, case, argv, extra=None, wait_for_helper=True):
        """Starts argv under the agent (OTLP files into a new folder, FG_TEST_TAG set);
        returns (folder, tag, process), once the helper runs unless told not to wait."""
        d, prefix = a.out_prefix(case)
        tag = uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FLAMEGATE_") and k != "LD_PRELOAD"}
        env.update({"LD_PRELOAD": a.agent_so(), "FLAMEGATE_OUTPUT": "otlp-file:" + prefix,
                    "FG_TEST_TAG": tag})
        env.update(extra or {})
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        if wait_for_helper:
            self.assertTrue(wait_until(lambda: helpers_tagged(tag), 5), "no helper process")
        return d, tag, p

    def finish(self, p):
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        return out

    def assert_burn_uploaded(self, d, at_least, why):
        reqs = [q for q in a.read_requests(d)
                if a.resource_attrs(q)["process.executable.name"] == "agent_helperwork"]
        self.assertTrue(reqs, why)
        cpu = a.by_function(a.samples(reqs, "samples"), ["helper_burn"])
        self.assertGreater(cpu["helper_burn"], at_least, "CPU samples missing: %r" % cpu)
        return reqs

    def test_program_keeps_one_thread_and_no_child(self):
        d, prefix = a.out_prefix("helper-alone")
        r = a.run([a.bin_path("agent_helperwork"), "0.5"],
                  {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix, "FLAMEGATE_CPU_HZ": "999"})
        self.assertRan(r, "agent_helperwork under the agent")
        seen = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual(seen["threads"], 1, "the agent started a thread in the program")
        self.assertEqual(seen["single_threaded"], 1, "glibc no longer runs single-threaded")
        self.assertEqual((seen["waitpid"], seen["echild"]), (-1, 1),
                         "the program sees a child process of the agent's")
        reqs = self.assert_burn_uploaded(d, 100, "no upload")
        heap = a.by_function(a.samples(reqs, "alloc_objects"), ["helper_alloc"])
        self.assertGreater(heap["helper_alloc"], 0, "heap samples missing: %r" % heap)

    def test_killed_program_is_still_uploaded(self):
        d, tag, p = self.start("helper-kill", [a.bin_path("agent_helperwork"), "60"],
                               {"FLAMEGATE_CPU_HZ": "999"})
        try:
            time.sleep(1.0)
        finally:
            p.kill()  # SIGKILL: no exit handler runs in the program
            p.communicate(timeout=30)
        self.assertTrue(wait_until(lambda: not helpers_tagged(tag), 10),
                        "the helper outlived its program")
        self.assert_burn_uploaded(d, 300, "the helper uploaded nothing for the killed program")

    def test_exec_ends_the_old_images_agent(self):
        # the shell runs under the agent too, then becomes agent_helperwork
        d, tag, p = self.start("helper-exec", ["/bin/sh", "-c", 'exec "$@"', "sh",
                                               a.bin_path("agent_helperwork"), "1.0"],
                               wait_for_helper=False)
        self.finish(p)
        self.assertTrue(wait_until(lambda: not helpers_tagged(tag), 10),
                        "a helper outlived the program")
        names = {a.resource_attrs(q)["process.executable.name"] for q in a.read_requests(d)}
        self.assertEqual(names, {"agent_helperwork"},
                         "the exec'd-away shell's agent uploaded (or the program's did not)")

    def test_binary_replaced_on_disk_is_still_profiled(self):
        # an upgrade replaces a running program's file: /proc/PID/exe then reads
        # "PATH (deleted)", but the process has not exec'd
        exe = os.path.join(tempfile.mkdtemp(prefix="fg-agent-upgrade-"), "agent_helperwork")
        shutil.copy(a.bin_path("agent_helperwork"), exe)
        d, tag, p = self.start("helper-upgrade", [exe, "1.5"], {"FLAMEGATE_CPU_HZ": "999"})
        shutil.copy(a.bin_path("agent_helperwork"), exe + ".new")
        os.rename(exe + ".new", exe)
        self.finish(p)
        self.assert_burn_uploaded(d, 500, "the helper took the replaced file for an exec")

    def test_dead_helper_changes_nothing_for_the_program(self):
        d, tag, p = self.start("helper-dead", [a.bin_path("agent_helperwork"), "2"],
                               {"FLAMEGATE_CPU_HZ": "999"})
        for pid in helpers_tagged(tag):
            os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        out = self.finish(p)
        self.assertEqual(json.loads(out.splitlines()[-1])["threads"], 1)
        # the program's exit does not wait for a helper that is gone
        self.assertLess(time.monotonic() - t0, 4.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
