"""What the converter quantizes to int8: the hard-swish rewrite and reconstructed kernels.

    model, facts, notes = int8_model(source.model, calibration.images, "reconstruct")

The one place export calls `mobilenets.quantize`. `int8_model` takes the
float Keras model and returns the one to hand the TFLite converter:

- V3's hard-swish becomes the equivalent `relu6(x + 3) * (x / 6)`. LiteRT's
  XNNPACK delegate runs int8 ADD/MUL but not int8 HARD_SWISH; each
  HARD_SWISH left to the built-in kernel splits the delegated graph, and V3
  has enough of them to make its int8 file slower than float32.
- `reconstruct` (the default `INT8_METHODS` entry) puts the kernels on the
  int8 grid so they keep the float outputs (`mobilenets.quantize.reconstruct`);
  `plain` leaves quantization to the converter alone.
"""

from __future__ import annotations

import numpy as np

from mobilenets.env import progress_bar
from mobilenets.errors import MobilenetsError
from mobilenets.export.conversion import conversion_error

# How int8 weights are chosen (see mobilenets.quantize): reconstruct, or the converter alone.
INT8_METHODS = ("reconstruct", "plain")
DEFAULT_INT8_METHOD = "reconstruct"
# What an int8 file takes and returns unless --io says otherwise.
DEFAULT_INT8_IO = "uint8"


def check_int8_method(method: str) -> str:
    """`method` if it is one of `INT8_METHODS`, else a one-line error quoting it.

    Args:
        method: the `--int8-method` value.
    """
    if method not in INT8_METHODS:
        raise MobilenetsError(f"--int8-method must be one of {', '.join(INT8_METHODS)}. "
                              f"Received {method!r}")
    return method


def int8_model(model, images: np.ndarray, method: str = DEFAULT_INT8_METHOD,
               progress: bool | None = None) -> tuple[object, dict, list[str]]:
    """The Keras model to convert to int8, what was done to it, and what the user should hear.

    A graph `reconstruct` does not know falls back to `plain`, said in a note.

    Args:
        model: the float Keras model, taking raw pixels.
        images: the calibration images, uint8 (n, h, w, 3).
        method: one of `INT8_METHODS`.
        progress: show a progress bar for the reconstruction (default: when
            stderr is a terminal).

    Returns:
        `(model, facts, notes)`: the model (`model` itself when nothing was
        changed), what the export's config.json records of it (`hard_swish`,
        `int8_method`, `reconstructed_layers`), and notes for the user.
    """
    facts: dict = {}
    notes: list[str] = []
    if has_hard_swish(model):
        model = int8_friendly(model)
        facts["hard_swish"] = "relu6(x + 3) * (x / 6): int8 HARD_SWISH is not XNNPACK-delegated"
    facts["int8_method"] = method
    if method == "reconstruct":
        try:
            model, layers = _reconstructed(model, images, progress)
            facts["reconstructed_layers"] = layers
        except Exception as e:  # noqa: BLE001 - a graph it does not know: plain int8, said
            facts["int8_method"] = "plain"
            notes.append(f"int8 reconstruction skipped ({conversion_error(e)}): "
                         f"model_int8.tflite is the converter's plain int8")
    return model, facts, notes


def _reconstructed(model, images: np.ndarray, progress: bool | None):
    """`quantize.reconstruct` with a progress bar: (model, number of layers it refitted)."""
    from mobilenets.quantize import reconstruct

    with progress_bar("int8 reconstruction", None, progress) as bar:
        def step(done, total, name):
            bar.update(description=f"int8 reconstruction {name}", completed=done, total=total)

        model, reports = reconstruct(model, images, progress=step)
    return model, len(reports)


def _xnnpack_hard_swish(x):
    """hard_swish(x) = x * relu6(x + 3) / 6, written so that the converter
    does not fuse it back into HARD_SWISH (int8 HARD_SWISH is not delegated)."""
    import keras

    return keras.ops.relu6(x + 3.0) * (x * (1.0 / 6.0))


def has_hard_swish(model) -> bool:
    """Whether a Keras model has a hard-swish Activation (V3 does), which `int8_friendly` rewrites.

    Args:
        model: a Keras model; only its top-level layers are looked at.
    """
    return any(_is_hard_swish(layer) for layer in model.layers)


def _is_hard_swish(layer) -> bool:
    if type(layer).__name__ != "Activation":
        return False
    name = getattr(layer.activation, "__name__", "")
    return name in ("hard_swish", "hard_silu")


def int8_friendly(model):
    """The model with every hard-swish Activation rewritten for int8 XNNPACK.

    Args:
        model: a flat functional Keras model; other layers (and their
            weights) are shared, not copied.
    """
    import keras

    if not has_hard_swish(model):
        return model

    def clone(layer):
        if _is_hard_swish(layer):
            return keras.layers.Activation(_xnnpack_hard_swish, name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=clone)
