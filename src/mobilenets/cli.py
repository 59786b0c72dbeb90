"""The `mobilenets` command line: parse, call the library, print.

    mobilenets zoo --version v1
    mobilenets profile v1-1.00-224 --per-layer

Each command is a pair: `_add_<command>(subparsers)` declares its flags and
`cmd_<command>(args)` calls one library function and prints. No logic lives
here. A `MobilenetsError` becomes one line on stderr and exit code 2; a
command may return another status (export's parity gate: 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap

from mobilenets.errors import MobilenetsError

EXIT_USAGE = 2
# mobilenets export: a file failed the parity gate (its files are written all the same).
EXIT_PARITY = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other error here."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with "(default: ...)": the parser's default, unless the help says it.

    A flag whose default is None (not given: a recipe, the run or the model decides) says its
    default in words; switches (off unless given) and empty lists show none, so no "default: None".
    """

    def _get_help_string(self, action):
        help = action.help or ""
        if (not action.option_strings or "(default: " in help
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return help
        return f"{help} (default: %(default)s)".lstrip()

    def _split_lines(self, text, width):
        # Not after a hyphen: "--input-range=-1,1" stays whole.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _command(sub, name: str, help: str, example: str):
    return sub.add_parser(
        name, help=help, description=help,
        epilog="example:\n" + textwrap.indent(example.strip(), "  "),
        formatter_class=_HelpFormatter,
    )


# ------------------------------------------------------------ flag values
# Every numeric flag is checked here, when parsed: one rule per kind of value,
# one message ("argument --epochs: must be a whole number >= 1. Received '0'").


def _value(convert, accept, rule: str):
    """An argparse type: `convert` the text and keep it only if `accept(value)`; else say the `rule`."""

    def check(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {rule}. Received {text!r}")
        return value

    return check


# NaN fails every comparison, so each rule below refuses it; the float rules are bounded, so inf too.
_positive_int = _value(int, lambda v: v >= 1, "a whole number >= 1")
_non_negative_int = _value(int, lambda v: v >= 0, "a whole number >= 0")
_positive = _value(float, lambda v: 0 < v < math.inf, "a number > 0")
_non_negative = _value(float, lambda v: 0 <= v < math.inf, "a number >= 0")
_fraction = _value(float, lambda v: 0 <= v <= 1, "a fraction between 0 and 1")
_fraction_below_1 = _value(float, lambda v: 0 <= v < 1, "a fraction >= 0 and < 1")
_fraction_inside = _value(float, lambda v: 0 < v < 1, "a fraction > 0 and < 1")
_percent = _value(float, lambda v: 0 <= v < 100, "a percentage >= 0 and < 100")
_drop = _value(float, lambda v: 0 <= v < math.inf, "a fraction >= 0 (0.01 = 1 percentage point)")
# `--threads 1,2,4`: each measured once, in the order given.
_thread_counts = _value(lambda t: tuple(dict.fromkeys(int(n) for n in t.split(","))),
                        lambda v: min(v) >= 1, "comma-separated whole numbers >= 1, e.g. 1,2")


def _input_range(text: str) -> str:
    """`--input-range LOW,HIGH`, read as predict and export read it (`tflite.parse_range`)."""
    from mobilenets.tflite import parse_range

    try:
        lo, hi = parse_range(text)
    except MobilenetsError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH with LOW < HIGH, e.g. -1,1 or 0,255. "
                                         f"Received {text!r}")
    return text


def _not_a_folder(path: str) -> str | None:
    """What stops `path` being (or becoming) a folder: itself or a parent that is not one; else None."""
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    return None if os.path.isdir(p) else p


def _folder(text: str) -> str:
    """A folder that exists or can be made: not a file, nor under one."""
    blocker = _not_a_folder(text)
    if blocker == os.path.abspath(text):
        raise argparse.ArgumentTypeError(f"must be a folder, not a file. Received {text!r}")
    if blocker:
        raise argparse.ArgumentTypeError(f"must be a folder, but {blocker} is a file. Received {text!r}")
    return text


def _file(text: str) -> str:
    """A file to write: not a folder, nor under a file."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a file, not a folder. Received {text!r}")
    blocker = _not_a_folder(os.path.dirname(os.path.abspath(text)))
    if blocker:
        raise argparse.ArgumentTypeError(f"must be a file, but {blocker} is a file, not a folder. "
                                         f"Received {text!r}")
    return text


# ------------------------------------------------------------------ zoo


def _add_zoo(sub):
    p = _command(sub, "zoo", "List the canonical MobileNets with params, MACs and ImageNet top-1.",
                 "mobilenets zoo --version v1 --format md")
    p.add_argument("--version", choices=["v1", "v2", "v3"], help="only this generation (default: all)")
    p.add_argument("--filter", metavar="GLOB", help="only specs matching, e.g. 'v2-*-224' (default: all)")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.set_defaults(func=cmd_zoo)


def cmd_zoo(args):
    from mobilenets.env import progress_bar
    from mobilenets.results import write_rows
    from mobilenets.zoo import list_variants, zoo_rows

    variants = list_variants(args.version, args.filter)
    if not variants:
        raise MobilenetsError(f"no registry variant matches {args.filter!r}")
    rows = []
    with progress_bar("profiling", total=len(variants), min_total=4) as bar:
        for variant in variants:
            rows += zoo_rows([variant])
            bar.advance()
    write_rows(rows, args.format, title="MobileNet zoo", headers={
        "macs_m": "MACs (M)", "weights_mb": "weights (MB)", "imagenet_weights": "ImageNet weights",
        "top1": "top-1 %", "top1_source": "source"})


# -------------------------------------------------------------- profile


def _add_profile(sub):
    p = _command(sub, "profile", "Params, multiply-accumulates and memory of a spec or model file.",
                 "mobilenets profile v1-0.50-160 --per-layer\n"
                 "mobilenets profile runs/pets/model.keras --json\n"
                 "mobilenets profile ../shared/models/mobilenet_v1_0.25_128_quant.tflite")
    p.add_argument("target", metavar="SPEC_OR_FILE",
                   help="a spec (v1-0.50-160) or a .keras/.h5/.tflite file")
    p.add_argument("--classes", type=_positive_int, default=1000,
                   help="classifier size for a spec")
    p.add_argument("--per-layer", action="store_true", help="also list every layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args):
    from mobilenets.profile import metadata_summary, profile
    from mobilenets.results import write_rows

    p = profile(args.target, classes=args.classes)
    if args.json:
        print(json.dumps(p.to_dict(per_layer=args.per_layer), indent=2))
        return
    if args.per_layer:
        write_rows(p.layers, "table", title=p.name)
        print()
    summary = p.to_dict()
    summary.pop("metadata", None)
    summary["macs_m"] = round(p.macs / 1e6, 2)
    write_rows([{k: v for k, v in summary.items() if v is not None}], "table", title=p.name)
    if p.metadata is not None:
        print()
        write_rows([{"field": k, "value": v} for k, v in metadata_summary(p.metadata).items()],
                   "table", title=f"{p.name}: what the file says")


# ------------------------------------------------------- retrain / train


def _recipe(mode: str, preset: str | None = None, data: str = "", explicit: set = frozenset()):
    """The TrainConfig a run starts from: the defaults, then the preset (train: 'scratch' unless told)."""
    from mobilenets.train import TrainConfig, apply_preset

    preset = preset or (None if mode == "retrain" else "scratch")
    return apply_preset(TrainConfig(data=data, mode=mode), preset, explicit=explicit)


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

    recipe = _recipe("scratch" if scratch else "retrain")
    d = {k: _shown(v) for k, v in recipe.to_dict().items()}
    aug = Augment.parse(recipe.augment)
    p.epilog += "\n\n" + textwrap.fill(
        "The defaults shown are a run's " + ("with the 'scratch' preset, train's own" if scratch
                                             else "without a --preset")
        + "; a --preset changes them, and a flag given wins over both.", 78)
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="folder of class folders, a .tar.gz of one, 'digits', 'cifar10' or 'cifar10:PATH'")
    p.add_argument("--arch", help=f"model spec, e.g. v1-0.25-224 (see 'mobilenets zoo') (default: {d['arch']})")
    p.add_argument("--preset", help="named recipe: seed-cifar10, scratch, emotion, gender "
                                    f"(default: {'scratch' if scratch else 'none'})")
    p.add_argument("--epochs", type=_positive_int, help=f"training epochs (default: {d['epochs']})")
    p.add_argument("--batch-size", type=_positive_int, help=f"images per step (default: {d['batch_size']})")
    p.add_argument("--learning-rate", type=_positive, help=f"(default: {d['learning_rate']})")
    p.add_argument("--optimizer", choices=["adam", "nadam", "sgd"], help=f"(default: {d['optimizer']})")
    p.add_argument("--schedule", choices=["constant", "cosine"],
                   help=f"learning-rate schedule (default: {d['schedule']})")
    p.add_argument("--label-smoothing", type=_fraction_below_1, help=f"(default: {d['label_smoothing']})")
    p.add_argument("--weight-decay", type=_non_negative,
                   help=f"decoupled: each step shrinks weights by learning rate x this "
                        f"(default: {d['weight_decay']})")
    p.add_argument("--dropout", type=_fraction_below_1, help=f"before the classifier (default: {d['dropout']})")
    p.add_argument("--class-weights", choices=["none", "auto"],
                   help=f"auto: balance imbalanced folders (default: {d['class_weights']})")
    p.add_argument("--seed", type=_non_negative_int, help=f"makes a run repeatable (default: {d['seed']})")
    p.add_argument("--validation-percent", type=_percent,
                   help=f"held out for validation (default: {d['validation_percent']})")
    p.add_argument("--test-percent", type=_percent, help=f"held out for testing (default: {d['test_percent']})")
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
    group.add_argument("--random-crop", type=_percent, metavar="PCT",
                       help=f"enlarge by PCT percent, then crop a random window of the original size "
                            f"{pct('random_crop')}")
    group.add_argument("--random-scale", type=_percent, metavar="PCT",
                       help=f"enlarge by a random 0 to PCT percent more before that crop {pct('random_scale')}")
    group.add_argument("--random-brightness", type=_percent, metavar="PCT",
                       help=f"multiply pixels by a random factor within PCT percent of 1 "
                            f"{pct('random_brightness')}")
    group.add_argument("--shift", type=_percent, metavar="PCT",
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
    run.add_argument("--runs-dir", type=_folder, default="runs", help="where runs are made")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (default: start a new one)")
    run.add_argument("--cache-dir", type=_folder,
                     help="bottleneck and image cache (default: $MOBILENETS_CACHE, else ~/.cache/mobilenets)")
    run.add_argument("--no-cache", action="store_true", help="compute features again, cache nothing")
    run.add_argument("--time-budget", type=_positive, metavar="MIN", dest="time_budget_minutes",
                     help="train for MIN minutes: a cosine schedule is fitted to end in time "
                          "(--epochs becomes the most it may use); otherwise stop after the "
                          "epoch that passes MIN minutes (default: none, --epochs decides)")
    run.add_argument("--distribute", choices=["none", "mirrored", "multiworker"],
                     help=f"spread training over devices (default: {d['distribute']})")
    run.add_argument("--faces", action="store_true", default=None,
                     help="crop every image to its largest face first (OpenCV Haar cascade) "
                          "(default: off; the emotion and gender presets turn it on)")
    run.add_argument("--logical-cpus", type=_positive_int, metavar="N",
                     help="split the CPU into N devices (to try --distribute mirrored) (default: one device)")


_AUG_FLAGS = {"flip_left_right": "flip_left_right", "random_crop": "random_crop",
              "random_scale": "random_scale", "random_brightness": "random_brightness", "shift": "shift"}
_CONFIG_FLAGS = ("arch", "epochs", "batch_size", "learning_rate", "optimizer", "schedule",
                 "label_smoothing", "weight_decay", "dropout", "class_weights", "seed",
                 "validation_percent", "test_percent", "time_budget_minutes", "distribute",
                 "weights", "fine_tune", "fine_tune_epochs", "fine_tune_learning_rate",
                 "stem_stride", "block_strides", "faces", "init", "low_res", "low_res_fraction")


def _train_config(args, mode: str):
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
    config = _recipe(mode, args.preset, data=str(args.data or ""), explicit=set(given))
    d = config.to_dict()
    d.update(given)
    config = TrainConfig.from_dict(d)
    config.spec  # validate the spec before any work
    return config


def _run_training(args, mode: str):
    from mobilenets.data.archives import cache_home

    config = _train_config(args, mode)
    if args.logical_cpus:
        from mobilenets.train import split_cpu

        split_cpu(args.logical_cpus)
    from mobilenets.train import run_training

    cache = None if args.no_cache else (args.cache_dir or cache_home())
    run = run_training(config, runs_dir=args.runs_dir, name=args.name, resume=args.resume,
                       cache_dir=cache, random_backbone=False)
    print(run)


def _add_retrain(sub):
    p = _command(sub, "retrain", "Transfer learning: retrain a MobileNet on your image folders.",
                 "mobilenets retrain photos/ --arch v1-0.25-224 --epochs 20\n"
                 "mobilenets retrain ../shared/data/pokemon-types --arch v1-0.25-224 --fine-tune 30\n"
                 "mobilenets retrain --resume runs/pokemon-types-v1-0.25-224-20261123-120000")
    _add_training_flags(p, scratch=False)
    d = _recipe("retrain")
    p.add_argument("--weights", help="imagenet (from the Keras cache, else downloaded), none, or a weights "
                                     f"file (default: {d.weights})")
    p.add_argument("--fine-tune", type=_non_negative_int, metavar="N",
                   help="then unfreeze the top N backbone layers (BatchNorm stays frozen); try 80 with "
                        "v1-0.25 (of its 87 layers) and --fine-tune-epochs 10-20, or 20 for a quicker "
                        f"run (default: {d.fine_tune}, off)")
    p.add_argument("--fine-tune-epochs", type=_positive_int,
                   help=f"epochs of the fine-tuning phase (default: {d.fine_tune_epochs})")
    p.add_argument("--fine-tune-learning-rate", type=_positive, help="(default: --learning-rate / 10)")
    p.set_defaults(func=lambda args: _run_training(args, "retrain"))


def _strides(text: str) -> list[int]:
    """`--block-strides 2,1,2,2` as a list of 1s and 2s."""
    parts = text.split(",")
    if not all(part.strip() in ("1", "2") for part in parts):
        raise argparse.ArgumentTypeError(f"takes comma-separated 1s and 2s, e.g. 2,1,2,2. Received {text!r}")
    return [int(part) for part in parts]


def _add_train(sub):
    p = _command(sub, "train", "Train a MobileNet from scratch (e.g. CIFAR-10 at 32x32).",
                 "mobilenets train digits --arch v1-0.25-32 --epochs 5\n"
                 "mobilenets train cifar10:cifar-10-python.tar.gz --arch v1-0.50-32 --preset seed-cifar10")
    _add_training_flags(p, scratch=True)
    d = _recipe("scratch")
    p.add_argument("--stem-stride", type=int, choices=[1, 2],
                   help="stride of the first convolution; 1 makes 32 px inputs end at 2x2, not 1x1 "
                        f"(default: {d.stem_stride})")
    p.add_argument("--block-strides", type=_strides, metavar="S,S,S,S",
                   help="strides of the four downsampling blocks after the stem; with --stem-stride "
                        "2, e.g. 2,1,2,2 also ends 32 px inputs at 2x2, 2x faster per epoch but less "
                        f"accurate in 30 min on CIFAR-10 (default: {_shown(d.block_strides or [2, 2, 2, 2])})")
    p.add_argument("--low-res", type=_non_negative_int, metavar="PX",
                   help="train the first epochs on images scaled down to PX high (e.g. 24 for 32 px "
                        "models: ~0.6x the work per epoch), then at the model's size; 0 turns it off "
                        "(default: 3/4 of the model's height, from the 'scratch' preset)")
    p.add_argument("--low-res-fraction", type=_fraction_inside, metavar="F",
                   help="share of the epochs at --low-res (with --time-budget, of the planned epochs) "
                        f"(default: {_shown(d.low_res_fraction)})")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start every layer from these weights (imagenet or a file) and train the whole "
                        f"network, BatchNorm included, with the recipe (default: {d.init})")
    p.set_defaults(func=lambda args: _run_training(args, "scratch"))


# ------------------------------------------------------------- evaluate


def _add_evaluate(sub):
    p = _command(sub, "evaluate", "Accuracy, per-class scores, confusion matrix and misclassified files.",
                 "mobilenets evaluate runs/pets\n"
                 "mobilenets evaluate runs/pets/model.keras photos/ --split test --json")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="run directory, .keras or .h5 model file")
    p.add_argument("data", nargs="?", metavar="DATA", help="(default: the run's own data)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split to score")
    p.add_argument("--top-k", type=_positive_int, default=5,
                   help="also report top-K accuracy, when K is below the number of classes")
    p.add_argument("--out", type=_folder, help="output folder (default: <run>/evaluation-<split>, or beside the model file)")
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


# --------------------------------------------------------------- export


def _add_export(sub):
    p = _command(sub, "export", "Export a run to .tflite (float32/float16/dynamic/int8), SavedModel or ONNX, "
                 "labels inside, with a parity report against Keras.",
                 "mobilenets export runs/pets\n"
                 "mobilenets export runs/pets --quantize int8 --io int8 --calibration photos/\n"
                 "mobilenets export runs/pets/model.keras --format tflite,onnx --data photos/\n"
                 "mobilenets export runs/pets --min-agreement 0.99 --max-drop 0.005")
    p.epilog += ("\n\nThe parity report runs every file on up to --parity-images images that int8 "
                 "calibration did not use\n(the run's test and val splits, then the rest of its "
                 "training split) and prints accuracy,\nagreement with Keras and accuracy drop as "
                 "fractions (0.01 = 1 percentage point) with 95%\nconfidence intervals. Exit status: "
                 f"0 when every file passes, {EXIT_PARITY} when one has agreement below\n--min-agreement "
                 "or an accuracy drop above --max-drop (each gets a warning line; the files\nand "
                 "export_report.json are written all the same; --allow-drop exits 0), "
                 f"{EXIT_USAGE} on errors.")
    p.add_argument("target", metavar="RUN_OR_MODEL", help="run directory, .keras or full-model .h5")
    p.add_argument("--quantize", metavar="MODES",
                   help="comma-separated .tflite modes: none (float32), float16, dynamic, int8 "
                        "(default: none,int8)")
    p.add_argument("--io", choices=["float32", "uint8", "int8"],
                   help="input/output type of the int8 model; float modes are float32 (default: uint8, "
                        "as Coral and Teachable Machine ship)")
    p.add_argument("--calibration", metavar="DATA",
                   help="int8 calibration images (default: the run's training split)")
    p.add_argument("--calibration-size", type=_positive_int, default=200, metavar="N",
                   help="int8 calibration images used")
    p.add_argument("--int8-method", choices=["reconstruct", "plain"], default="reconstruct",
                   help="reconstruct: refit each kernel on the int8 grid so the int8 file keeps the "
                        "Keras model's answers (about a minute for a small MobileNet); plain: the "
                        "TFLite converter's rounding alone")
    p.add_argument("--format", default="tflite", metavar="FORMATS",
                   help="tflite, saved_model, onnx, or a comma-separated list")
    p.add_argument("--out", type=_folder, metavar="DIR",
                   help="output folder (default: <run>/export); a re-export replaces it whole")
    gate = p.add_argument_group("parity report and gate")
    gate.add_argument("--data", help="data for the parity report (default: the run's own)")
    gate.add_argument("--parity-images", type=_positive_int, default=1000, metavar="N",
                      help="at most N parity images")
    gate.add_argument("--min-agreement", type=_fraction, default=0.98, metavar="F",
                      help="fail a file whose top-1 agreement with Keras is below F, from 0 to 1")
    gate.add_argument("--max-drop", type=_drop, default=0.01, metavar="F",
                      help="fail a file whose top-1 accuracy is more than F below Keras's, as a "
                           "fraction (0.01 = 1 percentage point)")
    gate.add_argument("--allow-drop", action="store_true",
                      help=f"warn about failing files but exit 0, not {EXIT_PARITY}")
    gate.add_argument("--no-parity", action="store_true", help="skip the parity report (and the gate)")
    p.add_argument("--input-range", type=_input_range, metavar="LOW,HIGH",
                   help="what a model without our preprocess layer expects; write negative values "
                        "as --input-range=-1,1 (default: -1,1)")
    p.set_defaults(func=cmd_export)


def cmd_export(args):
    from mobilenets.export import export, parity_table
    from mobilenets.results import write_rows

    r = export(args.target, out_dir=args.out, quantize=args.quantize, io=args.io, formats=args.format,
               calibration=args.calibration, calibration_size=args.calibration_size, data=args.data,
               parity=not args.no_parity, parity_images=args.parity_images, input_range=args.input_range,
               min_agreement=args.min_agreement, max_drop=args.max_drop, int8_method=args.int8_method)
    if r.rows:
        write_rows(parity_table(r.rows), "table", title="export parity")
    for note in r.notes:
        print(note, file=sys.stderr)
    print(f"exported {', '.join(r.files)} -> {r.out_dir}")
    for failure in r.failed:
        print(f"mobilenets export: warning: {failure['message']}", file=sys.stderr)
    if r.failed and not args.allow_drop:
        print(f"mobilenets export: {len(r.failed)} file(s) failed the parity gate (--min-agreement "
              f"{args.min_agreement:g}, --max-drop {args.max_drop:g}); exit {EXIT_PARITY} "
              f"(--allow-drop accepts them)", file=sys.stderr)
        return EXIT_PARITY
    return 0


# -------------------------------------------------------------- predict


def _add_predict(sub):
    p = _command(sub, "predict", "Classify images and folders with a run, .keras/.h5 or any .tflite.",
                 "mobilenets predict runs/pets/export/model_int8.tflite photos/ --top-k 3\n"
                 "mobilenets predict ../shared/models/mobilenet_v1_0.25_128_quant.tflite cat.jpg "
                 "--labels ../shared/models/imagenet_labels.txt --json")
    p.epilog += ("\n\nAn unreadable file gets its own line (with --json: {\"path\": ..., \"error\": ...}) "
                 "and the others go on;\nexit status 0 when at least one image was classified, "
                 "2 when none was.")
    p.add_argument("model", metavar="MODEL", help="run directory, .keras, .h5 or .tflite")
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and folders (recursive)")
    p.add_argument("--labels", metavar="FILE", help="labels, one per line, for models without their own (default: the model's own)")
    p.add_argument("--top-k", type=_positive_int, default=5, help="classes shown per image")
    p.add_argument("--json", action="store_true",
                   help="JSON lines: first {\"model\": {...}} (what the file says: metadata, labels, "
                        "normalization, input type, float ops), then one object per image")
    p.add_argument("--threads", type=_positive_int, help="inference threads (default: LiteRT's, 1)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="images per call")
    p.add_argument("--input-range", type=_input_range, metavar="LOW,HIGH",
                   help="float input range of a model without our metadata: -1,1, 0,1 or 0,255; write "
                        "negative values as --input-range=-1,1 (default: -1,1)")
    p.add_argument("--faces", action="store_true",
                   help="classify each image's largest face (OpenCV Haar cascade; whole image if none)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args):
    import time

    from mobilenets.predict import list_images, load_classifier, predict_files, write_predictions

    clf = load_classifier(args.model, labels=args.labels, input_range=args.input_range,
                          threads=args.threads)
    paths = list_images(args.images)
    if args.json:
        print(json.dumps({"model": clf.info()}), flush=True)
    faces = None
    if args.faces:
        from mobilenets.faces import FaceCropper

        faces = FaceCropper()
    start = time.perf_counter()
    counts = write_predictions(predict_files(clf, paths, k=args.top_k, batch_size=args.batch_size,
                                             faces=faces), json_lines=args.json)
    if faces is not None:
        r = faces.report()
        print(f"faces: {r['found']} found, {r['fallback']} images without a face classified whole, "
              f"{r['already_cropped']} already face crops", file=sys.stderr)
    seconds = time.perf_counter() - start
    if not counts["predicted"]:
        raise MobilenetsError(f"none of the {counts['images']} files could be read as images")
    if counts["images"] > 1:
        unreadable = f", {counts['errors']} unreadable" if counts["errors"] else ""
        print(f"{counts['predicted']} of {counts['images']} images classified{unreadable} "
              f"in {seconds:.1f} s ({counts['predicted'] / seconds:.0f} img/s)", file=sys.stderr)


# ------------------------------------------------------------ benchmark


def _add_benchmark(sub):
    p = _command(sub, "benchmark", "Latency percentiles, throughput, memory and GMAC/s; LiteRT and Keras "
                 "side by side.",
                 "mobilenets benchmark runs/pets --threads 1,2\n"
                 "mobilenets benchmark v2-1.00-224 model_int8.tflite --runs 100 --per-op\n"
                 "mobilenets benchmark runs/pets --format csv --out bench.csv")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".tflite/.keras/.h5 file, run directory, or spec (random weights, float32 .tflite)")
    p.add_argument("--threads", type=_thread_counts, default="1", metavar="N[,N...]",
                   help="comma-separated thread counts")
    p.add_argument("--runs", type=_positive_int, default=50, help="timed calls")
    p.add_argument("--warmup", type=_non_negative_int, default=5, help="untimed calls first")
    p.add_argument("--batch", type=_positive_int, default=1, help="images per call")
    p.add_argument("--per-op", action="store_true", help="ops by type, with XNNPACK delegation")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.add_argument("--out", type=_file, metavar="FILE",
                   help="also write the rows here, .csv/.json/.md by suffix (default: printed only)")
    p.set_defaults(func=cmd_benchmark)


def cmd_benchmark(args):
    from mobilenets.artifacts import write_text
    from mobilenets.benchmark import benchmark
    from mobilenets.results import render, write_rows

    r = benchmark(args.models, threads=args.threads, runs=args.runs, warmup=args.warmup,
                  batch=args.batch, per_op=args.per_op)
    write_rows(r["rows"], args.format, title="benchmark")
    if r["ops"]:
        print()
        write_rows(r["ops"], args.format, title="ops by type")
    for note in r["notes"]:
        print(note, file=sys.stderr)
    if args.out:
        fmt = {".csv": "csv", ".json": "json", ".md": "md"}.get(os.path.splitext(args.out)[1].lower(),
                                                                  args.format)
        write_text(args.out, render(r["rows"], fmt))


# ----------------------------------------------------------------- demo


def _add_demo(sub):
    p = _command(sub, "demo", "Train, evaluate, export to int8 TFLite and predict, on built-in digits (offline).",
                 "mobilenets demo --runs-dir runs")
    p.add_argument("--runs-dir", type=_folder, default="runs", help="where the run is made")
    p.add_argument("--epochs", type=_positive_int, default=8, help="training epochs")
    p.set_defaults(func=lambda args: print(_demo(args)))


def _demo(args):
    from mobilenets.demo import run_demo

    return run_demo(args.runs_dir, epochs=args.epochs)


# -------------------------------------------------------------- compare


def _add_compare(sub):
    p = _command(sub, "compare", "Which MobileNet: params, MACs, .tflite size, measured float32/int8 latency "
                 "and accuracy of many candidates, a budget pick, plots and an HTML report.",
                 'mobilenets compare v1-1.00-224 v2-1.00-224 --threads 1,2\n'
                 'mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" --budget-ms 5 --max-size-mb 2\n'
                 'mobilenets compare --grid "v2:0.35,0.5:224,160" --data photos/ --epochs 10')
    p.add_argument("specs", nargs="*", metavar="SPEC", help="candidate specs, e.g. v2-1.00-224")
    p.add_argument("--grid", action="append", default=[], metavar="FAMILY:ALPHAS:RESOLUTIONS",
                   help="a grid of candidates, e.g. 'v1:1.0,0.5:224,160' (family v1, v2, v3-large, "
                        "v3-small, v3-large-min, v3-small-min); repeatable (default: only the SPECs given)")
    p.add_argument("--threads", type=_thread_counts, default="1", metavar="N[,N...]",
                   help="comma-separated thread counts")
    p.add_argument("--runs", type=_positive_int, default=50, help="timed calls per latency")
    p.add_argument("--warmup", type=_non_negative_int, default=5, help="untimed calls first")
    p.add_argument("--repeats", type=_positive_int, default=1, metavar="N",
                   help="time each file in N fresh processes spread over the run and keep the lowest "
                        "p50: steadier on a busy machine")
    p.add_argument("--data", metavar="DATA",
                   help="retrain every candidate on this data (same recipe) and measure accuracy "
                        "(default: none, published ImageNet top-1 only)")
    p.add_argument("--epochs", type=_positive_int, help=f"retrain epochs (default: the retrain recipe's, {_recipe('retrain').epochs})")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet, none, or a weights file; the same for every candidate")
    p.add_argument("--cache-dir", type=_folder,
                   help="bottleneck cache for retraining (default: $MOBILENETS_CACHE, else ~/.cache/mobilenets)")
    p.add_argument("--budget-ms", type=_positive, metavar="MS",
                   help="pick the most accurate model within MS (default: no budget)")
    p.add_argument("--max-size-mb", type=_positive, metavar="MB",
                   help="... and within MB of .tflite file (default: no limit)")
    p.add_argument("--budget-format", choices=["int8", "float"], default="int8",
                   help="the file the budget applies to")
    p.add_argument("--budget-threads", type=_positive_int, metavar="N",
                   help="the thread count the budget applies to (default: the largest of --threads)")
    p.add_argument("--out", type=_folder, default="compare", metavar="DIR",
                   help="results, files and report.html; also the cache a re-run reuses")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table",
                   help="how the rows are printed")
    p.add_argument("--no-report", action="store_true", help="skip the plots and report.html")
    p.set_defaults(func=cmd_compare)


_COMPARE_DEFAULTS = {"threads": (1,), "runs": 50, "warmup": 5, "repeats": 1,
                     "weights": "imagenet", "budget_format": "int8", "out": "compare"}


def _compare_command(args) -> str:
    """The command line as given (flags at their defaults left out), for the report."""
    import shlex

    parts = ["mobilenets", "compare", *args.specs]
    for g in args.grid:
        parts += ["--grid", g]
    for name in ("threads", "runs", "warmup", "repeats", "data", "epochs", "weights", "budget_ms",
                 "max_size_mb", "budget_format", "budget_threads", "out"):
        value = getattr(args, name)
        if value is not None and value != _COMPARE_DEFAULTS.get(name):
            text = ",".join(map(str, value)) if name == "threads" else str(value)
            parts += ["--" + name.replace("_", "-"), text]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_compare(args):
    from mobilenets.compare.grid import candidates
    from mobilenets.compare.run import compare
    from mobilenets.results import write_rows

    specs = candidates(args.specs, args.grid)
    if not specs:
        raise MobilenetsError("give candidates: specs such as v1-0.50-160 and/or --grid v1:1.0,0.5:224,160")
    r = compare(specs, out_dir=args.out, threads=args.threads, runs=args.runs, warmup=args.warmup,
                repeats=args.repeats, data=args.data, epochs=args.epochs, weights=args.weights,
                cache_dir=args.cache_dir,
                budget_ms=args.budget_ms, max_size_mb=args.max_size_mb, budget_format=args.budget_format,
                budget_threads=args.budget_threads, report=not args.no_report,
                command=_compare_command(args))
    tabular = args.format in ("table", "md")
    write_rows(r.rows, args.format, columns=r.columns if tabular else None,
               headers=r.headers if tabular else None, title="compare")
    if r.choice:
        # after the table on stdout; on stderr for csv/json so stdout stays machine-readable
        print(r.choice.sentence, file=sys.stdout if tabular else sys.stderr)
    reused = sum(1 for row in r.rows if row.get("reused"))
    where = f"report: {r.report_path}" if r.report_path else f"rows: {r.out_dir / 'rows'}"
    print(f"{len(r.rows)} candidates ({reused} reused from {r.out_dir}); {where}", file=sys.stderr)


# ----------------------------------------------------------------- main

COMMANDS = [_add_demo, _add_zoo, _add_profile, _add_retrain, _add_train, _add_evaluate, _add_export, _add_predict,
            _add_benchmark, _add_compare]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mobilenets",
        description="Retrain, profile, export and compare MobileNets for on-device image classification.",
        epilog="Run 'mobilenets COMMAND --help' for a command's flags and an example.",
    )
    from mobilenets import __version__

    parser.add_argument("--version", action="version", version=f"mobilenets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _quiet_tensorflow() -> bool:
    """Set TensorFlow's environment (quiet, oneDNN on) and import it with its start-up chatter muted.

    Returns False when TensorFlow is not installed: reading and timing .tflite files needs only
    LiteRT. A TensorFlow that is installed but does not import is a `MobilenetsError`, since
    every later failure would hide the reason (its native messages went to the muted stderr).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's oneDNN kernels: on by default only on AVX-512-class CPUs, yet faster for
    # training on AVX2 too (`mobilenets.train.onednn_enabled`).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    except ImportError as e:
        if _is_tensorflow_missing(e):
            return False
        from mobilenets.env import first_line

        raise MobilenetsError(f"TensorFlow is installed but does not import: {first_line(e)} "
                              f"(reinstall it: {_TENSORFLOW_PIP})") from None
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
    return True


_TENSORFLOW_PIP = "pip install 'tensorflow-cpu==2.21.*'"


def _is_tensorflow_missing(e: BaseException) -> bool:
    """True when `e` is the import of TensorFlow itself failing: it is not installed."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == "tensorflow"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    tensorflow = None
    try:
        tensorflow = _quiet_tensorflow()
        status = args.func(args)
    except ModuleNotFoundError as e:
        if tensorflow is not False or not _is_tensorflow_missing(e):
            raise
        print(f"mobilenets {args.command}: error: this needs TensorFlow, which is not installed "
              f"(only .tflite files can be used without it; {_TENSORFLOW_PIP})", file=sys.stderr)
        return EXIT_USAGE
    except MobilenetsError as e:
        print(f"mobilenets {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mobilenets {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
