# `flamegate validate`: bad configs exit 1 with FILE:LINE:COL: error: diagnostics that
# point at the offending node; warnings do not fail; --version and --help work.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

GOOD = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 20MiB
processors:
  batch:
    timeout: 200ms
    send_batch_size: 8192
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:4319
    encoding: proto
    compression: gzip
    retry_on_failure:
      initial_interval: 100ms
    sending_queue:
      queue_size: 1000
      num_consumers: 10
  file:
    path: ./out
    format: otlp_json
  debug:
    verbosity: basic
service:
  pipelines:
    profiles:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlphttp, file, debug]
  telemetry:
    logs:
      level: info
"""


def replace_line(text, old, new):
    """GOOD with the line that is exactly `old` replaced by `new` (may be several lines)."""
    lines = text.split("\n")
    idx = [i for i, ln in enumerate(lines) if ln == old]
    assert len(idx) == 1, "fixture line %r not unique" % old
    lines[idx[0]:idx[0] + 1] = new.split("\n")
    return "\n".join(lines)


def line_of(text, needle):
    """1-based number of the only line containing needle."""
    hits = [i + 1 for i, ln in enumerate(text.split("\n")) if needle in ln]
    assert len(hits) == 1, "needle %r not unique in fixture" % needle
    return hits[0]


# (name, config text, text on the line the error must point at: one needle, or a tuple
# of acceptable ones, e.g. the offending list or the pipeline that holds it)
BAD = [
    ("unknown component type",
     replace_line(GOOD, "  debug:", "  nosuchexporter:"), "nosuchexporter:"),
    ("unknown key",
     replace_line(GOOD, "        endpoint: 127.0.0.1:0",
                  "        endpoint: 127.0.0.1:0\n        bogus_option: 1"), "bogus_option"),
    ("wrong type (text for an integer)",
     replace_line(GOOD, "    send_batch_size: 8192", "    send_batch_size: lots"),
     "send_batch_size"),
    ("wrong type (list for a duration)",
     replace_line(GOOD, "    timeout: 200ms", "    timeout: [1, 2]"), "timeout:"),
    ("wrong type (bad size)",
     replace_line(GOOD, "        max_request_body_size: 20MiB",
                  "        max_request_body_size: twenty"), "max_request_body_size"),
    ("out-of-range value",
     replace_line(GOOD, "      num_consumers: 10", "      num_consumers: 5000"),
     "num_consumers"),
    ("out-of-range value (zero batch size)",
     replace_line(GOOD, "    send_batch_size: 8192", "    send_batch_size: 0"),
     "send_batch_size"),
    ("unknown enum value",
     replace_line(GOOD, "    encoding: proto", "    encoding: xml"), "encoding: xml"),
    ("pipeline names an undefined component",
     replace_line(GOOD, "      exporters: [otlphttp, file, debug]",
                  "      exporters: [otlphttp, file, debug, otlphttp/missing]"),
     "otlphttp/missing"),
    ("pipeline names an undefined receiver",
     replace_line(GOOD, "      receivers: [otlp]", "      receivers: [otlp/other]"),
     "otlp/other"),
    ("pipeline without receivers",
     replace_line(GOOD, "      receivers: [otlp]", "      receivers: []"),
     ("receivers: []", "    profiles:")),
    ("pipeline without a receivers key",
     replace_line(GOOD, "      receivers: [otlp]", ""), ("    profiles:",)),
    ("pipeline without exporters",
     replace_line(GOOD, "      exporters: [otlphttp, file, debug]", "      exporters: []"),
     ("exporters: []", "    profiles:")),
    ("YAML syntax error",
     replace_line(GOOD, "    path: ./out", "    path: [./out"), None),
]

DIAG = r"^%s:(\d+):(\d+): (error|warning): .+"


class ValidateTest(h.FgTestCase):
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def validate(self, path):
        return self.cli(["validate", "--config", path])

    def cli(self, args, timeout=30):
        r = h.run_cli(args, timeout=timeout)
        for marker in h.SANITIZER_MARKERS:
            self.assertNotIn(marker, r.stderr, "sanitizer report for %s:\n%s"
                             % (args, r.stderr))
        return r

    def diags(self, path, stderr, kind):
        rx = re.compile(DIAG % re.escape(path), re.M)
        return [(int(m.group(1)), int(m.group(2))) for m in rx.finditer(stderr)
                if m.group(3) == kind]

    def test_good_config(self):
        path = self.write("good.yaml", GOOD)
        r = self.validate(path)
        self.assertEqual(r.returncode, 0, "good config rejected:\n" + r.stderr)
        self.assertNotIn("error:", r.stderr)

    def test_bad_configs(self):
        for i, (name, text, needle) in enumerate(BAD):
            with self.subTest(case=name):
                path = self.write("bad%d.yaml" % i, text)
                r = self.validate(path)
                self.assertEqual(r.returncode, 1, "%s: exit %d, stderr:\n%s"
                                 % (name, r.returncode, r.stderr))
                errs = self.diags(path, r.stderr, "error")
                self.assertTrue(errs, "%s: no '%s:LINE:COL: error:' line in stderr:\n%s"
                                % (name, path, r.stderr))
                for line, col in errs:
                    self.assertGreaterEqual(col, 1, name)
                if needle is not None:
                    needles = needle if isinstance(needle, tuple) else (needle,)
                    want = [line_of(text, n) for n in needles]
                    self.assertTrue(set(want) & set(ln for ln, _ in errs),
                                    "%s: error should point at line %s (%r):\n%s"
                                    % (name, " or ".join(map(str, want)), needles,
                                       r.stderr))

    def test_unused_component_warns(self):
        text = replace_line(GOOD, "      exporters: [otlphttp, file, debug]",
                            "      exporters: [otlphttp, file]")
        path = self.write("unused.yaml", text)
        r = self.validate(path)
        self.assertEqual(r.returncode, 0, "unused component must not fail:\n" + r.stderr)
        warns = self.diags(path, r.stderr, "warning")
        self.assertIn(line_of(text, "  debug:"), [ln for ln, _ in warns],
                      "expected a warning at the unused 'debug' exporter:\n" + r.stderr)

    def test_invalid_config_does_not_start(self):
        path = self.write("bad-run.yaml", BAD[0][1])
        r = self.cli(["--config", path], timeout=15)
        self.assertNotEqual(r.returncode, 0, "flamegate ran with an invalid config")
        self.assertTrue(self.diags(path, r.stderr, "error"), r.stderr)

    def test_missing_config_file(self):
        r = self.validate(os.path.join(self.tmp, "does-not-exist.yaml"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("does-not-exist.yaml", r.stderr)

    def test_version_and_help(self):
        r = self.cli(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"flamegate.*\d+\.\d+")
        r = self.cli(["--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout + r.stderr
        self.assertIn("--config", text)
        self.assertIn("validate", text)


if __name__ == "__main__":
    h.main()
