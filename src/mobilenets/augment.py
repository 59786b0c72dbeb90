"""Training-time augmentation as TensorFlow ops inside the tf.data pipeline.

    ds = folder.dataset("train", (224, 224), augment=Augment.parse("retrain"), seed=0)

`Augment` holds the options, in the spirit of TF-Hub's `retrain.py`
(`--flip_left_right --random_crop 10 --random_scale 10 --random_brightness 10`),
plus the seed article's `width_shift_range=0.1, height_shift_range=0.1`
(`shift=10`) and the CIFAR recipe "pad 4 px, random crop back" (`pad_crop=4`).
`augment_fn` turns it into a function for `tf.data.Dataset.map`: one image in,
one image of the same shape out, every random draw a stateless op whose seed
is derived from a per-example seed, so a seeded pipeline is reproducible even
with parallel calls.
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
    """A function for `tf.data.Dataset.map` that augments one image.

    The function takes `(image, label)` or `(image, label, seed)`: an
    `(h, w, 3)` image (any dtype, 0-255), its label, and optionally a
    shape-[2] integer seed for the stateless random ops (without it the ops
    draw a fresh seed each call). It returns `(float32 image in [0, 255] of
    the same shape, label)`.

        ds = ds.map(augment_fn(Augment(flip_left_right=True), (96, 96)),
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
    out_shape = (h, w, 3)

    def crop_back(image, seed):
        return tf.image.stateless_random_crop(image, out_shape, seed=seed)

    def pad(image, ph, pw, mode):
        # REFLECT needs the pad to be smaller than the side it mirrors.
        ph, pw = min(ph, h - 1), min(pw, w - 1)
        return tf.pad(image, [[ph, ph], [pw, pw], [0, 0]], mode=mode)

    def fn(image, label, seed=None):
        image = tf.cast(image, tf.float32)
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)

        if a.random_crop or a.random_scale:
            # retrain.py: scale = (1 + crop%) * U(1, 1 + scale%), resize, crop back.
            factor = (1 + a.random_crop / 100) * tf.random.stateless_uniform(
                [], seeds[0], 1.0, 1.0 + a.random_scale / 100
            )
            size = tf.cast(tf.math.ceil(tf.constant([h, w], tf.float32) * factor), tf.int32)
            image = tf.image.resize(image, tf.maximum(size, [h, w]), method="bilinear")
            image = crop_back(image, seeds[1])
        if a.shift:
            ph, pw = round(h * a.shift / 100), round(w * a.shift / 100)
            if ph or pw:
                image = crop_back(pad(image, ph, pw, a.fill.upper()), seeds[2])
        if a.pad_crop:
            image = crop_back(pad(image, a.pad_crop, a.pad_crop, "REFLECT"), seeds[3])
        if a.flip_left_right:
            image = tf.image.stateless_random_flip_left_right(image, seeds[4])
        if a.random_brightness:
            b = a.random_brightness / 100
            image = image * tf.random.stateless_uniform([], seeds[5], 1 - b, 1 + b)
        image = tf.clip_by_value(image, 0.0, 255.0)
        return tf.ensure_shape(image, out_shape), label

    return fn
