"""Reading a Keras classifier's graph the way the TFLite converter will quantize it.

    from mobilenets.quantize.graph import consumer_map, kernel_kind
    kernel_kind(model.get_layer("conv_pw_1"))   # 'conv'

Which layers carry a kernel reconstruction can refit (`kernel_kind`), who consumes
each layer's output, which tensors TFLite fuses away and which it stores as
int8 with a range of their own, and the BatchNorm a kernel is folded with.
"""

from __future__ import annotations

import numpy as np


def kernel_kind(layer) -> str | None:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        mult = layer.kernel.shape[-1]
        return "depthwise" if mult == 1 and tuple(layer.dilation_rate) == (1, 1) else None
    if isinstance(layer, keras.layers.Conv2D):
        return "conv" if tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1 else None
    if isinstance(layer, keras.layers.Dense):
        return "dense" if len(layer.kernel.shape) == 2 else None
    return None


def consumer_map(model) -> dict[str, list]:
    out: dict[str, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                out.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return out


def fused_into_next(layer, consumers) -> bool:
    """True where TFLite keeps no separate tensor: conv->BN, BN/conv->ReLU(6)."""
    import keras

    nxt = consumers.get(layer.name, [])
    if len(nxt) != 1:
        return False
    nxt = nxt[0]
    if kernel_kind(layer) and isinstance(nxt, keras.layers.BatchNormalization):
        return True
    if (kernel_kind(layer) or isinstance(layer, keras.layers.BatchNormalization)) and is_relu(nxt):
        return True
    return False


def is_relu(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return (layer.negative_slope == 0 and layer.threshold == 0
                and layer.max_value in (None, 6.0, 6))
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") in ("relu", "relu6")
    return False


def quantized_outputs(model, consumers) -> list:
    """Layers whose output TFLite stores as an int8 tensor with its own range."""
    import keras

    passthrough = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.ZeroPadding2D,
                   keras.layers.Reshape, keras.layers.Flatten)
    out = []
    for layer in model.layers:
        if isinstance(layer, passthrough) or fused_into_next(layer, consumers):
            continue
        if kernel_kind(layer) == "dense" and layer is model.layers[-1]:
            continue  # the output: its range does not feed any layer
        out.append(layer)
    return out


def folding_bn(layer, consumers):
    import keras

    nxt = consumers.get(layer.name, [])
    if len(nxt) == 1 and isinstance(nxt[0], keras.layers.BatchNormalization):
        return nxt[0]
    return None


def bn_gain(bn) -> np.ndarray:
    gamma = bn.gamma.numpy() if bn.scale else np.ones(bn.moving_variance.shape)
    return gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)


def rows(kernel: np.ndarray, kind: str) -> np.ndarray:
    """Kernel as rows that share one int8 scale: (out, kh*kw*in) or (channels, kh*kw)."""
    if kind == "depthwise":
        kh, kw, c, _ = kernel.shape
        return kernel.reshape(kh * kw, c).T.astype(np.float64)
    return kernel.reshape(-1, kernel.shape[-1]).T.astype(np.float64)


def unrows(rows: np.ndarray, shape) -> np.ndarray:
    """The inverse of `rows` (both layouts put the kernel's channel axis first)."""
    return rows.T.reshape(shape)


def columns(x: np.ndarray, layer, kind: str) -> np.ndarray:
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


def is_relu6(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        return layer.negative_slope == 0 and layer.threshold == 0 and layer.max_value in (6, 6.0)
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "") == "relu6"
    return False


def single_kernel_consumer(layer, consumers):
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
        found = kernel_kind(layer)
        if found is None or (found == "dense") != seen_pool:
            return None
        return layer
