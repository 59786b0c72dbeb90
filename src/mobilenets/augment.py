"""Training-time augmentation as TensorFlow ops inside the tf.data pipeline.

    ds = folder.dataset("train", (224, 224), augment=Augment.parse("retrain"), seed=0)

`Augment` holds the options, in the spirit of TF-Hub's `retrain.py`
(`--flip_left_right --random_crop 10 --random_scale 10 --random_brightness 10`),
plus the seed article's `width_shift_range=0.1, height_shift_range=0.1`
(`shift=10`) and the CIFAR recipe "pad 4 px, random crop back" (`pad_crop=4`).
`augment_fn` turns it into a function for `tf.data.Dataset.map` over whole
batches (or single images): every image gets its own random draws, all of
them stateless ops seeded from one per-batch seed, so a seeded pipeline is
reproducible even with parallel calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from mobilenets.errors import MobilenetsError

# Named settings for `Augment.parse` (and the CLI's --augment).
PRESETS = {
    "none": {},
    "flip": {"flip_left_right": True},
    # The seed article's ImageDataGenerator(width_shift_range=0.1,
    # height_shift_range=0.1, horizontal_flip=True).
    "shift": {"flip_left_right": True, "shift": 10.0},
    # retrain.py's flags as its documentation suggests them.
    "retrain": {"flip_left_right": True, "random_crop": 10.0, "random_scale": 10.0,
                "random_brightness": 10.0},
    # The usual CIFAR-10 recipe: reflect-pad 4 px, random 32x32 crop, flip.
    "cifar": {"flip_left_right": True, "pad_crop": 4},
}

# Short names accepted by `Augment.parse` for its fields.
_ALIASES = {"flip": "flip_left_right", "crop": "random_crop", "scale": "random_scale",
            "brightness": "random_brightness"}
_FILLS = ("reflect", "constant")


@dataclass(frozen=True)
class Augment:
    """Random changes applied to each training image, as TF ops.

    Attributes:
        flip_left_right: mirror half of the images horizontally.
        random_crop: percent margin: enlarge by this much, then crop a random
            window of the original size (retrain.py's `--random_crop`).
        random_scale: percent: enlarge by a random factor in
            [1, 1 + random_scale/100] before the crop (`--random_scale`).
        random_brightness: percent: multiply pixels by a random factor in
            [1 - b/100, 1 + b/100] (`--random_brightness`).
        shift: percent of width/height to translate by at most, padding with
            `fill` (Keras's `width_shift_range`/`height_shift_range` x 100).
        pad_crop: pad this many pixels (reflect), then crop a random window of
            the original size.
        fill: how `shift` fills the border: "reflect" or "constant" (zeros).
    """

    flip_left_right: bool = False
    random_crop: float = 0.0
    random_scale: float = 0.0
    random_brightness: float = 0.0
    shift: float = 0.0
    pad_crop: int = 0
    fill: str = "reflect"

    def __post_init__(self):
        for name in ("random_crop", "random_scale", "random_brightness", "shift"):
            value = getattr(self, name)
            if not 0 <= value < 100:
                raise MobilenetsError(f"{name} is a percentage in [0, 100). Received {name}={value}")
        if int(self.pad_crop) != self.pad_crop or self.pad_crop < 0:
            raise MobilenetsError(f"pad_crop must be a whole number of pixels >= 0. "
                                  f"Received pad_crop={self.pad_crop}")
        if self.fill not in _FILLS:
            raise MobilenetsError(f"fill must be one of {', '.join(_FILLS)}. Received fill={self.fill!r}")

    @property
    def is_identity(self) -> bool:
        """True when no option is on: the pipeline can skip augmentation."""
        return not (self.flip_left_right or self.random_crop or self.random_scale
                    or self.random_brightness or self.shift or self.pad_crop)

    def describe(self) -> str:
        """The options as `Augment.parse` text, e.g. `'flip,crop=10'`; `'none'` when all are off."""
        short = {field: alias for alias, field in _ALIASES.items()}
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            key = short.get(f.name, f.name)
            items.append(key if value is True else f"{key}={value:g}" if isinstance(value, float)
                         else f"{key}={value}")
        return ",".join(items) or "none"

    def to_dict(self) -> dict:
        """The options as a JSON-serialisable dict (for config.json)."""
        return asdict(self)

    @classmethod
    def parse(cls, text: "str | Augment | dict | None") -> "Augment":
        """Build an `Augment` from a preset name or `key=value` list.

        Args:
            text: `None`, a preset (`none`, `flip`, `shift`, `retrain`,
                `cifar`), a comma-separated list such as
                `"flip,crop=10,scale=10,brightness=10"` or
                `"cifar,shift=5,fill=constant"` (presets and keys mix; later
                items win), a dict of fields, or an `Augment`.

        Returns:
            The `Augment`.
        """
        if text is None:
            return cls()
        if isinstance(text, Augment):
            return text
        if isinstance(text, dict):
            return cls(**text)
        options: dict = {}
        names = {f.name for f in fields(cls)}
        for item in str(text).replace(" ", "").split(","):
            if not item:
                continue
            key, _, value = item.partition("=")
            key = key.lower().replace("-", "_")
            if not value and key in PRESETS:
                options.update(PRESETS[key])
                continue
            key = _ALIASES.get(key, key)
            if key not in names:
                raise MobilenetsError(
                    f"unknown augmentation {item!r} in {text!r}; use presets "
                    f"{', '.join(PRESETS)} or keys {', '.join(sorted(names | set(_ALIASES)))}"
                )
            options[key] = _value(key, value, text)
        return cls(**options)


def _value(key: str, value: str, text: str):
    if key == "flip_left_right":
        if value.lower() in ("", "1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
    elif key == "fill":
        return value
    else:
        try:
            return int(value) if key == "pad_crop" else float(value)
        except ValueError:
            pass
    raise MobilenetsError(f"bad value for {key} in {text!r}. Received {value!r}")


def augment_fn(augment: "Augment | str | None", image_size):
    """A function for `tf.data.Dataset.map` that augments images with TF ops.

    The function takes `(images, labels)` or `(images, labels, seed)`:
    one `(h, w, 3)` image or a batch `(B, h, w, 3)` (any dtype, 0-255), the
    labels (returned unchanged), and optionally a shape-[2] integer seed for
    the stateless random ops (without it a fresh seed is drawn each call).
    Every image of a batch gets its own random draws, so mapping after
    `batch()` is both correct and much faster than mapping per image. It
    returns float32 images in [0, 255] of the input's shape.

        ds = ds.batch(32).map(augment_fn(Augment(flip_left_right=True), (96, 96)),
                              num_parallel_calls=tf.data.AUTOTUNE)

    Args:
        augment: an `Augment`, or anything `Augment.parse` accepts.
        image_size: `(height, width)` of the images (or one int: square).

    Returns:
        The map function.
    """
    import tensorflow as tf

    a = Augment.parse(augment)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    def crop_at(x, oy, ox):
        """Per-image integer crops of size (h, w) at offsets (oy, ox), by gathering rows/cols."""
        rows = oy[:, None] + tf.range(h)[None, :]
        cols = ox[:, None] + tf.range(w)[None, :]
        x = tf.gather(x, rows, axis=1, batch_dims=1)
        return tf.gather(x, cols, axis=2, batch_dims=1)

    def pad_and_crop(x, ph, pw, mode, seed):
        # REFLECT needs the pad to be smaller than the side it mirrors.
        ph, pw = min(ph, h - 1), min(pw, w - 1)
        x = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode=mode)
        n = tf.shape(x)[0]
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        oy = tf.random.stateless_uniform([n], seeds[0], 0, 2 * ph + 1, dtype=tf.int32)
        ox = tf.random.stateless_uniform([n], seeds[1], 0, 2 * pw + 1, dtype=tf.int32)
        return crop_at(x, oy, ox)

    def fn(images, labels, seed=None):
        x = tf.cast(images, tf.float32)
        single = x.shape.rank == 3
        if single:
            x = x[None]
        n = tf.shape(x)[0]
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

        if a.random_crop or a.random_scale:
            # retrain.py enlarges by (1 + crop%) * U(1, 1 + scale%) and crops a
            # random window back; cropping a 1/factor box and resizing it to
            # (h, w) is the same thing, for the whole batch in one op.
            factor = (1 + a.random_crop / 100) * tf.random.stateless_uniform(
                [n], seeds[0], 1.0, 1.0 + a.random_scale / 100
            )
            side = 1.0 / factor
            y0 = tf.random.stateless_uniform([n], seeds[1]) * (1.0 - side)
            x0 = tf.random.stateless_uniform([n], seeds[2]) * (1.0 - side)
            boxes = tf.stack([y0, x0, y0 + side, x0 + side], axis=1)
            x = tf.image.crop_and_resize(x, boxes, tf.range(n), (h, w), method="bilinear")
        if a.shift:
            ph, pw = round(h * a.shift / 100), round(w * a.shift / 100)
            if ph or pw:
                x = pad_and_crop(x, ph, pw, a.fill.upper(), seeds[3])
        if a.pad_crop:
            x = pad_and_crop(x, a.pad_crop, a.pad_crop, "REFLECT", seeds[4])
        if a.flip_left_right:
            flip = tf.random.stateless_uniform([n], seeds[5]) < 0.5
            x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
        if a.random_brightness:
            b = a.random_brightness / 100
            x = x * tf.random.stateless_uniform([n, 1, 1, 1], seeds[6], 1 - b, 1 + b)
        x = tf.clip_by_value(x, 0.0, 255.0)
        x = tf.ensure_shape(x, (None, h, w, 3))
        return (x[0] if single else x), labels

    return fn
