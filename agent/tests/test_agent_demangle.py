# C++ names: agent_cppwork (g++, libstdc++ loaded) under the agent; its CPU and heap samples
# name ns::Worker::spin(int) and ns::Worker::grow(int), demangled with the program's own
# __cxa_demangle, and no frame of the workload keeps a mangled _Z name.
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402


class Demangle(a.AgentTestCase):
    def test_cpp_names(self):
        d, prefix = a.out_prefix("demangle")
        r = a.run([a.bin_path("agent_cppwork")],
                  {"FLAMEGATE_OUTPUT": "otlp-file:" + prefix,
                   "FLAMEGATE_HEAP_SAMPLE_BYTES": "4096"})
        self.assertRan(r, "agent_cppwork under the agent")
        reqs = a.read_requests(d)
        self.assertTrue(reqs, "the agent wrote no profile")
        cpu = a.by_function(a.samples(reqs, "samples"), ["ns::Worker::spin(int)"])
        self.assertGreater(cpu["ns::Worker::spin(int)"], 0, "CPU samples of spin")
        heap = a.by_function(a.samples(reqs, "alloc_space"), ["ns::Worker::grow(int)"])
        self.assertGreater(heap["ns::Worker::grow(int)"], 0, "alloc_space of grow")
        names = {f.func for st in ("samples", "alloc_space")
                 for frames, _, _, _ in a.samples(reqs, st) for f in frames
                 if f.mapping.endswith("agent_cppwork")}
        self.assertFalse([n for n in names if n.startswith("_Z")], names)


if __name__ == "__main__":
    unittest.main(verbosity=2)
