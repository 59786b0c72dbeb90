"""The built-in datasets held in memory: scikit-learn's digits and CIFAR-10.

    data = load_builtin("cifar10", "cifar-10-python.tar.gz")
"""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from mobilenets.data.base import SPLITS, ImageData, _check_percents, _split
from mobilenets.data.images import resize_images, _check_resize_mode, _size
from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DIGITS_SEED = 0


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
