"""Params, MACs and peak memory of a Keras model, from its layers; loading a model file safely.

    p = profile_keras(load_keras_model(Path("runs/pets/model.keras")))

Nested models are walked layer by layer (their layers named `outer/inner`);
see `mobilenets.profile` for what is counted.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError
from mobilenets.profile.base import Profile, peak_live_bytes


def load_keras_model(path: Path):
    """Load a `.keras` or full-model `.h5` file, or fail with one line."""
    import keras

    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise MobilenetsError(
            f"unsupported model file {path}: expected .keras, .h5 or .tflite"
        )
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise MobilenetsError(f"not a Keras model file (a .keras file is a zip archive): {path}")
    if path.suffix.lower() != ".keras" and _head(path, 8) != b"\x89HDF\r\n\x1a\n":
        raise MobilenetsError(f"not a Keras model file (a .h5 file is HDF5): {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any failure to read is the user's file
        raise MobilenetsError(f"cannot read Keras model {path}: {first_line(e, limit=200)}") from None


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _shape(tensor) -> tuple:
    return tuple(1 if d is None else int(d) for d in tensor.shape)


def _flat(x) -> list:
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _flat(item)]
    if isinstance(x, dict):
        return [t for item in x.values() for t in _flat(item)]
    return [x]


def _layer_macs(layer, inputs: list[tuple], output: tuple) -> tuple[int, int]:
    """(MACs, elementwise ops) of one layer call, batch size 1."""
    kind = type(layer).__name__
    out_elems = math.prod(output)
    if kind == "Conv2D" or kind == "Conv1D" or kind == "Conv3D":
        kernel = layer.kernel.shape  # (*k, in/groups, out)
        return out_elems * math.prod(kernel[:-1]), 0
    if kind == "DepthwiseConv2D" or kind == "DepthwiseConv1D":
        k = layer.kernel.shape  # (*k, in, depth_multiplier)
        return out_elems * math.prod(k[:-2]), 0
    if kind == "SeparableConv2D":
        dk = layer.depthwise_kernel.shape
        mid = output[:-1] + (inputs[0][-1] * dk[-1],)
        return math.prod(mid) * math.prod(dk[:-2]) + out_elems * mid[-1], 0
    if kind == "Dense" or kind == "EinsumDense":
        return out_elems * math.prod(layer.kernel.shape[:-1]), 0
    if kind in ("InputLayer", "Reshape", "Flatten", "Dropout", "ZeroPadding2D",
                "Cropping2D", "Permute", "Identity"):
        return 0, 0
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D", "AveragePooling2D",
                "MaxPooling2D"):
        return 0, math.prod(inputs[0]) if inputs else out_elems
    return 0, out_elems


def profile_keras(model) -> Profile:
    """Profile a Keras functional or sequential model (nested models too)."""
    layers: list[dict] = []
    macs = elementwise = 0
    for prefix, layer in _walk(model):
        try:
            ins = [_shape(t) for t in _flat(layer.input)]
            outs = [_shape(t) for t in _flat(layer.output)]
        except (AttributeError, ValueError):
            continue  # a layer that was never called
        m, e = _layer_macs(layer, ins, outs[0])
        macs += m
        elementwise += e
        layers.append({
            "name": prefix + layer.name,
            "type": type(layer).__name__,
            "output_shape": list(outs[0]),
            "params": int(layer.count_params()) if not _is_model(layer) else 0,
            "macs": int(m),
        })
    trainable = int(sum(math.prod(w.shape) for w in model.trainable_weights))
    total = int(model.count_params())
    return Profile(
        name=model.name,
        source="keras",
        input_shape=list(_shape(_flat(model.inputs)[0]))[1:],
        params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        macs=int(macs),
        elementwise_ops=int(elementwise),
        weight_bytes=int(sum(math.prod(w.shape) * np.dtype(w.dtype).itemsize
                             for w in model.weights)),
        peak_activation_bytes=_keras_peak_activation(model),
        layers=layers,
    )


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _walk(model, prefix: str = ""):
    for layer in model.layers:
        if _is_model(layer):
            yield from _walk(layer, prefix + layer.name + "/")
        else:
            yield prefix, layer


def _keras_peak_activation(model) -> int:
    """Peak bytes of live activations, layers run in graph order (float32)."""
    steps = []
    for layer in model.layers:
        try:
            steps.append(([id(t) for t in _flat(layer.input)],
                          [(id(t), math.prod(_shape(t)) * 4) for t in _flat(layer.output)]))
        except (AttributeError, ValueError):
            continue
    return peak_live_bytes(steps, keep={id(t) for t in _flat(model.outputs)})
