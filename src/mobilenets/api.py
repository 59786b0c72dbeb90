"""The Python twin of the `mobilenets` command: one call per command, keywords named as its flags.

    import mobilenets as mn
    run = mn.train("digits", arch="v1-0.25-32", epochs=1, runs_dir="runs", name="x")
    files = run.export(quantize=["none", "int8"])
    mn.load(files["model_int8.tflite"]).predict("cat.jpg", top_k=3)

A keyword is its flag underscored (`--fine-tune 30` is `fine_tune=30`, `--no-cache` is
`no_cache=True`). Names, defaults and value checks are read from the command's own
argparse declaration in `mobilenets.cli`, so the two never drift apart: a value is
checked by the same rule as on the command line, and a keyword the command has no flag
for is refused, with the valid ones named. Lists may stand for comma-separated values
(`threads=[1, 2]` is `--threads 1,2`). Every refusal is one `MobilenetsError` line.
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.errors import MobilenetsError
from mobilenets.rundir import LABELS, METRICS, MODEL, read_labels

# Flags that choose how the command prints its answer; a Python caller gets the answer itself.
_PRINTING = {"json", "format", "help"}


# ---------------------------------------------------------------- flags


@functools.cache
def _flags_of(command: str) -> dict[str, argparse.Action]:
    """`{keyword: action}` of a command's flags and positionals, as the CLI declares them."""
    from mobilenets.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for action in sub.choices[command]._actions:
        name = (action.option_strings[-1].lstrip("-").replace("-", "_") if action.option_strings
                else action.dest)
        out[name] = action
    return out


def _namespace(command: str, call: str, given: dict, only: set[str] | None = None,
               printing: set[str] = _PRINTING) -> argparse.Namespace:
    """The `argparse.Namespace` the command would build from these keywords.

    Args:
        command: the subcommand whose flags these are (`retrain`, `export`, ...).
        call: the Python call's name, for messages.
        given: keyword -> value; None means not given.
        only: accept only these keywords (a call that covers part of a command).
        printing: keywords refused because they only shape printed output.
    """
    flags = _flags_of(command)
    valid = {k for k in flags if k not in printing and (only is None or k in only)}
    unknown = sorted(set(given) - valid)
    if unknown:
        raise MobilenetsError(f"{call}() takes no keyword {', '.join(map(repr, unknown))}; "
                              f"valid: {', '.join(sorted(valid))}")
    ns = argparse.Namespace(**{a.dest: _default(a) for a in flags.values() if a.dest != "help"})
    for name, value in given.items():
        if value is not None:
            setattr(ns, flags[name].dest, _checked(call, name, flags[name], value))
    return ns


def _default(action: argparse.Action):
    """The flag's default as its parser gives it: a text default goes through the flag's type."""
    if isinstance(action.default, str) and action.type is not None:
        return action.type(action.default)
    return action.default


def _checked(call: str, name: str, action: argparse.Action, value):
    """`value` as the flag's parser reads it, or one line saying which rule it breaks."""
    if action.nargs == 0:  # a switch
        if not isinstance(value, bool):
            raise MobilenetsError(f"{call}(): {name} takes True or False. Received {value!r}")
        return value
    if action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction):
        items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        return [_one(call, name, action, item) for item in items]
    return _one(call, name, action, value)


def _one(call: str, name: str, action: argparse.Action, value):
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value))
    else:
        text = str(value)
    out = text
    if action.type is not None:
        try:
            out = action.type(text)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise MobilenetsError(f"{call}(): {name} {e}") from None
    if action.choices is not None and out not in action.choices:
        raise MobilenetsError(f"{call}(): {name} must be one of {', '.join(map(str, action.choices))}. "
                              f"Received {value!r}")
    return out


def _settle_environment() -> None:
    """TensorFlow's environment as the command sets it (quiet, oneDNN on), before TF starts."""
    from mobilenets.cli.common import quiet_tensorflow

    quiet_tensorflow()


# ------------------------------------------------------------- training


def retrain(data=None, **flags) -> Run:
    """Retrain a MobileNet on image folders: `mobilenets retrain DATA --flag ...`.

    Args:
        data: folder of class folders, a .tar.gz of one, `"digits"`, `"cifar10"` or
            `"cifar10:PATH"` (None with `resume=`).
        **flags: the command's flags underscored: `arch`, `epochs`, `fine_tune`,
            `flip_left_right`, `runs_dir`, `name`, `resume`, ... (`mobilenets retrain --help`).

    Returns:
        The finished `Run`.
    """
    return _train(data, "retrain", "retrain", flags)


def train(data=None, **flags) -> Run:
    """Train a MobileNet from scratch: `mobilenets train DATA --flag ...` (the `scratch` preset
    unless `preset=` says otherwise).

    Args:
        data: as for `retrain`.
        **flags: the command's flags underscored (`mobilenets train --help`).

    Returns:
        The finished `Run`.
    """
    return _train(data, "train", "scratch", flags)


def _train(data, command: str, mode: str, flags: dict) -> Run:
    from mobilenets.cli.training import training_run

    args = _namespace(command, command, {"data": data, **flags})
    _settle_environment()
    return Run(training_run(args, mode))


# ------------------------------------------------------------------ runs


class Run:
    """A run folder that `retrain` or `train` made, opened again: `Run("runs/x")`.

    Attributes:
        path: the run folder.
        name: its name.
        config: its settings (`config.json`) as a `mobilenets.train.TrainConfig`.
        labels: the class names, in output order (`labels.txt`).
        model_path: the trained Keras model (`model.keras`; written when the run finishes).
    """

    def __init__(self, path: "str | os.PathLike"):
        from mobilenets.train import load_run_config

        path = Path(path)
        if not path.exists():
            raise MobilenetsError(f"no run folder at {path}")
        if not path.is_dir():
            raise MobilenetsError(f"not a run folder, a file: {path}")
        self.path = path
        self.name = path.name
        self.config = load_run_config(path)
        self.labels = read_labels(path / LABELS) if (path / LABELS).is_file() else []
        self.model_path = path / MODEL

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        if not self.complete:
            return f"Run({str(self.path)!r}, spec={self.config.spec.name!r}, incomplete)"
        test = self.metrics.get("test") or self.metrics.get("val") or {}
        accuracy = f", accuracy={test['accuracy']:.4f}" if "accuracy" in test else ""
        return f"Run({str(self.path)!r}, spec={self.config.spec.name!r}, classes={len(self.labels)}{accuracy})"

    @property
    def complete(self) -> bool:
        """Whether training finished: the model and metrics.json are written."""
        return self.model_path.is_file() and (self.path / METRICS).is_file()

    def _require_complete(self) -> None:
        if not self.complete:
            call = "retrain" if self.config.mode == "retrain" else "train"
            raise MobilenetsError(f"run {self.path} did not finish (no model.keras or metrics.json); "
                                  f"continue it with mobilenets.{call}(resume={str(self.path)!r})")

    @property
    def metrics(self) -> dict:
        """`metrics.json`: accuracy per split, training seconds, skipped files."""
        self._require_complete()
        return artifacts.read_json(self.path / METRICS)

    def evaluate(self, data=None, **flags) -> dict:
        """Score the run on a split: `mobilenets evaluate RUN [DATA] --flag ...`.

        Args:
            data: the data to score on (default: the run's own).
            **flags: `split` (default "test"), `top_k`, `out`, `faces`, `tta`.

        Returns:
            The result as `mobilenets evaluate --json` prints it: accuracy, per_class,
            confusion, misclassified, out_dir, ...
        """
        from mobilenets.evaluate import evaluate

        args = _namespace("evaluate", "evaluate", {"data": data, **flags}, printing=_PRINTING | {"target"})
        self._require_complete()
        _settle_environment()
        return evaluate(self.path, args.data, split=args.split, out_dir=args.out, k=args.top_k,
                        faces=args.faces, tta=args.tta)

    def export(self, **flags) -> dict[str, Path]:
        """Export the run: `mobilenets export RUN --flag ...`.

        Args:
            **flags: `quantize` (e.g. `["none", "int8"]`), `io`, `format`, `out`,
                `calibration`, `calibration_size`, `int8_method`, `data`, `parity_images`,
                `min_agreement`, `max_drop`, `allow_drop`, `no_parity`, `input_range`.

        Returns:
            `{file name: path}` of the files written. The parity rows are in the export
            folder's `export_report.json`.

        Raises:
            MobilenetsError: a file failed the parity gate (the command's exit 3); the
                files are written all the same, and `allow_drop=True` accepts them.
        """
        from mobilenets.export import export

        args = _namespace("export", "export", flags, printing=_PRINTING | {"target"})
        self._require_complete()
        _settle_environment()
        r = export(self.path, out_dir=args.out, quantize=args.quantize, io=args.io, formats=args.format,
                   calibration=args.calibration, calibration_size=args.calibration_size, data=args.data,
                   parity=not args.no_parity, parity_images=args.parity_images,
                   input_range=args.input_range, min_agreement=args.min_agreement,
                   max_drop=args.max_drop, int8_method=args.int8_method)
        if r.failed and not args.allow_drop:
            raise MobilenetsError(f"{len(r.failed)} file(s) in {r.out_dir} failed the parity gate: "
                                  f"{r.failed[0]['message']}; allow_drop=True accepts them")
        return dict(r.files)

    def load(self, **flags) -> Classifier:
        """The run's Keras model as a `Classifier`; see `load`."""
        self._require_complete()
        return load(self.path, **flags)


# ------------------------------------------------------------ predicting


def load(model: "str | os.PathLike", **flags) -> Classifier:
    """Load any model `mobilenets predict` reads: a run, `.keras`, `.h5` or `.tflite`.

    Args:
        model: the run folder (or a `Run`) or model file.
        **flags: `labels` (a file, or a list: overrides the model's own), `input_range`
            (`"-1,1"` or a pair, for float models without our metadata), `threads`.
    """
    from mobilenets.predict import load_classifier

    labels = flags.pop("labels", None)
    listed = isinstance(labels, (list, tuple))
    args = _namespace("predict", "load", {**flags, "labels": None if listed else labels},
                      only={"labels", "input_range", "threads"})
    _settle_environment()
    return Classifier(load_classifier(os.fspath(model), labels=list(labels) if listed else args.labels,
                                      input_range=args.input_range, threads=args.threads))


class Classifier:
    """A loaded model that classifies image files and arrays.

    Attributes:
        path: the model file.
        kind: "keras" or "tflite".
        labels: one label per output.
        input_size: `(height, width)` the model sees; other sizes are resized to it.
        model: the `mobilenets.predict.Classifier` underneath.
    """

    def __init__(self, model):
        self.model = model
        self.path = Path(model.name)
        self.kind = model.kind
        self.labels = list(model.labels)
        self.input_size = tuple(model.input_size)

    def __repr__(self) -> str:
        h, w = self.input_size
        return f"Classifier({str(self.path)!r}, {self.kind}, {h}x{w}, {len(self.labels)} classes)"

    def info(self) -> dict:
        """What the model is, as `mobilenets predict --json` prints first."""
        return self.model.info()

    def probabilities(self, images) -> np.ndarray:
        """`(N, classes)` probabilities for a batch; see `predict` for what `images` may be."""
        return self.model.predict(self._pixels(_as_list(images)))

    def predict(self, images, top_k: int = 5):
        """The best classes of one image, or of each image of a batch.

        Args:
            images: one image (a file path, a PIL image, or a uint8-valued `(H, W, 3)` or
                `(H, W)` array of pixels 0-255, any size), or a list of them, or an
                `(N, H, W, 3)` array.
            top_k: classes per image.

        Returns:
            `[(label, score), ...]` best first for one image; a list of those for a batch.
        """
        from mobilenets.predict import top_k as best

        k = _namespace("predict", "predict", {"top_k": top_k}, only={"top_k"}).top_k
        one = _is_one(images)
        probs = self.probabilities([images] if one else images)
        out = [[(r["label"], r["score"]) for r in best(row, self.labels, k)] for row in probs]
        return out[0] if one else out

    def _pixels(self, images: list) -> np.ndarray:
        from mobilenets.data import load_image, resize_images

        batch = np.empty((len(images), *self.input_size, 3), np.uint8)
        for i, image in enumerate(images):
            if isinstance(image, (str, os.PathLike)):
                batch[i] = load_image(image, self.input_size)
                continue
            pixels = _rgb(image)
            batch[i] = pixels if pixels.shape[:2] == self.input_size else resize_images(
                pixels[None], self.input_size)[0]
        return batch


def _is_one(images) -> bool:
    if isinstance(images, (str, os.PathLike)) or hasattr(images, "convert"):  # a path or a PIL image
        return True
    return isinstance(images, np.ndarray) and images.ndim in (2, 3)


def _as_list(images) -> list:
    if _is_one(images):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise MobilenetsError(f"images must be one (H, W, 3) array or a batch (N, H, W, 3). "
                              f"Received shape {images.shape}")
    return list(images)


def _rgb(image) -> np.ndarray:
    """One image as `(H, W, 3)` uint8 pixels, or one line saying why it is not one."""
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or not a.size:
        raise MobilenetsError(f"an image array is (H, W, 3) RGB, (H, W, 4) or (H, W). "
                              f"Received shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or a.min() < 0 or a.max() > 255:
            raise MobilenetsError(f"image pixels are 0-255. Received {a.dtype} values "
                                  f"{a.min()!r}..{a.max()!r}")
        if np.issubdtype(a.dtype, np.floating) and a.max() <= 1:
            raise MobilenetsError("image pixels are 0-255, these floats are all within 0-1: "
                                  "give image * 255")
        a = np.round(a).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a[..., :3]


# --------------------------------------------------------------- compare


def compare(specs=(), **flags):
    """Which MobileNet: `mobilenets compare SPEC ... --flag ...`.

    Args:
        specs: candidate specs, e.g. `["v1-0.25-128", "v2-0.35-96"]` (or one string).
        **flags: `grid`, `threads`, `runs`, `warmup`, `repeats`, `data`, `epochs`, `weights`,
            `cache_dir`, `budget_ms`, `max_size_mb`, `budget_format`, `budget_threads`, `out`,
            `no_report`.

    Returns:
        The `mobilenets.compare.Comparison`: rows, choice, report_path, plots.
    """
    from mobilenets.compare import candidates, compare as run_compare

    args = _namespace("compare", "compare", {"specs": specs, **flags})
    specs = candidates(args.specs, args.grid)
    if not specs:
        raise MobilenetsError("give candidates: specs such as v1-0.50-160 and/or grid='v1:1.0,0.5:224,160'")
    shown = ", ".join(f"{k}={v!r}" for k, v in flags.items() if v is not None)
    _settle_environment()
    return run_compare(specs, out_dir=args.out, threads=args.threads, runs=args.runs, warmup=args.warmup,
                       repeats=args.repeats, data=args.data, epochs=args.epochs, weights=args.weights,
                       cache_dir=args.cache_dir, budget_ms=args.budget_ms, max_size_mb=args.max_size_mb,
                       budget_format=args.budget_format, budget_threads=args.budget_threads,
                       report=not args.no_report,
                       command=f"mobilenets.compare({[s.name for s in specs]!r}{', ' if shown else ''}{shown})")
