"""The trainer's CPU kernels compute what Keras's layers compute, and save as Keras layers."""

import numpy as np
import pytest

from mobilenets.train import TrainConfig, build_for_config


def test_fused_batchnorm_is_keras_batchnorm_faster(tmp_path):
    import keras
    import tensorflow as tf

    from mobilenets.train import fuse_batchnorm

    def model():
        inp = keras.Input((6, 6, 5))
        x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(inp)
        m = keras.Model(inp, keras.layers.ReLU(6.0)(x))
        m.get_layer("bn").gamma.assign(np.linspace(0.5, 2, 5))
        m.get_layer("bn").beta.assign(np.linspace(-1, 1, 5))
        return m

    keras_bn, fused = model(), model()
    assert fuse_batchnorm(fused) == 1
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3, 2, (4, 6, 6, 5)).astype("float32"))
    w = tf.constant(rng.normal(size=(4, 6, 6, 5)).astype("float32"))
    results = []
    for m in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x, training=True)
            loss = tf.reduce_sum(y * w)
        grads = tape.gradient(loss, [x] + m.trainable_variables)
        bn = m.get_layer("bn")
        results.append([y, *grads, bn.moving_mean, bn.moving_variance, m(x, training=False)])
    for a, b in zip(*results):  # outputs, gradients, moving statistics, inference
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    assert not np.allclose(results[1][-3], 0)  # the moving mean did move

    # A frozen layer normalises with its moving statistics, as Keras's does.
    for m in (keras_bn, fused):
        m.get_layer("bn").trainable = False
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5, atol=1e-5)
    # Saved, it is plain Keras BatchNormalization.
    fused.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("bn")) is keras.layers.BatchNormalization
    np.testing.assert_allclose(loaded(x), fused(x), rtol=1e-5, atol=1e-5)


def test_pointwise_convolutions_as_matmul_are_the_same_layer(tmp_path):
    import keras
    import tensorflow as tf

    from mobilenets.train import matmul_pointwise

    def model():
        keras.utils.set_random_seed(1)
        inp = keras.Input((5, 5, 4))
        x = keras.layers.Conv2D(6, 1, use_bias=False, name="pw")(inp)
        x = keras.layers.Conv2D(3, 1, activation="relu", name="pw_bias")(x)  # bias and activation
        x = keras.layers.Conv2D(3, 3, padding="same", name="k3")(x)  # not 1x1: left alone
        return keras.Model(inp, x)

    conv, mm = model(), model()
    assert matmul_pointwise(mm) == 2
    mm.get_layer("pw_bias").bias.assign(np.linspace(-1, 1, 3))
    conv.get_layer("pw_bias").bias.assign(np.linspace(-1, 1, 3))
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 4)).astype("float32"))
    results = []
    for m in (conv, mm):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x)
            loss = tf.reduce_sum(y * y)
        results.append([y, *tape.gradient(loss, [x] + m.trainable_variables)])
    for a, b in zip(*results):  # outputs, input gradient, every weight's gradient
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # Saved, they are plain Keras Conv2D layers.
    mm.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("pw")) is keras.layers.Conv2D
    np.testing.assert_allclose(loaded(x), mm(x), rtol=1e-5, atol=1e-5)
    # Every pointwise convolution of a MobileNet V1: 13 blocks and the 1x1 classifier.
    assert matmul_pointwise(build_for_config(TrainConfig(data="x", arch="v1-0.25-32", mode="scratch"), 10)) == 14


@pytest.mark.parametrize("size, strides, padding", [(2, 1, "same"), (1, 1, "same"), (3, 2, "valid"),
                                                     (4, 2, "same"), (3, 2, "same")])
def test_depthwise_small_map_filter_gradient_is_the_same(size, strides, padding):
    import keras
    import tensorflow as tf

    from mobilenets.train import depthwise_small_maps

    def model():
        keras.utils.set_random_seed(2)
        inp = keras.Input((size, size, 5))
        x = keras.layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=True,
                                         activation="relu", name="dw")(inp)
        return keras.Model(inp, x)

    native, ours = model(), model()
    # Stride 2 keeps TensorFlow's (oneDNN's) kernel, fast there; the sum is still checked.
    assert depthwise_small_maps(ours) == (strides == 1)
    if strides == 2:
        from mobilenets.train import depthwise_filter_grad

        x = tf.constant(np.random.default_rng(1).normal(size=(3, size, size, 5)).astype("float32"))
        dw = ours.get_layer("dw")
        y = tf.nn.depthwise_conv2d(x, dw.kernel.value, [1, 2, 2, 1], padding.upper())
        dy = tf.constant(np.random.default_rng(2).normal(size=y.shape).astype("float32"))
        tf_grad = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=[3, 3, 5, 1], out_backprop=dy, strides=[1, 2, 2, 1],
            padding=padding.upper())
        np.testing.assert_allclose(depthwise_filter_grad(x, dy, 3, 3, 2, 2, padding.upper()), tf_grad,
                                   rtol=1e-4, atol=1e-4)
    for m in (native, ours):
        m.get_layer("dw").bias.assign(np.linspace(-0.5, 0.5, 5))
    x = tf.constant(np.random.default_rng(0).normal(size=(3, size, size, 5)).astype("float32"))
    results = []
    for m in (native, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x)
            loss = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype=y.dtype), tf.shape(y)) / 10.0 * y)
        results.append([y, *tape.gradient(loss, [x] + m.trainable_variables)])
    for a, b in zip(*results):  # outputs, input gradient, kernel and bias gradients
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, strides, padding", [(1, 1, "SAME"), (2, 1, "SAME"), (4, 2, "SAME"),
                                                     (5, 2, "VALID"), (6, 1, "SAME"), (7, 2, "SAME")])
def test_depthwise_filter_gradient_matches_tensorflow_on_either_path(size, strides, padding):
    import tensorflow as tf

    from mobilenets.train import PAIR_PRODUCTS, depthwise_filter_grad

    rng = np.random.default_rng(size)
    x = rng.normal(size=(3, size, size, 4)).astype("float32")
    kernel = tf.zeros([3, 3, 4, 1])
    out = tf.nn.depthwise_conv2d(x, kernel, [1, strides, strides, 1], padding).shape
    dy = rng.normal(size=out).astype("float32")
    want = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[3, 3, 4, 1], out_backprop=dy, strides=[1, strides, strides, 1], padding=padding)
    # Traced with an unknown batch size, as a training step without a fixed batch is.
    spec = [tf.TensorSpec([None, size, size, 4]), tf.TensorSpec([None, *out[1:]])]
    grad = tf.function(lambda a, b: depthwise_filter_grad(a, b, 3, 3, strides, strides, padding),
                       input_signature=spec)
    np.testing.assert_allclose(grad(x, dy), want, rtol=1e-4, atol=1e-4)
    assert (out[1] * out[2] * size * size <= PAIR_PRODUCTS) == (size <= 4)  # both paths are covered


def test_depthwise_small_maps_picks_only_tiny_outputs():
    from mobilenets.train import depthwise_small_maps

    # v1 at 32 px with Keras's strides: blocks 6-13 end at 2x2 or 1x1; six of them are stride 1.
    model = build_for_config(TrainConfig(data="x", arch="v1-0.25-32", mode="scratch"), 10)
    assert depthwise_small_maps(model) == 6
    assert depthwise_small_maps(model, max_pixels=0) == 0


def test_depthwise_small_maps_decides_by_the_traced_input_size():
    import keras
    import tensorflow as tf

    from mobilenets.train import depthwise_small_maps

    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inp))
    assert depthwise_small_maps(model) == 0  # 8x8 output at the built size
    model.input_spec = None  # let it run at other sizes, as low-resolution epochs do

    def filter_grad_ops(side):
        @tf.function
        def grads(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x) ** 2)
            return tape.gradient(loss, model.trainable_variables)

        graph = grads.get_concrete_function(tf.TensorSpec((2, side, side, 4))).graph
        return sum(op.type == "DepthwiseConv2dNativeBackpropFilter" for op in graph.get_operations())

    assert filter_grad_ops(8) == 1  # TensorFlow's kernel
    assert filter_grad_ops(2) == 0  # written out: 2x2 maps are small
