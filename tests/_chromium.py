"""Render an HTML file in headless Chromium: the DOM after load, and a screenshot.

A copy of the page gets a tiny script that, once every image has loaded,
writes a marker element: how many <img> decoded (naturalWidth > 0), how many
table rows there are, and which row comes first after sorting a column each
way (so the inline sort script is exercised too). `--dump-dom` prints the DOM
with the marker; `--screenshot` shows what a person would see.
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
