"""Layer-wise reconstruction: each kernel refitted on the int8 grid to keep the float outputs.

    from mobilenets.quantize.reconstruct import reconstruct
    int8_ready, reports = reconstruct(model, calibration_uint8_images)   # a copy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mobilenets.quantize.equalize import equalize
from mobilenets.quantize.gptq import Stats, gptq, refit
from mobilenets.quantize.graph import (bn_gain, columns, consumer_map, folding_bn, kernel_kind,
                                       quantized_outputs, rows, unrows)

# Calibration rows (images x output positions) per kernel input below which a
# layer is only rounded to nearest and bias-corrected (a Dense head sees one
# row per image).
MIN_ROWS_PER_INPUT = 8
# Input rows (images x output positions) per forward batch that feed a
# layer's second moments; early layers have 25 x 112 x 112 = 313k.
MAX_ROWS_PER_BATCH = 16384


@dataclass
class LayerReport:
    """What reconstruction did to one layer."""

    name: str
    kind: str  # conv, depthwise or dense
    weight_change: float  # |new - old| / |old| of the kernel
    output_error_plain: float  # relative output error of nearest rounding
    output_error: float  # relative output error after reconstruction


def reconstruct(model, images: np.ndarray, batch_size: int = 25,
                progress: Callable[[int, int, str], None] | None = None,
                equalize_ranges: bool = True):
    """A copy of `model` whose kernels sit on the int8 grid and keep its outputs.

    Args:
        model: a flat functional Keras classifier (the one `export` converts);
            not modified.
        images: calibration images (N, h, w, 3) as the model takes them.
        batch_size: images per forward pass.
        progress: called as `progress(done, total, layer_name)`.

    Returns:
        `(model_copy, reports)`: the reconstructed copy and one
        `LayerReport` per layer, in order.
    """
    import keras

    if equalize_ranges:
        model, _ = equalize(model, images, batch_size)
    work = keras.models.clone_model(model)
    work.set_weights(model.get_weights())
    layers = [layer for layer in work.layers if kernel_kind(layer)]
    ref = {layer.name: layer for layer in model.layers}
    consumers = consumer_map(work)
    ranges = _activation_ranges(model, images, consumers, batch_size)
    sim = _simulated(work, ranges, consumers)
    reports = []
    for i, layer in enumerate(layers):
        if progress:
            progress(i, len(layers), layer.name)
        reports.append(_reconstruct_layer(layer, ref[layer.name], model, sim, images,
                                          consumers, batch_size))
    if progress:
        progress(len(layers), len(layers), "")
    return work, reports


def _activation_ranges(model, images, consumers, batch_size) -> dict[str, tuple[float, float]]:
    """Min/max of each quantized tensor over the calibration images, as the converter takes them."""
    import keras

    points = quantized_outputs(model, consumers)
    probe = keras.Model(model.inputs, [layer.output for layer in points])
    lo = {layer.name: 0.0 for layer in points}
    hi = {layer.name: 0.0 for layer in points}
    for i in range(0, len(images), batch_size):
        outs = probe.predict_on_batch(images[i:i + batch_size].astype(np.float32))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for layer, y in zip(points, outs):
            lo[layer.name] = min(lo[layer.name], float(np.min(y)))
            hi[layer.name] = max(hi[layer.name], float(np.max(y)))
    return {name: (lo[name], hi[name]) for name in lo}


def _simulated(model, ranges, consumers):
    """The model with int8 rounding after every quantized tensor (weights shared)."""
    import keras

    def clone(layer):
        if layer.name in ranges:
            return _FakeQuant(layer, *ranges[layer.name])
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def _fake_quant_layer_class():
    import keras

    class FakeQuant(keras.layers.Layer):
        """Runs a layer, then rounds its output to int8 levels of a fixed range."""

        def __init__(self, inner, lo, hi, **kwargs):
            super().__init__(name=inner.name + "_int8", **kwargs)
            self.inner = inner
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            self.scale = max(hi - lo, 1e-8) / 255.0
            self.zero = float(np.round(-lo / self.scale) - 128)

        def call(self, inputs, **kwargs):
            kwargs.pop("mask", None)  # the inner layer takes its masks from its inputs
            y = self.inner(inputs, **kwargs)
            q = keras.ops.clip(keras.ops.round(y / self.scale) + self.zero, -128, 127)
            return (q - self.zero) * self.scale

    return FakeQuant


def _FakeQuant(inner, lo, hi):  # noqa: N802 - a class built on first use (keras imports late)
    global _FAKE_QUANT
    if _FAKE_QUANT is None:
        _FAKE_QUANT = _fake_quant_layer_class()
    return _FAKE_QUANT(inner, lo, hi)


_FAKE_QUANT = None


def _reconstruct_layer(layer, ref_layer, float_model, sim, images, consumers, batch_size):
    import keras

    kind = kernel_kind(layer)
    float_in = keras.Model(float_model.inputs, ref_layer.input)
    int8_in = keras.Model(sim.inputs, _sim_input(sim, layer))
    kernel = ref_layer.kernel.numpy()
    bn = folding_bn(layer, consumers)
    gain = bn_gain(bn) if bn is not None else np.ones(kernel.shape[-2] if kind == "depthwise"
                                                      else kernel.shape[-1])
    w = rows(kernel, kind) * gain[:, None]  # folded, (out, k) or (channels, k)
    stats = Stats()
    rng = np.random.default_rng(0)
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size].astype(np.float32)
        x = columns(float_in.predict_on_batch(batch), layer, kind)
        xq = columns(int8_in.predict_on_batch(batch), layer, kind)
        axis = 1 if kind == "depthwise" else 0
        if x.shape[axis] > MAX_ROWS_PER_BATCH:  # 112x112 positions: a sample estimates the moments
            keep = np.sort(rng.choice(x.shape[axis], MAX_ROWS_PER_BATCH, replace=False))
            x, xq = np.take(x, keep, axis=axis), np.take(xq, keep, axis=axis)
        stats.add(x, xq)
    # Too few input rows per kernel input (a head on pooled features, late
    # layers of a small input): refit and GPTQ would fit the calibration
    # images' noise, so the kernel is rounded to nearest and only the bias step runs.
    enough = stats.n >= MIN_ROWS_PER_INPUT * w.shape[1]
    scale = np.abs(w).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    plain = np.clip(np.round(w / scale[:, None]), -127, 127) * scale[:, None]
    q = gptq(refit(w, stats, kind), stats.hqq, scale, kind) if enough else plain
    err_plain = stats.output_error(w, plain, kind)
    err = stats.output_error(w, q, kind)
    bias_shift = stats.mean_error(w, q, kind)
    new_kernel = unrows(q / gain[:, None], kernel.shape)
    layer.kernel.assign(new_kernel.astype(np.float32))
    _shift_bias(layer, bn, bias_shift)
    change = np.linalg.norm(new_kernel - kernel) / max(np.linalg.norm(kernel), 1e-12)
    return LayerReport(layer.name, kind, float(change), err_plain, err)


def _sim_input(sim, layer):
    """The tensor that feeds `layer` inside the simulated graph (it shares layers with others)."""
    for nodes in sim._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if op is layer or getattr(op, "inner", None) is layer:
                return node.input_tensors[0]
    raise ValueError(f"layer {layer.name} is not in the simulated model")


def _shift_bias(layer, bn, shift: np.ndarray) -> None:
    if bn is not None and bn.center:
        bn.beta.assign((bn.beta.numpy() + shift).astype(np.float32))
    elif getattr(layer, "use_bias", False) and layer.bias is not None:
        layer.bias.assign((layer.bias.numpy() + shift).astype(np.float32))


