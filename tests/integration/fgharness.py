# Harness for the integration tests: runs the real flamegate binary on loopback, talks
# OTLP/HTTP to it, and reads what it wrote with an independent OTLP reader (protoc-generated).
"""Integration-test harness for flamegate.

Pieces:
  * locating the binary, the source tree and the real-profile corpus;
  * Flamegate: start/stop one flamegate process with a YAML config, find its port;
  * post()/get(): small HTTP/1.1 client (http.client, gzip) that survives early replies;
  * pb(): protoc-generated Python classes for pipeline/proto (built once, cached);
  * canonical(): a request -> multiset of per-sample records with every index resolved,
    so two requests carry the same data iff their canonical multisets are equal;
  * dictionary_violations(): the OTLP profiles dictionary rules (WIRE.md 1.2);
  * collect_dir(): wait for a file exporter directory to hold the expected samples;
  * ReqBuilder: builds synthetic requests with an interning dictionary.
Only the standard library, python3-protobuf and protoc (Debian packages) are used.
"""

import base64
import collections
import gzip
import hashlib
import http.client
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PATH_PROFILES = "/v1development/profiles"
PORT_RE = re.compile(r"listening on [^ ]*:(\d+) \(OTLP/HTTP\)")


class HarnessError(Exception):
    """A problem of the environment or of flamegate that must fail the test loudly."""


# ---------------------------------------------------------------------------------------
# Locations

def source_dir():
    d = os.environ.get("FG_SOURCE_DIR")
    if d:
        return os.path.abspath(d)
    return os.path.abspath(os.path.join(HERE, "..", ".."))


def build_dir():
    d = os.environ.get("FG_BUILD_DIR")
    return os.path.abspath(d) if d else None


def binary():
    """Path of the flamegate binary; raises (never skips) when it is missing."""
    b = os.environ.get("FG_BINARY")
    if not b:
        b = os.path.join(source_dir(), "build", "flamegate")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise HarnessError("flamegate binary not found or not executable: %s "
                           "(set FG_BINARY or build into FG_SOURCE_DIR/build)" % b)
    return os.path.abspath(b)  # processes run with their temp dir as cwd


def corpus_dir():
    """The real-profile corpus folder, or None when absent ($FG_CORPUS, default
    ../shared/testdata next to the source tree)."""
    d = os.environ.get("FG_CORPUS")
    if not d:
        d = os.path.join(source_dir(), "..", "shared", "testdata")
    d = os.path.abspath(d)
    return d if os.path.isdir(d) else None


def corpus_file(rel):
    """Path of a corpus file. Skips the calling test only when the corpus folder is
    absent; a missing file inside a present corpus is an error."""
    d = corpus_dir()
    if d is None:
        msg = "SKIP: corpus folder absent (FG_CORPUS=%r)" % os.environ.get("FG_CORPUS")
        print(msg, flush=True)
        raise unittest.SkipTest(msg)
    p = os.path.join(d, rel)
    if not os.path.isfile(p):
        raise HarnessError("corpus present but file missing: %s" % p)
    return p


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------
# Generated protobuf classes

_PB = None


class _Pb:
    pass


def pb():
    """Generated OTLP classes: .req (ExportProfilesServiceRequest), .resp, .status,
    .prof (profiles_pb2), .common, .resource, .json_format."""
    global _PB
    if _PB is not None:
        return _PB
    if shutil.which("protoc") is None:
        raise HarnessError("protoc not found (Debian package protobuf-compiler)")
    try:
        from google.protobuf import json_format  # noqa: F401
    except ImportError as e:
        raise HarnessError("python protobuf missing (run with /usr/bin/python3 and "
                           "Debian python3-protobuf): %s" % e)
    proto_root = os.path.join(source_dir(), "pipeline", "proto")
    protos = []
    for dirpath, _, files in os.walk(proto_root):
        for f in files:
            if f.endswith(".proto"):
                protos.append(os.path.relpath(os.path.join(dirpath, f), proto_root))
    protos.sort()
    # google/protobuf/* are well-known types that python3-protobuf already ships;
    # generating them again would shadow the installed runtime modules.
    gen = [p for p in protos if not p.startswith("google/protobuf/")]
    if not gen:
        raise HarnessError("no .proto files under %s" % proto_root)
    h = hashlib.sha256()
    for p in protos:
        h.update(p.encode())
        h.update(read_file(os.path.join(proto_root, p)))
    base = build_dir() or tempfile.gettempdir()
    out = os.path.join(base, "fg-integ-pycache", h.hexdigest()[:16])
    if not os.path.isfile(os.path.join(out, ".done")):
        tmp = out + ".tmp%d" % os.getpid()
        os.makedirs(tmp, exist_ok=True)
        r = subprocess.run(["protoc", "--python_out=" + tmp, "-I", proto_root] + gen,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError("protoc failed: %s" % r.stderr)
        with open(os.path.join(tmp, ".done"), "w") as f:
            f.write("ok\n")
        try:
            os.rename(tmp, out)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    if out not in sys.path:
        sys.path.insert(0, out)
    m = _Pb()
    svc = importlib.import_module(
        "opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2")
    m.svc = svc
    m.req = svc.ExportProfilesServiceRequest
    m.resp = svc.ExportProfilesServiceResponse
    m.prof = importlib.import_module("opentelemetry.proto.profiles.v1development.profiles_pb2")
    m.common = importlib.import_module("opentelemetry.proto.common.v1.common_pb2")
    m.resource = importlib.import_module("opentelemetry.proto.resource.v1.resource_pb2")
    m.status = importlib.import_module("google.rpc.status_pb2").Status
    from google.protobuf import json_format
    m.json_format = json_format
    _PB = m
    return m


# ---------------------------------------------------------------------------------------
# Parsing requests

_HEX_KEYS = ("traceId", "spanId", "profileId", "trace_id", "span_id", "profile_id")
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})*$")


def _hex_to_b64(node):
    # OTLP/JSON writes trace/span/profile ids as hex (WIRE.md 3.4); json_format wants base64.
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _HEX_KEYS and isinstance(v, str) and _HEX_RE.match(v):
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                _hex_to_b64(v)
    elif isinstance(node, list):
        for v in node:
            _hex_to_b64(v)


def parse_request(data, fmt=None):
    """Bytes/str of a protobuf or OTLP/JSON ExportProfilesServiceRequest -> message.
    fmt: 'proto', 'json' or None (guess: JSON starts with '{' after whitespace)."""
    m = pb()
    if isinstance(data, str):
        data = data.encode()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if fmt is None:
        fmt = "json" if data.lstrip()[:1] == b"{" else "proto"
    msg = m.req()
    if fmt == "json":
        tree = json.loads(data.decode("utf-8"))
        _hex_to_b64(tree)
        m.json_format.ParseDict(tree, msg, ignore_unknown_fields=True)
    else:
        msg.ParseFromString(data)
    return msg


def to_json(msg):
    """Message -> OTLP/JSON text (camelCase, hex ids)."""
    m = pb()
    tree = m.json_format.MessageToDict(msg, preserving_proto_field_name=False)

    def fix(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("traceId", "spanId", "profileId") and isinstance(v, str):
                    node[k] = base64.b64decode(v).hex()
                else:
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)
    fix(tree)
    return json.dumps(tree, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# Canonical form

class CanonError(Exception):
    """The request cannot be resolved (index out of range, ...)."""


def _at(table, i, what):
    if i < 0 or i >= len(table):
        if i == 0 and len(table) == 0:
            return None  # index 0 into an absent table == the zero entry
        raise CanonError("%s index %d out of range (table has %d)" % (what, i, len(table)))
    return table[i]


class _Resolver:
    def __init__(self, req):
        self.d = req.dictionary
        self.strings = list(self.d.string_table)
        self._loc = {}

    def s(self, i, what="string"):
        v = _at(self.strings, i, what)
        return "" if v is None else v

    def anyvalue(self, av):
        kind = av.WhichOneof("value")
        if kind is None:
            return ("none",)
        if kind == "string_value":
            return ("s", av.string_value)
        if kind == "string_value_strindex":
            return ("s", self.s(av.string_value_strindex, "string_value_strindex"))
        if kind == "bool_value":
            return ("b", av.bool_value)
        if kind == "int_value":
            return ("i", av.int_value)
        if kind == "double_value":
            return ("d", av.double_value.hex())
        if kind == "bytes_value":
            return ("y", av.bytes_value.hex())
        if kind == "array_value":
            return ("a", tuple(self.anyvalue(v) for v in av.array_value.values))
        if kind == "kvlist_value":
            return ("kv", self.keyvalues(av.kvlist_value.values))
        raise CanonError("unknown AnyValue kind %s" % kind)

    def keyvalues(self, kvs):
        out = []
        for kv in kvs:
            key = self.s(kv.key_strindex, "key_strindex") if kv.key_strindex else kv.key
            out.append((key, self.anyvalue(kv.value)))
        return tuple(sorted(out))

    def attrs(self, indices, what):
        out = []
        for i in indices:
            a = _at(self.d.attribute_table, i, what + " attribute")
            if a is None:
                out.append(("", ("none",), ""))
                continue
            out.append((self.s(a.key_strindex, "attribute key_strindex"),
                        self.anyvalue(a.value),
                        self.s(a.unit_strindex, "attribute unit_strindex")))
        return tuple(sorted(out))

    def valuetype(self, vt):
        return (self.s(vt.type_strindex, "type_strindex"),
                self.s(vt.unit_strindex, "unit_strindex"))

    def mapping(self, i):
        m = _at(self.d.mapping_table, i, "mapping")
        if m is None:
            return ("", 0, 0, 0, ())
        return (self.s(m.filename_strindex, "mapping filename_strindex"),
                m.memory_start, m.memory_limit, m.file_offset,
                self.attrs(m.attribute_indices, "mapping"))

    def function(self, i):
        f = _at(self.d.function_table, i, "function")
        if f is None:
            return ("", "", "", 0)
        return (self.s(f.name_strindex, "function name_strindex"),
                self.s(f.system_name_strindex, "function system_name_strindex"),
                self.s(f.filename_strindex, "function filename_strindex"),
                f.start_line)

    def location(self, i):
        c = self._loc.get(i)
        if c is not None:
            return c
        loc = _at(self.d.location_table, i, "location")
        if loc is None:
            c = (self.mapping(0), 0, (), ())
        else:
            lines = tuple(self.function(ln.function_index) + (ln.line, ln.column)
                          for ln in loc.lines)
            c = (self.mapping(loc.mapping_index), loc.address,
                 self.attrs(loc.attribute_indices, "location"), lines)
        self._loc[i] = c
        return c

    def stack(self, i):
        st = _at(self.d.stack_table, i, "stack")
        if st is None:
            return ()
        return tuple(self.location(li) for li in st.location_indices)

    def link(self, i):
        ln = _at(self.d.link_table, i, "link")
        if ln is None:
            return ("", "")
        t, s = ln.trace_id.hex(), ln.span_id.hex()
        # An all-zero link is the "no link" entry however it is spelled.
        if not t.strip("0") and not s.strip("0"):
            return ("", "")
        return (t, s)


def canonical(req):
    """Request (message, protobuf bytes or OTLP/JSON text) -> Counter of per-sample
    records. Raises CanonError when an index does not resolve."""
    if not hasattr(req, "resource_profiles"):
        req = parse_request(req)
    r = _Resolver(req)
    out = collections.Counter()
    for rp in req.resource_profiles:
        res = (r.keyvalues(rp.resource.attributes), rp.resource.dropped_attributes_count,
               rp.schema_url)
        for sp in rp.scope_profiles:
            sc = sp.scope
            scope = (sc.name, sc.version, r.keyvalues(sc.attributes),
                     sc.dropped_attributes_count, sp.schema_url)
            for p in sp.profiles:
                pid = p.profile_id.hex()
                if not pid.strip("0"):
                    pid = ""
                header = (r.valuetype(p.sample_type), r.valuetype(p.period_type), p.period,
                          p.time_unix_nano, p.duration_nano,
                          r.attrs(p.attribute_indices, "profile"), pid,
                          p.dropped_attributes_count, p.original_payload_format,
                          hashlib.sha256(p.original_payload).hexdigest()
                          if p.original_payload else "")
                for s in p.samples:
                    rec = (res, scope, header,
                           r.stack(s.stack_index),
                           r.attrs(s.attribute_indices, "sample"),
                           r.link(s.link_index),
                           tuple(s.values), tuple(s.timestamps_unix_nano))
                    out[rec] += 1
    return out


def canonical_sum(items):
    """Sum of canonical multisets of many requests (messages, bytes or paths)."""
    total = collections.Counter()
    for it in items:
        if isinstance(it, str) and os.path.isfile(it):
            it = read_file(it)
        total.update(canonical(it))
    return total


def sample_count(c):
    return sum(c.values())


def describe_diff(want, got, limit=3):
    """Human text for two canonical multisets that differ."""
    missing = want - got
    extra = got - want
    lines = ["canonical multisets differ: want %d samples, got %d; %d missing, %d extra"
             % (sample_count(want), sample_count(got), sample_count(missing),
                sample_count(extra))]
    for name, c in (("missing", missing), ("extra", extra)):
        for rec, n in list(c.items())[:limit]:
            lines.append("  %s x%d: %s" % (name, n, repr(rec)[:600]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Dictionary rules (WIRE.md 1.2)

def dictionary_violations(req):
    """List of rule violations (empty list == obeys the rules): every table present
    with [0] the zero entry, every index in range, no key twice in one attribute list."""
    if not hasattr(req, "resource_profiles"):
        req = parse_request(req)
    d = req.dictionary
    v = []
    tables = {
        "mapping_table": d.mapping_table, "location_table": d.location_table,
        "function_table": d.function_table, "link_table": d.link_table,
        "string_table": d.string_table, "attribute_table": d.attribute_table,
        "stack_table": d.stack_table,
    }
    for name, t in tables.items():
        if len(t) == 0:
            v.append("%s is empty (entry [0] must be the zero value)" % name)
            continue
        z = t[0]
        if name == "string_table":
            if z != "":
                v.append("string_table[0] = %r, not \"\"" % z)
        elif name == "link_table":
            if z.trace_id.strip(b"\0") or z.span_id.strip(b"\0"):
                v.append("link_table[0] is not an empty link")
        elif name == "attribute_table":
            # An empty AnyValue present on the wire is still the empty value.
            if z.key_strindex or z.unit_strindex or z.value.WhichOneof("value"):
                v.append("attribute_table[0] is not the zero value: %s"
                         % str(z).replace("\n", " "))
        elif z.ByteSize() != 0:
            v.append("%s[0] is not the zero value: %s" % (name, str(z).replace("\n", " ")))

    def chk(i, table, what):
        if i < 0 or i >= max(len(tables[table]), 1):
            v.append("%s index %d out of range (%s has %d)" % (what, i, table,
                                                               len(tables[table])))
            return False
        return True

    def chk_attrs(indices, what):
        keys = set()
        for i in indices:
            if chk(i, "attribute_table", what + " attribute"):
                if i < len(d.attribute_table):
                    k = d.attribute_table[i].key_strindex
                    if k in keys:
                        v.append("%s attribute list names key %d twice" % (what, k))
                    keys.add(k)

    def chk_any(av, what):
        kind = av.WhichOneof("value")
        if kind == "string_value_strindex":
            chk(av.string_value_strindex, "string_table", what + " string_value_strindex")
        elif kind == "array_value":
            for x in av.array_value.values:
                chk_any(x, what)
        elif kind == "kvlist_value":
            chk_kvs(av.kvlist_value.values, what)

    def chk_kvs(kvs, what):
        for kv in kvs:
            chk(kv.key_strindex, "string_table", what + " key_strindex")
            chk_any(kv.value, what)

    for i, m in enumerate(d.mapping_table):
        chk(m.filename_strindex, "string_table", "mapping[%d].filename" % i)
        chk_attrs(m.attribute_indices, "mapping[%d]" % i)
    for i, loc in enumerate(d.location_table):
        chk(loc.mapping_index, "mapping_table", "location[%d].mapping" % i)
        chk_attrs(loc.attribute_indices, "location[%d]" % i)
        for ln in loc.lines:
            chk(ln.function_index, "function_table", "location[%d].line.function" % i)
    for i, f in enumerate(d.function_table):
        for fld in ("name_strindex", "system_name_strindex", "filename_strindex"):
            chk(getattr(f, fld), "string_table", "function[%d].%s" % (i, fld))
    for i, a in enumerate(d.attribute_table):
        chk(a.key_strindex, "string_table", "attribute[%d].key" % i)
        chk(a.unit_strindex, "string_table", "attribute[%d].unit" % i)
        chk_any(a.value, "attribute[%d]" % i)
    for i, st in enumerate(d.stack_table):
        for li in st.location_indices:
            chk(li, "location_table", "stack[%d]" % i)
    for rp in req.resource_profiles:
        chk_kvs(rp.resource.attributes, "resource")
        for sp in rp.scope_profiles:
            chk_kvs(sp.scope.attributes, "scope")
            for p in sp.profiles:
                for vt in (p.sample_type, p.period_type):
                    chk(vt.type_strindex, "string_table", "profile value type")
                    chk(vt.unit_strindex, "string_table", "profile value unit")
                chk_attrs(p.attribute_indices, "profile")
                for s in p.samples:
                    chk(s.stack_index, "stack_table", "sample.stack")
                    chk(s.link_index, "link_table", "sample.link")
                    chk_attrs(s.attribute_indices, "sample")
    return v


# ---------------------------------------------------------------------------------------
# Re-layouts of a request that must not change its canonical form

def shuffle_dictionary(req, seed=1, duplicate=True):
    """Copy of req whose dictionary tables are permuted (entry [0] kept) and, with
    duplicate, get a duplicate of every entry appended; every index is remapped. The
    canonical form must not change."""
    import random
    rng = random.Random(seed)
    m = pb()
    out = m.req()
    out.CopyFrom(req)
    d = out.dictionary
    names = ["mapping_table", "location_table", "function_table", "link_table",
             "string_table", "attribute_table", "stack_table"]
    maps = {}
    for name in names:
        t = getattr(d, name)
        n = len(t)
        order = list(range(1, n))
        rng.shuffle(order)
        new_of_old = {0: 0}
        items = [t[0]] if n else []
        for old in order:
            new_of_old[old] = len(items)
            items.append(t[old])
        if duplicate:
            for old in range(1, n):
                items.append(t[old])
        dup_of_old = {old: len(items) - (n - 1) + old - 1 for old in range(1, n)} \
            if duplicate else {}

        def pick(old, _n=new_of_old, _d=dup_of_old):
            # Use the duplicate for odd indices so both copies are referenced.
            if old in _d and old % 2:
                return _d[old]
            return _n.get(old, old)
        maps[name] = pick
        copies = [type(x)() if not isinstance(x, str) else x for x in items]
        for c, x in zip(copies, items):
            if not isinstance(x, str):
                c.CopyFrom(x)
        del t[:]
        if name == "string_table":
            t.extend(copies)
        else:
            for c in copies:
                t.add().CopyFrom(c)
    S, A = maps["string_table"], maps["attribute_table"]

    def fix_attrs(lst):
        new = [A(i) for i in lst]
        del lst[:]
        lst.extend(new)

    def fix_any(av):
        k = av.WhichOneof("value")
        if k == "string_value_strindex":
            av.string_value_strindex = S(av.string_value_strindex)
        elif k == "array_value":
            for x in av.array_value.values:
                fix_any(x)
        elif k == "kvlist_value":
            fix_kvs(av.kvlist_value.values)

    def fix_kvs(kvs):
        for kv in kvs:
            if kv.key_strindex:
                kv.key_strindex = S(kv.key_strindex)
            fix_any(kv.value)

    for mp in d.mapping_table:
        mp.filename_strindex = S(mp.filename_strindex)
        fix_attrs(mp.attribute_indices)
    for loc in d.location_table:
        loc.mapping_index = maps["mapping_table"](loc.mapping_index)
        fix_attrs(loc.attribute_indices)
        for ln in loc.lines:
            ln.function_index = maps["function_table"](ln.function_index)
    for f in d.function_table:
        f.name_strindex = S(f.name_strindex)
        f.system_name_strindex = S(f.system_name_strindex)
        f.filename_strindex = S(f.filename_strindex)
    for a in d.attribute_table:
        a.key_strindex = S(a.key_strindex)
        a.unit_strindex = S(a.unit_strindex)
        fix_any(a.value)
    for st in d.stack_table:
        new = [maps["location_table"](i) for i in st.location_indices]
        del st.location_indices[:]
        st.location_indices.extend(new)
    for rp in out.resource_profiles:
        fix_kvs(rp.resource.attributes)
        for sp in rp.scope_profiles:
            fix_kvs(sp.scope.attributes)
            for p in sp.profiles:
                for vt in (p.sample_type, p.period_type):
                    vt.type_strindex = S(vt.type_strindex)
                    vt.unit_strindex = S(vt.unit_strindex)
                fix_attrs(p.attribute_indices)
                for smp in p.samples:
                    smp.stack_index = maps["stack_table"](smp.stack_index)
                    smp.link_index = maps["link_table"](smp.link_index)
                    fix_attrs(smp.attribute_indices)
    return out


def split_request(req):
    """One request per (resource, scope, profile), each with the full dictionary. The
    sum of their canonical forms equals the canonical form of req."""
    m = pb()
    out = []
    for rp in req.resource_profiles:
        for sp in rp.scope_profiles:
            for p in sp.profiles:
                r = m.req()
                r.dictionary.CopyFrom(req.dictionary)
                nrp = r.resource_profiles.add()
                nrp.resource.CopyFrom(rp.resource)
                nrp.schema_url = rp.schema_url
                nsp = nrp.scope_profiles.add()
                nsp.scope.CopyFrom(sp.scope)
                nsp.schema_url = sp.schema_url
                nsp.profiles.add().CopyFrom(p)
                out.append(r)
    return out


# ---------------------------------------------------------------------------------------
# Synthetic requests

class ReqBuilder:
    """Builds an ExportProfilesServiceRequest with an interning dictionary whose tables
    start with their zero entries. Frames are given as dicts (see frame())."""

    def __init__(self):
        m = pb()
        self.m = m
        self.req = m.req()
        d = self.req.dictionary
        self._idx = {}
        d.string_table.append("")
        d.mapping_table.add()
        d.location_table.add()
        d.function_table.add()
        d.link_table.add()
        d.attribute_table.add()
        d.stack_table.add()
        self._idx["s"] = {"": 0}

    def _intern(self, kind, key, add):
        t = self._idx.setdefault(kind, {})
        if key not in t:
            t[key] = add()
        return t[key]

    def s(self, text):
        d = self.req.dictionary

        def add():
            d.string_table.append(text)
            return len(d.string_table) - 1
        return self._intern("s", text, add)

    def _set_any(self, av, value):
        if isinstance(value, bool):
            av.bool_value = value
        elif isinstance(value, int):
            av.int_value = value
        elif isinstance(value, float):
            av.double_value = value
        elif isinstance(value, bytes):
            av.bytes_value = value
        elif isinstance(value, (list, tuple)):
            av.array_value.SetInParent()
            for x in value:
                self._set_any(av.array_value.values.add(), x)
        else:
            av.string_value = str(value)

    def attr(self, key, value, unit=""):
        d = self.req.dictionary

        def add():
            a = d.attribute_table.add()
            a.key_strindex = self.s(key)
            self._set_any(a.value, value)
            if unit:
                a.unit_strindex = self.s(unit)
            return len(d.attribute_table) - 1
        return self._intern("a", (key, repr(value), unit), add)

    def mapping(self, filename, start=0x400000, limit=0x800000, offset=0, attrs=()):
        d = self.req.dictionary
        key = (filename, start, limit, offset, tuple(attrs))

        def add():
            mp = d.mapping_table.add()
            mp.memory_start, mp.memory_limit, mp.file_offset = start, limit, offset
            mp.filename_strindex = self.s(filename)
            mp.attribute_indices.extend(self.attr(k, v) for k, v in attrs)
            return len(d.mapping_table) - 1
        return self._intern("m", key, add)

    def function(self, name, system_name="", filename="", start_line=0):
        d = self.req.dictionary

        def add():
            f = d.function_table.add()
            f.name_strindex = self.s(name)
            f.system_name_strindex = self.s(system_name)
            f.filename_strindex = self.s(filename)
            f.start_line = start_line
            return len(d.function_table) - 1
        return self._intern("f", (name, system_name, filename, start_line), add)

    def location(self, address=0, mapping=None, lines=(), attrs=()):
        """mapping: dict of mapping() kwargs or None; lines: list of
        (name, filename, line, column) tuples, inlined callee first."""
        d = self.req.dictionary
        key = (address, repr(mapping), tuple(lines), tuple(attrs))

        def add():
            loc = d.location_table.add()
            loc.address = address
            if mapping:
                loc.mapping_index = self.mapping(**mapping)
            for (name, filename, line, col) in lines:
                ln = loc.lines.add()
                ln.function_index = self.function(name, "_Z" + name, filename, max(line - 3, 0))
                ln.line, ln.column = line, col
            loc.attribute_indices.extend(self.attr(k, v) for k, v in attrs)
            return len(d.location_table) - 1
        return self._intern("l", key, add)

    def stack(self, loc_indices):
        d = self.req.dictionary

        def add():
            st = d.stack_table.add()
            st.location_indices.extend(loc_indices)
            return len(d.stack_table) - 1
        return self._intern("st", tuple(loc_indices), add)

    def link(self, trace_id, span_id):
        d = self.req.dictionary

        def add():
            ln = d.link_table.add()
            ln.trace_id, ln.span_id = trace_id, span_id
            return len(d.link_table) - 1
        return self._intern("ln", (trace_id, span_id), add)

    def resource(self, attrs, schema_url="", strindex=False):
        """Adds a ResourceProfiles with a single scope; returns the ScopeProfiles."""
        rp = self.req.resource_profiles.add()
        rp.schema_url = schema_url
        for k, v in attrs:
            kv = rp.resource.attributes.add()
            if strindex:
                kv.key_strindex = self.s(k)
                if isinstance(v, str):
                    kv.value.string_value_strindex = self.s(v)
                    continue
            else:
                kv.key = k
            self._set_any(kv.value, v)
        return rp

    def scope(self, rp, name="synthetic", version="1.0", attrs=()):
        sp = rp.scope_profiles.add()
        sp.scope.name, sp.scope.version = name, version
        for k, v in attrs:
            kv = sp.scope.attributes.add()
            kv.key = k
            self._set_any(kv.value, v)
        return sp

    def profile(self, sp, sample_type=("samples", "count"), period_type=("cpu", "nanoseconds"),
                period=50000000, time_unix_nano=1700000000000000000, duration_nano=10**9,
                attrs=()):
        p = sp.profiles.add()
        p.sample_type.type_strindex = self.s(sample_type[0])
        p.sample_type.unit_strindex = self.s(sample_type[1])
        p.period_type.type_strindex = self.s(period_type[0])
        p.period_type.unit_strindex = self.s(period_type[1])
        p.period = period
        p.time_unix_nano = time_unix_nano
        p.duration_nano = duration_nano
        p.attribute_indices.extend(self.attr(k, v) for k, v in attrs)
        return p

    def sample(self, p, stack, values=(), timestamps=(), attrs=(), link=0):
        s = p.samples.add()
        s.stack_index = stack
        s.values.extend(values)
        s.timestamps_unix_nano.extend(timestamps)
        s.attribute_indices.extend(self.attr(k, v) for k, v in attrs)
        s.link_index = link
        return s

    def bytes(self):
        return self.req.SerializeToString()


def synthetic_request(seed, nsamples=3):
    """A small, varied request distinct for each seed: several resources (plain and
    strindex attributes), scope attributes, profile attributes, sample attributes of
    several value types, links, timestamps-only samples, value+timestamp samples and
    multi-line (inlined) locations with mappings carrying build ids."""
    b = ReqBuilder()
    t0 = 1700000000000000000 + seed * 10**9
    for r in range(1 + seed % 3):
        rp = b.resource([("service.name", "svc-%d" % (seed % 7)),
                         ("host.name", "host-%d" % r), ("process.pid", 1000 + seed),
                         ("seed", seed)], schema_url="https://opentelemetry.io/schemas/1.37.0",
                        strindex=bool((seed + r) % 2))
        sp = b.scope(rp, name="synthetic-agent", version="0.%d" % (seed % 4),
                     attrs=[("pprof.scope.default_sample_type", "samples")] if r == 0 else [])
        cpu = b.profile(sp, time_unix_nano=t0, attrs=[("profile.kind", "cpu")])
        off = b.profile(sp, sample_type=("off_cpu", "nanoseconds"), time_unix_nano=t0 + 1,
                        duration_nano=2 * 10**9)
        mp = {"filename": "/usr/bin/app-%d" % (seed % 5),
              "attrs": [("process.executable.build_id.gnu", "%040x" % (seed % 5))]}
        for i in range(nsamples):
            leaf = b.location(0x401000 + 16 * i + seed, mp,
                              [("inlined_%d" % i, "app.c", 10 + i, 3),
                               ("caller_%d" % i, "app.c", 100 + i, 0)],
                              attrs=[("profile.frame.type", "native")])
            mid = b.location(0x402000 + seed % 11, mp, [("work", "work.c", 42, 7)],
                             attrs=[("profile.frame.type", "native")])
            kern = b.location(0xffffffff81000000 + i, {"filename": "[kernel.kallsyms]",
                                                      "start": 0xffffffff80000000,
                                                      "limit": 0xffffffffffffffff},
                              [("do_syscall_64", "", 0, 0)],
                              attrs=[("profile.frame.type", "kernel")])
            st = b.stack([kern, leaf, mid] if i % 2 else [leaf, mid])
            link = 0
            if i % 3 == 1:
                link = b.link(bytes([seed % 256, i]) + b"\x11" * 14, bytes([i]) + b"\x22" * 7)
            sattrs = [("thread.name", "worker-%d" % (i % 2)), ("thread.id", 4000 + i),
                      ("cpu.logical_number", i % 4)]
            if i % 2:
                sattrs.append(("ratio", 0.5 + i))
            b.sample(cpu, st, timestamps=[t0 + 1000 * k + i for k in range(1 + i % 3)],
                     attrs=sattrs, link=link)
            b.sample(off, st, values=[123456 * (i + 1), 777], timestamps=[t0 + 5, t0 + 9 + i],
                     attrs=sattrs[:1])
        # a sample with an empty stack and only a value
        b.sample(cpu, 0, values=[seed + 1], attrs=[("thread.name", "idle")])
    return b.req


# ---------------------------------------------------------------------------------------
# YAML

_PLAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:@+-]*$")


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    v = str(v)
    if _PLAIN_RE.match(v) and v.lower() not in ("true", "false", "null", "yes", "no",
                                                 "on", "off", "~"):
        return v
    return json.dumps(v)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (enough for flamegate configs)."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 1)))
            elif isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 1)))
            elif isinstance(v, list):
                out.append("%s%s: [%s]\n" % (pad, k, ", ".join(_scalar(x) for x in v)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, k))
            else:
                out.append("%s%s: %s\n" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for x in obj:
            if isinstance(x, (dict, list)):
                body = to_yaml(x, indent + 1).lstrip()
                out.append("%s- %s" % (pad, body))
            else:
                out.append("%s- %s\n" % (pad, _scalar(x)))
    else:
        out.append(pad + _scalar(obj) + "\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------
# Configs

def otlp_receiver(endpoint="127.0.0.1:0", max_body=None):
    http_ = {"endpoint": endpoint}
    if max_body:
        http_["max_request_body_size"] = max_body
    return {"protocols": {"http": http_}}


def config(receivers, exporters, processors=None, pipeline_processors=(), log_level="info"):
    """Collector-shaped config dict with one profiles pipeline using every component."""
    cfg = {"receivers": receivers}
    if processors:
        cfg["processors"] = processors
    cfg["exporters"] = exporters
    pl = {"receivers": list(receivers), "exporters": list(exporters)}
    if pipeline_processors:
        pl["processors"] = list(pipeline_processors)
    cfg["service"] = {"pipelines": {"profiles": pl},
                      "telemetry": {"logs": {"level": log_level}}}
    return cfg


def sink_config(out_dir, fmt="otlp_proto", endpoint="127.0.0.1:0", max_body=None):
    """B: otlp -> file."""
    return config({"otlp": otlp_receiver(endpoint, max_body)},
                  {"file": {"path": out_dir, "format": fmt}})


def forward_config(upstream_port, encoding="proto", compression="gzip", batch_timeout="200ms",
                   batch_size=8192, initial_interval="100ms", max_body=None):
    """A: otlp -> batch -> otlphttp to 127.0.0.1:upstream_port."""
    return config(
        {"otlp": otlp_receiver(max_body=max_body)},
        {"otlphttp": {"endpoint": "http://127.0.0.1:%d" % upstream_port,
                      "encoding": encoding, "compression": compression,
                      "retry_on_failure": {"initial_interval": initial_interval},
                      "sending_queue": {"queue_size": 1000, "num_consumers": 10}}},
        processors={"batch": {"timeout": batch_timeout, "send_batch_size": batch_size}},
        pipeline_processors=["batch"])


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Processes

_LIVE = []


def _cleanup():
    for p in list(_LIVE):
        p.kill()


import atexit  # noqa: E402
atexit.register(_cleanup)


class Flamegate:
    """One flamegate process. Config is a dict (written as YAML) or YAML text."""

    def __init__(self, cfg, name="fg", workdir=None, wait_port=True, extra_args=()):
        self.name = name
        self.workdir = workdir or tempfile.mkdtemp(prefix="fg-%s-" % name)
        self.config_path = os.path.join(self.workdir, "%s.yaml" % name)
        self.log_path = os.path.join(self.workdir, "%s.log" % name)
        args = []
        if cfg is not None:  # None: run the embedded default config
            with open(self.config_path, "w") as f:
                f.write(cfg if isinstance(cfg, str) else to_yaml(cfg))
            args = ["--config", self.config_path]
        self.port = None
        self._port_ev = threading.Event()
        self._log = open(self.log_path, "w")
        self._log_lock = threading.Lock()
        self.proc = subprocess.Popen([binary()] + args + list(extra_args),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.PIPE, cwd=self.workdir)
        _LIVE.append(self)
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        if wait_port:
            self.wait_port()

    def _drain_stderr(self):
        # Keeps reading so a chatty process never blocks on a full pipe.
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._log_lock:
                if not self._log.closed:
                    self._log.write(line)
                    self._log.flush()
            if self.port is None:
                m = PORT_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._port_ev.set()
        self._port_ev.set()

    def wait_port(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._port_ev.wait(0.05):
                break
        if self.port is None:
            rc = self.proc.poll()
            self.kill()
            raise HarnessError("%s: no 'listening on ... (OTLP/HTTP)' line within %.0fs "
                               "(exit code %s); log:\n%s" % (self.name, timeout, rc,
                                                             self.log_tail()))
        return self.port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        if self.proc.poll() is not None:
            self._drain.join(2)  # exited: let its last lines reach the file first
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "".join(self.log_text().splitlines(True)[-n:])

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Send sig and wait; returns the exit code (kills it after timeout and raises)."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError("%s did not exit within %.0fs of signal %d; log:\n%s"
                               % (self.name, timeout, sig, self.log_tail()))
        self._finish()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._finish()

    def _finish(self):
        self._drain.join(2)
        if self.proc.stderr and not self._drain.is_alive():
            self.proc.stderr.close()
        with self._log_lock:
            if not self._log.closed:
                self._log.close()
        if self in _LIVE:
            _LIVE.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def run_cli(args, timeout=30):
    """Runs flamegate with args; returns CompletedProcess (text)."""
    return subprocess.run([binary()] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------
# HTTP

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:200])


def request(port, method, path, body=b"", headers=None, timeout=30.0):
    """One HTTP/1.1 exchange on a fresh connection. Survives servers that answer
    (e.g. 413) and close before the whole body was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reply may still be readable
        try:
            r = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            raise HarnessError("%s %s: connection closed without a response (%s)"
                               % (method, path, e))
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def post(port, body, content_type="application/x-protobuf", gzip_body=False,
         path=PATH_PROFILES, headers=None, timeout=30.0):
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": content_type}
    if gzip_body:
        body = gzip.compress(body)
        h["Content-Encoding"] = "gzip"
    h.update(headers or {})
    return request(port, "POST", path, body, h, timeout)


def post_request(port, msg, encoding="proto", gzip_body=False):
    """POSTs a request message as protobuf or OTLP/JSON."""
    if encoding == "json":
        return post(port, to_json(msg), "application/json", gzip_body)
    return post(port, msg.SerializeToString(), "application/x-protobuf", gzip_body)


def check_status_body(resp, content_type="application/x-protobuf"):
    """Parses an error body as google.rpc.Status; returns it (raises if unparsable)."""
    m = pb()
    st = m.status()
    if content_type == "application/json":
        m.json_format.Parse(resp.body.decode("utf-8"), st, ignore_unknown_fields=True)
    else:
        st.ParseFromString(resp.body)
    return st


# ---------------------------------------------------------------------------------------
# File exporter output

def output_files(out_dir):
    """Complete files written by the file exporter (temp files start with '.')."""
    try:
        names = os.listdir(out_dir)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(out_dir, n) for n in names
                  if n.startswith("profiles-") and (n.endswith(".pb") or n.endswith(".json")))


def collect_dir(out_dir, expected_samples, timeout=20.0, settle=0.3):
    """Waits until the files in out_dir hold at least expected_samples samples (or the
    timeout passes), then waits `settle` s more for stragglers. Returns (counter, files)."""
    deadline = time.monotonic() + timeout
    seen = {}
    total = collections.Counter()

    def scan():
        for f in output_files(out_dir):
            if f not in seen:
                c = canonical(read_file(f))
                seen[f] = c
                total.update(c)
    while True:
        scan()
        if sample_count(total) >= expected_samples or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if settle:
        time.sleep(settle)
        scan()
    return total, sorted(seen)


# ---------------------------------------------------------------------------------------
# Test case base

SANITIZER_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")


class FgTestCase(unittest.TestCase):
    """Starts processes in a per-test temp dir, kills leftovers, and puts the logs of
    every process into failure messages."""

    def setUp(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="fg-test-")

    def tearDown(self):
        for p in self.procs:
            p.kill()
        if os.environ.get("FG_KEEP_TMP"):
            print("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, cfg, name, **kw):
        p = Flamegate(cfg, name, workdir=self.tmp, **kw)
        self.procs.append(p)
        return p

    def out_dir(self, name="out"):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        return d

    def logs(self):
        return "".join("\n--- log of %s (%s):\n%s" % (p.name, p.log_path, p.log_tail())
                       for p in self.procs)

    def assertStatus(self, resp, status, what=""):
        if isinstance(status, int):
            status = (status,)
        self.assertIn(resp.status, status, "%s: got %r, want %s%s"
                      % (what, resp, status, self.logs()))

    def assertOk(self, resp, what="", content_type="application/x-protobuf"):
        self.assertStatus(resp, 200, what)
        m = pb()
        r = m.resp()
        if content_type == "application/json":
            m.json_format.Parse(resp.body.decode("utf-8") or "{}", r,
                                ignore_unknown_fields=True)
        else:
            r.ParseFromString(resp.body)
        self.assertEqual(r.partial_success.rejected_profiles, 0,
                         "%s: partial success %s" % (what, r.partial_success))

    def assertSameData(self, want, got, what=""):
        if want != got:
            self.fail("%s: %s%s" % (what, describe_diff(want, got), self.logs()))

    def assertFilesObeyRules(self, files):
        self.assertTrue(files, "no output files" + self.logs())
        for f in files:
            v = dictionary_violations(read_file(f))
            self.assertEqual(v, [], "%s breaks the dictionary rules" % f)

    def assertAlive(self, p, what=""):
        if not p.alive():
            self.fail("%s: %s exited with %s%s" % (what, p.name, p.proc.returncode,
                                                  self.logs()))

    def stop_clean(self, p, timeout=15.0):
        rc = p.stop(timeout=timeout)
        self.assertEqual(rc, 0, "%s exit code%s" % (p.name, self.logs()))
        self.assertNoSanitizerReport(p)

    def assertNoSanitizerReport(self, p):
        # UBSan reports without changing the exit code; ASan/LSan change it, but say more.
        text = p.log_text()
        for marker in SANITIZER_MARKERS:
            self.assertNotIn(marker, text, "%s: sanitizer report in log%s"
                             % (p.name, self.logs()))


# ---------------------------------------------------------------------------------------
# Runner

def main():
    """unittest main that fails loudly: harness errors are errors, the runner prints the
    closing 'Ran N tests ... OK' line, and the exit code is non-zero on any failure."""
    unittest.main(verbosity=2)
