"""Cross-layer range equalization: every ReLU6 channel fills the int8 range.

    from mobilenets.quantize.equalize import equalize
    model_copy, gains = equalize(model, calibration_images)
"""

from __future__ import annotations

import numpy as np

from mobilenets.quantize.graph import consumer_map, is_relu6, kernel_kind, single_kernel_consumer

# equalize: largest factor a channel is scaled up by, and how far above its
# calibration maximum a channel's values may go before they clip (images the
# calibration did not see go higher).
MAX_GAIN = 64.0
HEADROOM = 2.0


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
    consumers = consumer_map(work)
    chains = []
    for layer in work.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or not (layer.scale and layer.center):
            continue
        nxt = consumers.get(layer.name, [])
        if len(nxt) != 1 or not is_relu6(nxt[0]):
            continue
        relu = nxt[0]
        target = single_kernel_consumer(relu, consumers)
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
        kernel = kernel / (k[:, None] if kernel_kind(target) == "dense" else k[None, None, :, None])
        target.kernel.assign(kernel.astype(np.float32))
        gains[relu.name] = k
    return work, gains
