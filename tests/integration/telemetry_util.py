# Helpers for the self-telemetry tests: the /metrics and health ports from the log, a
# Prometheus text parser, and configs with service.telemetry on port 0.
import re
import time

import fgharness as h

METRICS_PORT_RE = re.compile(r"listening on [^ ]*:(\d+)/metrics \(Prometheus\)")
HEALTH_PORT_RE = re.compile(r"listening on [^ ]*:(\d+)/\S* \(health check\)")
_LINE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def with_telemetry(cfg, log_level="info", encoding=None):
    """cfg (dict from fgharness.config) with /metrics on a free port."""
    tel = cfg["service"].setdefault("telemetry", {})
    tel["metrics"] = {"address": "127.0.0.1:0"}
    logs = tel.setdefault("logs", {})
    logs["level"] = log_level
    if encoding:
        logs["encoding"] = encoding
    return cfg


def wait_port(p, regex, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = regex.search(p.log_text())
        if m:
            return int(m.group(1))
        if not p.alive():
            break
        time.sleep(0.05)
    raise h.HarnessError("%s: no line matching %r; log:\n%s"
                         % (p.name, regex.pattern, p.log_tail()))


def parse(text):
    """Prometheus text -> {(name, frozenset of (label, value)): float}; checks that every
    sample line parses and every family has a TYPE line."""
    out = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if not m:
            raise AssertionError("unparsable metrics line %r" % line)
        name, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in typed and base not in typed:
            raise AssertionError("no TYPE line for %s" % name)
        out[(name, frozenset(_LABEL_RE.findall(labels or "")))] = float(value)
    return out


def scrape(port):
    r = h.request(port, "GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %r" % r)
    ctype = r.header("Content-Type") or ""
    if not ctype.startswith("text/plain"):
        raise AssertionError("GET /metrics content type %r" % ctype)
    return parse(r.body.decode())


def value(metrics, name, **labels):
    """The value of one series (0 when absent)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def wait_value(port, name, want, timeout=15.0, **labels):
    """Scrapes until name{labels} == want (or the timeout); returns the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(port)
        if value(m, name, **labels) == want or time.monotonic() >= deadline:
            return m
        time.sleep(0.1)
