#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""compute_server's /dashboard, rendered by headless Chromium under load.

  usage: check_dashboard.py COMPUTE_SERVER SCREENSHOT.png [dashboard.html]

Starts the server on a free port with --workers 2, keeps /fib busy from a
few client threads, opens /dashboard in headless Chromium and lets it poll
/stats in real time for a few seconds.  Then, from the rendered page:

  - every chart holds more than one sample (its data-points), and drew
    coloured pixels on its canvas;
  - the numbers it shows (data-value) match a /stats fetched right after,
    within a second's drift: workers, version and mode equal; uptime and
    the job and request counts behind by at most about a second's worth;
    the p99s near the server's;
  - the page threw no exception and logged no error;
  - it saves a screenshot (1400x1000) and prints its path.

A second server in --mode inline checks that the page says metrics are off
and hides the charts it cannot fill.  With the page's source given, the
bytes served must equal it.  Exit 77 (skipped) when chromium is absent.

Chromium runs with --remote-debugging-pipe (the DevTools protocol over two
pipes, no websocket): --dump-dom with --virtual-time-budget also lets
fetch() polling run, but in virtual time, so a dozen polls land within a
second of the server's real clock and the charts show a blip.
"""
import base64
import html.parser
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

DEADLINE = time.monotonic() + 55  # ctest's TIMEOUT is 90
POLLS = 8                         # /stats polls the page makes before the check
CHARTS = ["workers", "queue", "wait", "run", "loop", "rps"]


def fail(msg):
    raise SystemExit("check_dashboard: FAIL: " + msg)


def left():
    return DEADLINE - time.monotonic()


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Server:
    """compute_server on a free loopback port."""

    def __init__(self, binary, *args):
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--workers", "2", "--quiet", *args],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()  # "listening on HOST:PORT"
        if not line.startswith("listening on "):
            fail(f"{binary} {' '.join(args)} did not start: {line!r}")
        self.base = "http://" + line.split()[-1]

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def stats(self):
        return json.loads(self.get("/stats")[2])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def load(base, stop, n):
    """Keeps /fib/n coming on one keep-alive connection until stop is set."""
    import http.client
    host, port = base[len("http://"):].rsplit(":", 1)
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", f"/fib/{n}")
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn = None
            stop.wait(0.05)


class Chromium:
    """Headless Chromium driven through the DevTools protocol on fds 3 and 4
    (--remote-debugging-pipe: JSON messages, each ended by a NUL)."""

    def __init__(self, binary, tmp):
        to_chrome = os.pipe()
        from_chrome = os.pipe()
        self.errlog = open(os.path.join(tmp, "chromium.err"), "w")

        def child_fds():
            a, b = os.dup(to_chrome[0]), os.dup(from_chrome[1])
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--mute-audio",
             "--disable-dev-shm-usage", "--hide-scrollbars",
             "--user-data-dir=" + os.path.join(tmp, "profile"),
             "--window-size=1400,1000", "--remote-debugging-pipe",
             "about:blank"],
            preexec_fn=child_fds, close_fds=False, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=self.errlog, stderr=self.errlog)
        os.close(to_chrome[0])
        os.close(from_chrome[1])
        self.w, self.r = to_chrome[1], from_chrome[0]
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        fail(f"chromium: {method}: {reply['error']}")
                    return reply["result"]
                self.events.append(reply)
            if not select.select([self.r], [], [], max(0.1, left()))[0]:
                fail(f"chromium did not answer {method} in time")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                self.errlog.flush()
                with open(self.errlog.name) as f:
                    tail = f.read()[-2000:]
                fail(f"chromium exited (during {method}); its stderr:\n{tail}")
            self.buf += chunk

    def open_page(self):
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": page["targetId"],
                                  "flatten": True})["sessionId"]
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1400, "height": 1000, "deviceScaleFactor": 1,
                   "mobile": False})

    def eval(self, expr):
        r = self.call("Runtime.evaluate",
                      {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            fail(f"evaluating {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_polls(self, n):
        polls = 0
        while left() > 0:
            polls = int(self.eval("document.body && document.body.dataset.polls"
                                  " || 0"))
            if polls >= n:
                return polls
            time.sleep(0.2)
        fail(f"the page polled /stats {polls} times, not {n}")

    def problems(self):
        """Exceptions thrown and errors logged by the page so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append("exception: " + d.get("exception", {}).get(
                    "description", d.get("text", "?")))
            elif m == "Runtime.consoleAPICalled" and p["type"] == "error":
                out.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append("log: " + p["entry"]["text"])
        return out

    def close(self):
        try:
            if self.proc.poll() is None:
                os.write(self.w, json.dumps({"id": 0, "method": "Browser.close"})
                         .encode() + b"\0")
                self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        else:  # its helpers (zygote, renderer) share its process group
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self.w, self.r):
            os.close(fd)
        self.errlog.close()


class Dom(html.parser.HTMLParser):
    """The attributes and the text of every element with an id; the body's
    attributes too."""
    VOID = {"meta", "link", "br", "img", "input", "hr", "area", "base",
            "col", "embed", "source", "track", "wbr"}

    def __init__(self, text):
        super().__init__()
        self.by_id, self.text, self.body, self.open = {}, {}, {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.by_id[a["id"]] = a
            self.text[a["id"]] = ""
        if tag not in self.VOID:
            self.open.append(a.get("id"))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.open:
            self.open.pop()

    def handle_data(self, data):
        for id_ in self.open:
            if id_ is not None:
                self.text[id_] += data


UNITS = {"ns": 1, "µs": 1e3, "ms": 1e6, "s": 1e9}


def shown_ns(text):
    """'5.24 ms' -> 5240000.0"""
    number, unit = text.split()
    return float(number) * UNITS[unit]


# Counts, per chart, the pixels of its canvas that are clearly coloured
# (axes, grid and labels are grey): a chart whose lines were drawn has many.
INK = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('figure')]
  .map(f => { const c = f.querySelector('canvas');
    if (!c.width || !c.height) return [f.id, 0];
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 3] > 0 && Math.max(d[i], d[i+1], d[i+2]) -
          Math.min(d[i], d[i+1], d[i+2]) > 60) n++;
    return [f.id, n]; })))"""


def value(dom, id_):
    el = dom.by_id.get(id_)
    if el is None:
        fail(f"no element #{id_} on the page")
    if "data-value" not in el:
        fail(f"#{id_} shows no value")
    return el["data-value"]


def check_live(chrome, srv, png):
    chrome.call("Page.navigate", {"url": srv.base + "/dashboard"})
    polls = chrome.wait_polls(POLLS)
    dom = Dom(chrome.eval("document.documentElement.outerHTML"))
    st = srv.stats()  # right after the page's numbers were taken
    ink = json.loads(chrome.eval(INK))
    shot = chrome.call("Page.captureScreenshot", {"format": "png"})
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print("check_dashboard: screenshot " + os.path.abspath(png))

    m = st.get("metrics")
    if not m:
        fail("/stats has no metrics in hybrid mode: " + json.dumps(st)[:300])
    if dom.body.get("data-state") != "live":
        fail(f"page state {dom.body.get('data-state')!r}, not 'live'")
    if dom.body.get("data-metrics") != "on":
        fail(f"page says metrics {dom.body.get('data-metrics')!r}")
    for name in CHARTS:
        fig = dom.by_id.get("chart-" + name, {})
        points = int(fig.get("data-points", 0))
        if not 1 < points <= polls + 1:
            fail(f"chart {name} holds {points} points after {polls} polls")
        if ink.get("chart-" + name, 0) < 50:
            fail(f"chart {name} drew nothing ({ink.get('chart-' + name)} "
                 "coloured pixels)")

    def close(id_, now, per_s, what):
        shown = float(value(dom, id_))
        # The page's last poll is at most a second old, plus the time the
        # checks above took: 2.5 s of drift allowed.
        if not 0 <= now - shown <= 2.5 * per_s + 20:
            fail(f"#{id_} shows {shown} {what}, /stats has {now} "
                 f"(at {per_s:.0f}/s)")

    def near(id_, now):  # cumulative percentiles move slowly under steady load
        shown = float(value(dom, id_))
        if not (shown > 0 and now > 0 and now / 4 <= shown <= now * 4):
            fail(f"#{id_} shows {shown} ns, /stats has {now} ns")
        # and the text says the same as data-value: 3 digits are shown
        if abs(shown_ns(dom.text[id_]) - shown) > shown * 0.01:
            fail(f"#{id_} reads {dom.text[id_]!r} but holds {shown} ns")

    for id_ in ("workers", "workers-busy", "queue-depth", "version", "mode"):
        if dom.text[id_].replace(",", "") != value(dom, id_):
            fail(f"#{id_} reads {dom.text[id_]!r} but holds "
                 f"{value(dom, id_)!r}")

    rates = st["rates"]
    checks = [
        (int(value(dom, "workers")) == m["workers"], "workers"),
        (0 <= int(value(dom, "workers-busy")) <= m["workers"], "workers-busy"),
        (int(value(dom, "queue-depth")) >= 0, "queue-depth"),
        (value(dom, "version") == st["version"], "version"),
        (value(dom, "mode") == st["mode"], "mode"),
        (0 <= st["uptime_s"] - float(value(dom, "uptime")) <= 2.5, "uptime"),
        (float(value(dom, "rps")) > 0, "rps"),
    ]
    for ok, id_ in checks:
        if not ok:
            fail(f"#{id_} shows {dom.by_id[id_].get('data-value')!r}; /stats: "
                 + json.dumps({k: st.get(k) for k in
                               ("uptime_s", "version", "mode")}
                              | {"workers": m["workers"],
                                 "workers_busy": m["workers_busy"]}))
    close("requests", st["requests"], rates["requests_per_s"], "requests")
    close("jobs-queued", st["jobs_queued"], rates["jobs_per_s"], "jobs queued")
    close("wait-count", m["wait"]["count"], rates["jobs_per_s"], "jobs waited")
    close("run-count", m["run"]["count"], rates["jobs_per_s"], "jobs run")
    near("wait-p99", m["wait"]["p99_ns"])
    near("run-p99", m["run"]["p99_ns"])
    near("lag-p99", m["loop"]["lag"]["p99_ns"])
    print(f"check_dashboard: {polls} polls; charts hold "
          + ", ".join(f"{n} {dom.by_id['chart-' + n]['data-points']}"
                      for n in CHARTS)
          + f"; workers {value(dom, 'workers-busy')}/{value(dom, 'workers')}"
          f", wait p99 {value(dom, 'wait-p99')} ns"
          f" (/stats {m['wait']['p99_ns']}), uptime {value(dom, 'uptime')} s"
          f" (/stats {st['uptime_s']}); least ink {min(ink.values())} px")


def check_inline(chrome, srv):
    chrome.call("Page.navigate", {"url": srv.base + "/dashboard"})
    chrome.wait_polls(2)
    dom = Dom(chrome.eval("document.documentElement.outerHTML"))
    notice = chrome.eval("document.getElementById('notice').hidden ? '' : "
                         "document.getElementById('notice').textContent")
    if dom.body.get("data-metrics") != "off" or "inline" not in notice:
        fail(f"inline: page says metrics {dom.body.get('data-metrics')!r}, "
             f"notice {notice!r}")
    for name in CHARTS[:-1]:
        fig = dom.by_id["chart-" + name]
        if "off" not in fig.get("class", "") or fig.get("data-points") != "0":
            fail(f"inline: chart {name} is shown, or holds points: {fig}")
    if int(dom.by_id["chart-rps"].get("data-points", 0)) < 1:
        fail("inline: the requests chart is empty")
    print("check_dashboard: --mode inline: the page says metrics are off "
          "and shows only the request rates")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    binary, png = sys.argv[1], sys.argv[2]
    chromium = find_chromium()
    if chromium is None:
        print("check_dashboard: chromium not found: skipped (Debian's "
              "chromium package; scripts/install-deps.sh installs it)")
        sys.exit(77)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("check_dashboard: "
                                                       "SIGTERM"))
    tmp = tempfile.mkdtemp(prefix="check_dashboard.")
    servers, stop, threads, chrome = [], threading.Event(), [], None
    try:
        srv = Server(binary)
        servers.append(srv)
        status, ctype, page = srv.get("/dashboard")
        if status != 200 or ctype != "text/html; charset=utf-8":
            fail(f"/dashboard: {status} {ctype}: {page[:80]!r}")
        if len(sys.argv) == 4:
            with open(sys.argv[3], "rb") as f:
                if f.read() != page:
                    fail("/dashboard differs from " + sys.argv[3])
        for _ in range(3):
            t = threading.Thread(target=load, args=(srv.base, stop, 27),
                                 daemon=True)
            t.start()
            threads.append(t)
        chrome = Chromium(chromium, tmp)
        chrome.open_page()
        try:
            check_live(chrome, srv, png)
            stop.set()
            inline = Server(binary, "--mode", "inline")
            servers.append(inline)
            check_inline(chrome, inline)
        finally:  # what the page said explains a failed check, too
            trouble = chrome.problems()
            if trouble:
                print("check_dashboard: the page reported:\n  "
                      + "\n  ".join(trouble), file=sys.stderr)
        if trouble:
            fail("the page threw or logged errors (above)")
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        if chrome is not None:
            chrome.close()
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("check_dashboard: ok")


if __name__ == "__main__":
    main()
