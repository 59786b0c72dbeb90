"""Named training recipes, as data: each is a set of `TrainConfig` fields.

    config = apply_preset(TrainConfig(data="cifar10", arch="v1-0.50-32"), "scratch")

`PRESETS` holds the general recipes; the face presets (`mobilenets.faces.PRESETS`)
join them under their own names, in `TrainConfig` terms. What each recipe
reached, and against what, is in benchmarks/README.md.
"""

from __future__ import annotations

from mobilenets.errors import MobilenetsError
from mobilenets.train.config import TrainConfig


# The seed article's CIFAR-10 recipe, verbatim: Nadam, batch 32, categorical
# cross-entropy, width/height shift 0.1 and horizontal flip.
PRESETS = {
    "seed-cifar10": dict(mode="scratch", optimizer="nadam", learning_rate=1e-3, batch_size=32,
                         schedule="constant", label_smoothing=0.0, weight_decay=0.0,
                         augment={"flip_left_right": True, "shift": 10.0, "fill": "reflect"},
                         stem_stride=2, dropout=1e-3),
    # Ours for small images from scratch: SGD + Nesterov momentum with warm-up
    # and cosine decay, label smoothing, decoupled weight decay, reflect-pad
    # crop + flip, and a stride-1 stem so 32 px inputs end at 2x2, not 1x1.
    # Weight decay 5e-3: Keras's is decoupled (each step shrinks weights by
    # lr * wd), so this is the usual CIFAR recipe's 5e-4 L2 under momentum
    # 0.9 (which shrinks by lr * wd / (1 - 0.9)).
    # low_res_scale 0.75: the first half of the epochs at 24 px (0.56x the
    # work), so a time budget holds more epochs (benchmarks/bench_cifar_recipes.py).
    "scratch": dict(mode="scratch", optimizer="sgd", learning_rate=0.1, batch_size=128,
                    schedule="cosine", warmup_epochs=2, label_smoothing=0.1, weight_decay=5e-3,
                    augment={"flip_left_right": True, "pad_crop": 4}, stem_stride=1,
                    block_strides=None, dropout=0.2, bn_momentum=0.9, low_res_scale=0.75),
}


def apply_preset(config: TrainConfig, name: str | None, explicit: set[str] = frozenset()) -> TrainConfig:
    """Return `config` with preset `name` applied, keeping `explicit` fields."""
    if not name:
        return config
    from mobilenets.faces import PRESETS as FACE_PRESETS  # ours, always there: a failure here is a bug

    presets = dict(PRESETS)
    for key, p in FACE_PRESETS.items():
        presets.setdefault(key, _face_preset(p))
    if name not in presets:
        raise MobilenetsError(f"unknown preset {name!r}; choose from {', '.join(sorted(presets))}")
    d = config.to_dict()
    for k, v in presets[name].items():
        if k not in explicit:
            d[k] = v
    d["preset"] = name
    return TrainConfig.from_dict(d)


def _face_preset(p) -> dict:
    """A `faces.FacePreset` in `TrainConfig` terms."""
    d = dict(arch=p.arch, epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate,
             faces=p.faces, augment=p.augment_options())
    if not p.recipe:
        return dict(mode="retrain", weights=p.weights, **d)
    if p.recipe not in PRESETS:
        raise MobilenetsError(f"face preset {p.name!r}: unknown recipe {p.recipe!r}")
    if p.weight_decay is not None:
        d["weight_decay"] = p.weight_decay
    # Face presets fine-tune from ImageNet at their own size: no low-resolution epochs.
    return {**PRESETS[p.recipe], **d, "init": p.weights, "stem_stride": p.stem_stride,
            "low_res_scale": None}
