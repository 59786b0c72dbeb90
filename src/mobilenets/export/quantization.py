"""What the converter quantizes to int8: the hard-swish rewrite and reconstructed kernels.

    model, facts, notes = int8_model(source.model, calibration.images, "reconstruct")

The one place export calls `mobilenets.quantize`. `int8_model` takes the
float Keras model and returns the one to hand the TFLite converter:

- V3's hard-swish becomes the equivalent `relu6(x + 3) * (x / 6)`. LiteRT's
  XNNPACK delegate runs int8 ADD/MUL but not int8 HARD_SWISH; each
  HARD_SWISH left to the built-in kernel splits the delegated graph, and V3
  has enough of them to make its int8 file slower than float32.
- The `preprocess` Rescaling becomes one 1x1 depthwise convolution whose
  int8 output holds every pixel exactly (`exact_input`): as converted, it
  was a MUL and an ADD whose int8 outputs merged neighbouring pixel values.
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
        `input_rescaling`, `int8_method`, `reconstructed_layers`), and notes
        for the user.
    """
    facts: dict = {}
    notes: list[str] = []
    if has_hard_swish(model):
        model = int8_friendly(model)
        facts["hard_swish"] = "relu6(x + 3) * (x / 6): int8 HARD_SWISH is not XNNPACK-delegated"
    model, shift = exact_input(model)
    if shift is not None:
        facts["input_rescaling"] = f"one int8 layer, exact per pixel (offset moved by {shift:.6g})"
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


def exact_input(model) -> tuple[object, float | None]:
    """The model with its pixel Rescaling made exact in int8, and the offset shift (None: unchanged).

    Why: the `preprocess` layer computes `v = x / 127.5 - 1`. Converted, it is
    a MUL then an ADD, each with an int8 output of its own range: the MUL's
    came out at 1.5 pixel levels per step and the ADD's zero point cannot sit
    at pixel 127.5, so pixel values merged in pairs before the first
    convolution. That input rounding, amplified by every layer after it, was
    a large share of the int8 file's disagreement with Keras (pokemon
    v2-0.50-224: 0.978 -> 0.988 without it).

    What: one DepthwiseConv2D 1x1 computing `scale * (x - c)` with `c` the
    integer nearest `-offset / scale` (128 for MobileNet's [-1, 1]). Its
    int8 output has scale `scale` and an integer zero point, so each of the 256
    pixel values keeps its own level. The shift `offset + scale * c` (0.5 /
    127.5) is added back through the first convolution's bias or BatchNorm
    mean, which is exact except where that convolution reads its zero
    padding (one border row and column, off by 0.004).

    A model without a `preprocess` Rescaling, or whose first convolution is not
    reached through zero padding alone, is returned as it is.

    Args:
        model: a flat functional Keras model taking raw pixels.
    """
    import keras

    from mobilenets.models import PREPROCESS_LAYER

    layers = {layer.name: layer for layer in model.layers}
    pre = layers.get(PREPROCESS_LAYER)
    if not isinstance(pre, keras.layers.Rescaling) or np.ndim(pre.scale) or np.ndim(pre.offset):
        return model, None
    scale, offset = float(pre.scale), float(pre.offset)
    if scale <= 0:
        return model, None
    c = round(-offset / scale)
    shift = offset + scale * c  # v = scale * (x - c) + shift
    conv, bn = _first_conv(model)
    if conv is None or (shift and not conv.use_bias and bn is None):
        return model, None

    def clone(layer):  # fresh layers (the caller's model keeps its own), weights set below
        if layer is pre:
            return keras.layers.DepthwiseConv2D(1, name=PREPROCESS_LAYER)
        return layer.__class__.from_config(layer.get_config())

    work = keras.models.clone_model(model, clone_function=clone)
    for layer in work.layers:
        if layer.name == PREPROCESS_LAYER:
            channels = layer.kernel.shape[2]
            layer.set_weights([np.full((1, 1, channels, 1), scale, np.float32),
                               np.full((channels,), -scale * c, np.float32)])
        elif layer.weights:
            layer.set_weights(layers[layer.name].get_weights())
    if shift:
        # The first convolution now sees v - shift: its output moves by -shift * sum(kernel).
        moved = -shift * conv.kernel.numpy().sum(axis=(0, 1, 2))
        if conv.use_bias:
            target = work.get_layer(conv.name).bias
            target.assign(target.numpy() - moved)
        else:
            target = work.get_layer(bn.name).moving_mean
            target.assign(target.numpy() + moved)
    return work, shift


def _first_conv(model):
    """The Conv2D the `preprocess` layer feeds through zero padding, and the BatchNorm after it."""
    import keras

    from mobilenets.models import PREPROCESS_LAYER
    from mobilenets.quantize.graph import consumer_map

    consumers = consumer_map(model)
    layer = model.get_layer(PREPROCESS_LAYER)
    while True:
        nxt = consumers.get(layer.name, [])
        if len(nxt) != 1:
            return None, None
        layer = nxt[0]
        if isinstance(layer, keras.layers.ZeroPadding2D):
            continue
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.DepthwiseConv2D):
            return None, None
        after = consumers.get(layer.name, [])
        bn = after[0] if len(after) == 1 and isinstance(after[0], keras.layers.BatchNormalization) else None
        return layer, bn


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
