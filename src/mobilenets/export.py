"""Ship a trained model: .tflite (float32/float16/dynamic/int8), SavedModel, ONNX.

    mobilenets export runs/pets --quantize none,int8 --io uint8

Every exported model takes raw RGB pixels at the model's resolution (0-255
floats, or uint8/int8 for full-integer files): the `Rescaling` that maps them
to MobileNet's [-1, 1] is inside the model, so an app feeds the camera frame
as it is. For int8 files the input quantization is pinned to scale 1.0
(zero point 0 for uint8, -128 for int8), so a uint8 input value *is* the pixel
value, as in the models Teachable Machine and Coral ship.

The class labels travel inside each .tflite twice: as standard TFLite
Metadata with `labels.txt` zipped onto the file (what MediaPipe Tasks, the
LiteRT Support Library and Android Studio read; see `mobilenets.tflite`) and
as our entries `mobilenets_labels` (one label per line) and
`mobilenets_config` (JSON). So `mobilenets predict model_int8.tflite
photo.jpg` needs no side file; a `labels.txt` is written beside them too. Conversion uses the TFLite converter
on a SavedModel traced with a fixed batch-1 signature (`from_keras_model`
and `from_concrete_functions` do not freeze Keras 3 variables reliably).

int8 export swaps V3's hard-swish for the equivalent `relu6(x + 3) * (x / 6)`:
LiteRT's XNNPACK delegate runs int8 ADD/MUL but not int8 HARD_SWISH; each
HARD_SWISH left to the built-in kernel splits the delegated graph, and V3 has
enough of them to make its int8 file slower than float32.

After export, a parity report compares every file with the Keras model on
images int8 calibration did not see: the run's test and validation splits,
then training images calibration left out, up to `--parity-images` (1000).
Every figure (top-1 accuracy, top-1 agreement with Keras, accuracy drop
against Keras) has its image count and a 95% confidence interval; it is saved
as `export_report.json`. A file below `--min-agreement` (0.98) or losing more
than `--max-drop` (0.01, i.e. one percentage point) fails the parity gate:
`ExportResult.failed` names it, and the CLI warns and exits 3.

An export folder is one set: every file, `labels.txt`, `config.json` (whose
sha256 sums match the files) and `export_report.json` are written into a
fresh `.<folder>.staging-*` folder beside it, which replaces the old folder
whole at the end. A killed export leaves the old set as it was; the next
export removes what the killed one left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.env import first_line, package_version, package_versions, progress_bar, quiet_native_stderr
from mobilenets.errors import MobilenetsError
# The file contract lives in mobilenets.tflite (float_ops in profile), native stderr in
# mobilenets.env; these names stay importable from here.
from mobilenets.profile import float_ops
from mobilenets.tflite import (CONFIG_KEY, LABELS_KEY, MOBILENET_RANGE, PIXEL_RANGE, ClassifierInfo,
                               embed_metadata, graph_interpreter, parse_range, read_metadata,
                               write_metadata)

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
# A float32 file for parity and fallback, and the int8 file phones want.
DEFAULT_QUANTIZE = ("none", "int8")
IO_TYPES = ("float32", "uint8", "int8")
# How int8 weights are chosen (see mobilenets.quantize): reconstruct, or the converter alone.
INT8_METHODS = ("reconstruct", "plain")
DEFAULT_INT8_METHOD = "reconstruct"
# What an int8 file takes and returns unless --io says otherwise.
DEFAULT_INT8_IO = "uint8"
FORMATS = ("tflite", "saved_model", "onnx")
TFLITE_NAMES = {"none": "model_float32.tflite", "float16": "model_float16.tflite",
                "dynamic": "model_dynamic.tflite", "int8": "model_int8.tflite"}
DEFAULT_CALIBRATION_SIZE = 200
DEFAULT_PARITY_IMAGES = 1000
# Held-out images first; then training images, which the model has seen but
# calibration has not (so parity stays disjoint from calibration).
PARITY_SPLITS = ("test", "val", "train")
# The parity gate, in fractions of the parity images (0.01 = 1 percentage point):
# a file fails below this top-1 agreement with Keras ...
DEFAULT_MIN_AGREEMENT = 0.98
# ... or when its top-1 accuracy is more than this below Keras's.
DEFAULT_MAX_DROP = 0.01
# Pixel noise (+-levels) under which Keras's own answers are measured (`keras_stability`).
NOISE_PIXELS = 2
# Whose versions an export's config.json records: they decide what a conversion writes.
VERSIONED_PACKAGES = ("mobilenets", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert")
# The files of an export folder; a folder holding anything else is not replaced.
EXPORT_NAMES = frozenset({*TFLITE_NAMES.values(), "saved_model", "model.onnx", "labels.txt",
                          "config.json", "export_report.json"})


# --------------------------------------------------------------- options


def parse_quantize(text: "str | list[str] | tuple[str, ...] | None") -> tuple[str, ...]:
    """Quantize modes from `"none,int8"` (or a list), validated and deduplicated.

    Args:
        text: comma-separated modes from `QUANTIZE_MODES`; `float32` means
            `none`. None gives `DEFAULT_QUANTIZE`.
    """
    if text is None:
        return DEFAULT_QUANTIZE
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        mode = str(item).strip().lower()
        mode = "none" if mode in ("float32", "fp32") else "float16" if mode == "fp16" else mode
        if mode not in QUANTIZE_MODES:
            raise MobilenetsError(
                f"--quantize must be a comma-separated list of {', '.join(QUANTIZE_MODES)}. "
                f"Received {item!r}")
        if mode not in out:
            out.append(mode)
    if not out:
        raise MobilenetsError(f"--quantize names no mode. Received {text!r}")
    return tuple(out)


def parse_formats(text: "str | list[str] | tuple[str, ...] | None") -> tuple[str, ...]:
    """Export formats from `"tflite,onnx"` (or a list), validated.

    Args:
        text: comma-separated formats from `FORMATS`; None gives `("tflite",)`.
    """
    if text is None:
        return ("tflite",)
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        fmt = str(item).strip().lower().replace("-", "_")
        if fmt not in FORMATS:
            raise MobilenetsError(f"--format must be one of {', '.join(FORMATS)}. Received {item!r}")
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


# --------------------------------------------------------------- sources


@dataclass
class Source:
    """A Keras model to export, with what is known about it."""

    model: object  # keras.Model taking raw 0-255 pixels
    model_path: Path
    labels: list[str]
    config: dict  # the run's config.json, or {}
    run_dir: Path | None = None
    wrapped: bool = False  # a Rescaling was added in front

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.model.input_shape[1:3]
        return int(h), int(w)


def load_source(target: "str | os.PathLike", input_range=None) -> Source:
    """Load a run directory, `.keras` or full-model `.h5` for export.

    A model without our `preprocess` layer gets a `Rescaling` in front, from
    0-255 pixels to `input_range` (MobileNet's [-1, 1] unless given), so every
    exported file takes raw pixels.

    Args:
        target: run directory (holding model.keras, labels.txt, config.json)
            or a model file (labels.txt and config.json beside it are used
            when present).
        input_range: the range the model expects when it has no
            `preprocess` layer.
    """
    from mobilenets.models import PREPROCESS_LAYER
    from mobilenets.profile import load_keras_model

    target = Path(target)
    run_dir = None
    if target.is_dir():
        run_dir = target
        model_path = target / "model.keras"
        if not model_path.is_file():
            raise MobilenetsError(f"not a run directory (no model.keras): {target}")
    else:
        if not target.exists():
            raise MobilenetsError(f"no such model file: {target}")
        model_path = target
        if model_path.suffix.lower() == ".tflite":
            raise MobilenetsError(f"export needs a Keras model (run directory, .keras or .h5), "
                                  f"not a .tflite: {target}")
    folder = model_path.parent
    config = artifacts.read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    model = load_keras_model(model_path)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.output_shape) != 2:
        raise MobilenetsError(f"expected an image classifier (one image in, one class vector out): "
                              f"{model_path}")
    h, w = model.input_shape[1:3]
    if h is None or w is None or model.input_shape[-1] != 3:
        raise MobilenetsError(f"the model's input must be a fixed-size RGB image, got "
                              f"{tuple(model.input_shape)}: {model_path}")
    classes = int(model.output_shape[-1])
    labels = _labels_for(folder, config, classes)
    names = {layer.name for layer in model.layers}
    wrapped = False
    if PREPROCESS_LAYER not in names:
        model = _with_pixel_input(model, parse_range(input_range) or MOBILENET_RANGE)
        wrapped = True
    return Source(model=model, model_path=model_path, labels=labels, config=config,
                  run_dir=run_dir, wrapped=wrapped)


def _labels_for(folder: Path, config: dict, classes: int) -> list[str]:
    labels_file = folder / "labels.txt"
    if labels_file.is_file():
        labels = [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
    elif config.get("classes"):
        labels = [str(c) for c in config["classes"]]
    else:
        labels = [str(i) for i in range(classes)]
    if len(labels) != classes:
        raise MobilenetsError(f"{labels_file} has {len(labels)} labels but the model has "
                              f"{classes} outputs")
    return labels


def _with_pixel_input(model, input_range: tuple[float, float]):
    import keras

    from mobilenets.models import PREPROCESS_LAYER

    lo, hi = input_range
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = keras.layers.Rescaling((hi - lo) / 255.0, offset=lo, name=PREPROCESS_LAYER)(inputs)
    try:
        # The model's own layers (shared, not copied) applied after the Rescaling: one flat
        # graph, so int8 reconstruction sees every convolution (a nested model hides them).
        outputs = model._run_through_graph(x, operation_fn=lambda op: op)
    except Exception:  # noqa: BLE001 - not a functional graph (a subclassed model): nest it
        outputs = model(x)
    return keras.Model(inputs, outputs, name=model.name)


# --------------------------------------------------------------- conversion


def _conversion_error(e: BaseException) -> str:
    """The line of a conversion failure worth quoting (converter, tf2onnx, int8 reconstruction).

    The converter puts its `error:` line after a location prefix: that line when there is one.
    """
    return first_line(e, prefer="error:", limit=300)


def _xnnpack_hard_swish(x):
    """hard_swish(x) = x * relu6(x + 3) / 6, written so that the converter
    does not fuse it back into HARD_SWISH (int8 HARD_SWISH is not delegated)."""
    import keras

    return keras.ops.relu6(x + 3.0) * (x * (1.0 / 6.0))


def has_hard_swish(model) -> bool:
    """Whether a Keras model has a hard-swish Activation (V3 does), which `int8_friendly` rewrites.

    Args:
        model: a Keras model; only its top-level layers are looked at.
    """
    return any(_is_hard_swish(layer) for layer in model.layers)


def _is_hard_swish(layer) -> bool:
    if type(layer).__name__ != "Activation":
        return False
    name = getattr(layer.activation, "__name__", "")
    return name in ("hard_swish", "hard_silu")


def int8_friendly(model):
    """The model with every hard-swish Activation rewritten for int8 XNNPACK.

    Args:
        model: a flat functional Keras model; other layers (and their
            weights) are shared, not copied.
    """
    import keras

    if not has_hard_swish(model):
        return model

    def clone(layer):
        if _is_hard_swish(layer):
            return keras.layers.Activation(_xnnpack_hard_swish, name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def save_traced(model, path: "str | os.PathLike") -> Path:
    """Write a SavedModel with one fixed batch-1 `serving_default` signature.

    Args:
        model: a Keras model with a fixed input size.
        path: the SavedModel folder.
    """
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: model(x, training=False),
                         input_signature=[spec])
    with quiet_native_stderr():
        archive.write_out(str(path), verbose=False)
    return Path(path)


def convert(saved_model: "str | os.PathLike", quantize: str = "none", io: str = "float32",
            calibration: "np.ndarray | None" = None) -> bytes:
    """Convert a SavedModel to .tflite bytes.

    Args:
        saved_model: a folder written by `save_traced`.
        quantize: `none` (float32), `float16` (float16 weights), `dynamic`
            (int8 weights, float activations) or `int8` (full integer).
        io: input/output type of an int8 model: `float32`, `uint8` or `int8`.
        calibration: uint8 images (N, h, w, 3) for int8 activation ranges.

    Raises:
        MobilenetsError: bad options, a conversion failure, or float ops left
            in an int8 model (named in the message).
    """
    import tensorflow as tf

    if quantize not in QUANTIZE_MODES:
        raise MobilenetsError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}. "
                              f"Received {quantize!r}")
    if io not in IO_TYPES:
        raise MobilenetsError(f"--io must be one of {', '.join(IO_TYPES)}. Received {io!r}")
    if io != "float32" and quantize != "int8":
        raise MobilenetsError(f"--io {io} needs --quantize int8 (only full-integer models take "
                              f"integer input). Received quantize={quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None or not len(calibration):
            raise MobilenetsError("int8 needs calibration images: give --calibration DATA")
        images = _pinned(calibration)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([img[None].astype(np.float32)] for img in images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io)
        converter.inference_output_type = getattr(tf, io)
    try:
        with quiet_native_stderr():
            model = converter.convert()
    except Exception as e:  # noqa: BLE001 - ConverterError and friends: the user's model
        raise MobilenetsError(f"TFLite conversion ({quantize}) failed: {_conversion_error(e)}") from None
    if quantize == "int8":
        left = float_ops(model)
        if left:
            raise MobilenetsError(
                "int8 export left float ops in the model: "
                + ", ".join(f"{n}x {op}" for op, n in left.items())
                + "; use --quantize dynamic or float16 for this model")
    return model


def _pinned(images: np.ndarray) -> np.ndarray:
    """Calibration images whose pixel range is exactly 0..255.

    The converter takes the input's quantization from the calibration
    min/max; one black and one white pixel in the first image make that
    0..255, so the uint8 input has scale 1.0 and zero point 0 (a pixel value
    is its own quantized value) and nothing else measurably changes.
    """
    images = np.array(images, dtype=np.uint8, copy=True)
    images[0, 0, 0, :] = 0
    images[0, 0, -1, :] = 255
    return images


# --------------------------------------------------------------- calibration


@dataclass
class Calibration:
    """The images int8 calibration used, and which files they were."""

    images: np.ndarray  # uint8 (n, h, w, 3)
    files: list[str]  # `image_id` of each image: the parity report leaves these out
    note: str  # where they came from


def image_id(path) -> str:
    """What names an image across datasets: a file's resolved path, a built-in's pseudo path.

    Args:
        path: a `Path` (a file) or a string (a built-in dataset's `digits/train/00012`).
    """
    return str(Path(path).resolve()) if isinstance(path, Path) else str(path)


def calibration_images(data, image_size: tuple[int, int], size: int = DEFAULT_CALIBRATION_SIZE,
                       config: dict | None = None, seed: int = 0) -> Calibration:
    """Images for int8 calibration: a seeded sample of a dataset's training split.

    Args:
        data: what `mobilenets.data.open_dataset` accepts (a folder of class
            folders, "digits", ...), or a folder of loose images.
        image_size: `(height, width)` of the model.
        size: how many images (fewer if the data has fewer).
        config: the run config (its split percentages are used).
        seed: sample seed.

    Returns:
        A `Calibration`: the uint8 images, the files they came from and a note.
    """
    from mobilenets.data import IMAGE_EXTENSIONS, ImageFolder, open_dataset

    if size < 1:
        raise MobilenetsError(f"--calibration-size must be >= 1. Received {size}")
    config = config or {}
    rng = np.random.default_rng(seed)
    try:
        ds = open_dataset(data, validation_percent=config.get("validation_percent", 10),
                          test_percent=config.get("test_percent", 10))
    except MobilenetsError:
        folder = Path(data)
        if not folder.is_dir():
            raise
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise MobilenetsError(f"no images for calibration in {folder}") from None
        picked = [files[i] for i in sorted(rng.permutation(len(files))[:size])]
        images, kept = _calibration_load(picked, image_size)
        return Calibration(images, [image_id(picked[i]) for i in kept],
                           f"{folder} ({len(images)} images)")
    split = next((s for s in ("train", "val", "test") if s in ds.splits), None)
    if split is None:
        raise MobilenetsError(f"no images for calibration in {data}")
    files = [f for f, _ in ds.files(split)]
    picked = [files[i] for i in sorted(rng.permutation(len(files))[:size])]
    if isinstance(ds, ImageFolder):
        images, kept = _calibration_load(picked, image_size)
        picked = [picked[i] for i in kept]
    else:
        all_images, _, paths = ds.arrays(split, image_size)
        index = {p: i for i, p in enumerate(paths)}
        images = all_images[[index[p] for p in picked]]
    return Calibration(images, [image_id(p) for p in picked],
                       f"{data} ({split} split, {len(images)} images)")


def _calibration_load(paths, image_size) -> tuple[np.ndarray, list[int]]:
    images, kept = _load_many(paths, image_size)
    if not kept:
        raise MobilenetsError("none of the calibration images could be read")
    return images, kept


def _load_many(paths, image_size) -> tuple[np.ndarray, list[int]]:
    """Decode image files in parallel: `(uint8 images, indices of the readable paths)`."""
    from concurrent.futures import ThreadPoolExecutor

    from mobilenets.data import BadImage, load_image

    def one(p):
        try:
            return load_image(p, image_size)
        except BadImage:
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        loaded = list(pool.map(one, paths))
    kept = [i for i, im in enumerate(loaded) if im is not None]
    if not kept:
        return np.empty((0, *image_size, 3), np.uint8), kept
    return np.stack([loaded[i] for i in kept]), kept


# --------------------------------------------------------------- export


@dataclass
class ExportResult:
    """What `export` made, and which files failed the parity gate."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # name -> path
    rows: list[dict] = field(default_factory=list)  # the parity report
    report_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    # One dict per file below min_agreement or above max_drop: model, agreement,
    # accuracy_drop, images, message (one line naming the file and its numbers).
    failed: list[dict] = field(default_factory=list)
    stability: dict | None = None  # `keras_stability` of the parity images


def default_out_dir(target: "str | os.PathLike") -> Path:
    """`<run>/export` for a run directory, `<model>-export/` beside a model file.

    Args:
        target: run directory or model file.
    """
    target = Path(target)
    return target / "export" if target.is_dir() else target.parent / f"{target.stem}-export"


def export(target, out_dir=None, quantize=None, io: str | None = None, formats=None,
           calibration=None, calibration_size: int = DEFAULT_CALIBRATION_SIZE, data=None,
           parity: bool = True, parity_images: int = DEFAULT_PARITY_IMAGES,
           input_range=None, min_agreement: float = DEFAULT_MIN_AGREEMENT,
           max_drop: float = DEFAULT_MAX_DROP, int8_method: str = DEFAULT_INT8_METHOD,
           progress: bool | None = None) -> ExportResult:
    """Export a run or Keras model and check every file against Keras.

    The folder is written as one set (see the module docstring): a re-export
    replaces a previous export folder whole, and refuses a folder that holds
    anything else.

    Args:
        target: run directory, `.keras` or full-model `.h5`.
        out_dir: where files go (default: `default_out_dir(target)`).
        quantize: .tflite modes, e.g. `"none,int8"` (default `DEFAULT_QUANTIZE`).
        io: int8 input/output type: `uint8` (default), `int8` or `float32`.
            Float modes always take and return float32.
        formats: `"tflite"` (default), `"saved_model"`, `"onnx"`, or a list.
        calibration: data for int8 calibration (default: the run's data).
        calibration_size: calibration images (default 200).
        data: data for the parity report (default: the run's own: test, val,
            then the training images calibration did not use; None and no
            run: no parity report).
        parity: write the parity report.
        parity_images: at most this many images in the parity report.
        input_range: the input range of a model without our `preprocess`
            layer (default MobileNet's -1,1).
        min_agreement: the parity gate's lowest top-1 agreement with Keras,
            a fraction 0..1 (default 0.98).
        max_drop: the parity gate's largest top-1 accuracy drop against
            Keras, a fraction of the images (default 0.01: one percentage point).
        int8_method: `reconstruct` (default: `mobilenets.quantize` puts the
            kernels on the int8 grid so they keep the float outputs, then
            the converter quantizes) or `plain` (the converter alone).
        progress: show a progress bar for the int8 reconstruction (default:
            when stderr is a terminal).

    Returns:
        An `ExportResult`; `failed` lists the files that missed the gate
        (they are written all the same).
    """
    from mobilenets.data import run_data

    formats = parse_formats(formats)
    modes = parse_quantize(quantize) if "tflite" in formats or quantize is not None else ()
    if "tflite" not in formats and quantize is not None:
        raise MobilenetsError(f"--quantize applies to --format tflite. Received formats={','.join(formats)}")
    if io is not None and io not in IO_TYPES:
        raise MobilenetsError(f"--io must be one of {', '.join(IO_TYPES)}. Received {io!r}")
    if io not in (None, "float32") and "int8" not in modes:
        raise MobilenetsError(f"--io {io} needs --quantize int8 (float modes take float32). "
                              f"Received quantize={','.join(modes) or 'none'}")
    int8_io = io or DEFAULT_INT8_IO
    if calibration_size < 1:
        raise MobilenetsError(f"--calibration-size must be >= 1. Received {calibration_size}")
    if int8_method not in INT8_METHODS:
        raise MobilenetsError(f"--int8-method must be one of {', '.join(INT8_METHODS)}. "
                              f"Received {int8_method!r}")
    if parity_images < 1:
        raise MobilenetsError(f"--parity-images must be >= 1. Received {parity_images}")
    if not 0 <= min_agreement <= 1:
        raise MobilenetsError(f"--min-agreement must be between 0 and 1. Received {min_agreement}")
    if not max_drop >= 0:
        raise MobilenetsError(f"--max-drop must be >= 0 (a fraction: 0.01 is one percentage "
                              f"point). Received {max_drop}")

    source = load_source(target, input_range)
    dest = Path(out_dir) if out_dir else default_out_dir(target)
    result = ExportResult(out_dir=dest)
    cfg = source.config
    calib_data = calibration or (run_data(cfg, "give --calibration DATA (and --data DATA for the parity "
                                               "report)") if "int8" in modes else None)
    if "int8" in modes and not calib_data:
        if quantize is not None:
            raise MobilenetsError("int8 needs calibration images: give --calibration DATA "
                                  "(the model has no run config naming its data)")
        # The default asks for int8 too; without data for it, ship the float file and say so.
        modes = tuple(m for m in modes if m != "int8")
        result.notes.append("int8 skipped: no calibration data (a model file without a run "
                            "config); give --calibration DATA")
    spec = cfg.get("spec") or cfg.get("arch")
    meta_config = {"format": "mobilenets", "version": 1, "spec": spec,
                   "image_size": list(source.image_size), "input_range": list(PIXEL_RANGE),
                   "classes": len(source.labels)}
    labels_text = "\n".join(source.labels) + "\n"
    files_info: dict[str, dict] = {}
    calib = None

    with staged_folder(dest) as out:
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out) as tmp:
            tmp = Path(tmp)
            float_saved = None
            if any(m != "int8" for m in modes) or "saved_model" in formats:
                float_saved = save_traced(source.model, tmp / "float")
            for mode in modes:
                mode_io = int8_io if mode == "int8" else "float32"
                extra = {}
                if mode == "int8":
                    calib = calibration_images(calib_data, source.image_size, calibration_size, cfg)
                    model = source.model
                    if has_hard_swish(model):
                        model = int8_friendly(model)
                        extra["hard_swish"] = "relu6(x + 3) * (x / 6): int8 HARD_SWISH is not XNNPACK-delegated"
                    extra["int8_method"] = int8_method
                    if int8_method == "reconstruct":
                        try:
                            model, layers = _reconstructed(model, calib.images, progress)
                            extra["reconstructed_layers"] = layers
                        except Exception as e:  # noqa: BLE001 - a graph it does not know: plain int8, said
                            extra["int8_method"] = "plain"
                            result.notes.append(f"int8 reconstruction skipped ({_conversion_error(e)}): "
                                                f"model_int8.tflite is the converter's plain int8")
                    if model is source.model and float_saved is not None:
                        saved = float_saved
                    else:
                        saved = save_traced(model, tmp / "int8")
                    tflite = convert(saved, "int8", mode_io, calib.images)
                else:
                    tflite = convert(float_saved, mode, "float32")
                meta = dict(meta_config, quantize=mode, io=mode_io)
                # Standard TFLite Metadata and labels.txt zipped on (MediaPipe, Android), plus ours.
                tflite = write_metadata(tflite, _classifier_info(source, spec, mode, mode_io),
                                        {LABELS_KEY: labels_text.encode(),
                                         CONFIG_KEY: json.dumps(meta).encode()})
                path = artifacts.write_bytes(out / TFLITE_NAMES[mode], tflite)
                result.files[path.name] = path
                files_info[path.name] = dict(format="tflite", quantize=mode, io=mode_io,
                                             bytes=len(tflite), sha256=hashlib.sha256(tflite).hexdigest(),
                                             input=_input_quantization(tflite), **extra)
            if "saved_model" in formats:
                path = Path(shutil.move(float_saved, out / "saved_model"))
                result.files[path.name] = path
                files_info[path.name] = dict(format="saved_model", quantize="none", io="float32",
                                             bytes=_dir_bytes(path), signature="serving_default",
                                             input_shape=[1, *source.image_size, 3])
            if "onnx" in formats:
                path = export_onnx(source.model, out / "model.onnx", source.labels, meta_config)
                result.files[path.name] = path
                files_info[path.name] = dict(format="onnx", quantize="none", io="float32",
                                             bytes=path.stat().st_size)

        artifacts.write_text(out / "labels.txt", labels_text)
        export_config = {
            "source": str(source.model_path),
            "source_sha256": _sha256(source.model_path),
            "run": str(source.run_dir) if source.run_dir else None,
            "spec": spec,
            "image_size": list(source.image_size),
            "input_range": list(PIXEL_RANGE),
            "added_preprocessing": (f"Rescaling 0..255 -> {parse_range(input_range) or MOBILENET_RANGE}"
                                    if source.wrapped else None),
            "labels": source.labels,
            "quantize": list(modes),
            "io": int8_io if "int8" in modes else "float32",
            "formats": list(formats),
            "calibration": ({"data": str(calib_data), "size": calibration_size,
                             "used": calib.note, "images": len(calib.files), "files": calib.files}
                            if calib else None),
            "files": files_info,
            "versions": package_versions(*VERSIONED_PACKAGES),
        }
        artifacts.write_json(out / "config.json", export_config)

        if parity:
            report = parity_report(source, result.files, data=data, max_images=parity_images,
                                   exclude=calib.files if calib else ())
            if report.note:
                result.notes.append(report.note)
            if report.rows:
                result.rows = report.rows
                result.stability = st = report.stability
                result.notes.append(f"Keras keeps its own top-1 on {_figure(st, 'agreement')} of "
                                    f"these images under +-{st['pixels']} of pixel noise (how firm its "
                                    f"answers are: read a file's agreement against it)")
                result.failed = parity_failures(report.rows, min_agreement, max_drop,
                                                report.stability)
                artifacts.write_json(out / "export_report.json", {
                    "note": report.note,
                    "parity_images": report.images, "parity_splits": report.splits,
                    "calibration_images": len(calib.files) if calib else 0,
                    "calibration_overlap": report.overlap,
                    "gate": {"min_agreement": min_agreement, "max_drop": max_drop,
                             "failed": result.failed},
                    "keras_stability": report.stability,
                    "rows": report.rows})
                result.report_path = dest / "export_report.json"
    result.files = {name: dest / name for name in result.files}
    return result


def _reconstructed(model, images: np.ndarray, progress: bool | None):
    """`quantize.reconstruct` with a progress bar: (model, number of layers it refitted)."""
    from mobilenets.quantize import reconstruct

    with progress_bar("int8 reconstruction", None, progress) as bar:
        def step(done, total, name):
            bar.update(description=f"int8 reconstruction {name}", completed=done, total=total)

        model, reports = reconstruct(model, images, progress=step)
    return model, len(reports)


# --------------------------------------------------------------- one set


@contextlib.contextmanager
def staged_folder(dest: "str | os.PathLike"):
    """Yield an empty folder beside `dest`; on success it replaces `dest` whole.

    What a killed earlier export left beside `dest` is cleaned up first (an
    old set it had moved away comes back). `dest` itself may be missing,
    empty, or an earlier export; a folder holding other files is refused,
    since it would be replaced.

    Args:
        dest: the export folder.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(dest)
    _check_replaceable(dest)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = dest.with_name(f".{dest.name}.staging-{token}")
    staging.mkdir()  # not mkdtemp: its 0700 would become the export folder's mode
    try:
        yield staging
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{token}")
            os.rename(dest, old)
        os.rename(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def clean_leftovers(dest: "str | os.PathLike") -> list[Path]:
    """Remove what killed exports left in and beside an export folder.

    Beside it: `.<name>.staging-<pid>-*` (a set being written) and
    `.<name>.old-<pid>-*` (the old set, moved away during the swap; put back
    when `dest` is missing, i.e. the kill came between the two renames).
    Folders of a process still running are left alone. Inside it: the
    `.export-*` and `.convert-*` scratch folders of earlier versions.

    Args:
        dest: the export folder.

    Returns:
        The paths removed.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed = []
    staging, old = f".{dest.name}.staging-", f".{dest.name}.old-"
    olds = []
    for p in sorted(dest.parent.iterdir()):
        for prefix in (staging, old):
            if p.name.startswith(prefix) and p.is_dir() and not _owner_running(p.name[len(prefix):]):
                (olds if prefix == old else removed).append(p)
    if olds and not dest.exists():
        back = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(back, dest)
        olds.remove(back)
    removed += olds
    if dest.is_dir():
        removed += [p for p in dest.iterdir() if p.is_dir() and p.name.startswith((".export-", ".convert-"))]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def _owner_running(suffix: str) -> bool:
    """Whether the process whose pid starts `suffix` (`<pid>-<random>`) is alive."""
    try:
        pid = int(suffix.split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # this process starts one export at a time: its own are leftovers
    return artifacts.pid_alive(pid)


def _recorded_files(config: Path) -> list[str]:
    """The files an earlier export's config.json lists (none if it is not one)."""
    try:
        files = json.loads(config.read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(name) for name in files] if isinstance(files, dict) else []


def _check_replaceable(dest: Path) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise MobilenetsError(f"the export folder is a file: {dest}")
    ours = EXPORT_NAMES | set(_recorded_files(dest / "config.json"))
    foreign = sorted(p.name for p in dest.iterdir() if p.name not in ours and not p.name.startswith("."))
    if foreign:
        raise MobilenetsError(f"{dest} holds files that are not an export ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}): a re-export replaces the "
                              f"whole folder, so give --out a new or empty folder")


def _classifier_info(source: Source, spec, mode: str, io: str) -> ClassifierInfo:
    """What the standard metadata of one exported file says (it takes raw 0-255 pixels)."""
    ours = package_version("mobilenets") or "dev"
    kind = {"none": "float32", "float16": "float16 weights", "dynamic": "int8 weights",
            "int8": f"int8, {io} input and output"}[mode]
    shown = ", ".join(source.labels[:5]) + (", ..." if len(source.labels) > 5 else "")
    cfg = source.config
    return ClassifierInfo(
        name=f"MobileNet {spec}" if spec else source.model.name,
        labels=source.labels,
        description=f"Classifies an RGB image into {len(source.labels)} classes ({shown}). "
                    f"{kind.capitalize()}; takes raw 0-255 pixels. Made by mobilenets {ours}.",
        version=f"{source.model_path.name} sha256 {_sha256(source.model_path)[:12]}",
        author=str(cfg.get("author") or "mobilenets export"),
        license=str(cfg.get("license") or "not stated by the model's owner (the MobileNet "
                                          "architecture and ImageNet weights are Apache-2.0)"))


def _input_quantization(tflite: bytes) -> dict:
    interp = graph_interpreter(tflite)
    d = interp.get_input_details()[0]
    o = interp.get_output_details()[0]
    return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(v) for v in d["shape"]],
            "scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1]),
            "output_dtype": np.dtype(o["dtype"]).name, "output_scale": float(o["quantization"][0]),
            "output_zero_point": int(o["quantization"][1])}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(model, path: "str | os.PathLike", labels: list[str], meta: dict) -> Path:
    """Write an ONNX model (batch dimension free) with the labels in its metadata.

    Uses Keras's own `model.export(format="onnx")`, which needs the `tf2onnx`
    and `onnx` packages (`pip install 'mobilenets[onnx]'`).

    Args:
        model: the Keras model (taking raw pixels).
        path: the .onnx file.
        labels: class labels, stored as metadata `mobilenets_labels`.
        meta: stored as metadata `mobilenets_config` (JSON).
    """
    try:
        import onnx
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise MobilenetsError(f"--format onnx needs the tf2onnx and onnx packages ({e.name} is "
                              "missing): pip install 'mobilenets[onnx]'") from None
    path = Path(path)
    h, w = model.input_shape[1:3]
    model(np.zeros((1, h, w, 3), np.float32))  # Keras's ONNX export needs a called model
    with artifacts.atomic_path(path) as tmp:
        try:
            with quiet_native_stderr(), open(os.devnull, "w") as devnull, \
                    contextlib.redirect_stdout(devnull), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # Keras's tf2onnx numpy-2 patch
                model.export(str(tmp), format="onnx", verbose=False)
        except Exception as e:  # noqa: BLE001 - tf2onnx failures are about this model
            raise MobilenetsError(f"ONNX export failed: {_conversion_error(e)}") from None
        proto = onnx.load(str(tmp))
        for key, value in ((LABELS_KEY, "\n".join(labels) + "\n"),
                           (CONFIG_KEY, json.dumps(dict(meta, quantize="none", io="float32")))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return path


# --------------------------------------------------------------- parity


@dataclass
class ParityReport:
    """What `parity_report` measured."""

    rows: list[dict]  # one per model, Keras first
    note: str | None  # which data was used, or why there is no report
    images: int = 0
    splits: dict[str, int] = field(default_factory=dict)  # parity images by split
    overlap: int = 0  # parity images that are also in `exclude` (0 by construction)
    # Keras's own top-1 kept under +-NOISE_PIXELS of pixel noise: agreement, its 95% interval.
    stability: dict | None = None


def parity_report(source: Source, files: dict[str, Path], data=None,
                  max_images: int = DEFAULT_PARITY_IMAGES, exclude=(),
                  latency_images: int = 50) -> ParityReport:
    """Top-1 accuracy, agreement with Keras, accuracy drop, size and latency of each file.

    Accuracy, agreement and drop come with 95% intervals (`_row`). The images
    are taken split by split (`PARITY_SPLITS`: test, val, then train), all
    of a split while they fit in `max_images`, then a seeded sample; images
    in `exclude` (calibration's) are never used. Training images make the
    accuracy optimistic but not the comparison with Keras, which sees the
    same images; `test_accuracy` is the test images' alone.

    Args:
        source: the exported Keras model and its run config.
        files: exported files by name.
        data: dataset for the comparison (default: the run's own).
        max_images: at most this many images.
        exclude: `image_id`s to leave out (the calibration images).
        latency_images: images timed one at a time for the latency column.
    """
    from mobilenets.data import open_dataset, run_data
    from mobilenets.predict import load_classifier

    data = data if data is not None else run_data(source.config, "give --data DATA (or --no-parity)")
    if data is None:
        return ParityReport([], "no parity report: the model has no run config naming its data; "
                                "give --data")
    cfg = source.config
    ds = open_dataset(data, validation_percent=cfg.get("validation_percent", 10),
                      test_percent=cfg.get("test_percent", 10))
    exclude = set(exclude)
    images, labels, splits, ids = parity_images(ds, source.image_size, max_images, exclude)
    if not len(images):
        return ParityReport([], f"no parity report: {data} has no images that calibration did "
                                f"not use")
    labels = _aligned_labels(list(ds.classes), source.labels, labels, data)
    is_test = splits == "test"

    keras_probs, keras_ms = _keras_run(source.model, images, latency_images)
    keras_top1 = keras_probs.argmax(1)
    stability = keras_stability(source.model, images, keras_top1)
    rows = [_row("keras", "keras", "none", "float32", source.model_path.stat().st_size,
                 keras_top1, keras_top1, labels, is_test, keras_ms)]
    for name, path in files.items():
        info_format = "tflite" if path.suffix == ".tflite" else "onnx" if path.suffix == ".onnx" \
            else "saved_model"
        if info_format == "tflite":
            clf = load_classifier(path, threads=1)
            quantize, io = clf.metadata_config.get("quantize"), clf.metadata_config.get("io")
            size = path.stat().st_size
        elif info_format == "onnx":
            clf = _onnx_runner(path)
            quantize, io, size = "none", "float32", path.stat().st_size
            if clf is None:
                rows.append({"model": name, "format": "onnx", "quantize": "none", "io": "float32",
                             "file_mb": round(size / 2**20, 3), "images": 0, "accuracy": None,
                             "agreement": None, "accuracy_drop": None, "latency_ms": None,
                             "note": "onnxruntime not installed: not run"})
                continue
        else:
            clf = _saved_model_runner(path)
            quantize, io, size = "none", "float32", _dir_bytes(path)
        probs, ms = _timed(clf.predict, images, latency_images)
        rows.append(_row(name, info_format, quantize, io, size, probs.argmax(1), keras_top1,
                         labels, is_test, ms))
    counts = {s: int((splits == s).sum()) for s in PARITY_SPLITS if (splits == s).any()}
    kept_out = f"; calibration's {len(exclude)} left out" if exclude else ""
    note = (f"parity on {data}: {len(images)} images ("
            + " + ".join(f"{n} {s}" for s, n in counts.items()) + f"{kept_out})")
    return ParityReport(rows, note, images=len(images), splits=counts,
                        overlap=len(exclude.intersection(ids)), stability=stability)


def keras_stability(model, images: np.ndarray, keras_top1: np.ndarray,
                    pixels: int = NOISE_PIXELS, seed: int = 0) -> dict:
    """How often Keras keeps its own top-1 when each pixel moves by at most `pixels` levels.

    Seeded uniform integer noise in [-pixels, pixels] (clipped to 0..255),
    invisible to a person and smaller than what JPEG re-encoding or a
    camera's next frame does. The answers that flip here are the images
    whose two best classes are close, the same ones int8 rounding flips: the
    figure tells a fragile model (low here too) from a bad conversion (high
    here, low agreement).

    Returns:
        `{"pixels", "agreement", "agreement_low", "agreement_high", "images"}`.
    """
    rng = np.random.default_rng(seed)
    noisy = np.clip(images.astype(np.int16) + rng.integers(-pixels, pixels + 1, images.shape,
                                                            dtype=np.int16), 0, 255).astype(np.uint8)
    probs, _ = _keras_run(model, noisy, 0)
    kept = int((probs.argmax(1) == keras_top1).sum())
    n = len(images)
    return {"pixels": pixels, "images": n,
            **_with_interval("agreement", kept / n, wilson_interval(kept, n))}


def parity_images(ds, image_size: tuple[int, int], max_images: int = DEFAULT_PARITY_IMAGES,
                  exclude=frozenset(), seed: int = 0):
    """The parity report's images: test, val, then train (`PARITY_SPLITS`), none in `exclude`.

    Args:
        ds: an opened dataset (`mobilenets.data.open_dataset`).
        image_size: `(height, width)`.
        max_images: at most this many; a split that does not fit whole is
            a seeded sample.
        exclude: `image_id`s never to use.
        seed: sample seed.

    Returns:
        `(uint8 images, labels, split of each image, image_id of each image)`
        as arrays of the same length.
    """
    from mobilenets.data import ImageFolder

    rng = np.random.default_rng(seed)
    parts = []
    room = max_images
    for split in PARITY_SPLITS:
        if room <= 0 or split not in ds.splits:
            continue
        items = [(i, f, y) for i, (f, y) in enumerate(ds.files(split)) if image_id(f) not in exclude]
        if len(items) > room:
            items = [items[i] for i in np.sort(rng.permutation(len(items))[:room])]
        if not items:
            continue
        if isinstance(ds, ImageFolder):  # decode only the files used, not the whole split
            images, kept = _load_many([f for _, f, _ in items], image_size)
            items = [items[i] for i in kept]
        else:
            images = ds.arrays(split, image_size)[0][[i for i, _, _ in items]]
        room -= len(items)
        parts.append((images, [y for _, _, y in items], [split] * len(items),
                      [image_id(f) for _, f, _ in items]))
    if not parts:
        return (np.empty((0, *image_size, 3), np.uint8), np.empty((0,), np.int64),
                np.empty((0,), str), np.empty((0,), str))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.int64),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))


def _aligned_labels(data_classes: list[str], model_labels: list[str], labels: np.ndarray, data):
    if data_classes == model_labels:
        return labels
    if set(data_classes) <= set(model_labels):
        index = {c: model_labels.index(c) for c in data_classes}
        return np.array([index[data_classes[i]] for i in labels])
    raise MobilenetsError(f"the classes of {data} ({', '.join(data_classes[:5])}...) are not the "
                          f"model's labels ({', '.join(model_labels[:5])}...)")


def _row(name, fmt, quantize, io, size, top1, keras_top1, labels, is_test, ms) -> dict:
    """A parity row: each fraction with the bounds of its 95% interval (`_low`, `_high`)."""
    n = len(labels)
    correct, keras_correct = top1 == labels, keras_top1 == labels
    agree = int((top1 == keras_top1).sum())
    row = {"model": name, "format": fmt, "quantize": quantize, "io": io,
           "file_mb": round(size / 2**20, 3), "images": int(n)}
    row.update(_with_interval("accuracy", correct.mean(), wilson_interval(int(correct.sum()), n)))
    reference = fmt == "keras"
    row.update(_with_interval("agreement", agree / n, None if reference else wilson_interval(agree, n)))
    drop, low, high = accuracy_drop(keras_correct, correct)
    row.update(_with_interval("accuracy_drop", drop, None if reference else (low, high)))
    row["test_accuracy"] = round(float(correct[is_test].mean()), 4) if is_test.any() else None
    row["test_images"] = int(is_test.sum())
    row["latency_ms"] = round(ms, 3)
    return row


def _with_interval(key: str, value: float, interval) -> dict:
    low, high = interval or (None, None)
    return {key: round(float(value), 4),
            f"{key}_low": None if low is None else round(float(low), 4),
            f"{key}_high": None if high is None else round(float(high), 4)}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, e.g. accuracy or agreement.

    Args:
        successes: images counted (correct, or agreeing with Keras).
        n: images (>= 1).
        confidence: the interval's confidence level.
    """
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_drop(reference_correct, correct, confidence: float = 0.95) -> tuple[float, float, float]:
    """How much lower a file's accuracy is than the reference's, on the same images.

    The interval is Newcombe's square-and-add interval for paired
    proportions (Newcombe 1998, with the continuity-corrected correlation, as
    in Altman et al.'s *Statistics with Confidence* and Fagerland et al.'s
    *Statistical Analysis of Contingency Tables*): it combines the two
    Wilson intervals and the correlation of the pairs, so images that both
    get right (or both wrong) make it far narrower than two independent
    accuracies' intervals would be.

    Args:
        reference_correct: per image, whether Keras is right.
        correct: per image, whether the file is right.
        confidence: the interval's confidence level.

    Returns:
        `(drop, low, high)` as fractions of the images; positive is worse.
    """
    ref, new = np.asarray(reference_correct, bool), np.asarray(correct, bool)
    n = len(ref)
    a, b = int((ref & new).sum()), int((ref & ~new).sum())
    c, d = int((~ref & new).sum()), int((~ref & ~new).sum())
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = float((a + b) * (c + d) * (a + c) * (b + d))
    cross = a * d - b * c
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)  # continuity correction
    phi = cross / np.sqrt(margins) if margins else 0.0
    below = np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    drop = (b - c) / n
    return drop, drop - float(below), drop + float(above)


def parity_failures(rows: list[dict], min_agreement: float = DEFAULT_MIN_AGREEMENT,
                    max_drop: float = DEFAULT_MAX_DROP, stability: dict | None = None) -> list[dict]:
    """The files of a parity report that fail the gate, each with a one-line message.

    A file fails when its agreement with Keras is below `min_agreement` or its
    accuracy drop is above `max_drop` (the measured values; the intervals are
    shown to judge them). Rows that were not run are skipped.

    Args:
        rows: `parity_report` rows (Keras first).
        min_agreement: fraction 0..1.
        max_drop: fraction of the images (0.01 is one percentage point).
        stability: `keras_stability` of the same images; when Keras itself
            keeps its answers under pixel noise no better than `min_agreement`,
            the message says so (the model's answers are fragile, not the file).
    """
    fragile = stability is not None and stability["agreement"] < min_agreement
    failed = []
    for r in rows:
        if r["format"] == "keras" or r.get("agreement") is None:
            continue
        reasons = []
        if r["agreement"] < min_agreement:
            reasons.append(f"agreement {_figure(r, 'agreement')} is below {min_agreement:g}")
        if r["accuracy_drop"] > max_drop:
            reasons.append(f"accuracy drop {_figure(r, 'accuracy_drop')} is above {max_drop:g}")
        if reasons and fragile and r["agreement"] < min_agreement:
            reasons.append(f"Keras itself keeps only {_figure(stability, 'agreement')} of its "
                           f"answers under +-{stability['pixels']} of pixel noise: train on more "
                           f"images or --fine-tune for firmer answers")
        if reasons:
            failed.append({"model": r["model"], "agreement": r["agreement"],
                           "accuracy_drop": r["accuracy_drop"], "images": r["images"],
                           "message": f"{r['model']}: {'; '.join(reasons)} "
                                      f"(95% intervals, {r['images']} parity images)"})
    return failed


def parity_table(rows: list[dict]) -> list[dict]:
    """Parity rows as people read them: every fraction with its 95% interval.

    Args:
        rows: `parity_report` rows.
    """
    return [{"model": r["model"], "quantize": r["quantize"], "io": r["io"], "file_mb": r["file_mb"],
             "images": r["images"], "accuracy [95% CI]": _figure(r, "accuracy"),
             "agreement [95% CI]": _figure(r, "agreement"),
             "accuracy drop [95% CI]": _figure(r, "accuracy_drop"),
             "latency_ms": r.get("latency_ms")} for r in rows]


def _figure(row: dict, key: str) -> str:
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if value is None:
        return "-"
    if low is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _keras_run(model, images: np.ndarray, latency_images: int) -> tuple[np.ndarray, float]:
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    probs = np.concatenate([fn(tf.constant(images[i:i + 64], tf.float32)).numpy()
                            for i in range(0, len(images), 64)])
    n = min(latency_images, len(images))
    if n == 0:
        return probs, 0.0
    single = tf.function(lambda x: model(x, training=False))
    single(tf.constant(images[:1], tf.float32))
    start = time.perf_counter()
    for i in range(n):
        single(tf.constant(images[i:i + 1], tf.float32)).numpy()
    return probs, (time.perf_counter() - start) * 1000 / n


def _timed(predict, images: np.ndarray, latency_images: int) -> tuple[np.ndarray, float]:
    n = min(latency_images, len(images))
    predict(images[:1])
    start = time.perf_counter()
    head = predict(images[:n])
    ms = (time.perf_counter() - start) * 1000 / n
    rest = predict(images[n:]) if len(images) > n else np.empty((0, head.shape[1]))
    return np.concatenate([head, rest]), ms


class _Runner:
    def __init__(self, fn):
        self.predict = fn


def _saved_model_runner(path: Path):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]

    def predict(images):
        out = [next(iter(fn(tf.constant(im[None], tf.float32)).values())).numpy() for im in images]
        return np.concatenate(out) if out else np.empty((0, 0))

    return _Runner(predict)


def _onnx_runner(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(images):
        out = [session.run(None, {name: im[None].astype(np.float32)})[0] for im in images]
        return np.concatenate(out) if out else np.empty((0, 0))

    return _Runner(predict)
