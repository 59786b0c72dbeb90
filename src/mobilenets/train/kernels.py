"""Faster CPU training kernels for MobileNet layers, with the same maths and saved layers.

    training_kernels(model)   # fused BatchNorm, 1x1 convolutions as MatMul, tiny-map depthwise

Each function swaps a Keras layer's `call` for one that TensorFlow's CPU
kernels run faster; the layers stay the Keras classes, so a saved model
loads anywhere. `benchmarks/bench_train_step.py` and
`benchmarks/bench_depthwise_grad.py` measure each against Keras's own.
"""

from __future__ import annotations

import math


def training_kernels(model) -> None:
    """Step `model` with the trainer's faster kernels: what every `mobilenets train` run does."""
    fuse_batchnorm(model)
    matmul_pointwise(model)
    if onednn_enabled():
        depthwise_small_maps(model)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process.

    TensorFlow turns them on by default only for CPUs with AVX-512-class
    features; `mobilenets` asks for them everywhere (`TF_ENABLE_ONEDNN_OPTS=1`,
    set by the CLI before TensorFlow loads): on the 2-core AVX2 machines
    here the CIFAR training step runs ~1.4x faster with them.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - TensorFlow moved it
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def fuse_batchnorm(model) -> int:
    """Train `model`'s BatchNorm layers with TensorFlow's fused kernel.

    Keras 3 normalises a training batch with separate moments, subtract,
    scale and shift passes over memory; `FusedBatchNormV3` (oneDNN on x86)
    does it in one, forward and backward. Same maths (the moving variance
    keeps Keras's biased estimate); the CIFAR model trains ~1.5x faster on
    CPU (`benchmarks/bench_train_step.py`). The layers stay Keras
    `BatchNormalization`, so saved models load anywhere; only this model's
    training-mode call changes. Frozen, masked or non-float32 layers keep
    Keras's own call.

    Returns:
        How many layers now train fused.
    """
    import keras

    fused = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.BatchNormalization and len(layer.input.shape) == 4
                and layer.axis in (-1, 3) and not layer.renorm and not layer.synchronized
                and layer.center and layer.scale and layer.dtype == "float32"):
            layer.call = _fused_call(layer, layer.call)
            fused += 1
    return fused


def _fused_call(layer, keras_call):
    import tensorflow as tf

    def call(inputs, training=None, mask=None):
        if not (training and layer.trainable) or mask is not None or inputs.dtype != tf.float32:
            return keras_call(inputs, training=training, mask=mask)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, layer.gamma.value, layer.beta.value, epsilon=layer.epsilon, is_training=True)
        # The kernel returns the unbiased (n-1) variance; Keras keeps the biased one.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * (n - 1.0) / n
        m = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * m + mean * (1.0 - m))
        layer.moving_variance.assign(layer.moving_variance * m + variance * (1.0 - m))
        return y

    return call


def matmul_pointwise(model) -> int:
    """Run `model`'s 1x1 convolutions as matrix products.

    A 1x1, stride-1 convolution is a matrix product over the pixels, and
    TensorFlow's CPU kernels know it going forward but not backward:
    `Conv2DBackpropInput` took 125 of a 228 ms training step of the CIFAR
    model (v1-0.50-32, batch 128; its forward `Conv2D` 16 ms). As a
    `MatMul`, both gradients are matrix products too: the step runs 1.5-2x
    faster (`benchmarks/bench_train_step.py`). Same weights, same maths;
    the layers stay Keras `Conv2D`, so saved models load anywhere.

    Returns:
        How many layers now run as matrix products.
    """
    import keras

    done = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and layer.groups == 1 and layer.data_format == "channels_last"):
            layer.call = _matmul_call(layer)
            done += 1
    return done


def _matmul_call(layer):
    import tensorflow as tf

    def call(inputs):
        kernel = tf.cast(layer.kernel.value, inputs.dtype)
        cin, cout = kernel.shape[2], kernel.shape[3]
        y = tf.matmul(tf.reshape(inputs, [-1, cin]), tf.reshape(kernel, [cin, cout]))
        return _bias_activation(layer, tf.reshape(y, tf.concat([tf.shape(inputs)[:-1], [cout]], 0)))

    return call


SMALL_MAP_PIXELS = 4


def depthwise_small_maps(model, max_pixels: int = SMALL_MAP_PIXELS) -> int:
    """Compute the filter gradient of depthwise layers with tiny outputs directly.

    oneDNN's `DepthwiseConv2dNativeBackpropFilter` is pathological for maps
    of a few pixels: 26 ms for a 2x2x512 layer at batch 128 and 35 ms at
    1x1x512, against 2 ms for TensorFlow's own kernel and for the same sum
    written out (`benchmarks/bench_train_step.py`). Only stride-1 layers:
    at stride 2 (Keras pads, then a 'valid' convolution) oneDNN's kernel is
    fast on every map size, ~1 ms against 5-15 ms for the sum
    (`benchmarks/bench_depthwise_grad.py`). For stride-1 layers whose output
    has at most `max_pixels` pixels, the filter gradient is written out
    (`depthwise_filter_grad`: per channel, the products of every output
    pixel's gradient with every input pixel, summed over the batch, added
    into the tap that links them). The forward pass and the input
    gradient stay TensorFlow's. Same maths; the layers stay Keras
    `DepthwiseConv2D`, so saved models load anywhere.

    Returns:
        How many layers now use it.
    """
    import keras

    done = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.DepthwiseConv2D and layer.depth_multiplier == 1
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and layer.data_format == "channels_last" and len(layer.output.shape) == 4):
            # Decided again by the traced input shape at every call: the same
            # model trained at another input size (`low_res`) gets its own choice.
            layer.call = _depthwise_call(layer, layer.call, max_pixels)
            done += _output_pixels(layer, layer.input.shape) <= max_pixels
    return done


def _output_pixels(layer, shape) -> float:
    """Pixels of a convolution's output for input `shape` (inf if not static)."""
    h, w = shape[1:3]
    if h is None or w is None:
        return math.inf
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    if layer.padding == "same":
        return -(-h // sh) * -(-w // sw)
    return max(0, (h - kh) // sh + 1) * max(0, (w - kw) // sw + 1)


def _depthwise_call(layer, keras_call, max_pixels: int):
    import tensorflow as tf

    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    padding = layer.padding.upper()

    @tf.custom_gradient
    def depthwise(x, kernel):
        strides = [1, sh, sw, 1]
        y = tf.nn.depthwise_conv2d(x, kernel, strides, padding)

        def grad(dy):
            dx = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=strides, padding=padding)
            return dx, depthwise_filter_grad(x, dy, kh, kw, sh, sw, padding)

        return y, grad

    def call(inputs):
        if _output_pixels(layer, inputs.shape) > max_pixels:
            return keras_call(inputs)
        return _bias_activation(layer, depthwise(inputs, tf.cast(layer.kernel.value, inputs.dtype)))

    return call


# (output pixel, input pixel) pairs up to which the depthwise filter gradient
# is a matrix product (`depthwise_filter_grad`); 2x2 'same' maps have 16.
PAIR_PRODUCTS = 64


def depthwise_filter_grad(x, dy, kh: int, kw: int, sh: int, sw: int, padding: str):
    """d(loss)/d(kernel) of a depthwise convolution with static map sizes.

    Up to `PAIR_PRODUCTS` (output pixel, input pixel) pairs, every pair's
    product summed over the batch is one batched matrix product per channel,
    and a constant 0/1 matrix adds each pair into the tap that links it:
    five ops however many taps (2x2x512 at batch 128: 2.4 ms, against 6.0 ms
    for the sum below and 29 ms for oneDNN's kernel,
    `benchmarks/bench_depthwise_grad.py`). Bigger maps: one shifted product
    per tap.
    """
    import numpy as np
    import tensorflow as tf

    (h, w, c), (ho, wo) = x.shape[1:], dy.shape[1:3]
    ph = pw = 0
    if padding == "SAME":  # TensorFlow's: the odd pixel goes after
        ph, pw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - w, 0)
    top, left = ph // 2, pw // 2
    if ho * wo * h * w <= PAIR_PRODUCTS:
        taps = np.zeros((kh * kw, ho * wo * h * w), np.float32)
        for pi, pj, i, j in np.ndindex(ho, wo, kh, kw):
            qi, qj = pi * sh + i - top, pj * sw + j - left
            if 0 <= qi < h and 0 <= qj < w:
                taps[i * kw + j, ((pi * wo + pj) * h + qi) * w + qj] = 1.0
        xs = tf.transpose(tf.reshape(x, [-1, h * w, c]), [2, 0, 1])  # c, batch, input pixels
        dys = tf.transpose(tf.reshape(dy, [-1, ho * wo, c]), [2, 1, 0])  # c, output pixels, batch
        pairs = tf.reshape(tf.matmul(dys, xs), [c, ho * wo * h * w])
        grad = tf.matmul(tf.constant(taps), pairs, transpose_b=True)  # taps, c
        return tf.reshape(grad, [kh, kw, c, 1])
    if padding == "SAME":
        x = tf.pad(x, [[0, 0], [top, ph - top], [left, pw - left], [0, 0]])
    taps = tf.stack([x[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw, :]
                     for i in range(kh) for j in range(kw)])
    grad = tf.reduce_sum(taps * dy[None], axis=[1, 2, 3])
    return tf.reshape(grad, [kh, kw, -1, 1])


def _bias_activation(layer, y):
    """The end of a Keras convolution's call: its bias, then its activation."""
    import tensorflow as tf

    if layer.use_bias:
        y = y + tf.cast(layer.bias.value, y.dtype)
    return layer.activation(y) if layer.activation is not None else y
