# End to end in a real browser: headless Chromium (Debian chromium + chromium-driver,
# driven by python3-selenium) loads the live view while a test agent keeps posting
# profiles; the overview's counters move, the flame graph shows the expected top frames,
# hovering a frame shows its name, value and share, clicking zooms, the search box
# highlights, the diff view colours growth red and shrinkage blue. Screenshots go to a
# temp directory whose path is printed.
#
# It fails (never skips) when the browser or the driver is missing; FG_SKIP_BROWSER=1
# skips it on purpose.
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fgharness as h  # noqa: E402
from test_liveview import liveview_config, liveview_port, get_json  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# service -> {leaf under main;handle: weight per request}
MIX = {"shop": {"db_query": 60, "render": 30, "gc_pause": 10},
       "shop2": {"db_query": 20, "render": 70, "gc_pause": 10}}


def agent_request(service):
    b = h.ReqBuilder()
    p = b.profile(b.scope(b.resource([("service.name", service)])))
    main = b.location(0x1000, None, [("main", "main.go", 1, 0)])
    handle = b.location(0x2000, None, [("handle", "srv.go", 2, 0)])
    for i, (leaf, w) in enumerate(sorted(MIX[service].items())):
        loc = b.location(0x3000 + i, None, [(leaf, "x.go", 3, 0)])
        b.sample(p, b.stack([loc, handle, main]), values=[w])
    return b.bytes()


class Agent(threading.Thread):
    """Posts one request per service every 50 ms until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.sent, self.errors = port, 0, []
        self.stop_ev = threading.Event()
        self.bodies = {s: agent_request(s) for s in MIX}

    def run(self):
        while not self.stop_ev.is_set():
            for body in self.bodies.values():
                try:
                    r = h.post(self.port, body)
                    if r.status != 200:
                        self.errors.append(r.status)
                    self.sent += 1
                except OSError as e:
                    self.errors.append(str(e))
            self.stop_ev.wait(0.05)


def browser(user_dir):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise h.HarnessError("the browser test needs Debian's chromium and chromium-driver "
                             "(scripts/install-deps.sh --test installs them); set "
                             "FG_SKIP_BROWSER=1 to skip it on purpose")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        raise h.HarnessError("the browser test needs Debian's python3-selenium: %s" % e)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
              "--window-size=1400,900", "--user-data-dir=" + user_dir):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@unittest.skipIf(os.environ.get("FG_SKIP_BROWSER") == "1", "FG_SKIP_BROWSER=1")
class LiveViewBrowserTest(h.FgTestCase):
    def setUp(self):
        super().setUp()
        self.shots = tempfile.mkdtemp(prefix="fg-liveview-browser-")
        print("\nscreenshots and page dumps in %s" % self.shots, flush=True)
        self.driver = None
        self.agent = None

    def tearDown(self):
        if self.agent:
            self.agent.stop_ev.set()
            self.agent.join(5)
        if self.driver:
            self.driver.quit()
        super().tearDown()

    def wait(self, cond, what, timeout=20):
        from selenium.webdriver.support.ui import WebDriverWait
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(cond)
        except Exception:
            self.snap("timeout")
            self.fail("timed out waiting for %s; page: %s%s"
                      % (what, self.driver.page_source[:3000], self.logs()))

    def snap(self, name):
        path = os.path.join(self.shots, name + ".png")
        self.driver.save_screenshot(path)
        return path

    def frame(self, name):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, 'svg#fg g.fr[data-name="%s"] rect'
                                        % name)

    def loaded(self, url):
        self.driver.execute_script("document.body && delete document.body.dataset.loaded")
        self.driver.get(url)
        self.wait(lambda d: d.execute_script("return document.body.dataset.loaded === '1'"),
                  "page %s to load its data" % url)

    def test_live_view_in_chromium(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        fg = self.start(liveview_config(self.out_dir()), "lv")
        lv = liveview_port(fg)
        base = "http://127.0.0.1:%d" % lv
        self.agent = Agent(fg.port)
        self.agent.start()
        # the first requests are in before the page loads
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(get_json(lv, "/api/services")["services"]) == 2:
                break
            time.sleep(0.05)
        self.driver = browser(os.path.join(self.tmp, "chrome-profile"))

        # ---- overview: pipeline row and service links, counters refreshed while data flows
        self.loaded(base + "/")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#services a"), "service links")
        links = [a.text for a in self.driver.find_elements(By.CSS_SELECTOR, "#services a")]
        self.assertEqual(links, ["samples/count", "samples/count"])
        row = self.driver.find_element(By.CSS_SELECTOR, 'tr[data-pipeline="profiles"]')
        self.assertIn("otlp", row.text)
        self.assertIn("file", row.text)

        def samples_cell():
            t = row.find_element(By.CSS_SELECTOR, "td.s").text.replace(",", "")
            return int(t) if t.isdigit() else -1
        self.wait(lambda d: samples_cell() > 0, "the samples counter")
        first = samples_cell()
        self.wait(lambda d: samples_cell() > first, "the samples counter to move", timeout=15)
        self.snap("overview")

        # ---- flame graph of one service: top frames, hover, click to zoom, search
        url = base + "/flamegraph?" + urllib.parse.urlencode(
            {"service": "shop", "type": "samples/count", "refresh": "0"})
        self.loaded(url)
        svg_w = self.driver.find_element(By.ID, "fg").size["width"]
        names = [g.get_attribute("data-name") for g in
                 self.driver.find_elements(By.CSS_SELECTOR, "svg#fg g.fr")]
        self.assertEqual(names[:3], ["all", "main", "handle"], names)
        self.assertEqual(sorted(names[3:]), ["db_query", "gc_pause", "render"])
        # widths follow the weights sent: main and handle span the graph, db_query 60 %
        self.assertGreater(self.frame("main").size["width"], svg_w * 0.97)
        dbw = self.frame("db_query").size["width"]
        self.assertAlmostEqual(dbw / svg_w, 0.6, delta=0.02)
        self.assertAlmostEqual(self.frame("render").size["width"] / svg_w, 0.3, delta=0.02)

        # hover: name, value and share in the tooltip, the value the page was given
        ActionChains(self.driver).move_to_element(self.frame("db_query")).perform()
        tip = self.driver.find_element(By.ID, "tip")
        self.wait(lambda d: tip.is_displayed(), "the tooltip")
        text = tip.text
        self.assertIn("db_query", text)
        m = re.search(r"value ([\d,]+) \(([\d.]+)% of all\)", text)
        self.assertIsNotNone(m, text)
        value = int(m.group(1).replace(",", ""))
        page_value = self.driver.execute_script(
            "return lv.root.children[0].children[0].children.find(c=>c.name==='db_query')"
            ".value")
        self.assertEqual(value, page_value)
        self.assertEqual(value % 60, 0)
        self.assertAlmostEqual(float(m.group(2)), 60.0, delta=0.01)
        self.snap("hover")

        # click: db_query fills the width, its ancestors stay above in grey
        self.frame("db_query").click()
        self.wait(lambda d: "db_query" in d.find_element(By.ID, "zoominfo").text, "zoom")
        self.assertGreater(self.frame("db_query").size["width"], svg_w * 0.97)
        above = [g.get_attribute("data-name") for g in
                 self.driver.find_elements(By.CSS_SELECTOR, "svg#fg g.fr.above")]
        self.assertEqual(above, ["all", "main", "handle"])
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR,
                                                   'svg#fg g.fr[data-name="render"]'), [])
        self.snap("zoomed")
        self.driver.find_element(By.ID, "reset").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, 'svg#fg g.fr[data-name="render"]'),
                  "zoom reset")

        # search: matching frames highlighted, the share of all they cover shown
        box = self.driver.find_element(By.ID, "search")
        box.send_keys("rend|gc_")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "svg#fg g.fr.match"), "highlight")
        hits = sorted(g.get_attribute("data-name") for g in
                      self.driver.find_elements(By.CSS_SELECTOR, "svg#fg g.fr.match"))
        self.assertEqual(hits, ["gc_pause", "render"])
        fill = self.driver.execute_script(
            "return getComputedStyle(document.querySelector('svg#fg g.fr.match rect')).fill")
        self.assertEqual(fill, "rgb(224, 64, 251)")
        self.assertIn("40.00% of all", self.driver.find_element(By.ID, "matchinfo").text)
        self.snap("flamegraph-search")

        # ---- diff: shop (A) against shop2 (B): render grew (red), db_query shrank (blue)
        self.loaded(base + "/diff?" + urllib.parse.urlencode(
            {"a_service": "shop", "a_type": "samples/count",
             "b_service": "shop2", "b_type": "samples/count"}))

        def fill_of(name):
            return self.driver.execute_script(
                "return document.querySelector('svg#fg g.fr[data-name=\"%s\"] rect')"
                ".getAttribute('fill')" % name)
        red, blue = fill_of("render"), fill_of("db_query")
        self.assertRegex(red, r"^rgb\(255,(\d+),\1\)$")
        self.assertRegex(blue, r"^rgb\((\d+),\1,255\)$")
        self.assertNotEqual(red, "rgb(255,255,255)")
        self.assertEqual(fill_of("main"), "rgb(235,235,235)")
        ActionChains(self.driver).move_to_element(self.frame("render")).perform()
        self.wait(lambda d: "render" in d.find_element(By.ID, "tip").text, "diff tooltip")
        self.assertIn("change +40.00 points", self.driver.find_element(By.ID, "tip").text)
        self.snap("diff")

        self.assertEqual(self.agent.errors, [])
        self.assertGreater(self.agent.sent, 0)
        print("screenshots: %s" % ", ".join(sorted(os.listdir(self.shots))), flush=True)
        self.agent.stop_ev.set()
        self.agent.join(5)
        self.agent = None
        self.stop_clean(fg)


if __name__ == "__main__":
    h.main()
