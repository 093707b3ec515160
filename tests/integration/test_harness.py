# Self-checks of the integration harness's independent OTLP reader: the canonical form
# must ignore dictionary layout and request grouping, and must notice any change of data.
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

EBPF_PB = "pprof/pyroscope_otel_ebpf_v1.10.otlp.pb"
EBPF_JSON = "pprof/pyroscope_otel_ebpf_v1.10.otlp.json"


class CanonicalTest(unittest.TestCase):
    def test_corpus_proto_equals_json(self):
        a = h.canonical(h.read_file(h.corpus_file(EBPF_PB)))
        b = h.canonical(h.read_file(h.corpus_file(EBPF_JSON)))
        self.assertEqual(h.sample_count(a), 317)
        self.assertEqual(a, b, h.describe_diff(a, b))
        self.assertEqual(h.dictionary_violations(h.read_file(h.corpus_file(EBPF_PB))), [])

    def test_corpus_relayout_invariance(self):
        req = h.parse_request(h.read_file(h.corpus_file(EBPF_PB)))
        want = h.canonical(req)
        sh = h.shuffle_dictionary(req, seed=7)
        self.assertEqual(h.dictionary_violations(sh), [])
        self.assertEqual(h.canonical(sh), want)
        self.assertEqual(h.canonical_sum(h.split_request(sh)), want)

    def test_synthetic_relayout_and_json(self):
        for seed in range(6):
            req = h.synthetic_request(seed)
            self.assertEqual(h.dictionary_violations(req), [])
            want = h.canonical(req)
            self.assertGreater(h.sample_count(want), 0)
            self.assertEqual(h.canonical(h.to_json(req)), want)
            self.assertEqual(h.canonical(req.SerializeToString()), want)
            self.assertEqual(h.canonical(h.shuffle_dictionary(req, seed)), want)
            self.assertEqual(h.canonical_sum(h.split_request(req)), want)

    def test_synthetic_requests_are_distinct(self):
        seen = h.canonical_sum(h.synthetic_request(s) for s in range(20))
        self.assertTrue(all(n == 1 for n in seen.values()),
                        "synthetic requests share samples")

    def test_changes_are_noticed(self):
        base = h.synthetic_request(3)
        want = h.canonical(base)
        mutations = [
            lambda r: r.dictionary.string_table.__setitem__(1, "renamed"),
            lambda r: setattr(r.dictionary.location_table[1], "address", 1),
            lambda r: setattr(r.dictionary.function_table[1], "start_line", 999),
            lambda r: setattr(r.dictionary.link_table[1], "span_id", b"\x99" * 8),
            lambda r: r.dictionary.stack_table[1].location_indices.append(1),
            lambda r: r.resource_profiles[0].scope_profiles[0].profiles[0]
            .samples[0].timestamps_unix_nano.append(5),
            lambda r: setattr(r.resource_profiles[0].scope_profiles[0].profiles[0],
                              "period", 1),
            lambda r: setattr(r.resource_profiles[0].scope_profiles[0].scope, "version", "x"),
            lambda r: setattr(r.resource_profiles[0], "schema_url", ""),
            lambda r: r.dictionary.attribute_table[1].value.__setattr__("int_value", 77),
        ]
        for i, mut in enumerate(mutations):
            r = h.pb().req()
            r.CopyFrom(base)
            mut(r)
            self.assertNotEqual(h.canonical(r), want, "mutation %d not noticed" % i)

    def test_rules_catch_bad_dictionaries(self):
        r = h.synthetic_request(1)
        r.dictionary.stack_table[1].location_indices.append(10**6)
        self.assertTrue(h.dictionary_violations(r))
        with self.assertRaises(h.CanonError):
            h.canonical(r)
        r = h.synthetic_request(1)
        r.dictionary.string_table[0] = "x"
        self.assertTrue(h.dictionary_violations(r))
        r = h.synthetic_request(1)
        del r.dictionary.link_table[:]
        self.assertTrue(h.dictionary_violations(r))

    def test_yaml_writer(self):
        y = h.to_yaml(h.forward_config(1234))
        self.assertIn("endpoint: http://127.0.0.1:1234\n", y)
        self.assertIn("      receivers: [otlp]\n", y)


if __name__ == "__main__":
    h.main()
