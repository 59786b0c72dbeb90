"""The models a page may choose, each loaded once, and what a run's evaluations say.

    models = Registry("runs/pets")   # model.keras, export/model_float32.tflite, export/model_int8.tflite
    models.predict(jpeg_bytes, model="export/model_int8.tflite", top_k=3)
    # {"predictions": [{"label": "cat", "index": 0, "score": 0.91}, ...], "model": ..., "ms": 1.9, ...}

A run offers its Keras model and every exported `.tflite` (`rundir.run_models`),
named by their path inside the run; a model file offers itself. The first is
loaded at once (a model that cannot be read is an error before the server
starts), the others the first time they are asked for, and each only once.
An upload goes through the same decoding, resizing, labels and top-k as
`mobilenets predict` (`data.load_image`, `predict.top_k`), with the pixel
count bounded before anything is decoded.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import numpy as np

from mobilenets.data import load_image
from mobilenets.errors import MobilenetsError
from mobilenets.predict import DEFAULT_TOP_K, load_classifier, top_k
from mobilenets.rundir import EVALUATION, evaluations, run_models

# A 64-megapixel photo (9248x6936) decodes; a small file claiming more is refused unread.
MAX_PIXELS = 64_000_000
# Misclassified images shown per evaluation, most confident first.
GALLERY = 60


class Registry:
    """The models of a run (or one model file) by name, loaded once, each run by one thread at a time.

    Attributes:
        target: the run folder or model file given.
        names: every model's name, the default first.
        default: the model used when a request names none.
    """

    def __init__(self, target: "str | os.PathLike", labels=None, input_range=None,
                 threads: int | None = None, max_pixels: int = MAX_PIXELS):
        """Find the models and load the default one.

        Args:
            target: a run folder, `.keras`, full-model `.h5` or `.tflite`.
            labels, input_range, threads: as `mobilenets predict` takes them
                (`predict.load_classifier`), for every model.
            max_pixels: the largest image (width x height) an upload may decode to.

        Raises:
            MobilenetsError: no model there, or the default one cannot be loaded.
        """
        self.target = Path(target)
        found = run_models(self.target) if self.target.is_dir() else []
        if self.target.is_dir() and found:
            self._paths = {p.relative_to(self.target).as_posix(): p for p in found}
        else:  # a model file, or a folder load_classifier will explain
            self._paths = {self.target.name: self.target}
        self.names = list(self._paths)
        self.default = self.names[0]
        self.max_pixels = max_pixels
        self._options = {"labels": labels, "input_range": input_range, "threads": threads}
        self._loaded: dict = {}
        self._loading = threading.Lock()
        self._running = {name: threading.Lock() for name in self.names}
        self.get(self.default)

    def get(self, name: str | None = None):
        """The `predict.Classifier` called `name` (default: `default`), loaded on first use."""
        name = name or self.default
        if name not in self._paths:
            raise MobilenetsError(f"no model {name!r} here; choose one of {', '.join(self.names)}")
        with self._loading:
            if name not in self._loaded:
                clf = load_classifier(self._paths[name], **self._options)
                # The first call traces a Keras model (~0.5 s): done now, not in a user's first answer.
                clf.predict(np.zeros((1, *clf.input_size, 3), np.uint8))
                self._loaded[name] = clf
        return self._loaded[name]

    def models(self) -> list[dict]:
        """What `GET /api/models` lists: each model's name, kind, file size, and once loaded
        its input size and label count."""
        out = []
        for name, path in self._paths.items():
            row = {"name": name, "kind": "tflite" if path.suffix.lower() == ".tflite" else "keras",
                   "bytes": _size(path), "default": name == self.default, "loaded": name in self._loaded}
            clf = self._loaded.get(name)
            if clf is not None:
                row.update(input_size=list(clf.input_size), labels=len(clf.labels))
            out.append(row)
        return out

    def predict(self, image: bytes, model: str | None = None, k: int = DEFAULT_TOP_K) -> dict:
        """Classify the bytes of one image file.

        Args:
            image: the file's contents, any format `data.load_image` reads.
            model: a name from `names` (default: `default`).
            k: classes returned, best first (capped at the number of labels).

        Returns:
            `{"predictions": [{"label", "index", "score"}], "model", "ms", "decode_ms"}`:
            `ms` is the model's own time, `decode_ms` decoding and resizing.

        Raises:
            BadImage: empty, not an image, corrupt (`ImageTooLarge`: over `max_pixels`).
            MobilenetsError: an unknown model or a bad `k`.
        """
        if k < 1:
            raise MobilenetsError(f"top_k must be a whole number >= 1. Received {k}")
        name = model or self.default
        clf = self.get(name)
        start = time.perf_counter()
        pixels = load_image(image, clf.input_size, max_pixels=self.max_pixels)
        decoded = time.perf_counter()
        with self._running[name]:  # a LiteRT interpreter runs one call at a time
            begin = time.perf_counter()
            probs = clf.predict(pixels[None])[0]
            ms = (time.perf_counter() - begin) * 1000
        return {"predictions": top_k(probs, clf.labels, k), "model": name, "ms": round(ms, 2),
                "decode_ms": round((decoded - start) * 1000, 2)}

    def evaluations(self, gallery: int = GALLERY) -> list[dict]:
        """What `mobilenets evaluate` (and training) wrote for this run or model, JSON-ready.

        Each is evaluation.json's figures (`accuracy`, `macro_f1`, `per_class`, `classes`,
        `confusion_matrix`, ...) with `name` (its folder), the confusion-matrix PNG as a data
        URI, and the `gallery`: the most confident misclassified images as JPEG thumbnails.
        Images are read from the paths the evaluation lists and sent only as re-encoded
        thumbnails, so no file is ever served as it is.
        """
        from mobilenets import artifacts
        from mobilenets.compare.report import thumbnail_uri

        out = []
        for folder in evaluations(self.target):
            ev = artifacts.read_json(folder / EVALUATION)
            wrong = ev.get("misclassified", [])
            png = folder / "confusion_matrix.png"
            out.append({**{k: v for k, v in ev.items() if k != "misclassified"},
                        "name": folder.name, "misclassified": len(wrong),
                        "confusion_png": ("data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
                                          if png.is_file() else None),
                        "gallery": [dict(m, thumb=thumbnail_uri(Path(m["path"]) if Path(m["path"]).is_file()
                                                                else None, size=128))
                                    for m in wrong[:gallery]]})
        return out


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
