"""Exact cost of a MobileNet: params, multiply-accumulates, memory.

    mobilenets profile v1-1.00-224 --per-layer

`profile(target)` takes a spec (`"v1-1.00-224"`), a `keras.Model`, or a
`.keras`, full-model `.h5` or `.tflite` file, and walks its graph.

Conventions (the MobileNet papers' own):

* MACs count multiply-accumulates of Conv2D, DepthwiseConv2D, Dense (and
  their TFLite forms CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), including
  the 1x1 convolutions inside squeeze-excite blocks. Biases, BatchNorm (folded
  into the convolution at inference), activations, pooling, adds and the
  squeeze-excite multiply are not multiply-accumulates; they are counted
  apart, one per output element, as `elementwise_ops`.
* Batch size 1. `weight_bytes` is the bytes of the stored parameters
  (float32 for Keras; the real tensor types for TFLite).
* `peak_activation_bytes` assumes layers run one at a time in graph order,
  nothing is fused, and each tensor lives from the layer that makes it to
  the last layer that reads it (model inputs included).

A `.tflite` profile also carries what the file says about itself (`metadata`,
from `describe`): its TFLite Metadata name, labels, normalization, input type
and quantization, and the ops that compute in floating point.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError
from mobilenets.tflite import (CONFIG_KEY, as_bytes, graph_interpreter, labels_in, open_interpreter,
                               read_metadata, split_zip, standard_metadata)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".tflite")


@dataclass
class Profile:
    """The cost of one model. Integer counts; per-layer rows in `layers`."""

    name: str
    source: str  # "keras" or "tflite"
    input_shape: list[int]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    elementwise_ops: int
    weight_bytes: int
    peak_activation_bytes: int
    file_bytes: int | None = None
    layers: list[dict] = field(default_factory=list)
    metadata: dict | None = None  # .tflite only: `describe`

    def to_dict(self, per_layer: bool = False) -> dict:
        d = asdict(self)
        if not per_layer:
            d.pop("layers")
        if d["metadata"] is None:
            d.pop("metadata")
        return d


def profile(target, classes: int = 1000) -> Profile:
    """Profile a model.

    Args:
        target: a spec string or `ModelSpec` (built without weights, with the
            architecture's own classifier for `classes` classes), a
            `keras.Model`, or a path to a `.keras`, `.h5` or `.tflite` file.
        classes: classifier size when `target` is a spec.

    Returns:
        A `Profile`.
    """
    import keras

    if isinstance(target, keras.Model):
        return profile_keras(target)
    if isinstance(target, (str, os.PathLike)) and (
        Path(target).suffix.lower() in MODEL_SUFFIXES or Path(target).exists()
    ):
        return profile_file(Path(target))
    from mobilenets.models import build_model

    return profile_keras(build_model(target, classes=classes))


def profile_file(path: Path) -> Profile:
    """Profile a `.tflite`, `.keras` or full-model `.h5` file."""
    if not path.is_file():
        raise MobilenetsError(f"no such model file: {path}")
    if path.suffix.lower() == ".tflite":
        p = profile_tflite(path)
    else:
        p = profile_keras(load_keras_model(path))
    p.file_bytes = path.stat().st_size
    return p


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


# ---------------------------------------------------------------- Keras


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
    return _peak(steps, keep={id(t) for t in _flat(model.outputs)})


def _peak(steps: list[tuple[list, list[tuple]]], keep: set) -> int:
    """Liveness sweep: steps are (input ids, [(output id, bytes)])."""
    last_use: dict = {}
    for i, (ins, _) in enumerate(steps):
        for t in ins:
            last_use[t] = i
    live: dict = {}
    peak = 0
    for i, (ins, outs) in enumerate(steps):
        for t, nbytes in outs:
            live[t] = nbytes
        peak = max(peak, sum(live.values()))
        for t in list(live):
            if t not in keep and last_use.get(t, -1) <= i:
                del live[t]
    return int(peak)


# ---------------------------------------------------------------- TFLite

# Operand positions that hold shapes, axes or paddings, not parameters.
_WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                 "CONV_3D"}
_PARAM_DTYPES = (np.float32, np.float16, np.int8, np.uint8, np.int16)


def profile_tflite(path: Path) -> Profile:
    """Profile a `.tflite` file from its operators and tensor shapes."""
    interp = open_interpreter(path)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    produced = {o for op in ops for o in op["outputs"]}
    graph_inputs = {d["index"] for d in interp.get_input_details()}

    def is_const(i: int) -> bool:
        return i >= 0 and i not in produced and i not in graph_inputs

    def nbytes(t: dict) -> int:
        return int(math.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize

    counted: set[int] = set()
    layers: list[dict] = []
    macs = elementwise = params = weight_bytes = 0
    steps = []
    for op in ops:
        kind = op["op_name"]
        ins = [int(i) for i in op["inputs"]]
        outs = [int(i) for i in op["outputs"]]
        out_shape = tuple(int(d) for d in tensors[outs[0]]["shape"]) if outs else ()
        op_params = 0
        for pos, i in enumerate(ins):
            if not is_const(i) or i in counted:
                continue
            t = tensors[i]
            is_bias = kind in _WEIGHTED_OPS and pos == 2
            if np.dtype(t["dtype"]).type in _PARAM_DTYPES or is_bias:
                counted.add(i)
                op_params += int(math.prod(t["shape"]))
                weight_bytes += nbytes(t)
        params += op_params
        m = _tflite_macs(kind, ins, out_shape, tensors)
        e = 0 if m or kind in _SHAPE_OPS else int(math.prod(out_shape)) if out_shape else 0
        macs += m
        elementwise += e
        layers.append({"name": f"{op['index']}:{kind}", "type": kind,
                       "output_shape": list(out_shape), "params": op_params, "macs": int(m)})
        steps.append(([i for i in ins if i >= 0 and not is_const(i)],
                      [(o, nbytes(tensors[o])) for o in outs]))
    inp = interp.get_input_details()[0]
    input_step = ([], [(d["index"], nbytes(d)) for d in interp.get_input_details()])
    peak = _peak([input_step] + steps, keep={d["index"] for d in interp.get_output_details()})
    return Profile(
        name=Path(path).stem,
        source="tflite",
        input_shape=[int(d) for d in inp["shape"]][1:],
        params=int(params),
        trainable_params=0,
        non_trainable_params=int(params),
        macs=int(macs),
        elementwise_ops=int(elementwise),
        weight_bytes=int(weight_bytes),
        peak_activation_bytes=peak,
        layers=layers,
        metadata=describe(path),
    )


def metadata_summary(metadata: dict) -> dict:
    """`Profile.metadata` as one flat row of short texts, for a table.

    Args:
        metadata: from `describe`.
    """
    def tensor(d: dict) -> str:
        quant = f", scale {d['scale']:g}, zero point {d['zero_point']}" if d["scale"] else ""
        return f"{d['dtype']} {'x'.join(map(str, d['shape'][1:]))}{quant}"

    norm, ops, standard = metadata["normalization"], metadata["float_ops"], metadata["tflite_metadata"]
    return {
        "name": metadata["name"] or "-",
        "labels": f"{metadata['labels']} ({metadata['labels_from']})" if metadata["labels"] else "none",
        "normalization": f"mean {norm['mean']}, std {norm['std']}" if norm else "none",
        "input": tensor(metadata["input"]),
        "output": tensor(metadata["output"]),
        "float_ops": ", ".join(f"{n}x {op}" for op, n in ops.items()) if ops else "none (all integer)",
        "tflite_metadata": f"yes (min parser {standard['min_parser_version']})" if standard else "no",
    }


# ---------------------------------------------------------------- what a .tflite says


def float_ops(tflite: "bytes | str | os.PathLike", interpreter=None) -> dict[str, int]:
    """Ops of a model that compute in floating point, by op name and count.

    The QUANTIZE of a float graph input and the DEQUANTIZE of a float graph
    output (an int8 model with float32 I/O) are boundaries, not float ops.

    Args:
        tflite: the model bytes or a path.
        interpreter: an interpreter of that model, to reuse.
    """
    interp = interpreter or graph_interpreter(as_bytes(tflite))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    graph_in = {d["index"] for d in interp.get_input_details()}
    graph_out = {d["index"] for d in interp.get_output_details()}
    left: dict[str, int] = {}
    for op in interp._get_ops_details():
        ins = [int(i) for i in op["inputs"] if i >= 0]
        outs = [int(i) for i in op["outputs"]]
        name = op["op_name"]
        if name == "QUANTIZE" and set(ins) <= graph_in:
            continue
        if name == "DEQUANTIZE" and set(outs) <= graph_out:
            continue
        if any(np.dtype(tensors[i]["dtype"]).kind == "f" for i in ins + outs if i in tensors):
            left[name] = left.get(name, 0) + 1
    return left


def describe(tflite: "bytes | str | os.PathLike") -> dict:
    """What any .tflite says about itself: metadata, labels, I/O types, float ops.

    Args:
        tflite: model bytes or a path (ours or anyone's).

    Returns:
        A JSON-ready dict: `name` (the standard metadata's), `labels`
        (count) and `labels_from`, `normalization` (`{"mean", "std"}` of the
        input, or None), `input` and `output` (`dtype`, `shape`, `scale`,
        `zero_point`), `float_ops` (`{op: count}`, empty for a full-integer
        model), `metadata_entries`, `associated_files`, `tflite_metadata`
        (`parse_metadata`, or None) and `mobilenets` (our config, or None).
    """
    data = as_bytes(tflite)
    interp = graph_interpreter(data)
    meta = standard_metadata(data) or {}
    entries = read_metadata(data)
    labels, labels_from = labels_in(data)
    image = (meta.get("inputs") or [{}])[0]
    try:
        ours = json.loads(entries[CONFIG_KEY]) if CONFIG_KEY in entries else None
    except ValueError:
        ours = None

    def io_details(d: dict) -> dict:
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(v) for v in d["shape"]],
                "scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}

    return {
        "name": meta.get("name"),
        "labels": len(labels) if labels else None,
        "labels_from": labels_from,
        "normalization": ({"mean": image["mean"], "std": image["std"]}
                          if image.get("mean") is not None else None),
        "input": io_details(interp.get_input_details()[0]),
        "output": io_details(interp.get_output_details()[0]),
        "float_ops": float_ops(data, interp),
        "metadata_entries": sorted(entries),
        "associated_files": sorted(split_zip(data)[1]),
        "tflite_metadata": meta or None,
        "mobilenets": ours,
    }


_SHAPE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "TRANSPOSE",
              "DEQUANTIZE", "QUANTIZE", "STRIDED_SLICE", "SLICE", "CONCATENATION",
              "SHAPE", "PACK", "UNPACK", "GATHER", "SPLIT"}


def _tflite_macs(kind: str, ins: list[int], out_shape: tuple, tensors: dict) -> int:
    if kind not in _WEIGHTED_OPS or len(ins) < 2:
        return 0
    filt = tuple(int(d) for d in tensors[ins[1]]["shape"])
    out_elems = math.prod(out_shape)
    if kind == "CONV_2D":  # filter (out, kh, kw, in/groups)
        return out_elems * math.prod(filt[1:])
    if kind == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out)
        return out_elems * filt[1] * filt[2]
    if kind == "FULLY_CONNECTED":  # weights (units, in)
        return out_elems * filt[-1]
    if kind == "TRANSPOSE_CONV":  # ins: output_shape, weights (out, kh, kw, in), x
        w = tuple(int(d) for d in tensors[ins[1]]["shape"])
        x = tuple(int(d) for d in tensors[ins[2]]["shape"])
        return math.prod(x) * math.prod(w[:3])
    return out_elems * math.prod(filt[1:])
