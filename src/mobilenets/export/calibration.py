"""The images int8 calibration uses, and how an image is named across datasets.

    calib = calibration_images("photos/", (224, 224), size=200, config=run_config)
    calib.images, calib.files, calib.note

A seeded sample of the training split (or of a folder of loose images); the
parity report leaves `calib.files` out, so it measures on images
calibration did not see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError

DEFAULT_CALIBRATION_SIZE = 200


@dataclass
class Calibration:
    """The images int8 calibration used, and which files they were."""

    images: np.ndarray  # uint8 (n, h, w, 3)
    files: list[str]  # `image_id` of each image: the parity report leaves these out
    note: str  # where they came from


def image_id(path) -> str:
    """What names an image across datasets: a file's resolved path, a built-in's pseudo path.

    Args:
        path: a `Path` (a file) or a string (a built-in dataset's `digits/train/00012`).
    """
    return str(Path(path).resolve()) if isinstance(path, Path) else str(path)


def calibration_images(data, image_size: tuple[int, int], size: int = DEFAULT_CALIBRATION_SIZE,
                       config: dict | None = None, seed: int = 0) -> Calibration:
    """Images for int8 calibration: a seeded sample of a dataset's training split.

    Args:
        data: what `mobilenets.data.open_dataset` accepts (a folder of class
            folders, "digits", ...), or a folder of loose images.
        image_size: `(height, width)` of the model.
        size: how many images (fewer if the data has fewer).
        config: the run config (its split percentages are used).
        seed: sample seed.

    Returns:
        A `Calibration`: the uint8 images, the files they came from and a note.
    """
    from mobilenets.data import IMAGE_EXTENSIONS, ImageFolder, open_dataset

    if size < 1:
        raise MobilenetsError(f"--calibration-size must be >= 1. Received {size}")
    config = config or {}
    rng = np.random.default_rng(seed)
    try:
        ds = open_dataset(data, validation_percent=config.get("validation_percent", 10),
                          test_percent=config.get("test_percent", 10))
    except MobilenetsError:
        folder = Path(data)
        if not folder.is_dir():
            raise
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise MobilenetsError(f"no images for calibration in {folder}") from None
        picked = [files[i] for i in sorted(rng.permutation(len(files))[:size])]
        images, kept = _calibration_load(picked, image_size)
        return Calibration(images, [image_id(picked[i]) for i in kept],
                           f"{folder} ({len(images)} images)")
    split = next((s for s in ("train", "val", "test") if s in ds.splits), None)
    if split is None:
        raise MobilenetsError(f"no images for calibration in {data}")
    files = [f for f, _ in ds.files(split)]
    picked = [files[i] for i in sorted(rng.permutation(len(files))[:size])]
    if isinstance(ds, ImageFolder):
        images, kept = _calibration_load(picked, image_size)
        picked = [picked[i] for i in kept]
    else:
        all_images, _, paths = ds.arrays(split, image_size)
        index = {p: i for i, p in enumerate(paths)}
        images = all_images[[index[p] for p in picked]]
    return Calibration(images, [image_id(p) for p in picked],
                       f"{data} ({split} split, {len(images)} images)")


def _calibration_load(paths, image_size) -> tuple[np.ndarray, list[int]]:
    images, kept = load_images(paths, image_size)
    if not kept:
        raise MobilenetsError("none of the calibration images could be read")
    return images, kept


def load_images(paths, image_size) -> tuple[np.ndarray, list[int]]:
    """Decode image files in parallel: `(uint8 images, indices of the readable paths)`.

    Files that are not readable images are left out, not raised.

    Args:
        paths: image files.
        image_size: `(height, width)` to resize to.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mobilenets.data import BadImage, load_image

    def one(p):
        try:
            return load_image(p, image_size)
        except BadImage:
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        loaded = list(pool.map(one, paths))
    kept = [i for i, im in enumerate(loaded) if im is not None]
    if not kept:
        return np.empty((0, *image_size, 3), np.uint8), kept
    return np.stack([loaded[i] for i in kept]), kept
