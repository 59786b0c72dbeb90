"""A .tflite file: its cost from the operators and tensor shapes, and what it says about itself.

    p = profile_tflite(Path("model_int8.tflite"))    # p.macs, p.metadata["float_ops"], ...
    describe("mobilenet_v1_0.25_128_quant.tflite")   # metadata, labels, I/O types, float ops

Parameters are the constant tensors the operators read (at their stored
type); see `mobilenets.profile` for what is counted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from mobilenets.profile.base import Profile, peak_live_bytes
from mobilenets.tflite import (CONFIG_KEY, as_bytes, graph_interpreter, labels_in, open_interpreter,
                               read_metadata, split_zip, standard_metadata)

# Ops that multiply by a weights tensor (operand 1): their MACs come from its
# shape, and operand 2 of the convolutions and FULLY_CONNECTED is the bias.
_WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                 "CONV_3D"}
_PARAM_DTYPES = (np.float32, np.float16, np.int8, np.uint8, np.int16)
# Ops that only move or reshape values: not elementwise work.
_SHAPE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "TRANSPOSE",
              "DEQUANTIZE", "QUANTIZE", "STRIDED_SLICE", "SLICE", "CONCATENATION",
              "SHAPE", "PACK", "UNPACK", "GATHER", "SPLIT"}


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
    peak = peak_live_bytes([input_step] + steps, keep={d["index"] for d in interp.get_output_details()})
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
