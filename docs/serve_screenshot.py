"""The README's screenshot of `mobilenets serve`: a run's page with real images classified.

    .venv/bin/python docs/serve_screenshot.py runs/pokemon ../shared/data/pokemon-types/Electric/025.jpg \
        ../shared/data/pokemon-types/Fire/004.jpg --out docs/serve.png

Starts the server on a free port, opens the page in headless Chromium (the
tests' DevTools driver), chooses the images in the page's file input with every
model side by side, waits for the answers and saves a PNG of the page; with
`--evaluation OUT` also one of the Evaluation tab.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="run folder or model file")
    p.add_argument("images", nargs="+", help="image files to classify in the page")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--evaluation", metavar="OUT", help="also a PNG of the Evaluation tab")
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=760)
    args = p.parse_args(argv)

    from _chromium import DevToolsPage

    from mobilenets.serve import Server

    with Server(args.target, port=0) as server, tempfile.TemporaryDirectory() as tmp, \
            DevToolsPage(server.url, Path(tmp), size=(args.width, args.height)) as page:
        page.wait_for("document.body.dataset.ready")
        page.set_files("#file", args.images)
        page.wait_for(f"document.querySelectorAll('#results .card[data-top1]').length == {len(args.images)}")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(Path(args.out), full_page=False)
        print(f"wrote {args.out}")
        if args.evaluation:
            page.evaluate("document.querySelector('nav .tab[data-tab=evaluation]').click()")
            page.wait_for("!!document.querySelector('#evalbody .gallery')")
            page.wait_for("[...document.images].every(i => i.complete)")
            page.screenshot(Path(args.evaluation), full_page=False)
            print(f"wrote {args.evaluation}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
