"""The parity report: every exported file against the Keras model, on images calibration did not see.

    report = parity_report(source, {"model_int8.tflite": path}, exclude=calibration.files)

The images are the run's test and validation splits, then training images
calibration left out, up to `max_images`. Each file gets top-1 accuracy,
top-1 agreement with Keras and accuracy drop against Keras, each with its
image count and 95% interval (`mobilenets.export.gate`), plus size and
latency; `keras_stability` says how firm Keras's own answers are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobilenets.errors import MobilenetsError
from mobilenets.export.calibration import image_id, load_images
from mobilenets.export.gate import accuracy_drop, wilson_interval, with_interval
from mobilenets.export.ship import dir_bytes

if TYPE_CHECKING:
    from mobilenets.export.source import Source

DEFAULT_PARITY_IMAGES = 1000
# Held-out images first; then training images, which the model has seen but
# calibration has not (so parity stays disjoint from calibration).
PARITY_SPLITS = ("test", "val", "train")
# Pixel noise (+-levels) under which Keras's own answers are measured (`keras_stability`).
NOISE_PIXELS = 2


@dataclass
class ParityReport:
    """What `parity_report` measured."""

    rows: list[dict]  # one per model, Keras first
    note: str | None  # which data was used, or why there is no report
    images: int = 0
    splits: dict[str, int] = field(default_factory=dict)  # parity images by split
    overlap: int = 0  # parity images that are also in `exclude` (0 by construction)
    # Keras's own top-1 kept under +-NOISE_PIXELS of pixel noise: agreement, its 95% interval.
    stability: dict | None = None


def parity_report(source: "Source", files: dict[str, Path], data=None,
                  max_images: int = DEFAULT_PARITY_IMAGES, exclude=(),
                  latency_images: int = 50) -> ParityReport:
    """Top-1 accuracy, agreement with Keras, accuracy drop, size and latency of each file.

    Accuracy, agreement and drop come with 95% intervals (`_row`). The images
    are taken split by split (`PARITY_SPLITS`: test, val, then train), all
    of a split while they fit in `max_images`, then a seeded sample; images
    in `exclude` (calibration's) are never used. Training images make the
    accuracy optimistic but not the comparison with Keras, which sees the
    same images; `test_accuracy` is the test images' alone.

    Args:
        source: the exported Keras model and its run config.
        files: exported files by name.
        data: dataset for the comparison (default: the run's own).
        max_images: at most this many images.
        exclude: `image_id`s to leave out (the calibration images).
        latency_images: images timed one at a time for the latency column.
    """
    from mobilenets.data import open_dataset, run_data
    from mobilenets.predict import load_classifier

    data = data if data is not None else run_data(source.config, "give --data DATA (or --no-parity)")
    if data is None:
        return ParityReport([], "no parity report: the model has no run config naming its data; "
                                "give --data")
    cfg = source.config
    ds = open_dataset(data, validation_percent=cfg.get("validation_percent", 10),
                      test_percent=cfg.get("test_percent", 10))
    exclude = set(exclude)
    images, labels, splits, ids = parity_images(ds, source.image_size, max_images, exclude)
    if not len(images):
        return ParityReport([], f"no parity report: {data} has no images that calibration did "
                                f"not use")
    labels = _aligned_labels(list(ds.classes), source.labels, labels, data)
    is_test = splits == "test"

    keras_probs, keras_ms = _keras_run(source.model, images, latency_images)
    keras_top1 = keras_probs.argmax(1)
    stability = keras_stability(source.model, images, keras_top1)
    rows = [_row("keras", "keras", "none", "float32", source.model_path.stat().st_size,
                 keras_top1, keras_top1, labels, is_test, keras_ms)]
    for name, path in files.items():
        info_format = "tflite" if path.suffix == ".tflite" else "onnx" if path.suffix == ".onnx" \
            else "saved_model"
        if info_format == "tflite":
            clf = load_classifier(path, threads=1)
            quantize, io = clf.metadata_config.get("quantize"), clf.metadata_config.get("io")
            size = path.stat().st_size
        elif info_format == "onnx":
            clf = _onnx_runner(path)
            quantize, io, size = "none", "float32", path.stat().st_size
            if clf is None:
                rows.append({"model": name, "format": "onnx", "quantize": "none", "io": "float32",
                             "file_mb": round(size / 2**20, 3), "images": 0, "accuracy": None,
                             "agreement": None, "accuracy_drop": None, "latency_ms": None,
                             "note": "onnxruntime not installed: not run"})
                continue
        else:
            clf = _saved_model_runner(path)
            quantize, io, size = "none", "float32", dir_bytes(path)
        probs, ms = _timed(clf.predict, images, latency_images)
        rows.append(_row(name, info_format, quantize, io, size, probs.argmax(1), keras_top1,
                         labels, is_test, ms))
    counts = {s: int((splits == s).sum()) for s in PARITY_SPLITS if (splits == s).any()}
    kept_out = f"; calibration's {len(exclude)} left out" if exclude else ""
    note = (f"parity on {data}: {len(images)} images ("
            + " + ".join(f"{n} {s}" for s, n in counts.items()) + f"{kept_out})")
    return ParityReport(rows, note, images=len(images), splits=counts,
                        overlap=len(exclude.intersection(ids)), stability=stability)


def keras_stability(model, images: np.ndarray, keras_top1: np.ndarray,
                    pixels: int = NOISE_PIXELS, seed: int = 0) -> dict:
    """How often Keras keeps its own top-1 when each pixel moves by at most `pixels` levels.

    Seeded uniform integer noise in [-pixels, pixels] (clipped to 0..255),
    invisible to a person and smaller than what JPEG re-encoding or a
    camera's next frame does. The answers that flip here are the images
    whose two best classes are close, the same ones int8 rounding flips: the
    figure tells a fragile model (low here too) from a bad conversion (high
    here, low agreement).

    Returns:
        `{"pixels", "agreement", "agreement_low", "agreement_high", "images"}`.
    """
    rng = np.random.default_rng(seed)
    noisy = np.clip(images.astype(np.int16) + rng.integers(-pixels, pixels + 1, images.shape,
                                                            dtype=np.int16), 0, 255).astype(np.uint8)
    probs, _ = _keras_run(model, noisy, 0)
    kept = int((probs.argmax(1) == keras_top1).sum())
    n = len(images)
    return {"pixels": pixels, "images": n,
            **with_interval("agreement", kept / n, wilson_interval(kept, n))}


def parity_images(ds, image_size: tuple[int, int], max_images: int = DEFAULT_PARITY_IMAGES,
                  exclude=frozenset(), seed: int = 0):
    """The parity report's images: test, val, then train (`PARITY_SPLITS`), none in `exclude`.

    Args:
        ds: an opened dataset (`mobilenets.data.open_dataset`).
        image_size: `(height, width)`.
        max_images: at most this many; a split that does not fit whole is
            a seeded sample.
        exclude: `image_id`s never to use.
        seed: sample seed.

    Returns:
        `(uint8 images, labels, split of each image, image_id of each image)`
        as arrays of the same length.
    """
    from mobilenets.data import ImageFolder

    rng = np.random.default_rng(seed)
    parts = []
    room = max_images
    for split in PARITY_SPLITS:
        if room <= 0 or split not in ds.splits:
            continue
        items = [(i, f, y) for i, (f, y) in enumerate(ds.files(split)) if image_id(f) not in exclude]
        if len(items) > room:
            items = [items[i] for i in np.sort(rng.permutation(len(items))[:room])]
        if not items:
            continue
        if isinstance(ds, ImageFolder):  # decode only the files used, not the whole split
            images, kept = load_images([f for _, f, _ in items], image_size)
            items = [items[i] for i in kept]
        else:
            images = ds.arrays(split, image_size)[0][[i for i, _, _ in items]]
        room -= len(items)
        parts.append((images, [y for _, _, y in items], [split] * len(items),
                      [image_id(f) for _, f, _ in items]))
    if not parts:
        return (np.empty((0, *image_size, 3), np.uint8), np.empty((0,), np.int64),
                np.empty((0,), str), np.empty((0,), str))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))


def _aligned_labels(data_classes: list[str], model_labels: list[str], labels: np.ndarray, data):
    if data_classes == model_labels:
        return labels
    if set(data_classes) <= set(model_labels):
        index = {c: model_labels.index(c) for c in data_classes}
        return np.array([index[data_classes[i]] for i in labels])
    raise MobilenetsError(f"the classes of {data} ({', '.join(data_classes[:5])}...) are not the "
                          f"model's labels ({', '.join(model_labels[:5])}...)")


def _row(name, fmt, quantize, io, size, top1, keras_top1, labels, is_test, ms) -> dict:
    """A parity row: each fraction with the bounds of its 95% interval (`_low`, `_high`)."""
    n = len(labels)
    correct, keras_correct = top1 == labels, keras_top1 == labels
    agree = int((top1 == keras_top1).sum())
    row = {"model": name, "format": fmt, "quantize": quantize, "io": io,
           "file_mb": round(size / 2**20, 3), "images": int(n)}
    row.update(with_interval("accuracy", correct.mean(), wilson_interval(int(correct.sum()), n)))
    reference = fmt == "keras"
    row.update(with_interval("agreement", agree / n, None if reference else wilson_interval(agree, n)))
    drop, low, high = accuracy_drop(keras_correct, correct)
    row.update(with_interval("accuracy_drop", drop, None if reference else (low, high)))
    row["test_accuracy"] = round(float(correct[is_test].mean()), 4) if is_test.any() else None
    row["test_images"] = int(is_test.sum())
    row["latency_ms"] = round(ms, 3)
    return row


def _keras_run(model, images: np.ndarray, latency_images: int) -> tuple[np.ndarray, float]:
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    probs = np.concatenate([fn(tf.constant(images[i:i + 64], tf.float32)).numpy()
                            for i in range(0, len(images), 64)])
    n = min(latency_images, len(images))
    if n == 0:
        return probs, 0.0
    single = tf.function(lambda x: model(x, training=False))
    single(tf.constant(images[:1], tf.float32))
    start = time.perf_counter()
    for i in range(n):
        single(tf.constant(images[i:i + 1], tf.float32)).numpy()
    return probs, (time.perf_counter() - start) * 1000 / n


def _timed(predict, images: np.ndarray, latency_images: int) -> tuple[np.ndarray, float]:
    n = min(latency_images, len(images))
    predict(images[:1])
    start = time.perf_counter()
    head = predict(images[:n])
    ms = (time.perf_counter() - start) * 1000 / n
    rest = predict(images[n:]) if len(images) > n else np.empty((0, head.shape[1]))
    return np.concatenate([head, rest]), ms


class _Runner:
    def __init__(self, fn):
        self.predict = fn


def _saved_model_runner(path: Path):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]

    def predict(images):
        out = [next(iter(fn(tf.constant(im[None], tf.float32)).values())).numpy() for im in images]
        return np.concatenate(out) if out else np.empty((0, 0))

    return _Runner(predict)


def _onnx_runner(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(images):
        out = [session.run(None, {name: im[None].astype(np.float32)})[0] for im in images]
        return np.concatenate(out) if out else np.empty((0, 0))

    return _Runner(predict)
