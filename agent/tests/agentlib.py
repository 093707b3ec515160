# Helpers for the agent tests: where the built pieces are, running a workload under the
# preloaded agent, and reading what it wrote (OTLP protobuf via the integration harness).
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("FG_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import fgharness as h  # noqa: E402


def agent_so():
    p = os.environ.get("FG_AGENT_SO") or os.path.join(SRC, "build", "agent",
                                                      "libflamegate-agent.so")
    if not os.path.isfile(p):
        raise h.HarnessError("agent library not found: %s (set FG_AGENT_SO)" % p)
    return p


def bin_path(name):
    d = os.environ.get("FG_AGENT_BIN") or os.path.join(SRC, "build", "agent")
    p = os.path.join(d, name)
    if not os.path.isfile(p):
        raise h.HarnessError("test program not found: %s" % p)
    return p


def plugin_path():
    return os.environ.get("FG_AGENT_PLUGIN") or bin_path("libagent_plugin.so")


def run(args, env_extra, preload=True, timeout=120, preexec=None):
    """Runs a workload (optionally under the agent; preexec runs in the child before exec,
    e.g. to lower a limit); returns CompletedProcess (text)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLAMEGATE_") and k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = agent_so()
    env.update(env_extra)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, preexec_fn=preexec)


def out_prefix(case):
    d = tempfile.mkdtemp(prefix="fg-agent-%s-" % case)
    return d, os.path.join(d, "prof")


def read_requests(d):
    """Every OTLP file the agent wrote into d, parsed."""
    files = sorted(glob.glob(os.path.join(d, "*.pb")))
    return [h.parse_request(h.read_file(f), "proto") for f in files]


class Frame:
    __slots__ = ("func", "mapping", "address")

    def __init__(self, func, mapping, address):
        self.func, self.mapping, self.address = func, mapping, address


def samples(reqs, sample_type):
    """(frames leaf first, sample attributes dict, value, profile attrs dict) for every
    sample of every profile whose sample type is sample_type ("samples", "inuse_space" ...)."""
    out = []
    for req in reqs:
        d = req.dictionary
        st = d.string_table

        def attr(i):
            a = d.attribute_table[i]
            v = a.value
            kind = v.WhichOneof("value")
            return st[a.key_strindex], getattr(v, kind) if kind else None

        def frame(li):
            loc = d.location_table[li]
            fn = ""
            if loc.lines:
                fn = st[d.function_table[loc.lines[0].function_index].name_strindex]
            mp = st[d.mapping_table[loc.mapping_index].filename_strindex]
            return Frame(fn, mp, loc.address)
        for rp in req.resource_profiles:
            for sp in rp.scope_profiles:
                for p in sp.profiles:
                    if st[p.sample_type.type_strindex] != sample_type:
                        continue
                    pattrs = dict(attr(i) for i in p.attribute_indices)
                    for s in p.samples:
                        frames = [frame(li) for li in d.stack_table[s.stack_index].location_indices]
                        out.append((frames, dict(attr(i) for i in s.attribute_indices),
                                    sum(s.values), pattrs))
    return out


def resource_attrs(req):
    rp = req.resource_profiles[0]
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
            for kv in rp.resource.attributes}


def by_function(smp, names):
    """Sum of values of the samples whose stack holds each name (first match, leaf first)."""
    tot = {n: 0 for n in names}
    for frames, _, v, _ in smp:
        for f in frames:
            if f.func in tot:
                tot[f.func] += v
                break
    return tot


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no JSON line in output: %r" % text[-500:])


class AgentTestCase(unittest.TestCase):
    def assertRan(self, r, what):
        self.assertEqual(r.returncode, 0, "%s failed (%d)\nstdout:%s\nstderr:%s"
                         % (what, r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
