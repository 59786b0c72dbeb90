"""The TrainConfig a retrain or train run starts from, and the one the flags given make of it.

    config = train_config(build_parser().parse_args(["retrain", "photos/", "--epochs", "20"]), "retrain")

The defaults, then the preset, then every flag the user gave (a preset never
overrides one); the augmentation flags add to --augment.
"""

from __future__ import annotations

from mobilenets.errors import MobilenetsError


def recipe(mode: str, preset: str | None = None, data: str = "", explicit: set = frozenset()):
    """The TrainConfig a run starts from: the defaults, then the preset (train: 'scratch' unless told)."""
    from mobilenets.train import TrainConfig, apply_preset

    preset = preset or (None if mode == "retrain" else "scratch")
    return apply_preset(TrainConfig(data=data, mode=mode), preset, explicit=explicit)


_AUG_FLAGS = {"flip_left_right": "flip_left_right", "random_crop": "random_crop",
              "random_scale": "random_scale", "random_brightness": "random_brightness", "shift": "shift"}
_CONFIG_FLAGS = ("arch", "epochs", "batch_size", "learning_rate", "optimizer", "schedule",
                 "label_smoothing", "weight_decay", "dropout", "class_weights", "seed",
                 "validation_percent", "test_percent", "time_budget_minutes", "distribute",
                 "weights", "fine_tune", "fine_tune_epochs", "fine_tune_learning_rate",
                 "stem_stride", "block_strides", "faces", "init", "low_res", "low_res_fraction")


def train_config(args, mode: str):
    """The TrainConfig of a retrain (`mode` "retrain") or train ("scratch") command line, checked."""
    from mobilenets.augment import Augment
    from mobilenets.train import TrainConfig

    given = {k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k, None) is not None}
    if given.get("validation_percent", 0) + given.get("test_percent", 0) >= 100:
        raise MobilenetsError(f"--validation-percent and --test-percent must sum to less than 100. "
                              f"Received {args.validation_percent:g} + {args.test_percent:g}")
    if args.augment is not None or any(getattr(args, f) for f in _AUG_FLAGS):
        aug = Augment.parse(args.augment).to_dict()
        aug.update({k: getattr(args, f) for f, k in _AUG_FLAGS.items() if getattr(args, f)})
        given["augment"] = Augment.parse(aug).to_dict()
    if args.no_cache:
        given["cache_features"] = False
    if not args.data and not args.resume:
        raise MobilenetsError("give DATA (a folder, 'digits', 'cifar10:PATH') or --resume RUN_DIR")
    config = recipe(mode, args.preset, data=str(args.data or ""), explicit=set(given))
    d = config.to_dict()
    d.update(given)
    config = TrainConfig.from_dict(d)
    config.spec  # validate the spec before any work
    return config
