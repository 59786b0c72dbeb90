"""Headless Chromium for the tests: render an HTML file (DOM after load, screenshot), or drive a live page.

`render`: a copy of the page gets a tiny script that, once every image has loaded,
writes a marker element: how many <img> decoded (naturalWidth > 0), how many
table rows there are, and which row comes first after sorting a column each
way (so the inline sort script is exercised too). `--dump-dom` prints the DOM
with the marker; `--screenshot` shows what a person would see.

`DevToolsPage`: a live page (the `serve` page) driven over the DevTools
protocol: evaluate JavaScript, choose files in a file input, screenshot.
"""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-dev-shm-usage"]

PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var table = document.getElementById('results');
  var rows = table ? table.tBodies[0].rows.length : 0;
  var order = [];
  if (table && SORT_COLUMN >= 0) {
    var th = table.tHead.rows[0].cells[SORT_COLUMN];
    th.click(); order.push(table.tBodies[0].rows[0].cells[0].textContent);
    th.click(); order.push(table.tBodies[0].rows[0].cells[0].textContent);
  }
  var d = document.createElement('div');
  d.id = 'probe';
  d.textContent = 'PROBE images=' + ok + '/' + imgs.length + ' rows=' + rows +
    ' sorted=' + order.join(',') + ' END';
  document.body.appendChild(d);
});
</script>
"""


def chromium() -> str:
    """The chromium binary, or skip the test."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed (make test installs it where apt-get works)")
    return exe


def render(page: Path, tmp: Path, sort_column: int = -1, size=(1200, 1800)) -> dict:
    """Load `page` in headless Chromium; return the probe's findings and a screenshot array.

    Args:
        page: the HTML file.
        tmp: a scratch folder (profile, probed copy, screenshot).
        sort_column: a column of table#results to click twice (-1: none).
        size: the window size for the screenshot.
    """
    exe = chromium()
    probed = tmp / "probed.html"
    text = page.read_text()
    probed.write_text(text.replace("</body>", PROBE.replace("SORT_COLUMN", str(sort_column)) + "</body>"))
    common = [exe, *FLAGS, f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run(common + ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    shot = tmp / "screenshot.png"
    subprocess.run(common + [f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}",
                             page.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r"PROBE images=(\d+)/(\d+) rows=(\d+) sorted=([^ ]*) END", dom)
    assert m, f"the probe did not run; chromium printed: {dom[:300]!r}"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")) if shot.is_file() else None
    return {"images_ok": int(m.group(1)), "images": int(m.group(2)), "rows": int(m.group(3)),
            "sorted": [s for s in m.group(4).split(",") if s], "dom": dom, "screenshot": pixels}


def looks_drawn(pixels: np.ndarray) -> bool:
    """A screenshot with content: enough non-white pixels and many colours."""
    if pixels is None:
        return False
    non_white = (pixels.min(axis=2) < 240).mean()
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    return non_white > 0.03 and colours > 50


class DevToolsPage:
    """A page in headless Chromium driven over the DevTools protocol, on a pipe.

        with DevToolsPage("http://127.0.0.1:8000/", tmp_path) as page:
            page.wait_for("document.body.dataset.ready")
            page.set_files("#file", [Path("cat.jpg")])
            page.screenshot(tmp_path / "page.png")

    `--remote-debugging-pipe` makes Chromium read commands on fd 3 and write
    answers and events on fd 4, as NUL-terminated JSON: no websocket library
    and no Playwright (whose browsers cannot be downloaded here) are needed.
    """

    def __init__(self, url: str, tmp: Path, size=(1280, 900)):
        import fcntl
        import os
        import sys

        exe = chromium()
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # A trampoline puts the pipe ends on fds 3 and 4, where Chromium looks for them.
        trampoline = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
                      "os.dup2(r, 3); os.dup2(w, 4); os.execv(sys.argv[3], sys.argv[3:])")
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(high[0]), str(high[1]), exe, *FLAGS,
             "--remote-debugging-pipe", f"--user-data-dir={tmp / 'devtools-profile'}",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            pass_fds=high, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_chrome_r, from_chrome_w, *high):
            os.close(fd)
        self._buffer = b""
        self._id = 0
        self._session = None
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                      deviceScaleFactor=1, mobile=False)
            self.call("Page.navigate", url=url)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        """Send one command (to the page once attached) and return its result."""
        import json
        import os
        import select
        import time

        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited while answering {method}")
            self._buffer += chunk

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        """Poll a JavaScript expression until it is truthy; return its value."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is still loading
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            time.sleep(0.1)

    def set_files(self, selector: str, paths) -> None:
        """Choose files in an <input type=file>, as a person does (its change event fires)."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        assert node, f"no {selector} in the page"
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(Path(p).resolve()) for p in paths])

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (its whole height with full_page)."""
        import base64

        params = {"format": "png"}
        if full_page:
            content = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": content["width"], "height": content["height"], "scale": 1})
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return Path(path)

    def close(self) -> None:
        import os

        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "DevToolsPage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
