"""The model a run trains, and how it learns: build, rewire, freeze, optimizer, loss.

    model = build_for_config(config, classes=10)
    compile_model(model, config, steps_per_epoch=350, epochs=30, lr=0.1)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mobilenets.errors import MobilenetsError
from mobilenets.train.config import TrainConfig
from mobilenets.train.schedule import budget_fitted, keras_schedule


def build_for_config(config: TrainConfig, classes: int):
    """The model a run trains: raw 0-255 pixels in, class probabilities out."""
    from mobilenets.models import build_model

    spec = config.spec
    if config.mode == "retrain":
        return build_model(spec, classes=classes, weights=config.weights, head="new",
                           dropout=config.dropout, preprocessing=True)
    # From-scratch recipes may still start from ImageNet weights (`init`):
    # then every layer, BatchNorm included, trains with the recipe, and the
    # head is the new pool -> dropout -> dense one (ImageNet's has 1000 classes).
    init = None if config.init in ("", "none", None) else config.init
    model = build_model(spec, classes=classes, weights=init, head="new" if init else "keras",
                        dropout=config.dropout, preprocessing=True)
    if config.stem_stride != 2 or config.block_strides or config.bn_momentum is not None:
        model = _rewired(model, config.stem_stride, config.block_strides, config.bn_momentum)
    return model


def _rewired(model, stem_stride: int, block_strides: "list[int] | None", bn_momentum: float | None):
    """Rebuild `model` with other strides and/or BatchNorm momentum.

    Args:
        stem_stride: the first convolution's stride.
        block_strides: the stride of each downsampling block after the stem
            (its stride-2 convolution: depthwise in V1-V3, depthwise or a
            full KxK convolution in V4), in order; None keeps them all at 2.
            Every MobileNet has four.
        bn_momentum: every BatchNorm's momentum; None keeps Keras's.

    A stride of 1 instead of 2 keeps 32 px inputs from shrinking to 1x1
    before the last blocks. A lower momentum lets BatchNorm's moving
    statistics catch up in short schedules (Keras's 0.99/0.999 lag behind for
    the first ~1000 steps). None of it changes a weight's shape, so the
    weights carry over.
    """
    import keras

    cfg = model.get_config()
    layers = cfg["layers"]
    stem = next(layer for layer in layers if layer["class_name"] == "Conv2D")
    stem["config"]["strides"] = [stem_stride, stem_stride]
    blocks = [layer for layer in layers if layer is not stem
              and layer["class_name"] in ("Conv2D", "DepthwiseConv2D")
              and tuple(layer["config"]["strides"]) == (2, 2)]
    if block_strides:
        if len(block_strides) != len(blocks) or any(s not in (1, 2) for s in block_strides):
            raise MobilenetsError(
                f"block strides take {len(blocks)} values of 1 or 2 for this model (one per "
                f"downsampling block after the stem), e.g. {','.join(['2'] * len(blocks))}. "
                f"Received {','.join(map(str, block_strides))}")
        for layer, stride in zip(blocks, block_strides):
            if stride == 2:
                continue
            layer["config"]["strides"] = [stride, stride]
            # Keras (and models_v4) pad stride-2 blocks explicitly (ZeroPadding2D,
            # then a 'valid' convolution); at stride 1 the convolution pads itself.
            pad = _input_layer(layers, layer)
            if pad is not None and pad["class_name"] == "ZeroPadding2D":
                pad["config"]["padding"] = [[0, 0], [0, 0]]
                layer["config"]["padding"] = "same"
    for layer in layers:
        if layer["class_name"] == "BatchNormalization" and bn_momentum is not None:
            layer["config"]["momentum"] = bn_momentum
    rewired = keras.Model.from_config(cfg)
    rewired.set_weights(model.get_weights())
    return rewired


def _input_layer(layers: list[dict], layer: dict) -> dict | None:
    """The layer (config) whose output feeds `layer` in a functional config."""
    args = layer["inbound_nodes"][0]["args"] if layer["inbound_nodes"] else ()
    name = args[0]["config"]["keras_history"][0] if args and isinstance(args[0], dict) else None
    return next((other for other in layers if other["config"]["name"] == name), None)


def set_trainable(model, fine_tune_layers: int) -> int:
    """Freeze the backbone except its top `fine_tune_layers` layers.

    BatchNormalization layers stay frozen, so they run in inference mode
    with their ImageNet statistics (Keras's recommendation for fine-tuning).
    Returns the number of trainable backbone layers.
    """
    from mobilenets.models import backbone_layer_count

    n = backbone_layer_count(model)
    unfrozen = 0
    for i, layer in enumerate(model.layers):
        if i >= n:
            layer.trainable = True
            continue
        train = i >= n - fine_tune_layers and type(layer).__name__ != "BatchNormalization"
        layer.trainable = train
        unfrozen += bool(train and layer.weights)
    return unfrozen


def make_optimizer(config: TrainConfig, steps_per_epoch: int, epochs: int, lr: float):
    """`config.optimizer` with its weight decay, following `config.schedule` from `lr` over `epochs`."""
    import keras

    schedule = keras_schedule(config.schedule, lr, steps_per_epoch, epochs, config.warmup_epochs)
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        return keras.optimizers.AdamW(schedule, weight_decay=wd) if wd else keras.optimizers.Adam(schedule)
    if config.optimizer == "nadam":
        return keras.optimizers.Nadam(schedule, weight_decay=wd)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=wd)
    raise MobilenetsError(f"optimizer must be adam, nadam or sgd. Received {config.optimizer!r}")


def compile_model(model, config: TrainConfig, steps_per_epoch: int, epochs: int, lr: float) -> None:
    """Compile `model` for a phase: loss, accuracy metrics and an optimizer already built.

    Metric objects rather than "accuracy", and the optimizer built here: left
    to the first step, both create variables while TensorFlow traces it, so
    it traces the whole step twice (`benchmarks/bench_first_fit.py`).
    """
    import keras

    if budget_fitted(config):  # the budget callback sets the rate epoch by epoch
        config = replace(config, schedule="constant")
    # top-5 only where it says something: with 5 classes or fewer it is always 1.0.
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if model.output_shape[-1] > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top_k"))
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch, epochs, lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=metrics,
    )
    model.optimizer.build(model.trainable_variables)


def class_weights(labels: np.ndarray, classes: int, mode: str) -> dict | None:
    """Loss weights per class: none, or "auto" (inverse frequency, a class's mean weight is 1)."""
    if mode == "none":
        return None
    if mode != "auto":
        raise MobilenetsError(f"class weights must be none or auto. Received {mode!r}")
    counts = np.bincount(labels, minlength=classes).astype(float)
    return {i: float(len(labels) / (classes * c)) if c else 0.0 for i, c in enumerate(counts)}
