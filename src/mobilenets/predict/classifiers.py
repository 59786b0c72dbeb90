"""Load a run, a .keras/.h5 model or any .tflite classifier as a `Classifier`.

    clf = load_classifier("model_int8.tflite", input_range="-1,1", threads=2)
    probs = clf.predict(uint8_images)          # (N, classes)

A `Classifier` takes uint8 RGB images at the model's resolution and returns
class probabilities:

* our exports (and run directories) carry their labels and input range;
* a third-party .tflite is read from its tensors: input size, dtype and
  quantization. An integer input gets the pixel values as they are (uint8)
  or shifted by -128 (int8), which is what quantized classifiers are
  calibrated for; a float input without our metadata gets MobileNet's
  [-1, 1] unless `input_range` (`--input-range 0,1|-1,1|0,255`) says
  otherwise. Integer outputs are dequantized; outputs that are not
  probabilities (logits) go through a softmax.

A float input with standard TFLite Metadata gets the range its
NormalizationOptions give ((0 - mean) / std to (255 - mean) / std).

Labels come from `labels` (`--labels FILE`), else the model (our metadata,
or the TFLite Metadata labels file zipped onto the .tflite), else
`labels.txt` beside it, aligned by `mobilenets.predict.labels`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError
from mobilenets.predict.labels import align_labels
from mobilenets.rundir import LABELS, model_files, read_labels
from mobilenets.tflite import (CONFIG_KEY, MOBILENET_RANGE, PIXEL_RANGE, labels_in, open_interpreter,
                               parse_range, read_metadata, standard_metadata)


class Classifier:
    """A loaded image classifier: uint8 images in, probabilities out.

    Attributes:
        name: the model file.
        kind: "tflite" or "keras".
        labels: one label per output.
        input_size: `(height, width)` the images must have.
        input_range: the float range pixels are mapped to, or None when the
            integer input takes pixel values as they are.
        metadata_config: our embedded export config (empty for others).
    """

    name: str
    kind: str
    labels: list[str]
    input_size: tuple[int, int]
    input_range: tuple[float, float] | None
    metadata_config: dict

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities `(N, classes)` for uint8 images `(N, h, w, 3)`."""
        raise NotImplementedError

    def info(self) -> dict:
        """What the model is, JSON-ready: `path`, `kind`, `input_size`, `input_range`,
        `labels` (count); a .tflite adds what `mobilenets.profile.describe` reads
        from the file (metadata, I/O types and quantization, float ops)."""
        return {"path": self.name, "kind": self.kind, "input_size": list(self.input_size),
                "input_range": list(self.input_range) if self.input_range else None,
                "labels": len(self.labels)}


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that are not already probabilities (any value outside [0, 1]) get a softmax."""
    scores = np.asarray(scores, dtype=np.float32).reshape(len(scores), -1)
    bad = (scores.min(axis=1) < -1e-3) | (scores.max(axis=1) > 1 + 1e-3)
    if bad.any():
        z = scores[bad] - scores[bad].max(axis=1, keepdims=True)
        e = np.exp(z)
        scores = scores.copy()
        scores[bad] = e / e.sum(axis=1, keepdims=True)
    return scores


def _scale_pixels(images: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    lo, hi = input_range
    x = images.astype(np.float32)
    if (lo, hi) == (0.0, 255.0):
        return x
    return x * np.float32((hi - lo) / 255.0) + np.float32(lo)


class TFLiteClassifier(Classifier):
    """A .tflite classifier run by the LiteRT interpreter, one image per invoke."""

    kind = "tflite"

    def __init__(self, path: "str | os.PathLike", labels=None, input_range=None,
                 threads: int | None = None):
        """Load a .tflite.

        Args:
            path: the model file.
            labels: label list overriding what the model carries.
            input_range: `(low, high)` the pixels are mapped to, overriding
                the model's metadata and the defaults.
            threads: interpreter threads (default: LiteRT's).
        """
        path = Path(path)
        self.name = str(path)
        self.interpreter = open_interpreter(path, threads)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise MobilenetsError(f"expected a model with one image input, {path} has {len(inputs)}")
        self._in = inputs[0]
        self._out = outputs[0]
        shape = [int(d) for d in self._in["shape"]]
        if len(shape) != 4 or shape[-1] != 3:
            raise MobilenetsError(f"expected an RGB image input (1, H, W, 3), {path} takes {shape}")
        self.input_size = (shape[1], shape[2])
        self._dtype = np.dtype(self._in["dtype"])
        self._in_scale, self._in_zero = self._in["quantization"]
        self._out_dtype = np.dtype(self._out["dtype"])
        self._out_scale, self._out_zero = self._out["quantization"]
        outputs_n = int(np.prod(self._out["shape"][1:]))

        meta = read_metadata(path)
        try:
            self.metadata_config = json.loads(meta.get(CONFIG_KEY, b"{}").decode())
        except ValueError:
            self.metadata_config = {}
        if input_range is not None:
            self.input_range = tuple(input_range)
        elif self.metadata_config.get("input_range"):
            self.input_range = tuple(float(v) for v in self.metadata_config["input_range"])
        elif self._dtype.kind in "iu":
            self.input_range = None  # pixels as they are (see _quantize)
        else:
            self.input_range = _normalized_range(standard_metadata(path)) or MOBILENET_RANGE
        if labels is not None:
            found, source = list(labels), "the labels file"
        else:
            found, source = labels_in(path)[0], str(path)
            if found is None and (path.parent / LABELS).is_file():
                found, source = read_labels(path.parent / LABELS), str(path.parent / LABELS)
        self.labels = align_labels(found, outputs_n, source)

    def info(self) -> dict:
        from mobilenets.profile import describe

        return {**super().info(), **describe(self.name), "labels": len(self.labels)}

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        if self._dtype.kind not in "iu":
            return _scale_pixels(images, self.input_range).astype(self._dtype)
        info = np.iinfo(self._dtype)
        if self.input_range is None or not self._in_scale:
            # Quantized classifiers take the pixel's own value, offset to the type's range.
            return (images.astype(np.int16) + info.min).astype(self._dtype)
        real = _scale_pixels(images, self.input_range)
        q = np.round(real / self._in_scale + self._in_zero)
        return np.clip(q, info.min, info.max).astype(self._dtype)

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) and images.shape[1:3] != self.input_size:
            raise MobilenetsError(f"images are {images.shape[1]}x{images.shape[2]}, the model takes "
                                  f"{self.input_size[0]}x{self.input_size[1]}")
        x = self._quantize(images)
        interp, i_in, i_out = self.interpreter, self._in["index"], self._out["index"]
        out = []
        for one in x:
            interp.set_tensor(i_in, one[None])
            interp.invoke()
            out.append(interp.get_tensor(i_out).reshape(-1))
        if not out:
            return np.empty((0, len(self.labels)), np.float32)
        scores = np.stack(out)
        if self._out_dtype.kind in "iu" and self._out_scale:
            scores = (scores.astype(np.float32) - self._out_zero) * self._out_scale
        return _as_probabilities(scores)


def _normalized_range(meta: dict | None) -> tuple[float, float] | None:
    """The pixel range a float input's NormalizationOptions ask for (one mean/std for all channels)."""
    inputs = (meta or {}).get("inputs") or [{}]
    mean, std = inputs[0].get("mean"), inputs[0].get("std")
    if not mean or not std or len(set(mean)) != 1 or len(set(std)) != 1 or not std[0]:
        return None
    return ((0.0 - mean[0]) / std[0], (255.0 - mean[0]) / std[0])


class KerasClassifier(Classifier):
    """A Keras model (run directory, .keras or full-model .h5)."""

    kind = "keras"

    def __init__(self, target: "str | os.PathLike", labels=None, input_range=None,
                 threads: int | None = None):
        """Load a Keras model.

        Args:
            target: run directory or model file.
            labels: label list overriding labels.txt / config.json.
            input_range: `(low, high)` the pixels are mapped to (default:
                raw pixels when the model has our `preprocess` layer, else
                MobileNet's [-1, 1]).
            threads: TensorFlow intra-op threads (when TF is not started yet).
        """
        from mobilenets.models import PREPROCESS_LAYER
        from mobilenets.profile import load_keras_model

        found = model_files(target)
        path = found.model_path
        set_tf_threads(threads)
        import tensorflow as tf

        self.name = str(path)
        self.model = load_keras_model(path)
        shape = self.model.input_shape
        if len(self.model.inputs) != 1 or len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
            raise MobilenetsError(f"expected a fixed-size RGB image classifier, {path} takes {shape}")
        self.input_size = (int(shape[1]), int(shape[2]))
        has_pre = PREPROCESS_LAYER in {layer.name for layer in self.model.layers}
        self.input_range = tuple(input_range) if input_range else (
            PIXEL_RANGE if has_pre else MOBILENET_RANGE)
        self.metadata_config = {}
        outputs = int(self.model.output_shape[-1])
        source = "the labels file"
        if labels is None:
            labels, source = found.labels, found.labels_source
        self.labels = align_labels(labels, outputs, source)
        model = self.model
        self._fn = tf.function(lambda x: model(x, training=False),
                               input_signature=[tf.TensorSpec((None, *shape[1:]), tf.float32)])

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if not len(images):
            return np.empty((0, len(self.labels)), np.float32)
        x = _scale_pixels(images, self.input_range)
        return _as_probabilities(self._fn(x).numpy())


def set_tf_threads(threads: int | None) -> None:
    """Limit TensorFlow's intra-op threads (only possible before it starts).

    Args:
        threads: threads, or None to leave TensorFlow's default.
    """
    if threads is None:
        return
    if threads < 1:
        raise MobilenetsError(f"--threads must be >= 1. Received {threads}")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started: keep its pools
        pass


def load_classifier(model: "str | os.PathLike", labels=None, input_range=None,
                    threads: int | None = None) -> Classifier:
    """Load any model this project reads as a `Classifier`.

    Args:
        model: run directory, `.keras`, full-model `.h5`, or `.tflite`.
        labels: a labels file path, or a list of labels (overrides the model's).
        input_range: `"-1,1"`, `"0,1"`, `"0,255"`, any `"low,high"` or a pair:
            the float range pixels are mapped to.
        threads: inference threads.
    """
    path = Path(model)
    if isinstance(labels, (str, os.PathLike)):
        labels = read_labels(labels)
    rng = parse_range(input_range)
    if path.is_dir():
        if (path / "model.keras").is_file():
            return KerasClassifier(path, labels, rng, threads)
        raise MobilenetsError(f"not a run directory (no model.keras): {path}")
    if not path.exists():
        raise MobilenetsError(f"no such model file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return TFLiteClassifier(path, labels, rng, threads)
    if suffix in (".keras", ".h5", ".hdf5"):
        return KerasClassifier(path, labels, rng, threads)
    raise MobilenetsError(f"unsupported model file {path}: expected a run directory, .keras, .h5 "
                          "or .tflite")
