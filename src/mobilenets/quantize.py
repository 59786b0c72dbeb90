"""Int8 that keeps the float model's answers: layer-wise reconstruction before conversion.

    from mobilenets.quantize import reconstruct
    int8_ready = reconstruct(model, calibration_uint8_images)   # a copy; model is untouched

Why: a retrained MobileNet is a sensitive function. On pokemon-types a
v1-0.25-224 head flips 1.8% of its answers under +-2 of pixel noise, and the
TFLite converter's plain post-training int8 (round every BatchNorm-folded
weight to the nearest of 255 levels per channel, min/max activation ranges)
moved its pooled features by 22% and flipped 15% of its answers; int16
activations (16x8) changed almost nothing, so rounding weights is most of it.

What: before the converter sees the model, every Conv2D, DepthwiseConv2D and
Dense kernel is replaced, layer by layer from the input, by one that is
already on the converter's int8 grid (per output channel, symmetric, scale
max|w| / 127 of the BatchNorm-folded kernel, so the converter's own rounding
leaves it as it is) and that best reproduces the float layer's output on the
calibration images:

1. drift: the layer's inputs in the int8 network differ from the float
   network's (earlier rounding, int8 activations, simulated here with the
   min/max ranges the converter will take). The kernel is first refitted by
   least squares so that it maps the int8-network inputs to the float
   outputs;
2. GPTQ (Frantar et al. 2022, the Optimal Brain Quantizer applied one input
   column at a time): each column is rounded and the error it makes is
   spread over the columns not yet rounded, weighted by the inverse Hessian
   of the layer's inputs; columns go in order of decreasing input energy;
3. bias: what remains of the mean output error per channel goes into the
   BatchNorm offset (or the layer's bias).

The result is an ordinary float Keras model; converting it with the usual
full-integer recipe gives an integer-only file (Coral / Edge TPU class) of
the same size and speed as plain int8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Rows of the covariance solves: ridge relative to the mean diagonal.
DAMP = 0.01
# Calibration rows (images x output positions) per kernel input below which a
# layer is only rounded to nearest and bias-corrected (a Dense head sees one
# row per image).
MIN_ROWS_PER_INPUT = 8
# Input rows (images x output positions) per forward batch that feed a
# layer's second moments; early layers have 25 x 112 x 112 = 313k.
MAX_ROWS_PER_BATCH = 16384
# equalize: largest factor a channel is scaled up by, and how far above its
# calibration maximum a channel's values may go before they clip (images the
# calibration did not see go higher).
MAX_GAIN = 64.0
HEADROOM = 2.0


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
    layers = [layer for layer in work.layers if _kind(layer)]
    ref = {layer.name: layer for layer in model.layers}
    consumers = _consumers(work)
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


# --------------------------------------------------------------- graph


def _kind(layer) -> str | None:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        mult = layer.kernel.shape[-1]
        return "depthwise" if mult == 1 and tuple(layer.dilation_rate) == (1, 1) else None
    if isinstance(layer, keras.layers.Conv2D):
        return "conv" if tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1 else None
    if isinstance(layer, keras.layers.Dense):
        return "dense" if len(layer.kernel.shape) == 2 else None
    return None


def _consumers(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                out.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return out


def _fused_into_next(layer, consumers) -> bool:
    """True where TFLite keeps no separate tensor: conv->BN, BN/conv->ReLU(6)."""
    import keras

    nxt = consumers.get(layer.name, [])
    if len(nxt) != 1:
        return False
    nxt = nxt[0]
    if _kind(layer) and isinstance(nxt, keras.layers.BatchNormalization):
        return True
    if (_kind(layer) or isinstance(layer, keras.layers.BatchNormalization)) and _is_relu(nxt):
        return True
    return False


def _is_relu(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return (layer.negative_slope == 0 and layer.threshold == 0
                and layer.max_value in (None, 6.0, 6))
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


def _quantized_outputs(model, consumers) -> list:
    """Layers whose output TFLite stores as an int8 tensor with its own range."""
    import keras

    passthrough = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.ZeroPadding2D,
                   keras.layers.Reshape, keras.layers.Flatten)
    out = []
    for layer in model.layers:
        if isinstance(layer, passthrough) or _fused_into_next(layer, consumers):
            continue
        if _kind(layer) == "dense" and layer is model.layers[-1]:
            continue  # the output: its range does not feed any layer
        out.append(layer)
    return out


def _activation_ranges(model, images, consumers, batch_size) -> dict[str, tuple[float, float]]:
    """Min/max of each quantized tensor over the calibration images, as the converter takes them."""
    import keras

    points = _quantized_outputs(model, consumers)
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


# --------------------------------------------------------------- one layer


def _reconstruct_layer(layer, ref_layer, float_model, sim, images, consumers, batch_size):
    import keras

    kind = _kind(layer)
    float_in = keras.Model(float_model.inputs, ref_layer.input)
    int8_in = keras.Model(sim.inputs, _sim_input(sim, layer))
    kernel = ref_layer.kernel.numpy()
    bn = _folding_bn(layer, consumers)
    gain = _bn_gain(bn) if bn is not None else np.ones(kernel.shape[-2] if kind == "depthwise"
                                                      else kernel.shape[-1])
    w = _rows(kernel, kind) * gain[:, None]  # folded, (out, k) or (channels, k)
    stats = _Stats()
    rng = np.random.default_rng(0)
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size].astype(np.float32)
        x = _columns(float_in.predict_on_batch(batch), layer, kind)
        xq = _columns(int8_in.predict_on_batch(batch), layer, kind)
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
    q = _gptq(_refit(w, stats, kind), stats.hqq, scale, kind) if enough else plain
    err_plain = stats.output_error(w, plain, kind)
    err = stats.output_error(w, q, kind)
    bias_shift = stats.mean_error(w, q, kind)
    new_kernel = _unrows(q / gain[:, None], kernel.shape)
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


def _folding_bn(layer, consumers):
    import keras

    nxt = consumers.get(layer.name, [])
    if len(nxt) == 1 and isinstance(nxt[0], keras.layers.BatchNormalization):
        return nxt[0]
    return None


def _bn_gain(bn) -> np.ndarray:
    gamma = bn.gamma.numpy() if bn.scale else np.ones(bn.moving_variance.shape)
    return gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)


def _shift_bias(layer, bn, shift: np.ndarray) -> None:
    if bn is not None and bn.center:
        bn.beta.assign((bn.beta.numpy() + shift).astype(np.float32))
    elif getattr(layer, "use_bias", False) and layer.bias is not None:
        layer.bias.assign((layer.bias.numpy() + shift).astype(np.float32))


def _rows(kernel: np.ndarray, kind: str) -> np.ndarray:
    """Kernel as rows that share one int8 scale: (out, kh*kw*in) or (channels, kh*kw)."""
    if kind == "depthwise":
        kh, kw, c, _ = kernel.shape
        return kernel.reshape(kh * kw, c).T.astype(np.float64)
    return kernel.reshape(-1, kernel.shape[-1]).T.astype(np.float64)


def _unrows(rows: np.ndarray, shape) -> np.ndarray:
    """The inverse of `_rows` (both layouts put the kernel's channel axis first)."""
    return rows.T.reshape(shape)


def _columns(x: np.ndarray, layer, kind: str) -> np.ndarray:
    """The layer's input as the columns its kernel rows multiply.

    conv/dense: (n, k); depthwise: (channels, n, kh*kw).
    """
    import tensorflow as tf

    if kind == "dense":
        return x.reshape(-1, x.shape[-1])
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    if (kh, kw, sh, sw) == (1, 1, 1, 1):
        p = x
    else:
        p = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, 1, 1, 1],
                                     layer.padding.upper()).numpy()
    if kind == "depthwise":
        c = x.shape[-1]
        return p.reshape(-1, kh * kw, c).transpose(2, 0, 1)
    return p.reshape(-1, p.shape[-1])


class _Stats:
    """Running second moments of float inputs x and int8-network inputs xq."""

    def __init__(self):
        self.n = 0
        self.hqq = self.hqx = self.hxx = None
        self.mx = self.mq = None

    def add(self, x, xq):
        if x.ndim == 2:  # (n, k)
            hqq, hqx, hxx = xq.T @ xq, xq.T @ x, x.T @ x
            mx, mq = x.sum(0), xq.sum(0)
            n = len(x)
        else:  # (c, n, k)
            xt, qt = np.transpose(x, (0, 2, 1)), np.transpose(xq, (0, 2, 1))
            hqq, hqx, hxx = qt @ xq, qt @ x, xt @ x
            mx, mq = x.sum(1), xq.sum(1)
            n = x.shape[1]
        parts = [np.asarray(v, np.float64) for v in (hqq, hqx, hxx, mx, mq)]
        if self.hqq is None:
            self.hqq, self.hqx, self.hxx, self.mx, self.mq = parts
        else:
            for name, v in zip(("hqq", "hqx", "hxx", "mx", "mq"), parts):
                setattr(self, name, getattr(self, name) + v)
        self.n += n

    def output_error(self, w, q, kind) -> float:
        """|W x - Q xq| / |W x| over the calibration inputs (from the moments)."""
        if kind == "depthwise":
            num = (np.einsum("ci,cij,cj->c", w, self.hxx, w) - 2 * np.einsum("ci,cij,cj->c", q, self.hqx, w)
                   + np.einsum("ci,cij,cj->c", q, self.hqq, q)).sum()
            den = np.einsum("ci,cij,cj->c", w, self.hxx, w).sum()
        else:
            num = (np.einsum("oi,ij,oj->", w, self.hxx, w) - 2 * np.einsum("oi,ij,oj->", q, self.hqx, w)
                   + np.einsum("oi,ij,oj->", q, self.hqq, q))
            den = np.einsum("oi,ij,oj->", w, self.hxx, w)
        return float(np.sqrt(max(num, 0.0) / max(den, 1e-30)))

    def mean_error(self, w, q, kind) -> np.ndarray:
        """Per output channel: mean of W x minus mean of Q xq."""
        if kind == "depthwise":
            return (np.einsum("ci,ci->c", w, self.mx) - np.einsum("ci,ci->c", q, self.mq)) / self.n
        return (w @ self.mx - q @ self.mq) / self.n


def _damped(h: np.ndarray) -> np.ndarray:
    h = h.copy()
    if h.ndim == 2:
        d = np.diag(h)
        dead = d <= 0
        h[dead, dead] = 1.0
        h += DAMP * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(len(h))
    else:
        d = np.einsum("cii->ci", h)
        h += (DAMP * np.maximum(d.mean(1), 1e-12))[:, None, None] * np.eye(h.shape[1])[None]
    return h


def _refit(w: np.ndarray, stats: _Stats, kind: str) -> np.ndarray:
    """W + D minimising |W x - (W + D) xq|^2 + ridge |D|^2.

    The ridge pulls the correction D to zero, not W: an ill-conditioned
    input (neighbouring pixels of a patch) then leaves W as it is instead of
    shrinking it.
    """
    h = _damped(stats.hqq)
    diff = stats.hqx - stats.hqq
    if kind == "depthwise":
        rhs = np.einsum("cij,cj->ci", diff, w)
        return w + np.linalg.solve(h, rhs[..., None])[..., 0]
    return w + np.linalg.solve(h, diff @ w.T).T


def _gptq(w: np.ndarray, h: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    """Round rows of `w` to int8 levels of `scale`, each column's error spread over the rest."""
    h = _damped(h)
    if kind == "depthwise":
        order = np.argsort(-np.einsum("cii->ci", h).mean(0))
        h = h[:, order][:, :, order]
        u = np.transpose(np.linalg.cholesky(np.linalg.inv(h)), (0, 2, 1))  # (c, k, k)
    else:
        order = np.argsort(-np.diag(h))
        h = h[np.ix_(order, order)]
        u = np.linalg.cholesky(np.linalg.inv(h)).T[None]  # (1, k, k), shared by all rows
    w = w[:, order].copy()
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        col = w[:, i]
        qc = np.clip(np.round(col / scale), -127, 127) * scale
        err = (col - qc) / u[:, i, i]
        w[:, i + 1:] -= err[:, None] * u[:, i, i + 1:]
        q[:, i] = qc
    out = np.empty_like(q)
    out[:, order] = q
    return _pin_scale(out, scale)


def _pin_scale(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Keep each row's largest level at +-127.

    The converter takes a row's scale from its largest |weight|: a row whose
    largest level came out as 126 would be re-scaled and every weight in it
    rounded again. Moving that one weight (a level or two, rarely more) is
    the smaller error.
    """
    levels = np.round(q / scale[:, None])
    top = np.abs(levels).argmax(axis=1)
    rows = np.arange(len(q))
    peak = levels[rows, top]
    short = (np.abs(peak) < 127) & (peak != 0)
    levels[rows[short], top[short]] = np.sign(peak[short]) * 127
    return levels * scale[:, None]


# --------------------------------------------------------------- ranges


def equalize(model, images: np.ndarray, batch_size: int = 25, max_gain: float = MAX_GAIN):
    """A copy of `model` whose ReLU6 channels each fill the int8 range [0, 6].

    TFLite quantizes an activation tensor with one scale for all its
    channels, taken from the largest value of any channel: with ReLU6 that is
    6, and a channel whose values stay under 0.5 gets 10 of the 255 levels.
    ReLU6 is positively homogeneous below its cap, `relu6(k z) = k * min(relu(z), 6/k)`,
    so multiplying channel j's BatchNorm output by `k_j = 6 / (2 max_j)`
    (max_j: its largest value on the calibration images; 2: `HEADROOM`) and
    the consumer's kernel inputs by `1 / k_j` leaves the float model's
    outputs as they are (values above 2 max_j are clipped there) while
    channel j gets half the levels or more
    (the cross-layer range equalization of Nagel et al. 2019, "Data-Free
    Quantization", with ranges from data).

    Channels are rescaled only where the path is BatchNorm -> ReLU6 ->
    (zero padding, global average pooling, dropout) -> one Conv2D,
    DepthwiseConv2D or Dense; anything else is left alone.

    Returns:
        `(model_copy, gains)`: the copy and `{relu_layer_name: k}` per
        rescaled tensor.
    """
    import keras

    work = keras.models.clone_model(model)
    work.set_weights(model.get_weights())
    consumers = _consumers(work)
    chains = []
    for layer in work.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or not (layer.scale and layer.center):
            continue
        nxt = consumers.get(layer.name, [])
        if len(nxt) != 1 or not _is_relu6(nxt[0]):
            continue
        relu = nxt[0]
        target = _single_kernel_consumer(relu, consumers)
        if target is not None:
            chains.append((layer, relu, target))
    if not chains:
        return work, {}
    probe = keras.Model(work.inputs, [relu.output for _, relu, _ in chains])
    peak = [np.zeros(relu.output.shape[-1]) for _, relu, _ in chains]
    for i in range(0, len(images), batch_size):
        outs = probe.predict_on_batch(images[i:i + batch_size].astype(np.float32))
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for j, y in enumerate(outs):
            peak[j] = np.maximum(peak[j], np.asarray(y).reshape(-1, y.shape[-1]).max(axis=0))
    gains = {}
    for (bn, relu, target), top in zip(chains, peak):
        k = np.where(top > 0, 6.0 / np.maximum(top * HEADROOM, 1e-12), 1.0)
        k = np.clip(k, 1.0, max_gain)
        bn.gamma.assign((bn.gamma.numpy() * k).astype(np.float32))
        bn.beta.assign((bn.beta.numpy() * k).astype(np.float32))
        kernel = target.kernel.numpy()
        # the input-channel axis: third of a conv / depthwise kernel, first of a Dense one
        kernel = kernel / (k[:, None] if _kind(target) == "dense" else k[None, None, :, None])
        target.kernel.assign(kernel.astype(np.float32))
        gains[relu.name] = k
    return work, gains


def _is_relu6(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return layer.negative_slope == 0 and layer.threshold == 0 and layer.max_value in (6, 6.0)
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") == "relu6"
    return False


def _single_kernel_consumer(layer, consumers):
    """The one kernel layer `layer` feeds through zero padding / pooling / dropout, else None."""
    import keras

    passthrough = (keras.layers.ZeroPadding2D, keras.layers.GlobalAveragePooling2D, keras.layers.Dropout)
    seen_pool = False
    while True:
        nxt = consumers.get(layer.name, [])
        if len(nxt) != 1:
            return None
        layer = nxt[0]
        if isinstance(layer, passthrough):
            seen_pool = seen_pool or isinstance(layer, keras.layers.GlobalAveragePooling2D)
            if isinstance(layer, keras.layers.GlobalAveragePooling2D) and layer.keepdims:
                return None
            continue
        kind = _kind(layer)
        if kind is None or (kind == "dense") != seen_pool:
            return None
        return layer
