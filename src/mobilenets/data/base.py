"""What every dataset offers (`ImageData`), and the stable hash split of TF-Hub's retrain.py.

    which_set("cat_nohash_2.jpg", validation_percent=10, test_percent=10)  # "train", "val" or "test"
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from mobilenets.artifacts import write_json
from mobilenets.augment import Augment
from mobilenets.data.pipeline import make_dataset
from mobilenets.data.store import ImageSplit, MemoryImages
from mobilenets.errors import MobilenetsError

SPLITS = ("train", "val", "test")
# Folder names of a pre-split layout, and the split each one holds.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
# retrain.py's constant: the hash is taken modulo this + 1, so the split of a
# file never depends on how many files there are.
MAX_NUM_IMAGES_PER_CLASS = 2**27 - 1
# retrain.py warns below this many images in a class.
MIN_IMAGES_PER_CLASS = 20
# `dataset()` serves a split up to this size from one in-graph tensor (the
# fastest gather, e.g. all of CIFAR-10 at 32 px); a larger one is read from
# its store on disk a batch at a time, so memory stays bounded.
IN_MEMORY_BYTES = 256 * 2**20
_NOHASH_RE = re.compile(r"_nohash_.*$")


def which_set(filename: str, validation_percent: float = 10, test_percent: float = 10) -> str:
    """The split a file belongs to, from a stable hash of its name.

    The same rule as TF-Hub's `retrain.py`: SHA-1 of the base name with any
    `_nohash_...` suffix removed, mapped to a percentage. Adding or removing
    other files never moves this one.

    Args:
        filename: a file name or path (only the base name counts).
        validation_percent: percent of files that go to "val".
        test_percent: percent of files that go to "test".

    Returns:
        "train", "val" or "test".
    """
    name = _NOHASH_RE.sub("", os.path.basename(str(filename)))
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()
    percentage = (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)
    if percentage < validation_percent:
        return "val"
    if percentage < validation_percent + test_percent:
        return "test"
    return "train"


class ImageData:
    """What every dataset offers: classes, splits, arrays, tf.data, a report.

    Subclasses fill `classes`, `_labels(split)`, `arrays()` and `files()`.
    """

    name: str = ""
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits that hold at least one image, in train/val/test order."""
        return tuple(s for s in SPLITS if len(self._labels(s)))

    def split_sizes(self) -> dict[str, int]:
        return {s: int(len(self._labels(s))) for s in SPLITS}

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class in each split: `{split: {class: n}}`."""
        out = {}
        for s in SPLITS:
            per = np.bincount(np.asarray(self._labels(s), dtype=np.int64), minlength=self.num_classes)
            out[s] = {c: int(n) for c, n in zip(self.classes, per)}
        return out

    @property
    def warnings(self) -> list[str]:
        counts = self.counts()
        out = []
        for c in self.classes:
            total = sum(counts[s][c] for s in SPLITS)
            if total < MIN_IMAGES_PER_CLASS:
                out.append(f"class {c!r} has only {total} images (fewer than "
                           f"{MIN_IMAGES_PER_CLASS}); expect poor accuracy on it")
        for s in self.splits:
            missing = [c for c in self.classes if counts[s][c] == 0]
            if missing:
                out.append(f"the {s!r} split has no images of class(es) {', '.join(map(repr, missing))}")
        return out

    def report(self) -> dict:
        """A JSON-serialisable summary: classes, counts per split, skipped files, warnings."""
        return {
            "root": self.name,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "counts": self.counts(),
            "sizes": self.split_sizes(),
            "total": sum(self.split_sizes().values()),
            "skipped": [],
            "warnings": self.warnings,
        }

    def skipped_in(self, split: str) -> list[dict]:
        """The files of one split that could not be used so far, as `[{"path", "reason"}]`.

        A split's files are decoded when `arrays()` or `dataset()` first reads
        them; files that are not images at all are known from the start.
        """
        return []

    def write_report(self, path: "str | os.PathLike") -> Path:
        """Write `report()` as JSON, atomically.

        Args:
            path: the JSON file to write.
        """
        return write_json(path, self.report())

    def _labels(self, split: str) -> np.ndarray:
        raise NotImplementedError

    def arrays(self, split: str, image_size=None, resize_mode: str = "stretch",
               cache_dir=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        raise NotImplementedError

    def stream(self, split: str, image_size=None, resize_mode: str = "stretch", cache_dir=None) -> ImageSplit:
        """A split as an `ImageSplit`, read a batch at a time (here: the in-memory arrays).

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square).
            resize_mode: "stretch" or "center_crop".
            cache_dir: where a dataset that decodes files keeps the decoded split.
        """
        return MemoryImages(*self.arrays(split, image_size, resize_mode=resize_mode, cache_dir=cache_dir))

    def dataset(
        self,
        split: str,
        image_size=None,
        batch_size: int = 32,
        shuffle: bool = False,
        augment: "Augment | str | None" = None,
        seed: int | None = None,
        cache_dir: "str | os.PathLike | None" = None,
        resize_mode: str = "stretch",
        drop_remainder: bool = False,
    ):
        """A `tf.data.Dataset` of `(float32 images 0..255 (B, h, w, 3), int32 labels (B,))`.

        The split is decoded and resized once (see `stream`) and served from
        memory, or with `cache_dir` read from its store on disk a batch at a
        time; shuffling and augmentation happen inside tf.data.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square).
            batch_size: images per batch.
            shuffle: reshuffle the examples every epoch.
            augment: an `Augment` (or text for `Augment.parse`); None for none.
            seed: makes shuffling and augmentation reproducible.
            cache_dir: keep the decoded split as .npy here (for the next run too).
            resize_mode: "stretch" or "center_crop".
            drop_remainder: drop the last incomplete batch.
        """
        split = _split(split)
        images = self.stream(split, image_size, resize_mode=resize_mode, cache_dir=cache_dir)
        if not len(images):
            raise MobilenetsError(f"the {split!r} split of {self.name} is empty")
        if images.nbytes <= IN_MEMORY_BYTES:
            images = MemoryImages(images.read(), images.labels, images.paths)  # one tensor: fastest
        return make_dataset(images, images.labels, batch_size=batch_size, shuffle=shuffle,
                            augment=augment, seed=seed, drop_remainder=drop_remainder)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={n}" for s, n in self.split_sizes().items())
        return f"{type(self).__name__}({self.name!r}, classes={self.num_classes}, {sizes})"


def _split(split: str) -> str:
    name = SPLIT_FOLDERS.get(str(split).lower())
    if name is None:
        raise MobilenetsError(f"split must be one of train, val, test. Received split={split!r}")
    return name


def _check_percents(validation_percent: float, test_percent: float) -> None:
    if validation_percent < 0 or test_percent < 0 or validation_percent + test_percent >= 100:
        raise MobilenetsError(
            "validation_percent and test_percent must be >= 0 and sum to less than 100. "
            f"Received validation_percent={validation_percent}, test_percent={test_percent}"
        )
