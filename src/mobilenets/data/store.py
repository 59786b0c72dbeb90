"""A decoded split as `ImageSplit`: uint8 images read in batches, in memory or from a .npy on disk.

    split = folder.stream("train", (224, 224), cache_dir="cache/images")
    for batch in split.batches(64):      # uint8 (<=64, 224, 224, 3), never the whole split
        ...

A store is one ordinary `.npy` file (`np.load` opens it), written chunk by
chunk as the images are decoded and read back with plain file reads. Reading
through `np.memmap` instead would keep every page touched mapped into the
process and counted in its resident memory until the map is dropped: 7.5 GB
for 50,000 images at 224 px. File reads go through the page cache, which the
kernel can always take back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from mobilenets.artifacts import atomic_path

# Images per read when a caller does not say: ~10 MB at 224 px.
READ_BATCH = 64


class ImageSplit:
    """A split's uint8 images `(N, h, w, 3)` with their labels and paths, read a batch at a time.

    Attributes:
        labels: int32 labels `(N,)`.
        paths: each image's file (or pseudo path).
        image_shape: `(h, w, 3)`.
    """

    labels: np.ndarray
    paths: list[str]
    image_shape: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Images `start` to `stop` (exclusive) as a new uint8 array."""
        raise NotImplementedError

    def take(self, indices) -> np.ndarray:
        """The images at `indices`, in that order."""
        raise NotImplementedError

    @property
    def content_key(self) -> str:
        """SHA-256 of the pixels in order, the same in memory or on disk (keys the feature cache)."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return len(self) * int(np.prod(self.image_shape))

    def readable(self) -> bool:
        """The images can still be read (a store's file may have been removed with its folder)."""
        return True

    def batches(self, batch_size: int = READ_BATCH) -> Iterator[np.ndarray]:
        """The images in order, `batch_size` at a time."""
        for start in range(0, len(self), batch_size):
            yield self.rows(start, min(start + batch_size, len(self)))

    def read(self) -> np.ndarray:
        """Every image at once: only for splits known to be small."""
        return self.rows(0, len(self))


class MemoryImages(ImageSplit):
    """A split held in memory (built-in datasets, or a folder decoded without a cache folder)."""

    def __init__(self, images: np.ndarray, labels, paths: list[str]):
        self.images = images
        self.labels = np.asarray(labels, np.int32).reshape(-1)
        self.paths = list(paths)
        self.image_shape = tuple(images.shape[1:])
        self._key = None

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.images[start:stop]

    def take(self, indices) -> np.ndarray:
        return self.images[np.asarray(indices, np.int64)]

    def read(self) -> np.ndarray:
        return self.images

    @property
    def content_key(self) -> str:
        if self._key is None:
            h = hashlib.sha256()
            for batch in self.batches(1024):  # no contiguous copy of the whole split
                h.update(np.ascontiguousarray(batch).data)
            self._key = h.hexdigest()
        return self._key


class DiskImages(ImageSplit):
    """A split in a `.npy` store, read with file reads (see the module docstring for why not mmap)."""

    def __init__(self, path: "str | os.PathLike", labels, paths: list[str], content_key: str):
        self.path = Path(path)
        self.labels = np.asarray(labels, np.int32).reshape(-1)
        self.paths = list(paths)
        self._key = content_key
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            self._offset = f.tell()
        if dtype != np.uint8 or len(shape) != 4 or shape[0] != len(self.labels):
            raise ValueError(f"{self.path}: shape {shape} {dtype} does not hold {len(self.labels)} images")
        self.image_shape = tuple(shape[1:])
        self._row = int(np.prod(self.image_shape))

    @property
    def content_key(self) -> str:
        return self._key

    def readable(self) -> bool:
        return self.path.is_file()

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, len(self))
        out = np.empty((max(0, stop - start), *self.image_shape), np.uint8)
        with open(self.path, "rb", buffering=0) as f:
            _read_into(f, out, self._offset + start * self._row)
        return out

    def take(self, indices) -> np.ndarray:
        indices = np.asarray(indices, np.int64).reshape(-1)
        out = np.empty((len(indices), *self.image_shape), np.uint8)
        with open(self.path, "rb", buffering=0) as f:
            for j in np.argsort(indices, kind="stable"):  # in file order: sequential reads
                _read_into(f, out[j], self._offset + int(indices[j]) * self._row)
        return out


def _read_into(f, out: np.ndarray, offset: int) -> None:
    view = memoryview(out).cast("B")
    f.seek(offset)
    done = 0
    while done < len(view):  # a read may return less than asked for
        n = f.readinto(view[done:])
        if not n:
            raise EOFError(f"{f.name}: ends before {offset + len(view)} bytes")
        done += n


class StoreWriter:
    """Appends uint8 image chunks to an open `.npy` file, hashing the pixels as they pass."""

    def __init__(self, f, capacity: int, image_shape: tuple[int, int, int]):
        self._f, self.image_shape, self.count = f, tuple(image_shape), 0
        self._hash = hashlib.sha256()
        self._capacity = capacity
        self._header()

    def _header(self) -> None:
        # numpy pads the header so the first axis can grow to 21 digits: rewriting
        # it with the final count at the end never moves the data.
        self._f.seek(0)
        np.lib.format.write_array_header_1_0(
            self._f, {"descr": "|u1", "fortran_order": False, "shape": (self.count, *self.image_shape)})

    def append(self, images: np.ndarray) -> None:
        if images.shape[1:] != self.image_shape or self.count + len(images) > self._capacity:
            raise ValueError(f"cannot append {images.shape} to a store of {self._capacity} x {self.image_shape}")
        data = np.ascontiguousarray(images, np.uint8)
        self._f.write(data.data)
        self._hash.update(data.data)
        self.count += len(images)

    @property
    def content_key(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._header()
        self._f.seek(0, os.SEEK_END)


@contextlib.contextmanager
def store_writer(path: "str | os.PathLike", capacity: int, image_shape):
    """Yield a `StoreWriter` for at most `capacity` images; the `.npy` appears at `path` only when complete.

    An interrupted write leaves no file at `path` (only a temporary one that
    `artifacts.remove_stale` clears), so it is never mistaken for a cache.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        writer = StoreWriter(f, capacity, image_shape)
        yield writer
        writer.close()
