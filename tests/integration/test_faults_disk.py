# Fault tests of the persistent queue (file_storage): kill -9 at random moments while data
# streams in, and records torn or corrupted by hand; samples are counted end to end.
import glob
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultkit as fk  # noqa: E402
import fgharness as h  # noqa: E402

KILLS = int(os.environ.get("FG_FAULT_KILLS", "20"))
HDR = struct.Struct("<IIQII")  # magic, len, samples, crc, state
MAGIC = 0x31514746


def records(path):
    """(offset, payload length, payload) of each record of a segment file."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + HDR.size <= len(data):
        magic, n, _samples, _crc, _state = HDR.unpack_from(data, off)
        if magic != MAGIC or off + HDR.size + n > len(data):
            break
        out.append((off, n, data[off + HDR.size:off + HDR.size + n]))
        off += HDR.size + n
    return out


def record_ids(payload):
    tlen = payload[0] | payload[1] << 8
    return fk.sample_ids(payload[2 + tlen:])


class DiskFaults(h.FgTestCase):
    def gateway(self, sink, port, qdir, name="gw"):
        return self.start(fk.gateway_config(sink.port, port=port, storage=qdir, batch=None,
                                            queue={"num_consumers": 4}),
                          name)

    def test_a_kill9_loop(self):
        """kill -9 at KILLS random moments while agents stream and the sink flaps; after a
        last restart with the sink up, every acknowledged sample has arrived."""
        r = fk.rng()
        sink = fk.Sink()
        sink_up = False
        port = h.free_port()
        qdir = os.path.join(self.tmp, "queue")
        sent, acked, statuses = 0, set(), {}
        next_id = 1
        replays = 0
        peak = 0.0
        for i in range(KILLS):
            want_up = r.random() < 0.4
            if want_up and not sink_up:
                sink.up()
            elif not want_up and sink_up:
                sink.down()
            sink_up = want_up
            g = self.gateway(sink, port, qdir, "gw%d" % i)
            rss = fk.RssSampler(g.proc.pid)
            agents = fk.Agents(port, n=2, per_request=10, start_id=next_id, timeout=5).start()
            time.sleep(r.uniform(0.1, 1.0))
            g.proc.kill()  # SIGKILL
            g.proc.wait(5)
            peak = max(peak, rss.stop())
            agents.stop()
            g.kill()
            next_id = agents.next_id
            sent += agents.sent
            acked |= agents.acked
            for k, v in agents.statuses.items():
                statuses[str(k)] = statuses.get(str(k), 0) + v
            if "replaying" in g.log_text():
                replays += 1
        if not sink_up:
            sink.up()
        g = self.gateway(sink, port, qdir, "final")
        rss = fk.RssSampler(g.proc.pid)
        got = fk.wait_received(sink, acked, 90)
        peak = max(peak, rss.stop())
        torn = sum(p.log_text().count("torn or corrupt record") for p in self.procs)
        fk.figures("kill9_loop_x%d" % KILLS, sent, acked, got,
                   {"statuses": statuses, "restarts_that_replayed": replays,
                    "torn_records_skipped": torn}, peak)
        missing = acked - set(got)
        self.assertFalse(missing, "%d acknowledged samples lost, e.g. %s%s"
                         % (len(missing), sorted(missing)[:5], self.logs()))
        self.assertGreater(len(acked), 500)
        self.assertGreater(replays, 0, "no restart found anything to replay")
        # Everything delivered: the segments are deleted once acknowledged.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and glob.glob(os.path.join(qdir, "*", "seg-*")):
            time.sleep(0.2)
        self.stop_clean(g)
        left = glob.glob(os.path.join(qdir, "*", "seg-*.log"))
        self.assertEqual(left, [], "segments left after everything was delivered")
        sink.down()

    def test_b_torn_and_corrupt_records(self):
        """A record corrupted in the middle of a segment and a last record cut short: on start
        both are skipped with a warning and everything else is delivered."""
        sink = fk.Sink()
        port = h.free_port()
        qdir = os.path.join(self.tmp, "queue")
        g = self.gateway(sink, port, qdir)
        agents = fk.Agents(port, n=1, per_request=10)
        for _ in range(30):
            self.assertEqual(agents.post_once(), 200, self.logs())
        g.proc.kill()
        g.kill()
        segs = sorted(glob.glob(os.path.join(qdir, "*", "seg-*.log")))
        self.assertEqual(len(segs), 1, "expected one segment: %s" % segs)
        seg = segs[0]
        recs = records(seg)
        self.assertEqual(len(recs), 30)
        mid_off, mid_len, mid_payload = recs[10]
        last_off, last_len, last_payload = recs[-1]
        lost = set(record_ids(mid_payload)) | set(record_ids(last_payload))
        self.assertEqual(len(lost), 20)
        with open(seg, "r+b") as f:
            # flip a byte in the middle of record 10's payload: its CRC no longer matches
            pos = mid_off + HDR.size + mid_len // 2
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 0x5A]))
            # cut the last record short, as a crash in the middle of a write would
            f.truncate(last_off + HDR.size + last_len - 7)
        sink.up()
        g2 = self.gateway(sink, port, qdir, "gw2")
        rss = fk.RssSampler(g2.proc.pid)
        want = agents.acked - lost
        got = fk.wait_received(sink, want, 30)
        time.sleep(0.5)
        got = sink.snapshot()
        log = g2.log_text()
        fk.figures("torn_and_corrupt", agents.sent, agents.acked, got,
                   {"skipped_records": 2, "skipped_samples": len(lost)}, rss.stop())
        self.assertFalse(want - set(got), "intact records not delivered" + self.logs())
        self.assertFalse(lost & set(got), "a damaged record was delivered?")
        self.assertEqual(log.count("torn or corrupt record"), 2, log)
        self.assertIn("2 torn records skipped", log)
        self.stop_clean(g2)
        sink.down()


if __name__ == "__main__":
    h.main()
