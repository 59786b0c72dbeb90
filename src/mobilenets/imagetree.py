"""Image folder trees written safely: upright pixels in, RGB out, complete or absent.

    with atomic_tree(Path("faces-out"), overwrite=False) as tmp:
        save_image(as_rgb(read_image(Path("a.jpg"))), tmp / "cls" / "a.jpg")

The small pieces that `faces` (face-cropped copies of a folder) and
`imdb_wiki` (IMDB-WIKI as `female/ male/` folders) both build their trees
from, kept below both so that `imdb_wiki` (and `data`, which opens .mat
files through it) needs nothing of face detection.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError

# The report written into every folder tree made from these pieces.
REPORT_NAME = "faces.json"


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An image as HxWx3 uint8 RGB.

    Args:
        image: HxW or HxWx1 greyscale (repeated into 3 channels), HxWx3 RGB
            (returned as is), or HxWx4 RGBA (alpha dropped); uint8.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise MobilenetsError(f"images must be uint8 (0-255). Received dtype={image.dtype}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        if image.shape[2] == 3:
            return image
        if image.shape[2] == 4:
            return np.ascontiguousarray(image[:, :, :3])
        image = image[:, :, 0]
    if image.ndim != 2 or 0 in image.shape:
        raise MobilenetsError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image. Received shape={image.shape}")
    return np.repeat(image[:, :, None], 3, axis=2)


def expand_box(box, margin: float, shape) -> "tuple[int, int, int, int]":
    """Widen a box by `margin` x its size on every side, clamped to the image.

    Args:
        box: `(x1, y1, x2, y2)`, floats allowed.
        margin: fraction of the box width (height) added left and right
            (top and bottom).
        shape: the image's `(height, width, ...)`.

    Returns:
        Integer `(x1, y1, x2, y2)` inside the image, at least 1 pixel wide.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    h, w = shape[:2]
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    ix1 = min(w - 1, max(0, math.floor(x1 - dx)))
    iy1 = min(h - 1, max(0, math.floor(y1 - dy)))
    ix2 = max(ix1 + 1, min(w, math.ceil(x2 + dx)))
    iy2 = max(iy1 + 1, min(h, math.ceil(y2 + dy)))
    return ix1, iy1, ix2, iy2


def read_image(path: Path) -> "np.ndarray | None":
    """RGB or greyscale uint8 pixels, upright per EXIF; None if unreadable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im = im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB")
            return np.asarray(im)
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def save_image(pixels: np.ndarray, path: Path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def check_dst(dst: Path, overwrite: bool, inside: Path | None = None):
    if inside is not None:
        s, d = inside.resolve(), dst.resolve()
        if d == s or s in d.parents:
            raise MobilenetsError(f"the output folder must be outside the input folder. Received dst={dst}")
    if dst.exists() and not overwrite:
        raise MobilenetsError(f"output folder exists: {dst} (remove it or pass overwrite=True)")


@contextlib.contextmanager
def atomic_tree(dst: Path, overwrite: bool):
    """Yield a temporary folder beside `dst`; rename it onto `dst` on success.

    A folder tree cannot be swapped in with one rename the way a file can, so
    an old `dst` is moved aside first, then deleted.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        old = None
        if dst.exists() and overwrite:
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
            os.replace(dst, old / "tree")
        try:
            os.replace(tmp, dst)
        except OSError:  # another process made `dst` meanwhile
            raise MobilenetsError(f"output folder exists: {dst} (remove it or pass overwrite=True)") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parallel_map(fn, items, workers: int | None) -> list:
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    if workers < 1:
        raise MobilenetsError(f"workers must be >= 1. Received workers={workers}")
    if workers == 1:
        return [fn(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))
