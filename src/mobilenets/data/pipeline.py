"""Images served through tf.data: shuffle, augment, batch, prefetch.

    ds = make_dataset(images, labels, batch_size=32, shuffle=True, augment="flip", seed=0)
    ds = batch_dataset(folder.stream("train", 224, cache_dir="cache/images"), 64)   # in order, for predict

`images` is a uint8 array in memory or any `ImageSplit` (`data.store`),
whose batches are read from disk as tf.data asks for them.
"""

from __future__ import annotations

import numpy as np

from mobilenets.augment import Augment, augment_fn
from mobilenets.errors import MobilenetsError


def make_dataset(images: np.ndarray, labels, batch_size: int = 32, shuffle: bool = False,
                 augment: "Augment | str | None" = None, seed: int | None = None,
                 drop_remainder: bool = False):
    """Serve images through tf.data: shuffle, augment, batch, prefetch.

    Shuffling permutes indices (not pixels), then each batch is gathered
    from one constant tensor; augmentation is a parallel map of TF ops over
    whole batches, seeded per batch from `seed`, so a seeded pipeline
    repeats exactly.

    Args:
        images: uint8 `(N, h, w, 3)`, or an `ImageSplit` (read a batch at a time).
        labels: integer labels `(N,)` (fewer serve only the first images).
        batch_size: images per batch.
        shuffle: reshuffle every epoch.
        augment: an `Augment` (or text for `Augment.parse`); None for none.
        seed: seed for shuffling and augmentation.
        drop_remainder: drop the last incomplete batch.

    Returns:
        A `tf.data.Dataset` of `(float32 (B, h, w, 3) in 0..255, int32 (B,))`.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise MobilenetsError(f"batch_size must be >= 1. Received batch_size={batch_size}")
    augment = Augment.parse(augment)
    labels_t = tf.constant(np.asarray(labels).reshape(-1), tf.int32)
    # The first len(labels) images: fewer labels than images serve a prefix.
    n = int(labels_t.shape[0])
    if n > len(images):
        raise MobilenetsError(f"{n} labels for {len(images)} images")
    autotune = tf.data.AUTOTUNE
    take = _gather_fn(images)

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # Gather whole batches of indices at once; augmentation is vectorised
    # over the batch, with a seed per batch drawn from `seed`.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def gather(i):
        return tf.cast(take(i), tf.float32), tf.gather(labels_t, i)

    if augment.is_identity:
        ds = ds.map(gather, num_parallel_calls=autotune)
    else:
        fn = augment_fn(augment, tuple(_image_shape(images)[:2]))
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, noise)).map(
            lambda i, r: fn(*gather(i), tf.stack([r, tf.constant(0, tf.int64)])),
            num_parallel_calls=autotune,
        )
    return ds.prefetch(autotune)


def batch_dataset(images, batch_size: int = 64):
    """A split's images in order as float32 batches (no labels), for `predict`.

    Batches are read (from memory or disk) as tf.data asks for them, a few
    ahead, so the model never waits on the reads and the whole split is
    never held at once.

    Args:
        images: uint8 `(N, h, w, 3)` or an `ImageSplit`.
        batch_size: images per batch.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise MobilenetsError(f"batch_size must be >= 1. Received batch_size={batch_size}")
    n = len(images)
    ds = tf.data.Dataset.range(0, n, batch_size).map(lambda start: tf.range(start, tf.minimum(start + batch_size, n)))
    take = _gather_fn(images, constant=False)
    return ds.map(lambda i: tf.cast(take(i), tf.float32)).prefetch(2)


def _image_shape(images) -> tuple:
    return tuple(images.shape[1:]) if isinstance(images, np.ndarray) else tuple(images.image_shape)


def _gather_fn(images, constant: bool = True):
    """`indices -> uint8 images` as a TF op: reads from an `ImageSplit`, or from an array.

    With `constant` an array becomes one tensor, gathered from inside the
    graph (fastest when it is read every epoch); a single pass reads it
    through NumPy instead of copying it whole.
    """
    import tensorflow as tf

    if isinstance(images, np.ndarray) and constant:
        images_t = tf.constant(images, tf.uint8)
        return lambda i: tf.gather(images_t, i)
    shape = _image_shape(images)
    read = (lambda i: images[i]) if isinstance(images, np.ndarray) else images.take

    def take(i):
        out = tf.numpy_function(read, [i], tf.uint8, stateful=False)
        return tf.ensure_shape(out, (None, *shape))

    return take
