"""timm's MobileNetV4 checkpoints (safetensors) loaded into our Keras V4 models, without PyTorch.

    model = build_model("v4-conv-s-224", weights="model.safetensors")   # goes through here
    load_timm_weights(model, parse_spec("v4-conv-s-224"), "model.safetensors")

timm publishes MobileNetV4 weights on the Hugging Face hub as `model.safetensors`
(`timm/mobilenetv4_conv_small.e2400_r224_in1k`, ...): PyTorch's state_dict,
keyed by module path. Our model is built from the same block tables
(`models_v4.ARCHITECTURES` mirrors timm's `_gen_mobilenet_v4`), so each of our
layers has one timm module (`timm_layer_map`): `stem_conv` is `conv_stem`,
`block_<i>_<part>` is `blocks.<stage>.<index>.<module>`, the head's
`conv_head_bn` is `norm_head`, `predictions` is `classifier`. Layouts convert
on the way: convolutions OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw,
C, 1), Linear (out, in) -> Dense (in, out); BatchNorm takes weight, bias,
running_mean, running_var (timm's eps is 1e-5, as ours). Both pad stride-2
convolutions by k//2 on every side, so the outputs agree to float rounding.

timm trained most of these checkpoints on inputs normalized with ImageNet's
mean and std, not MobileNet's [-1, 1]; the hub's `config.json` beside
`model.safetensors` says which (`pretrained_cfg.mean` / `.std`), and
`input_scaling` turns it into the per-channel Rescaling that `build_model`
puts in front (the padding of the first convolution then sees zeros where
timm's does, which folding the scaling into that convolution would not give).

A classifier of another size than the model's (ImageNet's 1000 against your
N classes) is left out and keeps its fresh initialisation, as timm itself
does; a model without the V4 head (`include_top=False`, the retrain
backbone) takes the backbone only. Anything else that does not fit (a key
missing, a shape that differs, a key no layer takes: a checkpoint of another
variant or width) is one line naming the first bad key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError
from mobilenets.models_v4 import ARCHITECTURES, blocks
from mobilenets.safetensors_io import read_safetensors
from mobilenets.specs import ModelSpec

# Our head layers and timm's modules for them; left out when the model has no top.
HEAD = {"conv_head": "conv_head", "conv_head_bn": "norm_head", "predictions": "classifier"}
CLASSIFIER = "predictions"
MOBILENET_SCALING = (1 / 127.5, -1.0)  # 0-255 -> [-1, 1], what every other model here takes
TIMM_NAMES = {"v4-conv-s": "mobilenetv4_conv_small", "v4-conv-m": "mobilenetv4_conv_medium",
              "v4-conv-l": "mobilenetv4_conv_large"}


def timm_layer_map(spec: ModelSpec) -> dict[str, str]:
    """Our layer name -> the timm module that holds its weights.

    `block_<i>` counts blocks across stages; timm nests them as
    `blocks.<stage>.<index>`, and each block kind names its parts its own way
    (timm's `ConvBnAct`, `EdgeResidual`, `UniversalInvertedResidual`).
    """
    if spec.family not in ARCHITECTURES:
        raise MobilenetsError(f"timm checkpoints load into MobileNetV4 specs only. Received {spec.name}")
    table = blocks(spec)
    names = {"stem_conv": "conv_stem", "stem_conv_bn": "bn1"}
    i = 0
    for s, stage in enumerate(ARCHITECTURES[spec.family].stages):
        for j in range(sum(row.repeat for row in stage)):
            block, ours, theirs = table[i], f"block_{i}", f"blocks.{s}.{j}"
            if block.kind == "conv":
                parts = {"conv": ("conv", "bn1")}
            elif block.kind == "fused":
                parts = {"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")}
            else:
                parts = {"dw_start": ("dw_start.conv", "dw_start.bn")} if block.start else {}
                parts["expand"] = ("pw_exp.conv", "pw_exp.bn")
                if block.mid:
                    parts["dw_mid"] = ("dw_mid.conv", "dw_mid.bn")
                parts["project"] = ("pw_proj.conv", "pw_proj.bn")
            for part, (conv, bn) in parts.items():
                names[f"{ours}_{part}"] = f"{theirs}.{conv}"
                names[f"{ours}_{part}_bn"] = f"{theirs}.{bn}"
            i += 1
    return {**names, **HEAD}


def _timm_arrays(layer, module: str) -> list[tuple[str, tuple[int, ...]]]:
    """(timm key, timm shape) for each of the Keras layer's weights, in `get_weights` order."""
    kind = type(layer).__name__
    shapes = [tuple(w.shape) for w in layer.weights]
    if kind == "Conv2D":  # HWIO <- OIHW
        h, w, i, o = shapes[0]
        return [(f"{module}.weight", (o, i, h, w))]
    if kind == "DepthwiseConv2D":  # (kh, kw, C, 1) <- (C, 1, kh, kw)
        h, w, c, m = shapes[0]
        return [(f"{module}.weight", (c * m, 1, h, w))]
    if kind == "BatchNormalization":
        return [(f"{module}.{n}", shapes[0]) for n in ("weight", "bias", "running_mean", "running_var")]
    if kind == "Dense":
        i, o = shapes[0]
        return [(f"{module}.weight", (o, i)), (f"{module}.bias", (o,))]
    raise MobilenetsError(f"no timm layout for layer {layer.name} ({kind})")


def _to_keras(kind: str, array: np.ndarray, index: int) -> np.ndarray:
    if kind == "Conv2D":
        return array.transpose(2, 3, 1, 0)
    if kind == "DepthwiseConv2D":
        return array.transpose(2, 3, 0, 1)
    if kind == "Dense" and index == 0:
        return array.T
    return array


def load_timm_weights(model, spec: ModelSpec, path: "str | os.PathLike") -> dict:
    """Set a V4 model's weights from a timm checkpoint; return what was loaded.

    Args:
        model: a model built by `models_v4.mobilenet_v4` for `spec` (with or
            without its top, possibly inside `build_model`'s graph).
        spec: its spec.
        path: timm's `model.safetensors` (F32, F16 or BF16).

    Returns:
        `{"layers": N, "skipped": [names]}`: the layers set, and those left
        as they were (a classifier of another size).

    Raises:
        MobilenetsError: one line naming the first key that is missing, of
            another shape, or taken by no layer.
    """
    path = Path(path)
    mapping = timm_layer_map(spec)
    state = read_safetensors(path)
    theirs = TIMM_NAMES[spec.family] + ("" if spec.alpha == 1 else f" (width {spec.alpha:g})")
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    unmapped = sorted(set(layers) - set(mapping))
    if unmapped:
        raise MobilenetsError(f"{spec.name}'s layer {unmapped[0]} has no timm counterpart")
    used, loaded, skipped = set(), 0, []
    for name, module in mapping.items():
        layer = layers.get(name)
        if layer is None:
            if name in HEAD:  # no top: the checkpoint's head is not needed
                used.update(k for k in state if k.startswith(module + "."))
                continue
            raise MobilenetsError(f"{spec.name} has no layer {name}: not a MobileNetV4 model")
        wanted = _timm_arrays(layer, module)
        if name == CLASSIFIER and f"{module}.weight" in state \
                and state[f"{module}.weight"].shape != wanted[0][1] \
                and state[f"{module}.weight"].shape[1:] == wanted[0][1][1:]:
            # ImageNet's 1000 classes against the model's own: keep the new classifier.
            used.update(key for key, _ in wanted)
            skipped.append(name)
            continue
        arrays = []
        for index, (key, shape) in enumerate(wanted):
            if key not in state:
                raise MobilenetsError(
                    f"{path.name} has no {key} (shape {shape}) for {spec.name}'s layer {name}: "
                    f"not a timm {theirs} checkpoint?")
            if state[key].shape != shape:
                raise MobilenetsError(
                    f"{path.name}: {key} has shape {state[key].shape}, {spec.name}'s layer {name} "
                    f"needs {shape}: not a timm {theirs} checkpoint?")
            arrays.append(_to_keras(type(layer).__name__, state[key], index).astype(np.float32))
            used.add(key)
        layer.set_weights(arrays)
        loaded += 1
    extra = [k for k in state if k not in used and not k.endswith(".num_batches_tracked")]
    if extra:
        raise MobilenetsError(
            f"{path.name} has {extra[0]} (shape {state[extra[0]].shape}), which {spec.name} has no "
            f"layer for ({len(extra)} such keys): not a timm {theirs} checkpoint?")
    return {"layers": loaded, "skipped": skipped}


def input_scaling(path: "str | os.PathLike") -> "tuple[float | list[float], float | list[float]] | None":
    """The Rescaling `(scale, offset)` from 0-255 pixels to what a timm checkpoint was trained on.

    Read from the hub's `config.json` beside the checkpoint (`pretrained_cfg`'s
    `mean` and `std`, or the same keys at the top level). Per-channel lists
    when the channels differ (ImageNet's mean and std), one scalar pair when
    they do not (timm's "inception" 0.5 / 0.5 is `MOBILENET_SCALING`); None
    when there is no `config.json` or it names no mean and std.
    """
    config = Path(path).parent / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MobilenetsError(f"cannot read {config} (timm's settings for {Path(path).name}): {e}") from None
    cfg = data.get("pretrained_cfg", data) if isinstance(data, dict) else {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        return None
    try:
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        mean = std = []
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise MobilenetsError(f"{config}: mean and std must be 3 numbers each (std > 0). "
                              f"Received mean={cfg.get('mean')}, std={cfg.get('std')}")
    scale = [1 / (255 * s) for s in std]
    offset = [-m / s for m, s in zip(mean, std)]
    if max(scale) - min(scale) < 1e-12 and max(offset) - min(offset) < 1e-12:
        return scale[0], offset[0]
    return scale, offset
