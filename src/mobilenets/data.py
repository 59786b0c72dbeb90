"""Image data: class folders, built-in datasets and a fast tf.data pipeline.

    data = open_dataset("photos/")   # or "digits", "cifar10", "cifar10:PATH", "photos.tar.gz"
    train = data.dataset("train", (224, 224), shuffle=True, augment=Augment.parse("flip"), seed=0)

An `ImageFolder` is a directory with one sub-folder per class (images found
recursively inside each), either already split (`train/`, `val/` or
`validation/`, `test/`, each holding the class folders) or split here by a
stable hash of each file name, exactly as TF-Hub's `retrain.py` does: a file
stays in its split when more images are added, and `name_nohash_2.jpg` lands
with `name_nohash_1.jpg`.

Files are checked cheaply while scanning (empty files and files that are not
images are skipped) and each is decoded once, in a thread pool, when a split
is first asked for at an image size; a file that fails to decode (truncated,
corrupt) is skipped then. Skipped files are listed with their reason in
`report()`; `verify()` decodes everything up front for a complete report.

The decoded split is a uint8 array held in memory (optionally cached on disk
as .npy); `dataset()` serves it through tf.data with shuffling, augmentation
as TF ops (`mobilenets.augment`), batching and prefetching.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import json
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np

from mobilenets.artifacts import atomic_path, remove_stale, scratch_dir, write_json
from mobilenets.augment import Augment, augment_fn
from mobilenets.env import first_line, progress_bar
from mobilenets.errors import MobilenetsError

# The one list of image files, for folders, face crops, prediction and calibration alike.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
# Folder names of a pre-split layout, and the split each one holds.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
RESIZE_MODES = ("stretch", "center_crop")

# retrain.py's constant: the hash is taken modulo this + 1, so the split of a
# file never depends on how many files there are.
MAX_NUM_IMAGES_PER_CLASS = 2**27 - 1
# retrain.py warns below this many images in a class.
MIN_IMAGES_PER_CLASS = 20

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DIGITS_SEED = 0
# Bump when decoding changes, so stale .npy caches are not reused.
CACHE_VERSION = 1

_NOHASH_RE = re.compile(r"_nohash_.*$")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_DECODE_CHUNK = 64
# Jobs of fewer items than this end before a progress bar is worth drawing.
_BAR_MIN_ITEMS = 500
# tarfile's filter errors (Python >= 3.10.12); older Pythons get our own checks.
_FilterError = getattr(tarfile, "FilterError", tarfile.TarError)


class BadImage(MobilenetsError):
    """A file that cannot be used as an image; `reason` says why in a few words."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# --------------------------------------------------------------------------- files


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


def load_image(path: "str | os.PathLike", size=None, resize_mode: str = "stretch") -> np.ndarray:
    """Decode an image file to an RGB uint8 array, whatever its format.

    Greyscale, palette, CMYK and 16-bit images become 8-bit RGB (16-bit
    values are scaled, not clipped); transparent images are composited on
    white; JPEG EXIF orientation is applied; GIF/WebP give their first frame.

    Args:
        path: the image file.
        size: `(height, width)` (or one int: square) to resize to with
            bilinear filtering; `None` keeps the image's own size.
        resize_mode: "stretch" (resize to exactly `size`) or "center_crop"
            (crop the largest centred box of the target aspect ratio first).

    Returns:
        An `(H, W, 3)` uint8 array.

    Raises:
        BadImage: the file is empty, not an image, truncated or corrupt.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = _size(size)
    _check_resize_mode(resize_mode)
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadImage(path, "empty file (0 bytes)")
        with Image.open(path) as im:
            if size is not None:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the target
                # is much smaller; the draft stays at least `size` each way,
                # in either orientation.
                side = max(size)
                im.draft(None, (side, side))
            im.load()
            im = ImageOps.exif_transpose(im)
            im = _to_rgb(im)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(path, "not an image (unrecognised file contents)") from None
    except Image.DecompressionBombError as e:
        raise BadImage(path, f"too large to decode safely: {first_line(e)}") from None
    except FileNotFoundError:
        if path.is_symlink():
            raise BadImage(path, f"broken symbolic link (to {os.readlink(path)}, which does not exist)") from None
        raise BadImage(path, "file not found") from None
    except PermissionError:
        raise BadImage(path, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, OSError) and e.errno == errno.ELOOP:
            raise BadImage(path, "symbolic link loop") from None
        message = first_line(e)
        if "truncated" in message.lower():
            raise BadImage(path, "truncated image data") from None
        raise BadImage(path, f"corrupt image: {message}") from None
    if size is not None:
        im = _resize(im, size, resize_mode)
    return np.array(im, dtype=np.uint8)


def _to_rgb(im):
    """Any Pillow image as an 8-bit RGB Pillow image."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = values.max(initial=0)
        if mode.startswith("I;16") or 255 < top <= 65535:
            top = 65535
        elif top <= 255:
            top = 255
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _resize(im, size: tuple[int, int], resize_mode: str):
    from PIL import Image

    h, w = size
    if resize_mode == "center_crop":
        # Crop first, so no pixel from outside the box bleeds in.
        iw, ih = im.size
        cw, ch = min(iw, round(ih * w / h)), min(ih, round(iw * h / w))
        left, top = (iw - cw) // 2, (ih - ch) // 2
        im = im.crop((left, top, left + cw, top + ch))
    if im.size == (w, h):
        return im
    return im.resize((w, h), Image.Resampling.BILINEAR)


def _sniff(path: Path) -> str | None:
    """Why `path` is not an image, from its first bytes; None if it looks fine."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    # Not one of the usual signatures: ask Pillow (a TIFF named .png is fine).
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return None
    except UnidentifiedImageError:
        return "not an image (unrecognised file contents)"
    except Exception as e:  # noqa: BLE001 - any failure here means unusable
        return f"corrupt image: {first_line(e)}"


def _list_images(folder: Path) -> tuple[list[Path], int]:
    """Image files under `folder` (recursive, sorted, hidden skipped), and how many other files."""
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(Path(dirpath) / name)
            else:
                others += 1
    return images, others


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _loose_images(folder: Path) -> int:
    return sum(1 for f in folder.iterdir() if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS))


# --------------------------------------------------------------------------- datasets


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

        The split is decoded and resized once (see `arrays`) and served from
        memory; shuffling and augmentation happen inside tf.data.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square).
            batch_size: images per batch.
            shuffle: reshuffle the examples every epoch.
            augment: an `Augment` (or text for `Augment.parse`); None for none.
            seed: makes shuffling and augmentation reproducible.
            cache_dir: keep the decoded array as .npy here for the next run.
            resize_mode: "stretch" or "center_crop".
            drop_remainder: drop the last incomplete batch.
        """
        split = _split(split)
        images, labels, _ = self.arrays(split, image_size, resize_mode=resize_mode, cache_dir=cache_dir)
        if not len(images):
            raise MobilenetsError(f"the {split!r} split of {self.name} is empty")
        return make_dataset(images, labels, batch_size=batch_size, shuffle=shuffle,
                            augment=augment, seed=seed, drop_remainder=drop_remainder)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={n}" for s, n in self.split_sizes().items())
        return f"{type(self).__name__}({self.name!r}, classes={self.num_classes}, {sizes})"


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
                self._decode_split(split, (32, 32), "stretch", keep=False)

    def arrays(self, split: str, image_size=None, resize_mode: str = "stretch",
               cache_dir: "str | os.PathLike | None" = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A split decoded and resized: `(uint8 images (N, h, w, 3), int32 labels (N,), paths)`.

        Each file is decoded once per image size (in parallel) and the result
        kept in memory; files that fail to decode are skipped and reported.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int (square). Required.
            resize_mode: "stretch" or "center_crop".
            cache_dir: keep (and reuse) the decoded array as .npy here, keyed
                by the file list, sizes, mtimes and the image size.
        """
        split = _split(split)
        size = _size(image_size)
        if size is None:
            raise MobilenetsError(f"image_size is needed to decode {self.root}: e.g. (224, 224)")
        _check_resize_mode(resize_mode)
        key = (split, size, resize_mode)
        if key not in self._memo:
            cached = self._load_cache(cache_dir, *key) if cache_dir else None
            self._memo[key] = cached or self._decode_split(split, size, resize_mode, cache_dir=cache_dir)
        return self._memo[key]

    # -- decoding

    def _decode_split(self, split, size, resize_mode, keep=True, cache_dir=None):
        files = self._files[split]
        cache_key = self._cache_key(split, size, resize_mode) if cache_dir else None
        h, w = size
        images = np.empty((len(files), h, w, 3), np.uint8) if keep else None

        def decode(item):
            # Each worker writes its own row, so no list of arrays piles up.
            i, path = item
            try:
                array = load_image(path, size, resize_mode)
            except BadImage as e:
                return e.reason
            if keep:
                images[i] = array
            return None

        reasons = self._map(decode, [(i, f) for i, (f, _) in enumerate(files)], f"decoding {split}")
        ok = np.array([r is None for r in reasons], bool)
        bad = [(f, r) for (f, _), r in zip(files, reasons) if r is not None]
        for path, reason in bad:
            self._skip(path, reason, split)
        self._files[split] = [f for f, good in zip(files, ok) if good]
        self._decoded.add(split)
        if not keep:
            return None
        if bad:
            images = images[ok]
        labels = self._labels(split)
        paths = [str(f) for f, _ in self._files[split]]
        if cache_dir:
            self._save_cache(cache_dir, cache_key, images, [(self._rel(p), r) for p, r in bad])
        return images, labels, paths

    def _map(self, fn, items: list, description: str) -> list:
        """`[fn(x) for x in items]` on the thread pool, in order, with a progress bar."""
        if not items:
            return []
        chunks = [items[i:i + _DECODE_CHUNK] for i in range(0, len(items), _DECODE_CHUNK)]
        out = []
        with progress_bar(description, len(items), self.progress, min_total=_BAR_MIN_ITEMS) as bar:
            if self.workers == 1 or len(chunks) == 1:
                for chunk in chunks:
                    out.extend(fn(x) for x in chunk)
                    bar.advance(len(chunk))
                return out
            with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
                for part in pool.map(lambda chunk: [fn(x) for x in chunk], chunks):
                    out.extend(part)
                    bar.advance(len(part))
        return out

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

    def _save_cache(self, cache_dir, key: str, images: np.ndarray, bad: list) -> None:
        cache_dir = Path(cache_dir)
        with atomic_path(cache_dir / f"{key}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, images)
        # The .json is written last: a cache entry counts only when both exist.
        write_json(cache_dir / f"{key}.json", {"count": len(images), "skipped": bad})

    def _load_cache(self, cache_dir, split, size, resize_mode):
        cache_dir = Path(cache_dir)
        key = self._cache_key(split, size, resize_mode)
        meta_path, npy_path = cache_dir / f"{key}.json", cache_dir / f"{key}.npy"
        if not (meta_path.is_file() and npy_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            images = np.load(npy_path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        bad = {rel: reason for rel, reason in meta["skipped"]}
        keep = [(f, label) for f, label in self._files[split] if self._rel(f) not in bad]
        if len(keep) != len(images) or images.shape[1:] != (*size, 3):
            return None
        for rel, reason in bad.items():
            self._skip(rel, reason, split)
        self._files[split] = keep
        self._decoded.add(split)
        return images, self._labels(split), [str(f) for f, _ in keep]


class ArrayDataset(ImageData):
    """Images already in memory (the built-in datasets), split into train / val / test.

    Attributes:
        name: where the data came from, e.g. "digits" or a CIFAR-10 path.
        classes: class names; labels index this list.
    """

    def __init__(self, name: str, classes, splits: dict, source: str | None = None):
        """Wrap arrays.

        Args:
            name: a short name ("digits", "cifar10").
            classes: the class names.
            splits: `{split: (uint8 images (N, H, W, 3), int labels (N,))}`;
                missing splits are empty.
            source: where the data was read from, for the report.
        """
        self.name = name
        self.source = source or name
        self.classes = [str(c) for c in classes]
        self._splits = {}
        for s in SPLITS:
            images, labels = splits.get(s, (None, None))
            if images is None:
                shape = next(iter(splits.values()))[0].shape[1:]
                images, labels = np.empty((0, *shape), np.uint8), np.empty((0,), np.int32)
            self._splits[s] = (np.asarray(images, np.uint8), np.asarray(labels, np.int32).reshape(-1))
        self._memo: dict = {}

    @property
    def image_size(self) -> tuple[int, int]:
        """The stored images' own `(height, width)`."""
        return tuple(self._splits["train"][0].shape[1:3])

    def _labels(self, split: str) -> np.ndarray:
        return self._splits[_split(split)][1]

    def files(self, split: str) -> list[tuple[str, int]]:
        """Pseudo paths (`digits/train/00012`) and labels of a split.

        Args:
            split: "train", "val" (or "validation") or "test".
        """
        split = _split(split)
        return [(f"{self.name}/{split}/{i:05d}", int(y)) for i, y in enumerate(self._labels(split))]

    def report(self) -> dict:
        out = super().report()
        out.update(root=self.source, layout="builtin", skipped=[], ignored=0)
        return out

    def arrays(self, split: str, image_size=None, resize_mode: str = "stretch",
               cache_dir=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A split at an image size: `(uint8 images (N, h, w, 3), int32 labels (N,), pseudo paths)`.

        Args:
            split: "train", "val" (or "validation") or "test".
            image_size: `(height, width)` or one int; None for the stored size.
            resize_mode: "stretch" or "center_crop".
            cache_dir: ignored (the data is in memory already).
        """
        split = _split(split)
        size = _size(image_size) or self.image_size
        _check_resize_mode(resize_mode)
        images, labels = self._splits[split]
        key = (split, size, resize_mode)
        if key not in self._memo:
            if images.shape[1:3] != size and len(images):
                images = resize_images(images, size, resize_mode)
            self._memo[key] = (images, labels, [p for p, _ in self.files(split)])
        return self._memo[key]


def resize_images(images: np.ndarray, size, resize_mode: str = "stretch") -> np.ndarray:
    """Resize a uint8 `(N, H, W, 3)` batch with Pillow's bilinear filter.

    Args:
        images: the batch.
        size: `(height, width)` or one int.
        resize_mode: "stretch" or "center_crop".
    """
    from PIL import Image

    size = _size(size)
    out = np.empty((len(images), *size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(_resize(Image.fromarray(image), size, resize_mode))
    return out


# --------------------------------------------------------------------------- tf.data


def make_dataset(images: np.ndarray, labels, batch_size: int = 32, shuffle: bool = False,
                 augment: "Augment | str | None" = None, seed: int | None = None,
                 drop_remainder: bool = False):
    """Serve in-memory images through tf.data: shuffle, augment, batch, prefetch.

    Shuffling permutes indices (not pixels), then each batch is gathered
    from one constant tensor; augmentation is a parallel map of TF ops over
    whole batches, seeded per batch from `seed`, so a seeded pipeline
    repeats exactly.

    Args:
        images: uint8 `(N, h, w, 3)`.
        labels: integer labels `(N,)`.
        batch_size: images per batch.
        shuffle: reshuffle every epoch.
        augment: an `Augment` (or text for `Augment.parse`); None for none.
        seed: seed for shuffling and augmentation.
        drop_remainder: drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, h, w, 3) in 0..255, int32 (B,))`.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise MobilenetsError(f"batch_size must be >= 1. Received batch_size={batch_size}")
    augment = Augment.parse(augment)
    images_t = tf.constant(images, tf.uint8)
    labels_t = tf.constant(np.asarray(labels).reshape(-1), tf.int32)
    n = int(images_t.shape[0])
    autotune = tf.data.AUTOTUNE

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # Gather whole batches of indices at once; augmentation is vectorised
    # over the batch, with a seed per batch drawn from `seed`.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def gather(i):
        return tf.cast(tf.gather(images_t, i), tf.float32), tf.gather(labels_t, i)

    if augment.is_identity:
        ds = ds.map(gather, num_parallel_calls=autotune)
    else:
        fn = augment_fn(augment, tuple(images.shape[1:3]))
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, noise)).map(
            lambda i, r: fn(*gather(i), tf.stack([r, tf.constant(0, tf.int64)])),
            num_parallel_calls=autotune,
        )
    return ds.prefetch(autotune)


# --------------------------------------------------------------------------- built-ins


def _digits(path=None, validation_percent: float = 10, test_percent: float = 10) -> ArrayDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), split by a fixed permutation."""
    from sklearn.datasets import load_digits

    if path is not None:
        raise MobilenetsError(f"the digits dataset is bundled with scikit-learn and takes no path. "
                              f"Received path={path!r}")
    _check_percents(validation_percent, test_percent)
    d = load_digits()
    grey = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = np.repeat(grey[..., None], 3, axis=-1)
    n = len(images)
    order = np.random.default_rng(DIGITS_SEED).permutation(n)
    n_val, n_test = round(n * validation_percent / 100), round(n * test_percent / 100)
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    splits = {s: (images[np.sort(i)], d.target[np.sort(i)]) for s, i in parts.items()}
    return ArrayDataset("digits", [str(i) for i in range(10)], splits, source="sklearn.datasets.load_digits")


def _cifar10(path=None, validation_percent: float = 10, test_percent: float = 10) -> ArrayDataset:
    """CIFAR-10 from the pickled python batches; val is the last part of train."""
    _check_percents(validation_percent, 0)
    if path is None:
        source = "keras.datasets.cifar10"
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        except Exception as e:  # noqa: BLE001 - any download failure has the same fix
            raise MobilenetsError(
                f"cannot download CIFAR-10 ({first_line(e)}); pass the path to "
                "cifar-10-python.tar.gz or cifar-10-batches-py, e.g. cifar10:PATH"
            ) from None
        classes = CIFAR10_CLASSES
    else:
        source = str(path)
        batches, classes = _read_cifar_batches(Path(path).expanduser())
        train = [batches[f"data_batch_{i}"] for i in range(1, 6) if f"data_batch_{i}" in batches]
        if not train or "test_batch" not in batches:
            raise MobilenetsError(f"no data_batch_1..5 and test_batch in {path}")
        x_train = np.concatenate([x for x, _ in train])
        y_train = np.concatenate([y for _, y in train])
        x_test, y_test = batches["test_batch"]
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    n_val = round(len(x_train) * validation_percent / 100)
    cut = len(x_train) - n_val
    splits = {"train": (x_train[:cut], y_train[:cut]), "val": (x_train[cut:], y_train[cut:]),
              "test": (x_test, y_test)}
    return ArrayDataset("cifar10", classes, splits, source=source)


def _read_cifar_batches(path: Path) -> tuple[dict, tuple]:
    """`{batch name: (images, labels)}` and class names from a dir or the .tar.gz (read in place)."""
    names = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    raw: dict = {}
    if path.is_dir():
        folder = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
        for name in names:
            if (folder / name).is_file():
                with open(folder / name, "rb") as f:
                    raw[name] = _unpickle(f, folder / name)
    elif path.is_file():
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in names:
                        raw[base] = _unpickle(tar.extractfile(member), f"{path}:{member.name}")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise MobilenetsError(f"cannot read {path} as a tar archive: {first_line(e)}") from None
    else:
        raise MobilenetsError(f"no such file or folder: {path}")
    classes = CIFAR10_CLASSES
    if "batches.meta" in raw:
        classes = tuple(_text(c) for c in raw.pop("batches.meta")["label_names"])
    batches = {}
    for name, d in raw.items():
        data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        batches[name] = (np.ascontiguousarray(data.transpose(0, 2, 3, 1)),
                         np.asarray(d["labels"], dtype=np.int32))
    return batches, classes


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: dicts, lists and numpy arrays, no other code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        # Protocol-2 pickles written by Python 3 spell bytes this way.
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _unpickle(fileobj, where) -> dict:
    try:
        d = _BatchUnpickler(fileobj, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - a bad batch file is the user's to fix
        raise MobilenetsError(f"{where} is not a CIFAR-10 python batch: {first_line(e)}") from None
    return {_text(k): v for k, v in d.items()}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# The built-in datasets, by name: `load_builtin`, `open_dataset` and the CLI read this.
BUILTINS = {"digits": _digits, "cifar10": _cifar10}


def load_builtin(name: str, path: "str | os.PathLike | None" = None,
                 validation_percent: float = 10, test_percent: float = 10) -> ArrayDataset:
    """Load a built-in dataset into memory.

    Args:
        name: "digits" (scikit-learn's 8x8 digits, offline; 80/10/10 split by
            a fixed permutation) or "cifar10" (official train/test; val is
            the last `validation_percent` of train, 5,000 images by default).
        path: for cifar10, `cifar-10-python.tar.gz` or the extracted
            `cifar-10-batches-py` folder; None downloads through Keras.
        validation_percent: percent of images for "val".
        test_percent: percent of images for "test" (digits only).

    Returns:
        An `ArrayDataset`.
    """
    key = str(name).lower()
    if key not in BUILTINS:
        raise MobilenetsError(f"unknown built-in dataset {name!r}; expected one of {', '.join(BUILTINS)}")
    return BUILTINS[key](path, validation_percent, test_percent)


def open_dataset(
    spec_or_path: "str | os.PathLike | ImageData",
    validation_percent: float = 10,
    test_percent: float = 10,
    *,
    cache_dir: "str | os.PathLike | None" = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> ImageData:
    """Open a dataset by name, folder or archive.

    Args:
        spec_or_path: "digits", "cifar10", "cifar10:PATH", a folder of class
            folders (see `ImageFolder`), or a .tar/.tar.gz/.tgz holding such a
            folder (extracted safely once under `cache_dir`) or CIFAR-10's
            python batches. An existing folder named like a built-in wins
            over the built-in.
        validation_percent: percent of images for "val" when not pre-split.
        test_percent: percent of images for "test" when not pre-split.
        cache_dir: where archives are extracted (default: `cache_home()/datasets`).
        workers: decoding threads for folders.
        progress: show progress bars (default: when stderr is a terminal).

    Returns:
        An `ImageFolder` or an `ArrayDataset`.
    """
    if isinstance(spec_or_path, ImageData):
        return spec_or_path
    text = os.fspath(spec_or_path)
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return load_builtin(name, rest or None, validation_percent, test_percent)
    path = Path(text).expanduser()
    folder_args = dict(workers=workers, progress=progress)
    if path.suffix.lower() == ".mat" or (
            path.is_dir() and any((path / n).is_file() for n in ("wiki.mat", "imdb.mat"))):
        # IMDB-WIKI as published: filtered and written as female/ male/ once.
        from mobilenets.imdb_wiki import gender_dataset

        path = gender_dataset(path, cache_dir=cache_dir)
    if path.is_dir():
        return ImageFolder(path, validation_percent, test_percent, **folder_args)
    if not path.exists():
        raise MobilenetsError(f"no such dataset: {text!r}; give a folder, a .tar.gz of one, "
                              f"or one of {', '.join(BUILTINS)}")
    if not _is_tar(path):
        raise MobilenetsError(f"not a folder or a .tar/.tar.gz archive: {path}")
    if _is_cifar_python_tar(path):
        return load_builtin("cifar10", path, validation_percent, test_percent)
    root = _dataset_root(extract_archive(path, cache_dir, progress=progress))
    return ImageFolder(root, validation_percent, test_percent, **folder_args)


def resolved_data(text: str) -> str:
    """A DATA as typed, with its path made absolute ("cifar10:PATH" keeps its name; "digits" stays)."""
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return f"{name}:{Path(rest).expanduser().absolute()}" if rest else text
    return str(Path(text).expanduser().absolute())


def _data_exists(text: str) -> bool:
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return not rest or Path(rest).expanduser().exists()
    return Path(text).expanduser().exists()


def run_data(config: dict, how: str) -> "str | None":
    """The data a run's `config.json` names, found from any working directory.

    The DATA as typed when it exists from here, else the absolute path saved
    beside it (`data_resolved`); None when the config names no data.

    Args:
        config: a run's config.json.
        how: how to pass the data instead, for the message when neither exists.
    """
    typed = config.get("data")
    if not typed:
        return None
    resolved = config.get("data_resolved") or typed
    for candidate in (typed, resolved):
        if _data_exists(candidate):
            return candidate
    raise MobilenetsError(f"the run's data is missing: {resolved!r} (typed as {typed!r}); {how}")


# --------------------------------------------------------------------------- archives


def cache_home() -> Path:
    """Where mobilenets caches data: `$MOBILENETS_CACHE`, else `~/.cache/mobilenets`."""
    if os.environ.get("MOBILENETS_CACHE"):
        return Path(os.environ["MOBILENETS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mobilenets"


def extract_archive(archive: "str | os.PathLike", cache_dir: "str | os.PathLike | None" = None,
                    progress: bool | None = None) -> Path:
    """Extract a tar archive once into the cache and return the folder.

    The folder name holds a hash of the archive's path, size and mtime, so a
    changed archive is extracted afresh; extraction goes to a temporary
    folder renamed into place, so an interrupted run leaves nothing half done.

    Args:
        archive: a .tar, .tar.gz or .tgz file.
        cache_dir: parent folder (default: `cache_home()/datasets`).
        progress: show a spinner while extracting (default: when stderr is a terminal).

    Returns:
        The extracted folder.
    """
    archive = Path(archive)
    st = archive.stat()
    digest = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = re.sub(r"(\.tar)?(\.gz|\.tgz|\.bz2|\.xz)?$", "", archive.name) or "data"
    parent = Path(cache_dir) if cache_dir else cache_home() / "datasets"
    dest = parent / f"{stem}-{digest}"
    if dest.is_dir():
        return dest
    remove_stale(parent)  # what a killed extraction left
    with scratch_dir(parent, dest.name) as tmp:
        with progress_bar(f"extracting {archive.name}", None, progress):
            safe_extract(archive, tmp)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # another process won the race: use its copy
                raise
    return dest


def safe_extract(archive: "str | os.PathLike", dest: "str | os.PathLike") -> None:
    """Extract a tar archive, refusing anything that would land outside `dest`.

    Uses tarfile's "data" filter (no absolute paths, no `..`, no links out,
    no devices); on Pythons without it every member is checked first.

    Args:
        archive: a .tar, .tar.gz or .tgz file.
        dest: the folder to extract into.

    Raises:
        MobilenetsError: the archive is unreadable or has an unsafe member.
    """
    dest = Path(dest)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.errorlevel = 1
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.10.12
                members = tar.getmembers()
                for m in members:
                    _check_member(m)
                tar.extractall(dest, members=members)
    except _FilterError as e:
        raise MobilenetsError(f"unsafe archive {archive}: {first_line(e)}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise MobilenetsError(f"cannot extract {archive}: {first_line(e)}") from None


def _check_member(member: tarfile.TarInfo) -> None:  # pragma: no cover - old Pythons only
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
        raise _FilterError(f"member {name!r} would be extracted outside the destination")
    if not (member.isfile() or member.isdir()):
        raise _FilterError(f"member {name!r} is a link or special file")


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _is_cifar_python_tar(path: Path) -> bool:
    try:
        with tarfile.open(path) as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError):
        return False
    return first is not None and first.name.lstrip("./").startswith("cifar-10-batches-py")


def _dataset_root(folder: Path) -> Path:
    """Step into a lone top-level folder (`photos.tar.gz` -> `photos/`) unless it is a split."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        if (len(entries) == 1 and entries[0].is_dir()
                and entries[0].name.lower() not in SPLIT_FOLDERS):
            folder = entries[0]
        else:
            return folder


# --------------------------------------------------------------------------- helpers


def _split(split: str) -> str:
    name = SPLIT_FOLDERS.get(str(split).lower())
    if name is None:
        raise MobilenetsError(f"split must be one of train, val, test. Received split={split!r}")
    return name


def _size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        image_size = (image_size, image_size)
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        raise MobilenetsError(f"image_size must be an int or (height, width). Received image_size={image_size!r}")
    return h, w


def _check_resize_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise MobilenetsError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}. "
                              f"Received resize_mode={resize_mode!r}")


def _check_percents(validation_percent: float, test_percent: float) -> None:
    if validation_percent < 0 or test_percent < 0 or validation_percent + test_percent >= 100:
        raise MobilenetsError(
            "validation_percent and test_percent must be >= 0 and sum to less than 100. "
            f"Received validation_percent={validation_percent}, test_percent={test_percent}"
        )
