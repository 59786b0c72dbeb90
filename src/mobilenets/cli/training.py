"""The commands that make and score runs: retrain, train, evaluate, demo.

    mobilenets retrain photos/ --arch v1-0.25-224 --epochs 20
    mobilenets evaluate runs/pets --split test

The defaults their help shows are read from the recipe a run starts from
(`mobilenets.cli.recipe`), so they stay true.
"""

from __future__ import annotations

import json
import textwrap

from mobilenets.cli.common import command
from mobilenets.cli.flags import (folder, fraction_below_1, fraction_inside, non_negative,
                                  non_negative_int, percent, positive, positive_int, strides)
from mobilenets.cli.recipe import recipe, train_config


# ------------------------------------------------------- retrain / train


def _shown(value) -> str:
    """A default as help shows it: 0.001 not 0.0010, lists as 2,2,2,2."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _add_training_flags(p, scratch: bool):
    """Flags shared by retrain and train; None means 'not given' (presets fill it).

    The defaults the help shows are read from the recipe a run starts from, so they stay true.
    """
    from mobilenets.augment import PRESETS as AUGMENT_PRESETS, Augment

    start = recipe("scratch" if scratch else "retrain")
    d = {k: _shown(v) for k, v in start.to_dict().items()}
    aug = Augment.parse(start.augment)
    p.epilog += "\n\n" + textwrap.fill(
        "The defaults shown are a run's " + ("with the 'scratch' preset, train's own" if scratch
                                             else "without a --preset")
        + "; a --preset changes them, and a flag given wins over both.", 78)
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="folder of class folders, a .tar.gz of one, 'digits', 'cifar10' or 'cifar10:PATH'")
    p.add_argument("--arch", help=f"model spec, e.g. v1-0.25-224 (see 'mobilenets zoo') (default: {d['arch']})")
    p.add_argument("--preset", help="named recipe: seed-cifar10, scratch, emotion, gender "
                                    f"(default: {'scratch' if scratch else 'none'})")
    p.add_argument("--epochs", type=positive_int, help=f"training epochs (default: {d['epochs']})")
    p.add_argument("--batch-size", type=positive_int, help=f"images per step (default: {d['batch_size']})")
    p.add_argument("--learning-rate", type=positive, help=f"(default: {d['learning_rate']})")
    p.add_argument("--optimizer", choices=["adam", "nadam", "sgd"], help=f"(default: {d['optimizer']})")
    p.add_argument("--schedule", choices=["constant", "cosine"],
                   help=f"learning-rate schedule (default: {d['schedule']})")
    p.add_argument("--label-smoothing", type=fraction_below_1, help=f"(default: {d['label_smoothing']})")
    p.add_argument("--weight-decay", type=non_negative,
                   help=f"decoupled: each step shrinks weights by learning rate x this "
                        f"(default: {d['weight_decay']})")
    p.add_argument("--dropout", type=fraction_below_1, help=f"before the classifier (default: {d['dropout']})")
    p.add_argument("--class-weights", choices=["none", "auto"],
                   help=f"auto: balance imbalanced folders (default: {d['class_weights']})")
    p.add_argument("--seed", type=non_negative_int, help=f"makes a run repeatable (default: {d['seed']})")
    p.add_argument("--validation-percent", type=percent,
                   help=f"held out for validation (default: {d['validation_percent']})")
    p.add_argument("--test-percent", type=percent, help=f"held out for testing (default: {d['test_percent']})")
    if scratch:
        about = (f"Random changes to each training image, as TF ops inside the tf.data pipeline. "
                 f"Default: {aug.describe()}, from the 'scratch' preset; any flag here replaces all of it.")
    else:
        about = ("Random changes to each training image, as TF ops inside the tf.data pipeline. "
                 "Default: none. Any of these turns the feature cache off: the frozen backbone then "
                 "runs on every image in every epoch instead of once (16x the time of a cached "
                 "retrain on a 4.3k-image folder).")
    group = p.add_argument_group("augmentation", textwrap.fill(about, 76))

    def pct(name):
        return f"(default: {_shown(getattr(aug, name)) if getattr(aug, name) else 'off'})"

    group.add_argument("--flip-left-right", action="store_true", default=None,
                       help=f"mirror a random half of the images left-right "
                            f"(default: {'on' if aug.flip_left_right else 'off'})")
    group.add_argument("--random-crop", type=percent, metavar="PCT",
                       help=f"enlarge by PCT percent, then crop a random window of the original size "
                            f"{pct('random_crop')}")
    group.add_argument("--random-scale", type=percent, metavar="PCT",
                       help=f"enlarge by a random 0 to PCT percent more before that crop {pct('random_scale')}")
    group.add_argument("--random-brightness", type=percent, metavar="PCT",
                       help=f"multiply pixels by a random factor within PCT percent of 1 "
                            f"{pct('random_brightness')}")
    group.add_argument("--shift", type=percent, metavar="PCT",
                       help=f"translate by up to PCT percent of the width and height, mirroring the "
                            f"border {pct('shift')}")
    presets = "; ".join(f"{name}: {Augment.parse(name).describe() if options else 'nothing'}"
                        for name, options in AUGMENT_PRESETS.items())
    group.add_argument("--augment", metavar="TEXT",
                       help="a preset or a comma-separated list mixing presets and keys, later items "
                            "winning, e.g. 'retrain' or 'cifar,shift=5'; the flags above add to it. "
                            f"Presets: {presets}. Keys: flip, crop, scale, brightness, shift (as the "
                            "flags above), pad_crop=PX (pad by mirroring, then crop a random window "
                            "of the original size), fill=reflect|constant (how shift fills the border) "
                            f"(default: {aug.describe()})")
    run = p.add_argument_group("run")
    run.add_argument("--name", help="run name (default: <data>-<spec>-<time>)")
    run.add_argument("--runs-dir", type=folder, default="runs", help="where runs are made")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (default: start a new one)")
    run.add_argument("--cache-dir", type=folder,
                     help="cache of bottleneck features, decoded images, extracted archives and face "
                          "crops (default: $MOBILENETS_CACHE, else $XDG_CACHE_HOME/mobilenets, "
                          "else ~/.cache/mobilenets)")
    run.add_argument("--no-cache", action="store_true",
                     help="cache nothing: features computed again, archives and face crops made "
                          "in a temporary folder removed when the run ends")
    run.add_argument("--time-budget", type=positive, metavar="MIN", dest="time_budget_minutes",
                     help="train for MIN minutes: a cosine schedule is fitted to end in time "
                          "(--epochs becomes the most it may use); otherwise stop after the "
                          "epoch that passes MIN minutes (default: none, --epochs decides)")
    run.add_argument("--distribute", choices=["none", "mirrored", "multiworker"],
                     help=f"spread training over devices (default: {d['distribute']})")
    run.add_argument("--faces", action="store_true", default=None,
                     help="crop every image to its largest face first (OpenCV Haar cascade) "
                          "(default: off; the emotion and gender presets turn it on)")
    run.add_argument("--logical-cpus", type=positive_int, metavar="N",
                     help="split the CPU into N devices (to try --distribute mirrored) (default: one device)")


def training_run(args, mode: str):
    """Train what the parsed flags of `retrain` or `train` say; returns the run folder."""
    from mobilenets.data.archives import cache_home

    config = train_config(args, mode)
    if args.logical_cpus:
        from mobilenets.train import split_cpu

        split_cpu(args.logical_cpus)
    from mobilenets.train import run_training

    cache = None if args.no_cache else (args.cache_dir or cache_home())
    return run_training(config, runs_dir=args.runs_dir, name=args.name, resume=args.resume,
                        cache_dir=cache, random_backbone=False)


def _run_training(args, mode: str):
    from mobilenets.results import write_rows
    from mobilenets.train import summary_rows

    run = training_run(args, mode)
    if run is None:  # a multi-worker run's non-chief worker: the chief writes and reports the run
        return
    rows = summary_rows(run)
    if rows:
        write_rows(rows, "table", title=run.name)
    print(run)


def add_retrain(sub):
    p = command(sub, "retrain", "Transfer learning: retrain a MobileNet on your image folders.",
                "mobilenets retrain photos/ --arch v1-0.25-224 --epochs 20\n"
                "mobilenets retrain ../shared/data/pokemon-types --arch v1-0.25-224 --fine-tune 30\n"
                "mobilenets retrain --resume runs/pokemon-types-v1-0.25-224-20261123-120000")
    _add_training_flags(p, scratch=False)
    d = recipe("retrain")
    p.add_argument("--weights", help="imagenet (from the Keras cache, else downloaded), none, or a weights "
                                     "file; for v4-* timm's model.safetensors, with its config.json beside it "
                                     f"(default: {d.weights})")
    p.add_argument("--fine-tune", type=non_negative_int, metavar="N",
                   help="then unfreeze the top N backbone layers (BatchNorm stays frozen); try 80 with "
                        "v1-0.25 (of its 87 layers) and --fine-tune-epochs 10-20, or 20 for a quicker "
                        f"run (default: {d.fine_tune}, off)")
    p.add_argument("--fine-tune-epochs", type=positive_int,
                   help=f"epochs of the fine-tuning phase (default: {d.fine_tune_epochs})")
    p.add_argument("--fine-tune-learning-rate", type=positive, help="(default: --learning-rate / 10)")
    p.set_defaults(func=lambda args: _run_training(args, "retrain"))


def add_train(sub):
    p = command(sub, "train", "Train a MobileNet from scratch (e.g. CIFAR-10 at 32x32).",
                "mobilenets train digits --arch v1-0.25-32 --epochs 5\n"
                "mobilenets train cifar10:cifar-10-python.tar.gz --arch v1-0.50-32 --preset seed-cifar10")
    _add_training_flags(p, scratch=True)
    d = recipe("scratch")
    p.add_argument("--stem-stride", type=int, choices=[1, 2],
                   help="stride of the first convolution; 1 makes 32 px inputs end at 2x2, not 1x1 "
                        f"(default: {d.stem_stride})")
    p.add_argument("--block-strides", type=strides, metavar="S,S,S,S",
                   help="strides of the four downsampling blocks after the stem; with --stem-stride "
                        "2, e.g. 2,1,2,2 also ends 32 px inputs at 2x2, 2x faster per epoch but less "
                        f"accurate in 30 min on CIFAR-10 (default: {_shown(d.block_strides or [2, 2, 2, 2])})")
    p.add_argument("--low-res", type=non_negative_int, metavar="PX",
                   help="train the first epochs on images scaled down to PX high (e.g. 24 for 32 px "
                        "models: ~0.6x the work per epoch), then at the model's size; 0 turns it off "
                        "(default: 3/4 of the model's height, from the 'scratch' preset)")
    p.add_argument("--low-res-fraction", type=fraction_inside, metavar="F",
                   help="share of the epochs at --low-res (with --time-budget, of the planned epochs) "
                        f"(default: {_shown(d.low_res_fraction)})")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start every layer from these weights (imagenet or a file) and train the whole "
                        f"network, BatchNorm included, with the recipe (default: {d.init})")
    p.set_defaults(func=lambda args: _run_training(args, "scratch"))


# ------------------------------------------------------------- evaluate


def add_evaluate(sub):
    p = command(sub, "evaluate", "Accuracy, per-class scores, confusion matrix and misclassified files.",
                "mobilenets evaluate runs/pets\n"
                "mobilenets evaluate runs/pets/model.keras photos/ --split test --json")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="run directory, .keras or .h5 model file")
    p.add_argument("data", nargs="?", metavar="DATA", help="(default: the run's own data)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split to score")
    p.add_argument("--top-k", type=positive_int, default=5,
                   help="also report top-K accuracy, when K is below the number of classes")
    p.add_argument("--out", type=folder, help="output folder (default: <run>/evaluation-<split>, or beside the model file)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--faces", action="store_true", default=None,
                   help="crop images to faces first (default: as the run was trained)")
    p.add_argument("--tta", choices=["none", "flip"], default="none",
                   help="flip: average each image's and its mirror image's predictions "
                        "(models trained with flips; twice the work)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args):
    from mobilenets.evaluate import evaluate, top_k_column
    from mobilenets.results import write_rows

    r = evaluate(args.target, args.data, split=args.split, out_dir=args.out, k=args.top_k,
                 faces=args.faces, tta=args.tta)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    write_rows(r["per_class"], "table", title=f"{args.split}: per class")
    top_k = "".join(f"  {name} {value:.4f}" for name, value in top_k_column(r).items())
    print(f"accuracy {r['accuracy']:.4f}{top_k}  "
          f"macro-F1 {r['macro_f1']:.4f}  on {r['count']} images"
          f"{' (flip TTA)' if r['tta'] == 'flip' else ''}; "
          f"{len(r['misclassified'])} misclassified -> {r['out_dir']}")


# ----------------------------------------------------------------- demo


def add_demo(sub):
    p = command(sub, "demo", "Train, evaluate, export to int8 TFLite and predict, on built-in digits (offline).",
                "mobilenets demo --runs-dir runs")
    p.add_argument("--runs-dir", type=folder, default="runs", help="where the run is made")
    p.add_argument("--epochs", type=positive_int, default=8, help="training epochs")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args):
    from mobilenets.demo import run_demo

    print(run_demo(args.runs_dir, epochs=args.epochs))
