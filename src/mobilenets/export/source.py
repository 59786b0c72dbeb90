"""The Keras model to export, loaded so that it takes raw 0-255 pixels.

    source = load_source("runs/pets")   # or a .keras / full-model .h5 file
    source.model, source.labels, source.image_size

A model without our `preprocess` layer gets a `Rescaling` in front, so every
file made from it takes the camera frame as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mobilenets.errors import MobilenetsError
from mobilenets.rundir import model_files
from mobilenets.tflite import MOBILENET_RANGE, parse_range


@dataclass
class Source:
    """A Keras model to export, with what is known about it."""

    model: object  # keras.Model taking raw 0-255 pixels
    model_path: Path
    labels: list[str]
    config: dict  # the run's config.json, or {}
    run_dir: Path | None = None
    wrapped: bool = False  # a Rescaling was added in front

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.model.input_shape[1:3]
        return int(h), int(w)


def load_source(target: "str | os.PathLike", input_range=None) -> Source:
    """Load a run directory, `.keras` or full-model `.h5` for export.

    A model without our `preprocess` layer gets a `Rescaling` in front, from
    0-255 pixels to `input_range` (MobileNet's [-1, 1] unless given), so every
    exported file takes raw pixels.

    Args:
        target: run directory (holding model.keras, labels.txt, config.json)
            or a model file (labels.txt and config.json beside it are used
            when present).
        input_range: the range the model expects when it has no
            `preprocess` layer.
    """
    from mobilenets.models import PREPROCESS_LAYER
    from mobilenets.profile import load_keras_model

    target = Path(target)
    if target.is_file() and target.suffix.lower() == ".tflite":
        raise MobilenetsError(f"export needs a Keras model (run directory, .keras or .h5), "
                              f"not a .tflite: {target}")
    found = model_files(target)
    model_path, config = found.model_path, found.config
    model = load_keras_model(model_path)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.output_shape) != 2:
        raise MobilenetsError(f"expected an image classifier (one image in, one class vector out): "
                              f"{model_path}")
    h, w = model.input_shape[1:3]
    if h is None or w is None or model.input_shape[-1] != 3:
        raise MobilenetsError(f"the model's input must be a fixed-size RGB image, got "
                              f"{tuple(model.input_shape)}: {model_path}")
    classes = int(model.output_shape[-1])
    labels = found.labels or [str(i) for i in range(classes)]
    if len(labels) != classes:
        raise MobilenetsError(f"{found.labels_source} has {len(labels)} labels but the model has "
                              f"{classes} outputs")
    names = {layer.name for layer in model.layers}
    wrapped = False
    if PREPROCESS_LAYER not in names:
        model = _with_pixel_input(model, parse_range(input_range) or MOBILENET_RANGE)
        wrapped = True
    return Source(model=model, model_path=model_path, labels=labels, config=config,
                  run_dir=found.run_dir, wrapped=wrapped)


def _with_pixel_input(model, input_range: tuple[float, float]):
    import keras

    from mobilenets.models import PREPROCESS_LAYER

    lo, hi = input_range
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = keras.layers.Rescaling((hi - lo) / 255.0, offset=lo, name=PREPROCESS_LAYER)(inputs)
    try:
        # The model's own layers (shared, not copied) applied after the Rescaling: one flat
        # graph, so int8 reconstruction sees every convolution (a nested model hides them).
        outputs = model._run_through_graph(x, operation_fn=lambda op: op)
    except Exception:  # noqa: BLE001 - not a functional graph (a subclassed model): nest it
        outputs = model(x)
    return keras.Model(inputs, outputs, name=model.name)
