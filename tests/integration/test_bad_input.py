# Hostile and malformed OTLP/HTTP input: every bad request gets the right 4xx, the
# process survives, keeps serving, and good data still reaches the file exporter.
import gzip
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402

CT_PROTO = "application/x-protobuf"
CT_JSON = "application/json"
OLD_LAYOUT = "pprof/sigprofiling_otel_ebpf_v1.8.otlp.pb"


def python_rejects(data):
    """True if the independent reader also refuses data (sanity of the fixture)."""
    try:
        h.pb().req().FromString(data)
    except Exception:
        return True
    return False


def mutated(fn, seed=900):
    """A valid synthetic request with one index broken by fn(req)."""
    r = h.synthetic_request(seed)
    fn(r)
    assert h.dictionary_violations(r), "mutation did not break the request"
    return r.SerializeToString()


def _prof(r):
    return r.resource_profiles[0].scope_profiles[0].profiles[0]


def _set(obj, field, value):
    setattr(obj, field, value)


# Marks a failure below the OTLP layer (Content-Encoding): a text/plain error body is
# accepted there; OTLP payload errors must answer with a google.rpc.Status.
TRANSPORT = "transport"
BIG = 1 << 30
BAD_INDEX = [
    ("sample.stack_index", lambda r: _set(_prof(r).samples[0], "stack_index", BIG)),
    ("sample.stack_index negative", lambda r: _set(_prof(r).samples[0], "stack_index", -1)),
    ("sample.link_index", lambda r: _set(_prof(r).samples[0], "link_index", 4096)),
    ("sample.attribute_indices", lambda r: _prof(r).samples[0].attribute_indices.append(BIG)),
    ("profile.attribute_indices", lambda r: _prof(r).attribute_indices.append(50000)),
    ("profile.sample_type strindex", lambda r: _set(_prof(r).sample_type, "type_strindex",
                                                    BIG)),
    ("stack.location_indices",
     lambda r: r.dictionary.stack_table[1].location_indices.append(100000)),
    ("location.mapping_index", lambda r: _set(r.dictionary.location_table[1],
                                              "mapping_index", 777)),
    ("line.function_index", lambda r: _set(r.dictionary.location_table[1].lines[0],
                                           "function_index", 777)),
    ("location.attribute_indices",
     lambda r: r.dictionary.location_table[1].attribute_indices.append(9999)),
    ("function.name_strindex", lambda r: _set(r.dictionary.function_table[1],
                                              "name_strindex", BIG)),
    ("mapping.filename_strindex", lambda r: _set(r.dictionary.mapping_table[1],
                                                 "filename_strindex", BIG)),
    ("attribute.key_strindex", lambda r: _set(r.dictionary.attribute_table[1],
                                              "key_strindex", BIG)),
    ("resource key_strindex", lambda r: _set(r.resource_profiles[0].resource.attributes[0],
                                             "key_strindex", BIG)),
    ("resource string_value_strindex",
     lambda r: _set(r.resource_profiles[0].resource.attributes[0].value,
                    "string_value_strindex", BIG)),
]


def missing_zero_string(r):
    r.dictionary.string_table[0] = "not-empty"


def missing_zero_location(r):
    r.dictionary.location_table[0].address = 0x1234


def random_garbage():
    for seed in range(1, 100):
        data = random.Random(seed).randbytes(4096)
        if python_rejects(data):
            return data
    raise h.HarnessError("no random garbage that protobuf rejects")


class BadInputTest(h.FgTestCase):
    def cases(self):
        good = h.synthetic_request(901).SerializeToString()
        trunc = good[:len(good) // 2]
        # Cut inside the first resource_profiles record so it cannot be a valid prefix.
        self.assertTrue(python_rejects(trunc), "truncated fixture still parses")
        bomb = gzip.compress(b"\0" * (100 << 20), compresslevel=9)
        c = [
            ("truncated protobuf", "POST", h.PATH_PROFILES, trunc, {"Content-Type": CT_PROTO},
             400),
            ("truncated protobuf, gzip", "POST", h.PATH_PROFILES, gzip.compress(trunc),
             {"Content-Type": CT_PROTO, "Content-Encoding": "gzip"}, 400),
            ("random bytes", "POST", h.PATH_PROFILES, random_garbage(),
             {"Content-Type": CT_PROTO}, 400),
            ("gzip header, corrupt stream", "POST", h.PATH_PROFILES,
             b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 64,
             {"Content-Type": CT_PROTO, "Content-Encoding": "gzip"}, 400, TRANSPORT),
            ("gzip bomb (100 MiB of zeros)", "POST", h.PATH_PROFILES, bomb,
             {"Content-Type": CT_PROTO, "Content-Encoding": "gzip"}, 413),
            ("plain body over the limit", "POST", h.PATH_PROFILES, b"\x0a" * (5 << 20),
             {"Content-Type": CT_PROTO}, 413),
            ("invalid JSON", "POST", h.PATH_PROFILES, b'{"resourceProfiles": [',
             {"Content-Type": CT_JSON}, 400),
            ("JSON of the wrong shape", "POST", h.PATH_PROFILES, b'{"resourceProfiles": 5}',
             {"Content-Type": CT_JSON}, 400),
            ("JSON that is not UTF-8", "POST", h.PATH_PROFILES, b'{"resourceProfiles\xff": []}',
             {"Content-Type": CT_JSON}, 400),
            ("wrong content type", "POST", h.PATH_PROFILES, good, {"Content-Type": "text/plain"},
             415),
            ("unknown path", "POST", "/v1development/nothing-here", good,
             {"Content-Type": CT_PROTO}, 404),
            ("wrong method", "GET", h.PATH_PROFILES, b"", {}, 405),
            ("missing zero string", "POST", h.PATH_PROFILES, mutated(missing_zero_string),
             {"Content-Type": CT_PROTO}, 400),
            ("missing zero location", "POST", h.PATH_PROFILES, mutated(missing_zero_location),
             {"Content-Type": CT_PROTO}, 400),
        ]
        for name, fn in BAD_INDEX:
            c.append(("out-of-range " + name, "POST", h.PATH_PROFILES, mutated(fn),
                      {"Content-Type": CT_PROTO}, 400))
        # The same broken index in OTLP/JSON.
        r = h.synthetic_request(902)
        _prof(r).samples[0].stack_index = 5000
        c.append(("out-of-range index in JSON", "POST", h.PATH_PROFILES,
                  h.to_json(r).encode(), {"Content-Type": CT_JSON}, 400))
        return c

    def test_bad_inputs_are_rejected_and_service_continues(self):
        out = self.out_dir()
        fg = self.start(h.sink_config(out, max_body="4MiB"), "sink")
        want = h.canonical(b"")
        n = 0

        def valid(after):
            nonlocal want, n
            n += 1
            req = h.synthetic_request(1000 + n, nsamples=1)
            resp = h.post(fg.port, req.SerializeToString(), CT_PROTO)
            self.assertOk(resp, "valid request after " + after)
            want += h.canonical(req)

        for case in self.cases():
            name, method, path, body, headers, status = case[:6]
            transport = len(case) > 6 and case[6] == TRANSPORT
            with self.subTest(case=name):
                try:
                    resp = h.request(fg.port, method, path, body, headers)
                except h.HarnessError as e:
                    self.fail("%s: %s%s" % (name, e, self.logs()))
                self.assertStatus(resp, status, name)
                rct = (resp.header("Content-Type") or "").split(";")[0].strip()
                if status == 400 and transport and rct == "text/plain":
                    # A body that never got decoded (like the Collector's decompressor
                    # errors): plain text is fine as long as it says something.
                    self.assertTrue(resp.body.strip(), "%s: empty error body" % name)
                elif status == 400:
                    ct = headers.get("Content-Type", CT_PROTO)
                    try:
                        st = h.check_status_body(resp, ct)
                    except Exception as e:
                        self.fail("%s: 400 body is not a google.rpc.Status (%s): %r"
                                  % (name, e, resp.body[:200]))
                    self.assertTrue(st.message, "%s: Status without a message" % name)
                self.assertAlive(fg, name)
            valid(name)

        # Older (v1.8) layout: rejected, or accepted only if it decodes as valid 1.10 data.
        if h.corpus_dir() is not None:
            old = h.read_file(h.corpus_file(OLD_LAYOUT))
            resp = h.post(fg.port, old, CT_PROTO)
            self.assertStatus(resp, (200, 400), "v1.8 layout payload")
            print("v1.8 layout payload -> HTTP %d %r" % (resp.status, resp.body[:120]),
                  flush=True)
            if resp.status == 200:
                self.assertEqual(h.dictionary_violations(old), [],
                                 "accepted a payload that breaks the dictionary rules")
                want += h.canonical(old)
            self.assertAlive(fg, "v1.8 layout payload")
            valid("v1.8 layout payload")
        else:
            print("SKIP: corpus folder absent; v1.8 layout case not run", flush=True)

        self.assertAlive(fg, "end")
        got, files = h.collect_dir(out, h.sample_count(want))
        self.assertSameData(want, got, "file exporter output")
        self.assertFilesObeyRules(files)
        self.stop_clean(fg)

    def test_empty_request_is_accepted(self):
        out = self.out_dir()
        fg = self.start(h.sink_config(out), "sink")
        self.assertOk(h.post(fg.port, b"", CT_PROTO), "empty protobuf request")
        self.assertOk(h.post(fg.port, b"{}", CT_JSON), "empty JSON request", CT_JSON)
        self.assertAlive(fg)
        self.stop_clean(fg)


if __name__ == "__main__":
    h.main()
