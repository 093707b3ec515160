# `flamegate components`: every registered component with its options, defaults and
# descriptions; the README's configuration reference is exactly its --markdown output.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

BEGIN = "<!-- BEGIN components (generated) -->"
END = "<!-- END components (generated) -->"


def readme_block():
    with open(os.path.join(h.source_dir(), "README.md"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines.count(BEGIN) != 1 or lines.count(END) != 1:
        raise AssertionError("README.md needs exactly one %r and one %r line" % (BEGIN, END))
    b, e = lines.index(BEGIN), lines.index(END)
    return "\n".join(lines[b + 1:e]) + "\n"


def parse_markdown(md):
    """{(kind, type): {option: (type, default, description)}}"""
    out = {}
    cur = None
    for ln in md.splitlines():
        m = re.match(r"^#### (\w+) `([^`]+)`$", ln)
        if m:
            cur = out.setdefault((m.group(1), m.group(2)), {})
            continue
        m = re.match(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| (.*) \|$", ln)
        if m and cur is not None:
            cur[m.group(1)] = (m.group(2), m.group(3).strip("`"), m.group(4))
    return out


def parse_text(text):
    """{(kind, type): {option: default or None}} from the plain output."""
    out = {}
    cur = None
    for ln in text.splitlines():
        m = re.match(r"^(receiver|processor|exporter|extension|connector) (\S+)$", ln)
        if m:
            cur = out.setdefault((m.group(1), m.group(2)), {})
            continue
        m = re.match(r"^  (\S+)\s+(.*?)(?:\s+default: (.*))?$", ln)
        if m and cur is not None and ln.strip() != "(no options)":
            cur[m.group(1)] = m.group(3)
    return out


def _leaves(node):
    for v in node.values():
        if isinstance(v, dict):
            yield from _leaves(v)
        else:
            yield v


class ComponentsTest(h.FgTestCase):
    def test_readme_matches_markdown_output(self):
        r = h.run_cli(["components", "--markdown"])
        self.assertEqual(r.returncode, 0, r.stderr)
        block = readme_block()
        if block != r.stdout:
            import difflib
            diff = "".join(difflib.unified_diff(block.splitlines(True),
                                                r.stdout.splitlines(True),
                                                "README.md", "flamegate components --markdown",
                                                n=1))
            self.fail("the README reference is out of date; run "
                      "scripts/update-readme-reference.sh\n" + diff[:4000])

    def test_text_and_markdown_agree(self):
        md = h.run_cli(["components", "--markdown"])
        txt = h.run_cli(["components"])
        self.assertEqual((md.returncode, txt.returncode), (0, 0), md.stderr + txt.stderr)
        m, t = parse_markdown(md.stdout), parse_text(txt.stdout)
        self.assertEqual(sorted(m), sorted(t))
        for comp, opts in m.items():
            self.assertEqual(sorted(opts), sorted(t[comp]), comp)
            for name, (_, default, _) in opts.items():
                want = t[comp][name]
                if want is None:
                    self.assertEqual(default, "", (comp, name))
                else:
                    self.assertEqual(default, want, (comp, name))

    def test_known_components_and_defaults(self):
        m = parse_markdown(h.run_cli(["components", "--markdown"]).stdout)
        for comp in [("receiver", "otlp"), ("processor", "batch"), ("exporter", "otlphttp"),
                     ("exporter", "file"), ("exporter", "debug"),
                     ("extension", "health_check"), ("extension", "file_storage")]:
            self.assertIn(comp, m)
        otlp = m[("receiver", "otlp")]
        self.assertEqual(otlp["protocols.http.endpoint"][1], "127.0.0.1:4318")
        self.assertEqual(otlp["protocols.grpc.endpoint"][1], "127.0.0.1:4317")
        hc = m[("extension", "health_check")]
        self.assertEqual(hc["endpoint"][1], "127.0.0.1:13133")
        self.assertEqual(hc["path"][1], "/")
        self.assertTrue(hc["exporter_failure_threshold"][0].startswith("duration"))
        ex = m[("exporter", "otlphttp")]
        self.assertEqual(ex["retry_on_failure.initial_interval"][1], "5s")
        self.assertEqual(ex["sending_queue.queue_size"][1], "1000")
        # every option has a description
        for comp, opts in m.items():
            for name, (_, _, desc) in opts.items():
                self.assertTrue(desc.strip(), "%s %s: no description" % (comp, name))

    def test_defaults_are_what_a_config_gets(self):
        # A config that spells out every scalar default of every component validates: the
        # printed defaults are values the loader accepts.
        m = parse_markdown(h.run_cli(["components", "--markdown"]).stdout)
        self.assertGreater(len(m), 5)
        for (kind, typ), opts in sorted(m.items()):
            body = {}
            for name, (otype, default, _) in opts.items():
                if not default or "[]" in name or otype in ("block",):
                    continue
                node = body
                parts = name.split(".")
                for p in parts[:-1]:
                    node = node.setdefault(p, {})
                node[parts[-1]] = default
            cfg = {"receivers": {"otlp": h.otlp_receiver()},
                   "exporters": {"debug": {}}}
            section = {"receiver": "receivers", "processor": "processors",
                       "exporter": "exporters", "extension": "extensions"}.get(kind)
            if section is None:
                continue
            cfg.setdefault(section, {})["%s/defaults" % typ] = body
            pl = {"receivers": ["otlp"], "exporters": ["debug"]}
            if kind == "receiver":
                pl["receivers"].append("%s/defaults" % typ)
            elif kind == "processor":
                pl["processors"] = ["%s/defaults" % typ]
            elif kind == "exporter":
                pl["exporters"].append("%s/defaults" % typ)
            cfg["service"] = {"pipelines": {"profiles": pl}}
            if kind == "extension":
                cfg["service"]["extensions"] = ["%s/defaults" % typ]
            path = os.path.join(self.tmp, "%s-%s.yaml" % (kind, typ))
            with open(path, "w") as f:
                f.write(h.to_yaml(cfg))
            r = h.run_cli(["validate", "--config", path])
            # a component may still want options that have no default (an endpoint, an
            # action); what must not happen is a printed default the loader rejects
            values = set(str(v) for v in _leaves(body))
            errors = [ln for ln in r.stderr.splitlines() if ": error:" in ln and
                      any('"%s"' % v in ln for v in values)]
            self.assertEqual(errors, [], "%s %s defaults:\n%s" % (kind, typ, r.stderr))

    def test_bad_argument(self):
        r = h.run_cli(["components", "--yaml"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: flamegate components", r.stderr)


if __name__ == "__main__":
    h.main()
