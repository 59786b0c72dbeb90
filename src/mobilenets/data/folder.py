"""`ImageFolder`: a folder of class folders, scanned, split and decoded once per size.

    data = ImageFolder("photos/", validation_percent=10, test_percent=10)
    images, labels, paths = data.arrays("train", (224, 224))
    for batch in data.stream("train", (224, 224), cache_dir="cache/images").batches(64): ...
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mobilenets.artifacts import write_json
from mobilenets.data.base import SPLITS, SPLIT_FOLDERS, ImageData, which_set, _check_percents, _split
from mobilenets.data.store import DiskImages, ImageSplit, MemoryImages, store_writer
from mobilenets.data.images import (BadImage, load_image, _check_resize_mode, _list_images, _loose_images,
                                    _size, _sniff, _subdirs)
from mobilenets.env import progress_bar
from mobilenets.errors import MobilenetsError

# Bump when decoding or the store changes, so stale .npy caches are not reused.
CACHE_VERSION = 2
_DECODE_CHUNK = 64
# Jobs of fewer items than this end before a progress bar is worth drawing.
_BAR_MIN_ITEMS = 500


class ImageFolder(ImageData):
    """A folder of class sub-folders, split into train / val / test.

    Attributes:
        root: the folder.
        layout: "split-folders" (train/ val/ test/ on disk) or "hashed"
            (one folder, split by file-name hash).
        classes: sorted class-folder names; labels index this list.
        skipped: `[{"path", "reason"}]` for files that could not be used.
    """

    def __init__(
        self,
        root: "str | os.PathLike",
        validation_percent: float = 10,
        test_percent: float = 10,
        *,
        workers: int | None = None,
        progress: bool | None = None,
        verify: bool = False,
    ):
        """Scan a folder of images.

        Args:
            root: the folder: class sub-folders, or `train/`, `val/` or
                `validation/`, and `test/` holding class sub-folders.
            validation_percent: percent of files hashed into "val" (when
                there is no val/ folder).
            test_percent: percent of files hashed into "test" (single-folder
                layout only; a pre-split layout without test/ has no test split).
            workers: decoding threads (default: CPU count).
            progress: show a progress bar (default: when stderr is a terminal).
            verify: decode every file now, so `report()` lists every bad file.
        """
        root = Path(root).expanduser()
        if not root.exists():
            raise MobilenetsError(f"no such folder: {root}")
        if not root.is_dir():
            raise MobilenetsError(f"not a folder: {root}")
        _check_percents(validation_percent, test_percent)
        self.root = root.absolute()
        self.name = str(self.root)
        self.validation_percent = validation_percent
        self.test_percent = test_percent
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.progress = progress
        self.skipped: list[dict] = []
        self._skipped_by_split: dict[str, list[dict]] = {}
        self.ignored = 0
        self._notes: list[str] = []
        self._memo: dict = {}
        self._decoded: set[str] = set()
        self._scan()
        if verify:
            self.verify()

    # -- scanning

    def _scan(self) -> None:
        split_dirs = {d: SPLIT_FOLDERS.get(d.name.lower()) for d in _subdirs(self.root)}
        trains = [d for d, s in split_dirs.items() if s == "train"]
        if trains and _subdirs(trains[0]):
            self.layout = "split-folders"
            sources = [(d, s) for d, s in split_dirs.items() if s]
            for d, s in split_dirs.items():
                if not s:
                    self._notes.append(f"ignored folder {d.name!r}: not train/, val/, validation/ or test/")
        else:
            self.layout = "hashed"
            sources = [(self.root, None)]
        has_val = any(s == "val" for _, s in sources)

        class_dirs: dict[str, list[tuple[Path, str | None]]] = {}
        for folder, split in sources:
            loose = _loose_images(folder)
            if loose:
                self.ignored += loose
                self._notes.append(f"ignored {loose} image(s) directly in {folder}: not in a class folder")
            for d in _subdirs(folder):
                class_dirs.setdefault(d.name, []).append((d, split))
        self.classes = sorted(class_dirs)
        if len(self.classes) < 2:
            found = f"1 class folder ({self.classes[0]!r})" if self.classes else "no class folders"
            raise MobilenetsError(
                f"found {found} in {self.root}; need at least 2 classes "
                "(one sub-folder per class, or train/ val/ test/ holding them)"
            )

        candidates: list[tuple[Path, int, str]] = []
        for label, name in enumerate(self.classes):
            for folder, split in class_dirs[name]:
                files, others = _list_images(folder)
                self.ignored += others
                for f in files:
                    if split is None:
                        s = which_set(f.name, self.validation_percent, self.test_percent)
                    elif split == "train" and not has_val:
                        s = which_set(f.name, self.validation_percent, 0)
                    else:
                        s = split
                    candidates.append((f, label, s))

        reasons = self._map(_sniff, [f for f, _, _ in candidates], "checking images")
        self._files: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
        for (f, label, s), reason in zip(candidates, reasons):
            if reason:
                self._skip(f, reason, s)
            else:
                self._files[s].append((f, label))

        counts = self.counts()
        for c in self.classes:
            if self.layout == "split-folders" and counts["train"][c] == 0:
                raise MobilenetsError(f"class {c!r} has no usable training images in {self.root}")
            if sum(counts[s][c] for s in SPLITS) == 0:
                raise MobilenetsError(f"class folder {c!r} has no usable images in {self.root}")

    def _skip(self, path: "Path | str", reason: str, split: str) -> None:
        entry = {"path": self._rel(path), "reason": reason}
        self.skipped.append(entry)
        self._skipped_by_split.setdefault(split, []).append(entry)

    def skipped_in(self, split: str) -> list[dict]:
        return list(self._skipped_by_split.get(_split(split), []))

    def _rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _labels(self, split: str) -> np.ndarray:
        return np.array([label for _, label in self._files[_split(split)]], dtype=np.int32)

    # -- public

    def files(self, split: str) -> list[tuple[Path, int]]:
        """The usable files of a split as `(path, label)`, sorted by class then path.

        Args:
            split: "train", "val" (or "validation") or "test".
        """
        return list(self._files[_split(split)])

    def report(self) -> dict:
        out = super().report()
        out.update(
            layout=self.layout,
            validation_percent=self.validation_percent,
            test_percent=self.test_percent if self.layout == "hashed" else None,
            decoded=[s for s in SPLITS if s in self._decoded],
            skipped=list(self.skipped),
            ignored=self.ignored,
        )
        out["warnings"] = self._notes + out["warnings"]
        return out

    def verify(self) -> None:
        """Decode every file once (small) so `skipped` lists all bad files."""
        for split in SPLITS:
            if split not in self._decoded and self._files[split]:
                self._decode_split(split, (32, 32), "stretch", sink=None)

    def arrays(self, split: str, image_size=None, resize_mode: str = "stretch",
               cache_dir: "str | os.PathLike | None" = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A split decoded and resized: `(uint8 images (N, h, w, 3), int32 labels (N,), paths)`.

        Each file is decoded once per image size (in parallel); files that fail
        to decode are skipped and reported. The whole split is returned in
        memory: `stream` reads a large one a batch at a time instead.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square). Required.
            resize_mode: "stretch" or "center_crop".
            cache_dir: keep (and reuse) the decoded split as .npy here, keyed
                by the file list, sizes, mtimes and the image size.
        """
        images = self.stream(split, image_size, resize_mode, cache_dir)
        return images.read(), images.labels, images.paths

    def stream(self, split: str, image_size=None, resize_mode: str = "stretch",
               cache_dir: "str | os.PathLike | None" = None) -> ImageSplit:
        """A split decoded and resized once, as an `ImageSplit` read in batches.

        With `cache_dir` the images are decoded chunk by chunk into a .npy
        there (reused by later runs while the files are unchanged) and read
        back in batches, so memory does not grow with the split; without it
        they are held in memory.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square). Required.
            resize_mode: "stretch" or "center_crop".
            cache_dir: the folder of decoded-image stores.
        """
        split = _split(split)
        size = _size(image_size)
        if size is None:
            raise MobilenetsError(f"image_size is needed to decode {self.root}: e.g. (224, 224)")
        _check_resize_mode(resize_mode)
        key = (split, size, resize_mode)
        memo = (*key, str(Path(cache_dir).absolute()) if cache_dir else None)
        # A store in a scratch folder (evaluate's, a --no-cache run's) is gone once that ends.
        if memo not in self._memo or not self._memo[memo].readable():
            if cache_dir:
                self._memo[memo] = self._load_cache(cache_dir, *key) or self._decode_to_disk(cache_dir, *key)
            else:
                self._memo[memo] = self._decode_to_memory(*key)
        return self._memo[memo]

    # -- decoding

    def _decode_to_memory(self, split, size, resize_mode) -> MemoryImages:
        rows = _Rows(len(self._files[split]), (*size, 3))
        self._decode_split(split, size, resize_mode, sink=rows)
        return MemoryImages(rows.images, self._labels(split), self._paths(split))

    def _decode_to_disk(self, cache_dir, split, size, resize_mode) -> DiskImages:
        cache_dir = Path(cache_dir)
        key = self._cache_key(split, size, resize_mode)
        with store_writer(cache_dir / f"{key}.npy", len(self._files[split]), (*size, 3)) as writer:
            bad = self._decode_split(split, size, resize_mode, sink=writer)
        # The .json is written last: a cache entry counts only when both exist.
        write_json(cache_dir / f"{key}.json", {"count": writer.count, "sha256": writer.content_key,
                                                "skipped": [(self._rel(p), r) for p, r in bad]})
        return DiskImages(cache_dir / f"{key}.npy", self._labels(split), self._paths(split), writer.content_key)

    def _decode_split(self, split, size, resize_mode, sink) -> list:
        """Decode a split in order, a chunk at a time, into `sink.append` (None: only check the files).

        Returns the `(path, reason)` of the files that failed, which are also
        skipped from now on.
        """
        files = self._files[split]

        def decode(chunk):
            good, reasons = [], []
            for path, _ in chunk:
                try:
                    image = load_image(path, size, resize_mode)
                except BadImage as e:
                    reasons.append(e.reason)
                    continue
                reasons.append(None)
                if sink is not None:
                    good.append(image)
            return (np.stack(good) if good else None), reasons

        reasons = []
        for images, part in self._chunks(decode, files, f"decoding {split}"):
            if images is not None:
                sink.append(images)
            reasons.extend(part)
        bad = [(f, r) for (f, _), r in zip(files, reasons) if r is not None]
        for path, reason in bad:
            self._skip(path, reason, split)
        self._files[split] = [item for item, r in zip(files, reasons) if r is None]
        self._decoded.add(split)
        return bad

    def _paths(self, split: str) -> list[str]:
        return [str(f) for f, _ in self._files[split]]

    def _map(self, fn, items: list, description: str) -> list:
        """`[fn(x) for x in items]` on the thread pool, in order, with a progress bar."""
        return [y for part in self._chunks(lambda chunk: [fn(x) for x in chunk], items, description)
                for y in part]

    def _chunks(self, fn, items: list, description: str):
        """`fn(chunk)` for consecutive chunks of `items` on the thread pool, yielded in order.

        At most a few chunks per worker are in flight, so results (decoded
        images) never pile up faster than the caller consumes them.
        """
        if not items:
            return
        chunks = [items[i:i + _DECODE_CHUNK] for i in range(0, len(items), _DECODE_CHUNK)]
        with progress_bar(description, len(items), self.progress, min_total=_BAR_MIN_ITEMS) as bar:
            if self.workers == 1 or len(chunks) == 1:
                for chunk in chunks:
                    yield fn(chunk)
                    bar.advance(len(chunk))
                return
            with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
                pending = collections.deque()
                for chunk in chunks:
                    pending.append((pool.submit(fn, chunk), len(chunk)))
                    if len(pending) >= 2 * self.workers:
                        future, n = pending.popleft()
                        yield future.result()
                        bar.advance(n)
                while pending:
                    future, n = pending.popleft()
                    yield future.result()
                    bar.advance(n)

    # -- disk cache

    def _cache_key(self, split, size, resize_mode) -> str:
        rows = []
        for f, label in self._files[split]:
            st = f.stat()
            rows.append([self._rel(f), label, st.st_size, st.st_mtime_ns])
        blob = json.dumps({"version": CACHE_VERSION, "root": str(self.root), "size": list(size),
                           "resize_mode": resize_mode, "classes": self.classes, "files": rows})
        digest = hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]
        return f"{split}-{size[0]}x{size[1]}-{resize_mode}-{digest}"

    def _load_cache(self, cache_dir, split, size, resize_mode) -> DiskImages | None:
        cache_dir = Path(cache_dir)
        key = self._cache_key(split, size, resize_mode)
        meta_path, npy_path = cache_dir / f"{key}.json", cache_dir / f"{key}.npy"
        if not (meta_path.is_file() and npy_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            bad = {rel: reason for rel, reason in meta["skipped"]}
            keep = [(f, label) for f, label in self._files[split] if self._rel(f) not in bad]
            labels = np.array([label for _, label in keep], np.int32)
            images = DiskImages(npy_path, labels, [str(f) for f, _ in keep], meta["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if images.image_shape != (*size, 3) or meta["count"] != len(keep):
            return None
        for rel, reason in bad.items():
            self._skip(rel, reason, split)
        self._files[split] = keep
        self._decoded.add(split)
        return images


class _Rows:
    """The in-memory sink of `_decode_split`: chunks copied into one preallocated array."""

    def __init__(self, capacity: int, image_shape):
        self._images = np.empty((capacity, *image_shape), np.uint8)
        self.count = 0

    def append(self, images: np.ndarray) -> None:
        self._images[self.count:self.count + len(images)] = images
        self.count += len(images)

    @property
    def images(self) -> np.ndarray:
        return self._images[:self.count]
