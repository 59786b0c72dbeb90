"""The bottleneck cache: a frozen backbone's pooled features, computed once, and the head on them.

    features, hit = extract_features(backbone, data.stream("train", 224, cache_dir=...), key, cache_dir)

Without augmentation a retrain's head sees the same features every epoch:
they are computed once and cached on disk, keyed by model, weights and image
content (TF-Hub retrain.py's bottleneck trick), so a second run skips the
backbone entirely. Images reach the backbone a batch at a time from the
decoded-image store, so memory holds the features (~1 KB an image) but never
the whole split of pixels.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.data import ImageSplit, batch_dataset
from mobilenets.env import report
from mobilenets.errors import MobilenetsError
from mobilenets.train.build import class_weights, make_optimizer
from mobilenets.train.config import TrainConfig
from mobilenets.train.history import write_history
from mobilenets.train.runs import Job
from mobilenets.train.runtime import keras_progress


def image_cache(cache_dir: Path | None) -> Path | None:
    """Decoded, resized images are kept here between runs."""
    return cache_dir / "images" if cache_dir else None


def _feature_key(config: TrainConfig, images: ImageSplit, scaling: list | None = None) -> str:
    # The pixels' digest comes with the split (taken as it was decoded), so a
    # cache hit does not read every image again.
    weights = config.weights
    if weights not in ("imagenet", "none") and Path(weights).is_file():
        weights = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    parts = [config.spec.name, weights, [len(images), *images.image_shape], images.content_key]
    if scaling is not None:  # not [-1, 1]: a timm checkpoint's mean and std, which its config.json may change
        parts.append(scaling)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _pixel_scaling(model) -> list | None:
    """The model's pixel Rescaling as `[scale, offset]`, None when it is MobileNet's [-1, 1]."""
    from mobilenets.models import PREPROCESS_LAYER

    layer = {layer.name: layer for layer in model.layers}.get(PREPROCESS_LAYER)
    if layer is None:
        return None
    cfg = layer.get_config()
    scaling = [cfg["scale"], cfg["offset"]]
    return None if scaling == [1 / 127.5, -1.0] else scaling


def extract_features(backbone, images: "ImageSplit | np.ndarray", key: str, cache_dir: Path | None,
                     batch_size: int = 64) -> tuple[np.ndarray, bool]:
    """Pooled backbone features for `images`, from the disk cache when present.

    Args:
        backbone: the model whose outputs are the features.
        images: uint8 images, an `ImageSplit` (read a batch at a time) or an array.
        key: names the cached features (`<cache_dir>/features/<key>.npy`).
        cache_dir: the cache folder; None computes and keeps nothing.
        batch_size: images per forward pass.

    Returns:
        (features, cache_hit)
    """
    path = cache_dir / "features" / f"{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path), True
    with keras_progress() as verbose:  # a bar on a terminal, nothing in a log
        feats = backbone.predict(batch_dataset(images, batch_size), verbose=int(verbose == 1))
    if path is not None:
        with artifacts.atomic_path(path) as tmp:
            np.save(tmp, feats)
    return feats, False


def head_on_features(model, job: Job):
    """Train the new head on cached backbone features (no augmentation)."""
    import keras

    from mobilenets.models import HEAD_LAYERS

    run, config, data, state, cache_dir = job.dir, job.config, job.data, job.state, job.cache_dir
    n_cls = len(data.classes)
    backbone = keras.Model(model.inputs, model.get_layer(HEAD_LAYERS[0]).output)
    feats, hits = {}, {}
    for split in ("train", "val") if "val" in job.splits else ("train",):
        images = data.stream(split, job.size, cache_dir=job.images_dir)
        if not len(images):  # every file failed to decode: what the image pipeline says then
            raise MobilenetsError(f"the {split!r} split of {data.name} is empty")
        key = _feature_key(config, images, _pixel_scaling(model))
        feats[split], hits[split] = extract_features(backbone, images, key, cache_dir)
        feats[split] = (feats[split], images.labels)
    state["feature_cache_hit"] = all(hits.values())
    report(f"bottleneck features: {'cache hit' if state['feature_cache_hit'] else 'computed'}"
           + (f" ({cache_dir / 'features'})" if cache_dir else ""))

    head_in = keras.Input(shape=(feats["train"][0].shape[1],))
    x = keras.layers.Dropout(config.dropout, name=HEAD_LAYERS[1])(head_in)
    out = keras.layers.Dense(n_cls, activation="softmax", name=HEAD_LAYERS[2])(x)
    head = keras.Model(head_in, out)
    head.get_layer(HEAD_LAYERS[2]).set_weights(model.get_layer(HEAD_LAYERS[2]).get_weights())
    _fit_head(head, feats["train"], feats.get("val"), config, state)
    model.get_layer(HEAD_LAYERS[2]).set_weights(head.get_layer(HEAD_LAYERS[2]).get_weights())
    write_history(run / "history.csv", state["history"])
    state["done"].append("head")
    with artifacts.atomic_path(run / "checkpoints" / "head.keras") as tmp:
        model.save(tmp)
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    return model


def _fit_head(head, train: tuple, val: tuple | None, config: TrainConfig, state: dict) -> None:
    """Train the small head on in-memory features with a compiled step.

    `Model.fit` costs ~0.1-0.2 s per epoch in set-up alone, which dwarfs a
    dense layer on a few thousand feature vectors; one `tf.function` step
    over shuffled mini-batches does the same optimisation in milliseconds.
    History rows match what `fit` logs (loss, accuracy, val_loss, val_accuracy).
    """
    import keras
    import tensorflow as tf

    x, y = train
    n_cls = head.output_shape[-1]
    steps = int(np.ceil(len(x) / config.batch_size))
    optimizer = make_optimizer(config, steps, config.epochs, config.learning_rate)
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    weights = class_weights(y, n_cls, config.class_weights)
    sample_w = np.ones(len(y), "float32") if weights is None else np.array(
        [weights[int(c)] for c in y], "float32")
    onehot = keras.utils.to_categorical(y, n_cls).astype("float32")
    rng = np.random.default_rng(config.seed)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, head(xb, training=True), sample_weight=wb)
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables))

    def scores(xs, ys):
        probs = head.predict_on_batch(xs)
        hot = keras.utils.to_categorical(ys, n_cls)
        return float(loss_fn(hot, probs)), float((probs.argmax(1) == ys).mean())

    for epoch in range(config.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), config.batch_size):
            b = order[i:i + config.batch_size]
            step(x[b], onehot[b], sample_w[b])
        row = {"phase": "head", "epoch": epoch + 1}
        row["loss"], row["accuracy"] = scores(x, y)
        if val is not None:
            row["val_loss"], row["val_accuracy"] = scores(*val)
        state["history"].append(row)
