"""Low-resolution epochs: a from-scratch run's first epochs at a smaller input size.

    low = low_res_size(config, (32, 32))   # (24, 24) under the scratch preset
"""

from __future__ import annotations

from mobilenets.errors import MobilenetsError
from mobilenets.train.config import TrainConfig


def low_res_size(config: TrainConfig, size: tuple[int, int]) -> "tuple[int, int] | None":
    """The low-resolution input size of a run (same aspect ratio), or None.

    `low_res` (px; 0 turns it off) is the user's and is checked; unset, the
    preset's `low_res_scale` of the model's height is used where it makes
    sense (scratch runs, at least 8 px) and silently skipped elsewhere.
    """
    px = config.low_res
    if px is None and config.low_res_scale and config.mode == "scratch":
        px = round(config.low_res_scale * size[0])
        if not 8 <= px < size[0]:
            return None
    if not px:
        return None
    if config.mode != "scratch":
        raise MobilenetsError("--low-res is for training from scratch ('mobilenets train')")
    if not 8 <= px < size[0]:
        raise MobilenetsError(f"--low-res takes a height between 8 and the model's ({size[0]}) px, "
                              f"exclusive (0: off). Received {px}")
    if not 0 < config.low_res_fraction < 1:
        raise MobilenetsError(f"--low-res-fraction takes a share of the epochs between 0 and 1, "
                              f"exclusive. Received {config.low_res_fraction}")
    return px, max(1, round(px * size[1] / size[0]))


def low_res_epochs(config: TrainConfig, planned: int) -> int:
    """How many of `planned` epochs train at low resolution (at least one left at full)."""
    return min(planned - 1, int(config.low_res_fraction * planned + 0.5))


def pixels(size) -> int:
    return size[0] * size[1]


def resized(ds, size: tuple[int, int]):
    """`ds`'s (augmented) images scaled to `size` (area-averaged when shrinking)."""
    import tensorflow as tf

    return ds.map(lambda x, y: (tf.image.resize(x, size, antialias=True), y),
                  num_parallel_calls=tf.data.AUTOTUNE)


def fits(model, size: tuple[int, int]) -> bool:
    """Whether the model's downsampling leaves something of a `size` input."""
    import keras

    full_spec = model.input_spec
    model.input_spec = None  # the weights fit any input size; Keras checks the built one
    try:
        model(keras.Input((*size, model.input_shape[-1])))
        return True
    except ValueError:
        return False
    finally:
        model.input_spec = full_spec


def check_fits(model, size: tuple[int, int]) -> None:
    """Refuse a low resolution that the model's downsampling shrinks to nothing."""
    if not fits(model, size):
        raise MobilenetsError(f"--low-res {size[0]} is too small for this model: its strided layers "
                              f"shrink {size[0]}x{size[1]} to nothing; use a larger one, or "
                              f"--stem-stride 1 to keep the stem's resolution")
