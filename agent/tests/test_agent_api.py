# The C API, statically linked: explicit config, thread labels as sample attributes, an
# explicit flush (one file), the final upload at fg_agent_stop (a second file), and a
# second start in the same process (a third file).
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agentlib as a  # noqa: E402


class Api(a.AgentTestCase):
    def test_labels_flush_stop(self):
        d, prefix = a.out_prefix("api")
        r = a.run([a.bin_path("agent_api"), prefix], {}, preload=False)
        self.assertRan(r, "agent_api")
        self.assertEqual(r.stdout.strip(), "ok")
        self.assertIn("already running", r.stderr)
        files = sorted(os.listdir(d))
        self.assertEqual(len(files), 3, files)
        reqs = a.read_requests(d)
        self.assertEqual(a.resource_attrs(reqs[0])["service.name"], "api-test")
        first = a.samples([reqs[0]], "samples")
        second = a.samples([reqs[1]], "samples")
        work1 = [s for s in first if s[0] and s[0][0].func == "labelled_work"]
        work2 = [s for s in second if s[0] and s[0][0].func == "labelled_work"]
        self.assertTrue(work1 and work2, "labelled_work samples in both uploads")
        for _, attrs, _, _ in work1:
            self.assertEqual(attrs.get("phase"), "one")
            self.assertEqual(attrs.get("user"), "alice")
        for _, attrs, _, _ in work2:
            self.assertEqual(attrs.get("phase"), "two")
            self.assertNotIn("user", attrs)
        # the second start's only upload (its own sequence starts at 0 again: the file
        # took the next free number)
        work3 = [s for s in a.samples([reqs[2]], "samples")
                 if s[0] and s[0][0].func == "labelled_work"]
        self.assertTrue(work3, "labelled_work samples after the restart")
        for _, attrs, _, _ in work3:
            self.assertEqual(attrs.get("phase"), "three")


if __name__ == "__main__":
    unittest.main(verbosity=2)
