# FLAMEGATE_FOLLOW_FORK: with 1, every forked worker of agent_forkwork restarts the agent and
# uploads its own profiles (its pid, its child_burn CPU, its own allocation site, none of the
# parent's samples or sites); with the default only the parent uploads.
import collections
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402

WORKERS = 3


def run_forkwork(test, case, extra):
    d, prefix = a.out_prefix(case)
    env = {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix, "FLAMEGATE_UPLOAD_INTERVAL": "200ms",
           "FLAMEGATE_HEAP_SAMPLE_BYTES": "65536"}
    env.update(extra)
    r = a.run([a.bin_path("agent_forkwork"), "1"], env, timeout=300)
    test.assertRan(r, "agent_forkwork (%s)" % case)
    test.assertEqual(r.stdout.split()[-1], "ok")
    by_pid = collections.defaultdict(list)
    for req in a.read_requests(d):
        by_pid[a.resource_attrs(req)["process.pid"]].append(req)
    return by_pid


class FollowFork(a.AgentTestCase):
    def test_children_restart_and_upload(self):
        self.children_restart_and_upload({})

    def test_children_restart_and_upload_timer(self):
        # the restarted child arms its own process CPU-time timer
        self.children_restart_and_upload({"FLAMEGATE_CPU_SAMPLER": "timer"})

    def children_restart_and_upload(self, extra_env):
        env = {"FLAMEGATE_FOLLOW_FORK": "1"}
        env.update(extra_env)
        by_pid = run_forkwork(self, "follow", env)
        self.assertEqual(len(by_pid), WORKERS + 1, "uploads from pids %r" % sorted(by_pid))
        sites = ["child_alloc_%d" % k for k in range(WORKERS)]
        seen_sites = []
        parent = None
        for pid, reqs in sorted(by_pid.items()):
            cpu = a.by_function(a.samples(reqs, "samples"), ["child_burn", "parent_burn"])
            heap = a.by_function(a.samples(reqs, "alloc_space"), sites + ["parent_alloc"])
            print("pid %d: %d uploads, cpu %r, heap %r" % (pid, len(reqs), cpu, heap),
                  flush=True)
            if cpu["child_burn"] == 0:
                self.assertIsNone(parent, "two processes without child_burn")
                parent = pid
                self.assertGreater(cpu["parent_burn"], 0)
                self.assertGreater(heap["parent_alloc"], 0)
                continue
            # the parent's undrained samples and its sites stay with the parent
            self.assertLess(cpu["parent_burn"], cpu["child_burn"] / 10, "pid %d" % pid)
            self.assertEqual(heap["parent_alloc"], 0, "pid %d reports the parent's site" % pid)
            mine = [s for s in sites if heap[s] > 0]
            self.assertEqual(len(mine), 1, "pid %d: sites %r" % (pid, heap))
            seen_sites += mine
            inuse = a.by_function(a.samples(reqs, "inuse_space"), mine)
            self.assertGreater(inuse[mine[0]], 0, "pid %d: live blocks not in use" % pid)
        self.assertIsNotNone(parent)
        self.assertEqual(sorted(seen_sites), sites, "each worker its own site")

    def test_default_only_parent_uploads(self):
        by_pid = run_forkwork(self, "nofollow", {})
        self.assertEqual(len(by_pid), 1, "uploads from pids %r" % sorted(by_pid))
        reqs = next(iter(by_pid.values()))
        cpu = a.by_function(a.samples(reqs, "samples"), ["child_burn", "parent_burn"])
        self.assertEqual(cpu["child_burn"], 0)
        self.assertGreater(cpu["parent_burn"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
