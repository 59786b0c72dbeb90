"""The README's screenshot of `mobilenets serve`: a run's page with images classified.

    .venv/bin/python docs/serve_screenshot.py runs/pokemon --drawn 3 --out docs/serve.png
    .venv/bin/python docs/serve_screenshot.py runs/pokemon ../shared/data/pokemon-types/Electric/025.jpg \
        --out /tmp/serve.png --evaluation /tmp/serve-eval.png

The README's copy shows pictures this script draws (`--drawn N`): the
artwork in ../shared may not be copied into the repository, screenshots
included.

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


def drawings(folder: Path, n: int) -> list[Path]:
    """Simple drawings: a yellow creature, a flame, a water drop (PNG files in `folder`)."""
    from PIL import Image, ImageDraw

    out = []
    for name in ("yellow-creature", "flame", "water-drop")[:n]:
        im = Image.new("RGB", (256, 256), (250, 250, 245))
        d = ImageDraw.Draw(im)
        if name == "yellow-creature":
            d.polygon([(70, 110), (40, 20), (100, 90)], fill=(250, 210, 40), outline=(30, 30, 30))
            d.polygon([(186, 110), (216, 20), (156, 90)], fill=(250, 210, 40), outline=(30, 30, 30))
            d.ellipse([60, 70, 196, 220], fill=(250, 215, 50), outline=(30, 30, 30), width=3)
            d.ellipse([95, 120, 113, 138], fill=(20, 20, 20))
            d.ellipse([143, 120, 161, 138], fill=(20, 20, 20))
            d.ellipse([75, 155, 100, 178], fill=(220, 40, 40))
            d.ellipse([156, 155, 181, 178], fill=(220, 40, 40))
        elif name == "flame":
            d.polygon([(128, 20), (200, 150), (180, 220), (76, 220), (56, 150)], fill=(240, 100, 20))
            d.polygon([(128, 90), (165, 170), (150, 215), (106, 215), (91, 170)], fill=(255, 200, 40))
        else:
            d.polygon([(128, 25), (190, 140), (66, 140)], fill=(40, 110, 220))
            d.ellipse([62, 95, 194, 230], fill=(40, 110, 220))
            d.ellipse([95, 140, 120, 175], fill=(170, 210, 255))
        path = folder / f"{name}.png"
        im.save(path)
        out.append(path)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="run folder or model file")
    p.add_argument("images", nargs="*", help="image files to classify in the page")
    p.add_argument("--drawn", type=int, default=0, metavar="N", help="also N pictures drawn here (up to 3)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--evaluation", metavar="OUT", help="also a PNG of the Evaluation tab")
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=760)
    args = p.parse_args(argv)

    from _chromium import DevToolsPage

    from mobilenets.serve import Server

    with Server(args.target, port=0) as server, tempfile.TemporaryDirectory() as tmp, \
            DevToolsPage(server.url, Path(tmp), size=(args.width, args.height)) as page:
        images = list(args.images) + drawings(Path(tmp), args.drawn)
        page.wait_for("document.body.dataset.ready")
        page.set_files("#file", images)
        page.wait_for(f"document.querySelectorAll('#results .card[data-top1]').length == {len(images)}")
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
