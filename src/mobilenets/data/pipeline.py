"""In-memory images served through tf.data: shuffle, augment, batch, prefetch.

    ds = make_dataset(images, labels, batch_size=32, shuffle=True, augment="flip", seed=0)
"""

from __future__ import annotations

import numpy as np

from mobilenets.augment import Augment, augment_fn
from mobilenets.errors import MobilenetsError


def make_dataset(images: np.ndarray, labels, batch_size: int = 32, shuffle: bool = False,
                 augment: "Augment | str | None" = None, seed: int | None = None,
                 drop_remainder: bool = False):
    """Serve in-memory images through tf.data: shuffle, augment, batch, prefetch.

    Shuffling permutes indices (not pixels), then each batch is gathered
    from one constant tensor; augmentation is a parallel map of TF ops over
    whole batches, seeded per batch from `seed`, so a seeded pipeline
    repeats exactly.

    Args:
        images: uint8 `(N, h, w, 3)`.
        labels: integer labels `(N,)`.
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
    images_t = tf.constant(images, tf.uint8)
    labels_t = tf.constant(np.asarray(labels).reshape(-1), tf.int32)
    n = int(images_t.shape[0])
    autotune = tf.data.AUTOTUNE

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # Gather whole batches of indices at once; augmentation is vectorised
    # over the batch, with a seed per batch drawn from `seed`.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def gather(i):
        return tf.cast(tf.gather(images_t, i), tf.float32), tf.gather(labels_t, i)

    if augment.is_identity:
        ds = ds.map(gather, num_parallel_calls=autotune)
    else:
        fn = augment_fn(augment, tuple(images.shape[1:3]))
        noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, noise)).map(
            lambda i, r: fn(*gather(i), tf.stack([r, tf.constant(0, tf.int64)])),
            num_parallel_calls=autotune,
        )
    return ds.prefetch(autotune)
