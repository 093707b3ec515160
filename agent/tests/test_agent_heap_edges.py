# Heap profiler edges: with a 1-byte mean every allocation is sampled, so every block of
# agent_heapedge is served from the agent's own range. Its own checks (realloc, memalign &
# co., usable sizes, calloc zeroing of reused slots, 0 and huge sizes, ENOMEM, fork, blocks
# freed by another thread) must pass, and the profile must account for realloc and
# cross-thread frees exactly. Under a small RLIMIT_AS the range runs out: allocations still
# succeed (served by the next allocator) and the lost samples are reported.
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402

DROPPED = "flamegate.agent.dropped_samples"


class HeapEdges(a.AgentTestCase):
    def run_edge(self, mode, wrap=None):
        d, prefix = a.out_prefix("heapedge")
        argv = [a.bin_path("agent_heapedge"), mode]
        if wrap:
            argv = ["/bin/sh", "-c", wrap + ' && exec "$@"', "sh"] + argv
        r = a.run(argv, {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix,
                         "FLAMEGATE_PROFILES": "heap", "FLAMEGATE_HEAP_SAMPLE_BYTES": "1"})
        self.assertRan(r, "agent_heapedge %s under the agent" % mode)
        self.assertEqual(r.stdout.splitlines()[0], "ok")
        # the shell's own agent may upload too (when the program ends within a tick of the
        # exec): only the program's uploads count
        reqs = [q for q in a.read_requests(d)
                if a.resource_attrs(q)["process.executable.name"] == "agent_heapedge"]
        self.assertTrue(reqs, "the agent wrote no profile")
        return r, reqs[-1]  # the final upload holds the state at exit

    def test_checks_hold_without_agent(self):
        for mode in ("edge", "exhaust"):
            r = a.run([a.bin_path("agent_heapedge"), mode], {}, preload=False)
            self.assertRan(r, "agent_heapedge %s without the agent" % mode)

    def test_edges_sampled_blocks(self):
        r, req = self.run_edge("edge")
        truth = a.last_json_line(r.stdout)
        sites = ["cross_alloc", "kept_alloc", "realloc_grow"]
        got = {kind: a.by_function(a.samples([req], kind), sites)
               for kind in ("alloc_objects", "inuse_objects", "alloc_space", "inuse_space")}
        print(got, flush=True)
        # weights are 1/(1 - e^-size) = 1 for these sizes: the numbers are exact counts
        self.assertEqual(got["alloc_objects"]["cross_alloc"], truth["cross_alloc_objects"])
        self.assertEqual(got["inuse_objects"]["cross_alloc"], 0, "frees by another thread")
        self.assertEqual(got["inuse_objects"]["kept_alloc"], truth["kept_objects"])
        self.assertEqual(got["inuse_space"]["kept_alloc"], truth["kept_space"])
        # realloc is a free and an allocation: only the last block is in use
        self.assertEqual(got["inuse_objects"]["realloc_grow"], 1)
        self.assertEqual(got["inuse_space"]["realloc_grow"], truth["grown_space"])
        self.assertEqual(got["alloc_space"]["realloc_grow"], 2 * truth["grown_space"] - 16)
        drops = {s[3].get(DROPPED, 0) for s in a.samples([req], "alloc_objects")}
        self.assertEqual(drops, {0}, "every sample fits in the agent's range")

    def test_range_exhausted(self):
        # 768 MiB of address space: the range gets at most 256 MiB, the 48 live 8 MiB blocks
        # do not fit
        r, req = self.run_edge("exhaust", "ulimit -v 786432")
        drops = {s[3].get(DROPPED, 0) for s in a.samples([req], "alloc_objects")}
        self.assertTrue(drops and min(drops) > 0, "lost samples not reported: %r" % drops)


if __name__ == "__main__":
    unittest.main(verbosity=2)
