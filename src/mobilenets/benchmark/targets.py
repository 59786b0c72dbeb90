"""What `mobilenets benchmark` measures: thread counts, model arguments, specs built and converted.

    from mobilenets.benchmark.targets import resolve_targets
    resolve_targets(["runs/pets", "v2-0.35-96"], "/tmp/work")   # [(name, file), ...]
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.errors import MobilenetsError
from mobilenets.rundir import KERAS_SUFFIXES, MODEL, run_models

def parse_threads(text: "str | int | list | None") -> tuple[int, ...]:
    """Thread counts from `"1,2"` (or an int or list).

    Args:
        text: comma-separated positive integers; None gives `(1,)`.
    """
    if text is None:
        return (1,)
    items = str(text).split(",") if isinstance(text, (str, int)) else list(text)
    try:
        out = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        raise MobilenetsError(f"--threads must be comma-separated integers such as 1,2. "
                              f"Received {text!r}") from None
    if not out or min(out) < 1:
        raise MobilenetsError(f"--threads must be >= 1. Received {text!r}")
    return tuple(dict.fromkeys(out))


def resolve_targets(models, workdir: "str | os.PathLike") -> list[tuple[str, Path]]:
    """`(display name, file)` for each model argument.

    Args:
        models: files (.tflite/.keras/.h5), run directories, or specs.
        workdir: where specs are converted to .tflite.
    """
    from mobilenets.specs import parse_spec

    out: list[tuple[str, Path]] = []
    for m in models:
        p = Path(m)
        if p.is_dir():
            files = run_models(p)
            if not files:
                raise MobilenetsError(f"no {MODEL} or .tflite files in {p}")
            out += [(str(f), f) for f in files]
        elif p.suffix.lower() in (".tflite",) + KERAS_SUFFIXES or p.exists():
            if not p.is_file():
                raise MobilenetsError(f"no such model file: {p}")
            out.append((str(p), p))
        else:
            spec = parse_spec(m)  # raises a one-line SpecError for anything else
            out.append((f"{spec.name} (random)", spec_tflite(spec, workdir)))
    return out


def spec_tflite(spec, workdir: "str | os.PathLike", quantize: str = "none",
                calibration: "np.ndarray | None" = None, hard_swish_rewrite: bool = True) -> Path:
    """Build a spec with random weights (1000 classes, raw-pixel input) and convert it.

    BatchNorm statistics are taken from the calibration images (see
    `settle_batchnorm`), so activations have trained-like ranges: int8
    scales, and so XNNPACK's choices, are then those of a real model.

    Args:
        spec: a model spec.
        workdir: folder for the SavedModel and the .tflite.
        quantize: a `mobilenets.export.QUANTIZE_MODES` mode.
        calibration: uint8 images for BatchNorm and `int8` (default: 16 random images).
        hard_swish_rewrite: int8 only: rewrite hard-swish for XNNPACK, as
            `mobilenets export` does (False keeps HARD_SWISH, for comparison).
    """
    import keras

    from mobilenets.export.conversion import convert, save_traced
    from mobilenets.export.quantization import has_hard_swish, int8_friendly
    from mobilenets.models import build_model
    from mobilenets.specs import parse_spec

    spec = parse_spec(spec)
    workdir = Path(workdir)
    tag = quantize if hard_swish_rewrite or quantize != "int8" else "int8-hardswish"
    out = workdir / f"{spec.name}-{tag}.tflite"
    if out.is_file():
        return out
    keras.utils.set_random_seed(0)
    model = build_model(spec, classes=1000, weights=None, head="keras", preprocessing=True)
    if calibration is None:
        calibration = np.random.default_rng(0).integers(0, 256, (16, *spec.input_shape), np.uint8)
    settle_batchnorm(model, calibration)
    if quantize == "int8" and has_hard_swish(model) and hard_swish_rewrite:
        model = int8_friendly(model)
    saved = save_traced(model, workdir / f"{spec.name}-{tag}.saved")
    io = "uint8" if quantize == "int8" else "float32"
    # Atomic: a conversion killed half-way must not leave a file reused next time.
    return artifacts.write_bytes(out, convert(saved, quantize, io, calibration))


def settle_batchnorm(model, images: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics from one batch of images.

    A freshly initialised MobileNet's activations shrink layer by layer to
    ~1e-8; int8 scales that small make XNNPACK refuse ops (it bounds the
    ratio of input to output scales) and would misstate int8 latency.

    Args:
        model: a Keras model taking raw pixels.
        images: uint8 images at the model's input size.
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # moving statistics := this batch's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras: "structure of inputs doesn't match"
        model(np.asarray(images, np.float32), training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


