"""Keras to file: a traced SavedModel, .tflite in every quantize mode, ONNX.

    saved = save_traced(model, "tmp/float")
    tflite = convert(saved, "int8", io="uint8", calibration=images)

Conversion runs the TFLite converter on a SavedModel traced with a fixed
batch-1 signature (`from_keras_model` and `from_concrete_functions` do not
freeze Keras 3 variables reliably). What an int8 file is made from (the
hard-swish rewrite, reconstructed kernels) is `mobilenets.export.quantization`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.env import first_line, quiet_native_stderr
from mobilenets.errors import MobilenetsError
from mobilenets.profile import float_ops
from mobilenets.tflite import CONFIG_KEY, LABELS_KEY

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
# A float32 file for parity and fallback, and the int8 file phones want.
DEFAULT_QUANTIZE = ("none", "int8")
IO_TYPES = ("float32", "uint8", "int8")
FORMATS = ("tflite", "saved_model", "onnx")


def parse_quantize(text: "str | list[str] | tuple[str, ...] | None") -> tuple[str, ...]:
    """Quantize modes from `"none,int8"` (or a list), validated and deduplicated.

    Args:
        text: comma-separated modes from `QUANTIZE_MODES`; `float32` means
            `none`. None gives `DEFAULT_QUANTIZE`.
    """
    if text is None:
        return DEFAULT_QUANTIZE
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        mode = str(item).strip().lower()
        mode = "none" if mode in ("float32", "fp32") else "float16" if mode == "fp16" else mode
        if mode not in QUANTIZE_MODES:
            raise MobilenetsError(
                f"--quantize must be a comma-separated list of {', '.join(QUANTIZE_MODES)}. "
                f"Received {item!r}")
        if mode not in out:
            out.append(mode)
    if not out:
        raise MobilenetsError(f"--quantize names no mode. Received {text!r}")
    return tuple(out)


def parse_formats(text: "str | list[str] | tuple[str, ...] | None") -> tuple[str, ...]:
    """Export formats from `"tflite,onnx"` (or a list), validated.

    Args:
        text: comma-separated formats from `FORMATS`; None gives `("tflite",)`.
    """
    if text is None:
        return ("tflite",)
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        fmt = str(item).strip().lower().replace("-", "_")
        if fmt not in FORMATS:
            raise MobilenetsError(f"--format must be one of {', '.join(FORMATS)}. Received {item!r}")
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


def conversion_error(e: BaseException) -> str:
    """The line of a conversion failure worth quoting (converter, tf2onnx, int8 reconstruction).

    The converter puts its `error:` line after a location prefix: that line when there is one.

    Args:
        e: the exception a conversion raised.
    """
    return first_line(e, prefer="error:", limit=300)


def save_traced(model, path: "str | os.PathLike") -> Path:
    """Write a SavedModel with one fixed batch-1 `serving_default` signature.

    Args:
        model: a Keras model with a fixed input size.
        path: the SavedModel folder.
    """
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: model(x, training=False),
                         input_signature=[spec])
    with quiet_native_stderr():
        archive.write_out(str(path), verbose=False)
    return Path(path)


def convert(saved_model: "str | os.PathLike", quantize: str = "none", io: str = "float32",
            calibration: "np.ndarray | None" = None) -> bytes:
    """Convert a SavedModel to .tflite bytes.

    Args:
        saved_model: a folder written by `save_traced`.
        quantize: `none` (float32), `float16` (float16 weights), `dynamic`
            (int8 weights, float activations) or `int8` (full integer).
        io: input/output type of an int8 model: `float32`, `uint8` or `int8`.
        calibration: uint8 images (N, h, w, 3) for int8 activation ranges.

    Raises:
        MobilenetsError: bad options, a conversion failure, or float ops left
            in an int8 model (named in the message).
    """
    import tensorflow as tf

    if quantize not in QUANTIZE_MODES:
        raise MobilenetsError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}. "
                              f"Received {quantize!r}")
    if io not in IO_TYPES:
        raise MobilenetsError(f"--io must be one of {', '.join(IO_TYPES)}. Received {io!r}")
    if io != "float32" and quantize != "int8":
        raise MobilenetsError(f"--io {io} needs --quantize int8 (only full-integer models take "
                              f"integer input). Received quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None or not len(calibration):
            raise MobilenetsError("int8 needs calibration images: give --calibration DATA")
        images = _pinned(calibration)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([img[None].astype(np.float32)] for img in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io)
        converter.inference_output_type = getattr(tf, io)
    try:
        with quiet_native_stderr():
            model = converter.convert()
    except Exception as e:  # noqa: BLE001 - ConverterError and friends: the user's model
        raise MobilenetsError(f"TFLite conversion ({quantize}) failed: {conversion_error(e)}") from None
    if quantize == "int8":
        left = float_ops(model)
        if left:
            raise MobilenetsError(
                "int8 export left float ops in the model: "
                + ", ".join(f"{n}x {op}" for op, n in left.items())
                + "; use --quantize dynamic or float16 for this model")
    return model


def _pinned(images: np.ndarray) -> np.ndarray:
    """Calibration images whose pixel range is exactly 0..255.

    The converter takes the input's quantization from the calibration
    min/max; one black and one white pixel in the first image make that
    0..255, so the uint8 input has scale 1.0 and zero point 0 (a pixel value
    is its own quantized value) and nothing else measurably changes.
    """
    images = np.array(images, dtype=np.uint8, copy=True)
    images[0, 0, 0, :] = 0
    images[0, 0, -1, :] = 255
    return images


def export_onnx(model, path: "str | os.PathLike", labels: list[str], meta: dict) -> Path:
    """Write an ONNX model (batch dimension free) with the labels in its metadata.

    Uses Keras's own `model.export(format="onnx")`, which needs the `tf2onnx`
    and `onnx` packages (`pip install 'mobilenets[onnx]'`).

    Args:
        model: the Keras model (taking raw pixels).
        path: the .onnx file.
        labels: class labels, stored as metadata `mobilenets_labels`.
        meta: stored as metadata `mobilenets_config` (JSON).
    """
    try:
        import onnx
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise MobilenetsError(f"--format onnx needs the tf2onnx and onnx packages ({e.name} is "
                              "missing): pip install 'mobilenets[onnx]'") from None
    path = Path(path)
    h, w = model.input_shape[1:3]
    model(np.zeros((1, h, w, 3), np.float32))  # Keras's ONNX export needs a called model
    with artifacts.atomic_path(path) as tmp:
        try:
            with quiet_native_stderr(), open(os.devnull, "w") as devnull, \
                    contextlib.redirect_stdout(devnull), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # Keras's tf2onnx numpy-2 patch
                model.export(str(tmp), format="onnx", verbose=False)
        except Exception as e:  # noqa: BLE001 - tf2onnx failures are about this model
            raise MobilenetsError(f"ONNX export failed: {conversion_error(e)}") from None
        proto = onnx.load(str(tmp))
        for key, value in ((LABELS_KEY, "\n".join(labels) + "\n"),
                           (CONFIG_KEY, json.dumps(dict(meta, quantize="none", io="float32")))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return path
