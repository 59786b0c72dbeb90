"""Retrain a MobileNet on your folders, or train one from scratch.

    mobilenets retrain data/pets --arch v1-0.25-224 --fine-tune 20
    mobilenets train cifar10:/data/cifar-10-python.tar.gz --arch v1-0.50-32

Everything a run makes lands in `runs/<name>/`, each file written atomically:
`config.json` (all settings: enough to rebuild the run), `data_report.json`,
`model.keras`, `labels.txt`, `history.csv`, `metrics.json`,
`training_curves.png`, `logs/` (TensorBoard) and `checkpoints/`. A checkpoint
is saved after every epoch, so `--resume runs/<name>` after Ctrl-C or kill -9
loses at most the epoch that was running.

Transfer learning (`retrain`) first trains only the new head. Without
augmentation the frozen backbone's pooled features are computed once and
cached on disk, keyed by model, weights and image content (TF-Hub
retrain.py's bottleneck trick): a second run skips the backbone entirely.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.augment import Augment
from mobilenets.env import first_line, usable_cores
from mobilenets.errors import MobilenetsError
from mobilenets.specs import parse_spec

@dataclass
class TrainConfig:
    """Every setting of a run; saved as `config.json` beside the model.

    Defaults are for `retrain`; `PRESETS` and `scratch_defaults()` change them.
    """

    data: str  # folder, .tar.gz, "digits", "cifar10", "cifar10:PATH"
    arch: str = "v1-0.25-224"
    mode: str = "retrain"  # retrain (transfer) | scratch
    weights: str = "imagenet"  # imagenet | none | PATH  (retrain only)
    init: str = "none"  # scratch: starting weights for every layer (none | imagenet | PATH)
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # adam | nadam | sgd
    schedule: str = "constant"  # constant | cosine
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none | auto
    dropout: float = 0.2
    fine_tune: int = 0  # retrain: unfreeze the top N backbone layers afterwards
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float | None = None  # default learning_rate / 10
    stem_stride: int = 2  # scratch: 1 keeps full resolution in the stem (32 px inputs)
    block_strides: list[int] | None = None  # scratch: strides of the downsampling blocks after the stem; None: Keras's (all 2)
    bn_momentum: float | None = None  # scratch: None keeps Keras's (0.99 V1/V3, 0.999 V2)
    low_res: int | None = None  # scratch: first epochs at this input height (px), the rest at the spec's; 0: off
    low_res_scale: float | None = None  # scratch, low_res unset: low_res = this share of the height, where it fits
    low_res_fraction: float = 0.5  # scratch: share of the (planned) epochs at low_res
    augment: dict = field(default_factory=dict)  # Augment fields
    validation_percent: float = 10.0
    test_percent: float = 10.0
    seed: int = 0
    time_budget_minutes: float | None = None
    distribute: str = "none"  # none | mirrored | multiworker
    cache_features: bool = True
    preset: str | None = None
    faces: bool = False

    @property
    def spec(self):
        return parse_spec(self.arch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.name
        d["image_size"] = [self.spec.height, self.spec.width]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
    # 0.9 (which shrinks by lr * wd / (1 - 0.9)); 5e-4 here was 10x weaker.
    # Measured in 30 minutes on 2 cores (benchmarks/bench_cifar_recipes.py):
    # 81.8% test in 16 epochs (83.3% with flip TTA), against 77.8% in 15 with
    # 5e-4; at 5e-4 a stride-1 second block (`block_strides=[2, 1, 2, 2]`,
    # 2x faster per epoch) reached 77.3% in 26, a stride-1 last block 75.2%.
    # low_res_scale 0.75: the first half of the epochs at 24 px (0.56x the
    # work), so a budget holds more epochs: 85.0% in 37 epochs against 84.8%
    # in 26 without (session 7; session 5: 82.6% against 81.8%).
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


# ------------------------------------------------------------------ run dir


def new_run_dir(runs_dir: "str | os.PathLike", name: str | None, config: TrainConfig) -> Path:
    """Make `runs/<name>` for one new run: the given name, else `<data>-<spec>-<timestamp>`.

    The folder is made with one `mkdir` that fails if it exists, so two runs
    never share one: a default name taken by a run started in the same
    second gets `-2`, `-3`, ...; a given name that exists is refused.
    """
    runs = Path(runs_dir)
    if name:
        check_run_name(name)
    runs.mkdir(parents=True, exist_ok=True)
    if name:
        run = runs / name
        try:
            run.mkdir()
        except FileExistsError:
            if (run / "config.json").exists():
                raise MobilenetsError(f"run {run} exists; pass --resume {run} to continue it, "
                                      f"or a new --name") from None
            raise MobilenetsError(f"{run} exists and is not a run; remove it or pass another --name") from None
        return run
    data = Path(config.data.split(":")[-1]).name.replace(".tar.gz", "") or "data"
    base = f"{data}-{config.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        run = runs / (base if n == 1 else f"{base}-{n}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise MobilenetsError(f"{runs} already holds {base} and 998 more like it; pass --name")


def check_run_name(name: str) -> None:
    """A run name is one plain folder name inside --runs-dir."""
    if not name.strip() or name == "." or ".." in name or any(c in name for c in "/\\\0"):
        raise MobilenetsError(f"--name takes a plain folder name, made inside --runs-dir "
                              f"(no '/', '\\' or '..'). Received {name!r}")


def load_run_config(run: Path) -> TrainConfig:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise MobilenetsError(f"not a run directory (no config.json): {run}")
    return TrainConfig.from_dict(artifacts.read_json(path))


def _resume_data(run: Path, given: TrainConfig) -> str:
    """The data a resumed run reads: its own (as typed, else its absolute path), else the DATA given."""
    from mobilenets.data import run_data

    command = "retrain" if given.mode == "retrain" else "train"
    saved = artifacts.read_json(Path(run) / "config.json")
    try:
        return run_data(saved, f"give it as DATA: mobilenets {command} --resume {run} DATA") or given.data
    except MobilenetsError:
        if not given.data:
            raise
        return given.data


# Settings that have no flag of their own (set by presets) or that --resume honours.
_NOT_FLAGS = {"data", "mode", "preset", "cache_features", "bn_momentum", "low_res_scale"}
_FLAG_NAMES = {"time_budget_minutes": "--time-budget", "augment": "--augment (or an augmentation flag)"}


def ignored_on_resume(given: TrainConfig, run: TrainConfig) -> list[str]:
    """The flags in `given` that a resumed run (which keeps `run`'s settings) ignores.

    A flag counts as given when its value differs from what the command
    builds with no flags (the defaults, then `given.preset`), and as ignored
    when it also differs from the run's own value.
    """
    default_preset = None if given.mode == "retrain" else "scratch"
    baseline = apply_preset(TrainConfig(data="", mode=given.mode), given.preset)
    out = []
    if given.data and given.data != run.data:
        out.append("DATA")
    if given.preset != default_preset and given.preset != run.preset:
        out.append("--preset")
    for f in fields(TrainConfig):
        if f.name in _NOT_FLAGS:
            continue
        value = getattr(given, f.name)
        if value != getattr(baseline, f.name) and value != getattr(run, f.name):
            out.append(_FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-")))
    return out


def _state(run: Path) -> dict:
    path = run / "checkpoints" / "state.json"
    if not path.is_file():
        return {"done": [], "history": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MobilenetsError(f"cannot resume: {path} is unreadable or truncated ({e})") from None
    if not isinstance(state, dict):
        raise MobilenetsError(f"cannot resume: {path} holds no training state")
    return state


def load_checkpoint(path: Path):
    """A run's checkpoint (weights and optimizer state), or one line saying what is wrong with it."""
    import keras

    if not path.is_file():
        raise MobilenetsError(f"cannot resume: checkpoint {path} is missing")
    if not zipfile.is_zipfile(path):
        raise MobilenetsError(f"cannot resume: checkpoint {path} is truncated or corrupt "
                              f"(a .keras file is a zip archive)")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001 - any failure to read is this file's
        first = first_line(e)
        if "Lambda" in first:
            raise MobilenetsError(f"cannot resume: checkpoint {path} holds a Lambda layer (Python code), "
                                  f"which safe loading refuses; no run writes one") from None
        raise MobilenetsError(f"cannot resume: checkpoint {path} cannot be read: {first[:200]}") from None


# ------------------------------------------------------------------ model


def _warmup_steps(steps_per_epoch: int, warmup_epochs: float, total: int) -> int:
    """Warm-up steps: at most a tenth of the schedule, so short runs still decay."""
    return min(int(steps_per_epoch * warmup_epochs), total // 10)


def _schedule(config: TrainConfig, steps_per_epoch: int, epochs: int, lr: float):
    """The learning rate: a constant, or warm-up then cosine decay to zero."""
    import keras

    schedule = lr
    if config.schedule == "cosine":
        total = max(1, steps_per_epoch * epochs)
        warmup = _warmup_steps(steps_per_epoch, config.warmup_epochs, total)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / 10 if warmup else lr, decay_steps=max(1, total - warmup),
            warmup_target=lr if warmup else None, warmup_steps=warmup)
    elif config.schedule != "constant":
        raise MobilenetsError(f"schedule must be constant or cosine. Received {config.schedule!r}")
    return schedule


def _optimizer(config: TrainConfig, steps_per_epoch: int, epochs: int, lr: float):
    import keras

    schedule = _schedule(config, steps_per_epoch, epochs, lr)
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        return keras.optimizers.AdamW(schedule, weight_decay=wd) if wd else keras.optimizers.Adam(schedule)
    if config.optimizer == "nadam":
        return keras.optimizers.Nadam(schedule, weight_decay=wd)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=wd)
    raise MobilenetsError(f"optimizer must be adam, nadam or sgd. Received {config.optimizer!r}")


def _budget_fitted(config: TrainConfig) -> bool:
    """Cosine under a time budget: `budget_cosine` sets the rate epoch by epoch."""
    return config.schedule == "cosine" and bool(config.time_budget_minutes)


def _compile(model, config: TrainConfig, steps_per_epoch: int, epochs: int, lr: float):
    import keras

    if _budget_fitted(config):
        config = TrainConfig.from_dict({**config.to_dict(), "schedule": "constant"})
    # Metric objects rather than "accuracy", and the optimizer built here: left
    # to the first step, both create variables while TensorFlow traces it, so
    # it traces the whole step twice (a tiny run's first epoch: 15 s -> 6 s).
    # top-5 only where it says something: with 5 classes or fewer it is always 1.0.
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if model.output_shape[-1] > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top_k"))
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch, epochs, lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=metrics,
    )
    model.optimizer.build(model.trainable_variables)


def build_for_config(config: TrainConfig, classes: int):
    """The model a run trains: raw 0-255 pixels in, class probabilities out."""
    from mobilenets.models import build_model

    spec = config.spec
    if config.mode == "retrain":
        return build_model(spec, classes=classes, weights=config.weights, head="new",
                           dropout=config.dropout, preprocessing=True)
    # From-scratch recipes may still start from ImageNet weights (`init`):
    # then every layer, BatchNorm included, trains with the recipe, and the
    # head is the new pool -> dropout -> dense one (ImageNet's has 1000 classes).
    init = None if config.init in ("", "none", None) else config.init
    model = build_model(spec, classes=classes, weights=init, head="new" if init else "keras",
                        dropout=config.dropout, preprocessing=True)
    if config.stem_stride != 2 or config.block_strides or config.bn_momentum is not None:
        model = _rewired(model, config.stem_stride, config.block_strides, config.bn_momentum)
    return model


def _rewired(model, stem_stride: int, block_strides: "list[int] | None", bn_momentum: float | None):
    """Rebuild `model` with other strides and/or BatchNorm momentum.

    Args:
        stem_stride: the first convolution's stride.
        block_strides: the stride of each downsampling block after the stem
            (the depthwise convolutions Keras builds with stride 2), in
            order; None keeps them all at 2. Every MobileNet has four.
        bn_momentum: every BatchNorm's momentum; None keeps Keras's.

    A stride of 1 instead of 2 keeps 32 px inputs from shrinking to 1x1
    before the last blocks. A lower momentum lets BatchNorm's moving
    statistics catch up in short schedules (Keras's 0.99/0.999 lag behind for
    the first ~1000 steps). None of it changes a weight's shape, so the
    weights carry over.
    """
    import keras

    cfg = model.get_config()
    layers = cfg["layers"]
    stem = next(layer for layer in layers if layer["class_name"] == "Conv2D")
    stem["config"]["strides"] = [stem_stride, stem_stride]
    blocks = [layer for layer in layers if layer["class_name"] == "DepthwiseConv2D"
              and tuple(layer["config"]["strides"]) == (2, 2)]
    if block_strides:
        if len(block_strides) != len(blocks) or any(s not in (1, 2) for s in block_strides):
            raise MobilenetsError(
                f"block strides take {len(blocks)} values of 1 or 2 for this model (one per "
                f"downsampling block after the stem), e.g. {','.join(['2'] * len(blocks))}. "
                f"Received {','.join(map(str, block_strides))}")
        for layer, stride in zip(blocks, block_strides):
            if stride == 2:
                continue
            layer["config"]["strides"] = [stride, stride]
            # Keras pads stride-2 blocks explicitly (ZeroPadding2D, then a
            # 'valid' convolution); at stride 1 the convolution pads itself.
            pad = _input_layer(layers, layer)
            if pad is not None and pad["class_name"] == "ZeroPadding2D":
                pad["config"]["padding"] = [[0, 0], [0, 0]]
                layer["config"]["padding"] = "same"
    for layer in layers:
        if layer["class_name"] == "BatchNormalization" and bn_momentum is not None:
            layer["config"]["momentum"] = bn_momentum
    rewired = keras.Model.from_config(cfg)
    rewired.set_weights(model.get_weights())
    return rewired


def fuse_batchnorm(model) -> int:
    """Train `model`'s BatchNorm layers with TensorFlow's fused kernel.

    Keras 3 normalises a training batch with separate moments, subtract,
    scale and shift passes over memory; `FusedBatchNormV3` (oneDNN on x86)
    does it in one, forward and backward. Same maths (the moving variance
    keeps Keras's biased estimate); the CIFAR model trains ~1.5x faster on
    CPU (`benchmarks/bench_train_step.py`). The layers stay Keras
    `BatchNormalization`, so saved models load anywhere; only this model's
    training-mode call changes. Frozen, masked or non-float32 layers keep
    Keras's own call.

    Returns:
        How many layers now train fused.
    """
    import keras

    fused = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.BatchNormalization and len(layer.input.shape) == 4
                and layer.axis in (-1, 3) and not layer.renorm and not layer.synchronized
                and layer.center and layer.scale and layer.dtype == "float32"):
            layer.call = _fused_call(layer, layer.call)
            fused += 1
    return fused


def _fused_call(layer, keras_call):
    import tensorflow as tf

    def call(inputs, training=None, mask=None):
        if not (training and layer.trainable) or mask is not None or inputs.dtype != tf.float32:
            return keras_call(inputs, training=training, mask=mask)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, layer.gamma.value, layer.beta.value, epsilon=layer.epsilon, is_training=True)
        # The kernel returns the unbiased (n-1) variance; Keras keeps the biased one.
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * (n - 1.0) / n
        m = layer.momentum
        layer.moving_mean.assign(layer.moving_mean * m + mean * (1.0 - m))
        layer.moving_variance.assign(layer.moving_variance * m + variance * (1.0 - m))
        return y

    return call


def training_kernels(model) -> None:
    """Step `model` with the trainer's faster kernels: what every `mobilenets train` run does."""
    fuse_batchnorm(model)
    matmul_pointwise(model)
    if onednn_enabled():
        depthwise_small_maps(model)


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process.

    TensorFlow turns them on by default only for CPUs with AVX-512-class
    features; `mobilenets` asks for them everywhere (`TF_ENABLE_ONEDNN_OPTS=1`,
    set by the CLI before TensorFlow loads): on the 2-core AVX2 machines
    here the CIFAR training step runs ~1.4x faster with them.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - TensorFlow moved it
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


SMALL_MAP_PIXELS = 4


def depthwise_small_maps(model, max_pixels: int = SMALL_MAP_PIXELS) -> int:
    """Compute the filter gradient of depthwise layers with tiny outputs directly.

    oneDNN's `DepthwiseConv2dNativeBackpropFilter` is pathological for maps
    of a few pixels: 26 ms for a 2x2x512 layer at batch 128 and 35 ms at
    1x1x512, against 2 ms for TensorFlow's own kernel and for the same sum
    written out (`benchmarks/bench_train_step.py`). Only stride-1 layers:
    at stride 2 (Keras pads, then a 'valid' convolution) oneDNN's kernel is
    fast on every map size, ~1 ms against 5-15 ms for the sum
    (`benchmarks/bench_depthwise_grad.py`). For stride-1 layers whose output
    has at most `max_pixels` pixels, the filter gradient is written out
    (`_depthwise_filter_grad`: per channel, the products of every output
    pixel's gradient with every input pixel, summed over the batch, added
    into the tap that links them). The forward pass and the input
    gradient stay TensorFlow's. Same maths; the layers stay Keras
    `DepthwiseConv2D`, so saved models load anywhere.

    Returns:
        How many layers now use it.
    """
    import keras

    done = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.DepthwiseConv2D and layer.depth_multiplier == 1
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and layer.data_format == "channels_last" and len(layer.output.shape) == 4):
            # Decided again by the traced input shape at every call: the same
            # model trained at another input size (`low_res`) gets its own choice.
            layer.call = _depthwise_call(layer, layer.call, max_pixels)
            done += _output_pixels(layer, layer.input.shape) <= max_pixels
    return done


def _output_pixels(layer, shape) -> float:
    """Pixels of a convolution's output for input `shape` (inf if not static)."""
    h, w = shape[1:3]
    if h is None or w is None:
        return math.inf
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    if layer.padding == "same":
        return -(-h // sh) * -(-w // sw)
    return max(0, (h - kh) // sh + 1) * max(0, (w - kw) // sw + 1)


def _depthwise_call(layer, keras_call, max_pixels: int):
    import tensorflow as tf

    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    padding = layer.padding.upper()

    @tf.custom_gradient
    def depthwise(x, kernel):
        strides = [1, sh, sw, 1]
        y = tf.nn.depthwise_conv2d(x, kernel, strides, padding)

        def grad(dy):
            dx = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=strides, padding=padding)
            return dx, _depthwise_filter_grad(x, dy, kh, kw, sh, sw, padding)

        return y, grad

    def call(inputs):
        if _output_pixels(layer, inputs.shape) > max_pixels:
            return keras_call(inputs)
        return _bias_activation(layer, depthwise(inputs, tf.cast(layer.kernel.value, inputs.dtype)))

    return call


# (output pixel, input pixel) pairs up to which the depthwise filter gradient
# is a matrix product (`_depthwise_filter_grad`); 2x2 'same' maps have 16.
PAIR_PRODUCTS = 64


def _depthwise_filter_grad(x, dy, kh: int, kw: int, sh: int, sw: int, padding: str):
    """d(loss)/d(kernel) of a depthwise convolution with static map sizes.

    Up to `PAIR_PRODUCTS` (output pixel, input pixel) pairs, every pair's
    product summed over the batch is one batched matrix product per channel,
    and a constant 0/1 matrix adds each pair into the tap that links it:
    five ops however many taps (2x2x512 at batch 128: 2.4 ms, against 6.0 ms
    for the sum below and 29 ms for oneDNN's kernel,
    `benchmarks/bench_depthwise_grad.py`). Bigger maps: one shifted product
    per tap.
    """
    import numpy as np
    import tensorflow as tf

    (h, w, c), (ho, wo) = x.shape[1:], dy.shape[1:3]
    ph = pw = 0
    if padding == "SAME":  # TensorFlow's: the odd pixel goes after
        ph, pw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - w, 0)
    top, left = ph // 2, pw // 2
    if ho * wo * h * w <= PAIR_PRODUCTS:
        taps = np.zeros((kh * kw, ho * wo * h * w), np.float32)
        for pi, pj, i, j in np.ndindex(ho, wo, kh, kw):
            qi, qj = pi * sh + i - top, pj * sw + j - left
            if 0 <= qi < h and 0 <= qj < w:
                taps[i * kw + j, ((pi * wo + pj) * h + qi) * w + qj] = 1.0
        xs = tf.transpose(tf.reshape(x, [-1, h * w, c]), [2, 0, 1])  # c, batch, input pixels
        dys = tf.transpose(tf.reshape(dy, [-1, ho * wo, c]), [2, 1, 0])  # c, output pixels, batch
        pairs = tf.reshape(tf.matmul(dys, xs), [c, ho * wo * h * w])
        grad = tf.matmul(tf.constant(taps), pairs, transpose_b=True)  # taps, c
        return tf.reshape(grad, [kh, kw, c, 1])
    if padding == "SAME":
        x = tf.pad(x, [[0, 0], [top, ph - top], [left, pw - left], [0, 0]])
    taps = tf.stack([x[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw, :]
                     for i in range(kh) for j in range(kw)])
    grad = tf.reduce_sum(taps * dy[None], axis=[1, 2, 3])
    return tf.reshape(grad, [kh, kw, -1, 1])


def matmul_pointwise(model) -> int:
    """Run `model`'s 1x1 convolutions as matrix products.

    A 1x1, stride-1 convolution is a matrix product over the pixels, and
    TensorFlow's CPU kernels know it going forward but not backward:
    `Conv2DBackpropInput` took 125 of a 228 ms training step of the CIFAR
    model (v1-0.50-32, batch 128; its forward `Conv2D` 16 ms). As a
    `MatMul`, both gradients are matrix products too: the step runs 1.5-2x
    faster (`benchmarks/bench_train_step.py`). Same weights, same maths;
    the layers stay Keras `Conv2D`, so saved models load anywhere.

    Returns:
        How many layers now run as matrix products.
    """
    import keras

    done = 0
    for layer in model.layers:
        if (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
                and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
                and layer.groups == 1 and layer.data_format == "channels_last"):
            layer.call = _matmul_call(layer)
            done += 1
    return done


def _matmul_call(layer):
    import tensorflow as tf

    def call(inputs):
        kernel = tf.cast(layer.kernel.value, inputs.dtype)
        cin, cout = kernel.shape[2], kernel.shape[3]
        y = tf.matmul(tf.reshape(inputs, [-1, cin]), tf.reshape(kernel, [cin, cout]))
        return _bias_activation(layer, tf.reshape(y, tf.concat([tf.shape(inputs)[:-1], [cout]], 0)))

    return call


def _bias_activation(layer, y):
    """The end of a Keras convolution's call: its bias, then its activation."""
    import tensorflow as tf

    if layer.use_bias:
        y = y + tf.cast(layer.bias.value, y.dtype)
    return layer.activation(y) if layer.activation is not None else y


def _input_layer(layers: list[dict], layer: dict) -> dict | None:
    """The layer (config) whose output feeds `layer` in a functional config."""
    args = layer["inbound_nodes"][0]["args"] if layer["inbound_nodes"] else ()
    name = args[0]["config"]["keras_history"][0] if args and isinstance(args[0], dict) else None
    return next((other for other in layers if other["config"]["name"] == name), None)


def set_trainable(model, fine_tune_layers: int) -> int:
    """Freeze the backbone except its top `fine_tune_layers` layers.

    BatchNormalization layers stay frozen, so they run in inference mode
    with their ImageNet statistics (Keras's recommendation for fine-tuning).
    Returns the number of trainable backbone layers.
    """
    from mobilenets.models import backbone_layer_count

    n = backbone_layer_count(model)
    unfrozen = 0
    for i, layer in enumerate(model.layers):
        if i >= n:
            layer.trainable = True
            continue
        train = i >= n - fine_tune_layers and type(layer).__name__ != "BatchNormalization"
        layer.trainable = train
        unfrozen += bool(train and layer.weights)
    return unfrozen


def _strategy(config: TrainConfig):
    import tensorflow as tf

    if config.distribute == "none":
        return None
    if config.distribute == "mirrored":
        cpus = tf.config.list_logical_devices("CPU")
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices=devices)
    if config.distribute == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise MobilenetsError(f"distribute must be none, mirrored or multiworker. Received {config.distribute!r}")


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def split_cpu(n: int) -> None:
    """Expose the CPU as `n` logical devices (call before TensorFlow runs anything)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


# Per-step work below which one thread per op, two ops at once, trains faster
# than TensorFlow's default (every op split over every core). Units: batch x
# pixels after the stem x alpha^2, which grows with the step's mult-adds.
# Measured on 2 cores with oneDNN (v1-0.50-32, our kernels): the seed preset
# (stride-2 stem, batch 32; 2,048 units) ~930 vs ~660 img/s; the scratch
# preset (stride-1 stem, batch 128; 32,768 units) ~420 vs ~500; level at
# 8,192 (seed at batch 128 and scratch at batch 32).
SMALL_STEP_WORK = 8192


def step_work(config: TrainConfig) -> float:
    """A training step's work in `SMALL_STEP_WORK`'s units (batch x pixels after the stem x alpha^2)."""
    spec = config.spec
    stem = config.stem_stride if config.mode == "scratch" else 2
    return config.batch_size * (spec.height / stem) * (spec.width / stem) * spec.alpha ** 2


def thread_plan(config: TrainConfig, cores: int | None = None) -> "tuple[int, int] | None":
    """TensorFlow's (intra-op, inter-op) thread counts for this run; None keeps its defaults.

    A small model at a small batch (the seed's CIFAR recipe) makes a step of
    hundreds of tiny ops: split over both cores, each op spends more time
    handing work out than doing it. One thread per op with two ops at once
    (a convolution's filter and input gradients are independent) runs the
    seed preset's step ~1.4x faster here. Big steps keep TensorFlow's
    default. Only from-scratch runs on one device; measured on 2 cores.
    """
    cores = cores or usable_cores()
    if config.mode != "scratch" or config.distribute != "none" or cores < 2:
        return None
    if step_work(config) >= SMALL_STEP_WORK:
        return None
    return max(1, cores // 2), 2


def apply_thread_plan(config: TrainConfig) -> "tuple[int, int] | None":
    """Set `thread_plan(config)` on TensorFlow, if it can still change.

    Does nothing when the user chose (`TF_NUM_INTRAOP_THREADS` or
    `TF_NUM_INTEROP_THREADS`) or TensorFlow has already run an op (thread
    pools are fixed from then on). Returns the counts set, or None.
    """
    import tensorflow as tf

    plan = thread_plan(config)
    if plan is None or os.environ.get("TF_NUM_INTRAOP_THREADS") or os.environ.get("TF_NUM_INTEROP_THREADS"):
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(plan[0])
        tf.config.threading.set_inter_op_parallelism_threads(plan[1])
    except RuntimeError:  # TensorFlow is already running: keep what it has
        return None
    return plan


# ------------------------------------------------------------------ callbacks


def _epoch_callbacks(run: Path | None, phase: str, state: dict, config: TrainConfig,
                     started: float, checkpoint: bool = True):
    """History rows for every epoch; with `checkpoint`, also model and state on disk."""
    import keras

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            row = {"phase": phase, "epoch": epoch + 1,
                   "seconds": round(time.monotonic() - self.epoch_started, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            state["history"].append(row)
            budget = config.time_budget_minutes
            if budget and time.monotonic() - started > budget * 60:
                self.model.stop_training = True
                state["stopped_by_time_budget"] = True
            if not checkpoint:
                return
            # Model first, then the state that points at it: a kill between
            # the two only repeats this epoch.
            with artifacts.atomic_path(run / "checkpoints" / f"{phase}.keras") as tmp:
                self.model.save(tmp)
            state["phase"], state["epoch"] = phase, epoch + 1
            artifacts.write_json(run / "checkpoints" / "state.json", state)
            write_history(run / "history.csv", state["history"])

    callbacks = [EpochEnd()]
    if checkpoint:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs" / phase),
                                                     write_graph=False))
    return callbacks


def budget_cosine(lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: float,
                  budget_s: float, started: float, state: dict, phase: str, clock=time.monotonic,
                  low_res_epochs=None, low_res_cost: float = 1.0):
    """Warm-up + cosine decay whose length is fitted to a time budget.

    A cosine schedule only pays off if it reaches its end, and nobody knows
    in advance how many epochs fit in 30 minutes on their machine. This
    callback sets the learning rate at the start of every epoch (the curve's
    value at the epoch's middle, as timm's per-epoch schedulers do) and,
    after every epoch, re-plans the schedule's length: as many epochs as the
    time left holds at the median epoch time so far (never more than
    `epochs`), and stops training when the plan is done. The plan is kept in
    `state["planned_epochs"]`, so `--resume` continues the same curve.

    With `low_res_epochs` (planned epochs -> how many of them run at low
    resolution) the two kinds of epoch are timed apart; until one kind has
    run, its time is the other's scaled by `low_res_cost` (low / full).

    Per epoch, not per step: a Keras callback with a per-batch hook makes
    `fit` wait for every step's results before the next, which cost 20-90%
    of the CIFAR-10 epoch time on 2 cores.
    """
    import statistics

    import keras

    low_until = low_res_epochs or (lambda planned: 0)

    class BudgetCosine(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.planned = int(state.setdefault("planned_epochs", {}).get(phase, epochs))
            self.durations: dict[bool, list[float]] = {True: [], False: []}  # low res?

        def rate(self, step: int) -> float:
            total = steps_per_epoch * self.planned
            warm = _warmup_steps(steps_per_epoch, warmup_epochs, total)
            if step < warm:
                return lr / 10 + (lr - lr / 10) * step / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * lr * (1 + math.cos(math.pi * t))

        def epoch_rate(self, epoch: int) -> float:
            return self.rate(int((epoch + 0.5) * steps_per_epoch))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = clock()
            self.low = epoch < low_until(self.planned)
            self.model.optimizer.learning_rate = self.epoch_rate(epoch)

        def per_epoch(self, low: bool) -> float:
            # The first epoch of a kind in a process includes tracing: left out once others exist.
            own, other = self.durations[low], self.durations[not low]
            if own:
                return statistics.median(own[1:] or own)
            scale = low_res_cost if low else 1 / low_res_cost
            return statistics.median(other[1:] or other) * scale

        def on_epoch_end(self, epoch, logs=None):
            self.durations[self.low].append(clock() - self.epoch_started)
            low_s, full_s = self.per_epoch(True), self.per_epoch(False)
            # Keep back a little for the final evaluation and saving.
            left = budget_s - (clock() - started) - 0.1 * full_s
            plan = epoch + 1
            for n in range(epochs, epoch + 1, -1):  # the longest plan whose remaining epochs fit
                low = max(0, min(low_until(n), n) - (epoch + 1))
                if low * low_s + (n - epoch - 1 - low) * full_s <= left:
                    plan = n
                    break
            if len(self.durations[True]) + len(self.durations[False]) == 1 and left > 0:
                # One epoch, with its tracing, is not a measurement to stop on.
                plan = min(epochs, max(plan, epoch + 2))
            if plan != self.planned:
                print(f"time budget: the cosine schedule now ends after epoch {plan} "
                      f"({full_s:.0f} s/epoch)", file=sys.stderr)
                self.planned = plan
            state["planned_epochs"][phase] = self.planned
            if logs is not None:
                logs["learning_rate"] = self.epoch_rate(epoch)
            if epoch + 1 >= self.planned:
                self.model.stop_training = True
                if self.planned < epochs:
                    state["stopped_by_time_budget"] = True

    return BudgetCosine()


def write_history(path: Path, history: list[dict]) -> None:
    keys: dict = {}
    for row in history:
        keys.update(dict.fromkeys(row))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(keys), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    artifacts.write_text(path, out.getvalue())


# ------------------------------------------------------------------ training


def _onehot(ds, classes: int):
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.one_hot(y, classes)), num_parallel_calls=tf.data.AUTOTUNE)


def _class_weights(labels: np.ndarray, classes: int, mode: str):
    if mode == "none":
        return None
    if mode != "auto":
        raise MobilenetsError(f"class weights must be none or auto. Received {mode!r}")
    counts = np.bincount(labels, minlength=classes).astype(float)
    return {i: float(len(labels) / (classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def _verbose() -> int:
    return 1 if sys.stdout.isatty() else 2


def _image_cache(cache_dir: Path | None) -> Path | None:
    """Decoded, resized images are kept here between runs."""
    return cache_dir / "images" if cache_dir else None


def _fit_phase(model, run, phase, config, data, splits, epochs, lr, state, started, strategy,
               aug: Augment, cache_dir=None):
    """Train `model` on the image pipeline for one phase, resumable."""
    import keras

    size = (config.spec.height, config.spec.width)
    n_cls = len(data.classes)
    images = _image_cache(cache_dir)
    # No ragged last batch: a step on a 2-image remainder, with BatchNorm
    # using that batch's statistics, wrecked every epoch's end (CIFAR-10's
    # 44,930 images: val accuracy 0.40 -> 0.11); replicas also need equal
    # shares. Shuffling each epoch means every image is still seen.
    drop = strategy is not None or data.split_sizes()["train"] >= config.batch_size
    train = _onehot(data.dataset("train", size, batch_size=config.batch_size, shuffle=True,
                                 augment=None if aug.is_identity else aug, seed=config.seed,
                                 cache_dir=images, drop_remainder=drop), n_cls)
    val = None
    if "val" in splits:
        val = _onehot(_validation_set(data, "val", size, config.batch_size, images,
                                      strategy), n_cls)
    steps = int(train.cardinality()) if int(train.cardinality()) > 0 else 1
    initial = 0
    ckpt = run / "checkpoints" / f"{phase}.keras"
    complete = False
    with _scope(strategy):
        if state.get("phase") == phase and ckpt.is_file():
            initial = int(state["epoch"])
            model = load_checkpoint(ckpt)  # weights and optimizer state
            # Killed after the phase's last epoch (or its time budget's), before the run moved on.
            planned = int(state.get("planned_epochs", {}).get(phase, epochs))
            complete = initial >= min(epochs, planned) or bool(state.get("stopped_by_time_budget"))
            if complete:
                print(f"resuming: {phase} is already complete (after epoch {initial}); "
                      f"not training it again", file=sys.stderr)
            else:
                print(f"resuming {phase} at epoch {initial + 1}/{epochs}", file=sys.stderr)
        else:
            _compile(model, config, steps, epochs, lr)
    training_kernels(model)
    if not complete:
        labels = data.arrays("train", size, cache_dir=images)[1] if config.class_weights == "auto" else None
        callbacks = _epoch_callbacks(run, phase, state, config, started)
        low = _low_res(config, size) if phase == "train" else None
        if low and config.low_res is None and not _fits(model, low):
            low = None  # the preset's share of the height is too small for these strides
        elif low:
            _check_fits(model, low)
        low_until = (lambda planned: _low_res_epochs(config, planned)) if low else None
        if _budget_fitted(config):  # before EpochEnd, which saves the plan with the state
            callbacks.insert(0, budget_cosine(lr, steps, epochs, config.warmup_epochs,
                                              config.time_budget_minutes * 60, started, state, phase,
                                              low_res_epochs=low_until,
                                              low_res_cost=_pixels(low) / _pixels(size) if low else 1.0))

        def fit(dataset, val, start, height, extra=()):
            # With low_res, history.csv says which height every epoch trained at.
            first = [_log_value("input_height", height)] if low else []
            model.fit(dataset, validation_data=val, epochs=epochs, initial_epoch=start,
                      callbacks=first + callbacks + list(extra), verbose=_verbose(),
                      shuffle=False,  # the tf.data pipeline shuffles
                      class_weight=None if labels is None else _class_weights(labels, n_cls, "auto"))
            return int(state.get("epoch", start)) if state.get("phase") == phase else start

        planned = lambda: int(state.get("planned_epochs", {}).get(phase, epochs))  # noqa: E731
        ended_low = False
        if low and initial < low_until(planned()):
            print(f"low resolution: the first {low_until(planned())} of {planned()} epochs train at "
                  f"{low[0]}x{low[1]}, the rest at {size[0]}x{size[1]}"
                  + (" (the preset's; --low-res 0 turns it off)" if config.low_res is None else ""),
                  file=sys.stderr)
            full_spec = model.input_spec
            model.input_spec = None  # the weights fit any input size; Keras checks the built one
            try:
                # Validated at the training size too: a model trained at 24 px
                # scores near chance at 32 until BatchNorm's statistics follow
                # (one epoch at full size: CIFAR-10 val 0.18 -> 0.71).
                low_val = None if val is None else _resized(val, low)
                initial = fit(_resized(train, low), low_val, initial, low[0],
                              [_stop_at(lambda: low_until(planned()))])
            finally:
                model.input_spec = full_spec
            model.train_function = model.test_function = None  # trace again at full size
            ended_low = True
        # A run always ends at full size: if the time budget ran out during the
        # low-resolution epochs, one more epoch (at the schedule's end, lr ~0)
        # lets BatchNorm's statistics follow.
        if (initial < planned() and not state.get("stopped_by_time_budget")) or ended_low:
            fit(train, val, initial, size[0])
    state["done"].append(phase)
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    return model


def _low_res(config: TrainConfig, size: tuple[int, int]) -> "tuple[int, int] | None":
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


def _low_res_epochs(config: TrainConfig, planned: int) -> int:
    """How many of `planned` epochs train at low resolution (at least one left at full)."""
    return min(planned - 1, int(config.low_res_fraction * planned + 0.5))


def _pixels(size) -> int:
    return size[0] * size[1]


def _resized(ds, size: tuple[int, int]):
    """`ds`'s (augmented) images scaled to `size` (area-averaged when shrinking)."""
    import tensorflow as tf

    return ds.map(lambda x, y: (tf.image.resize(x, size, antialias=True), y),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _fits(model, size: tuple[int, int]) -> bool:
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


def _check_fits(model, size: tuple[int, int]) -> None:
    """Refuse a low resolution that the model's downsampling shrinks to nothing."""
    if not _fits(model, size):
        raise MobilenetsError(f"--low-res {size[0]} is too small for this model: its strided layers "
                              f"shrink {size[0]}x{size[1]} to nothing; use a larger one, or "
                              f"--stem-stride 1 to keep the stem's resolution")


def _log_value(key: str, value: float):
    """A callback adding `key: value` to every epoch's logs (so to history.csv)."""
    import keras

    class LogValue(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs[key] = float(value)

    return LogValue()


def _stop_at(first_full_epoch):
    """A callback ending `fit` after the epoch before `first_full_epoch()`."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= first_full_epoch():
                self.model.stop_training = True

    return StopAt()


def _validation_set(data, split, size, batch_size, image_cache, strategy):
    """Validation batches; under a strategy every replica must get equal shares.

    Keras 3 fails on ragged per-replica batches in evaluation (AddN shape
    mismatch), so with N replicas the set is cut to a multiple of N (at most
    N-1 images) and batched by a multiple of N.
    """
    if strategy is None:
        return data.dataset(split, size, batch_size=batch_size, cache_dir=image_cache)
    from mobilenets.data import make_dataset

    n = strategy.num_replicas_in_sync
    images, labels, _ = data.arrays(split, size, cache_dir=image_cache)
    keep = len(images) - len(images) % n
    return make_dataset(images[:keep], labels[:keep], batch_size=max(n, batch_size - batch_size % n))


def _feature_key(config: TrainConfig, images: np.ndarray) -> str:
    h = hashlib.sha256()
    weights = config.weights
    if weights not in ("imagenet", "none") and Path(weights).is_file():
        weights = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    h.update(json.dumps([config.spec.name, weights, list(images.shape)]).encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:24]


def extract_features(backbone, images: np.ndarray, key: str, cache_dir: Path | None,
                     batch_size: int = 64) -> tuple[np.ndarray, bool]:
    """Pooled backbone features for `images`, from the disk cache when present.

    Returns:
        (features, cache_hit)
    """
    path = cache_dir / "features" / f"{key}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path), True
    feats = backbone.predict(images.astype("float32"), batch_size=batch_size, verbose=_verbose() == 1)
    if path is not None:
        with artifacts.atomic_path(path) as tmp:
            np.save(tmp, feats)
    return feats, False


def _head_on_features(model, run, config, data, splits, state, cache_dir):
    """Train the new head on cached backbone features (no augmentation)."""
    import keras

    from mobilenets.models import HEAD_LAYERS

    size = (config.spec.height, config.spec.width)
    n_cls = len(data.classes)
    backbone = keras.Model(model.inputs, model.get_layer(HEAD_LAYERS[0]).output)
    feats, hits = {}, {}
    for split in ("train", "val") if "val" in splits else ("train",):
        images, labels, _ = data.arrays(split, size, cache_dir=_image_cache(cache_dir))
        if not len(images):  # every file failed to decode: what the image pipeline says then
            raise MobilenetsError(f"the {split!r} split of {data.name} is empty")
        key = _feature_key(config, images)
        feats[split], hits[split] = extract_features(backbone, images, key, cache_dir)
        feats[split] = (feats[split], labels)
    state["feature_cache_hit"] = all(hits.values())
    print(f"bottleneck features: {'cache hit' if state['feature_cache_hit'] else 'computed'}"
          + (f" ({cache_dir / 'features'})" if cache_dir else ""), file=sys.stderr)

    head_in = keras.Input(shape=(feats["train"][0].shape[1],))
    x = keras.layers.Dropout(config.dropout, name=HEAD_LAYERS[1])(head_in)
    out = keras.layers.Dense(n_cls, activation="softmax", name=HEAD_LAYERS[2])(x)
    head = keras.Model(head_in, out)
    head.get_layer(HEAD_LAYERS[2]).set_weights(model.get_layer(HEAD_LAYERS[2]).get_weights())
    _fit_head(head, feats["train"], feats.get("val"), config, state)
    model.get_layer(HEAD_LAYERS[2]).set_weights(head.get_layer(HEAD_LAYERS[2]).get_weights())
    write_history(run / "history.csv", state["history"])
    state["done"].append("head")
    with artifacts.atomic_path(run / "checkpoints" / "head.keras") as tmp:
        model.save(tmp)
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    return model


def _fit_head(head, train: tuple, val: tuple | None, config: TrainConfig, state: dict) -> None:
    """Train the small head on in-memory features with a compiled step.

    `Model.fit` costs ~0.1-0.2 s per epoch in set-up alone, which dwarfs a
    dense layer on a few thousand feature vectors; one `tf.function` step
    over shuffled mini-batches does the same optimisation in milliseconds.
    History rows match what `fit` logs (loss, accuracy, val_loss, val_accuracy).
    """
    import keras
    import tensorflow as tf

    x, y = train
    n_cls = head.output_shape[-1]
    steps = int(np.ceil(len(x) / config.batch_size))
    optimizer = _optimizer(config, steps, config.epochs, config.learning_rate)
    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    weights = _class_weights(y, n_cls, config.class_weights)
    sample_w = np.ones(len(y), "float32") if weights is None else np.array(
        [weights[int(c)] for c in y], "float32")
    onehot = keras.utils.to_categorical(y, n_cls).astype("float32")
    rng = np.random.default_rng(config.seed)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, head(xb, training=True), sample_weight=wb)
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables))

    def scores(xs, ys):
        probs = head.predict_on_batch(xs)
        hot = keras.utils.to_categorical(ys, n_cls)
        return float(loss_fn(hot, probs)), float((probs.argmax(1) == ys).mean())

    for epoch in range(config.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), config.batch_size):
            b = order[i:i + config.batch_size]
            step(x[b], onehot[b], sample_w[b])
        row = {"phase": "head", "epoch": epoch + 1}
        row["loss"], row["accuracy"] = scores(x, y)
        if val is not None:
            row["val_loss"], row["val_accuracy"] = scores(*val)
        state["history"].append(row)


def run_training(config: TrainConfig, runs_dir="runs", name: str | None = None,
                 resume: "str | os.PathLike | None" = None, cache_dir: "str | os.PathLike | None" = None,
                 data=None, random_backbone: bool = True) -> Path:
    """Train (or resume) a run and write everything to its directory.

    Args:
        config: the settings (ignored when resuming: the run's own are used).
        runs_dir: parent of new run directories.
        name: run name (default: data-spec-timestamp).
        resume: an existing run directory to continue.
        cache_dir: where bottleneck features are cached (None: no cache).
        data: an already opened dataset (default: `open_dataset(config.data)`).
        random_backbone: allow a retrain on a randomly initialised backbone
            (`weights="none"`); False refuses it (see `refuse_random_backbone`).

    Returns:
        The run directory.

    If TensorFlow has not run anything yet in this process, a small-step
    run also sets its thread pools (`apply_thread_plan`), process-wide.
    """
    import keras

    started = time.monotonic()
    if resume:
        run = Path(resume)
        given, config = config, load_run_config(run)
        for folder in (run, run / "checkpoints"):
            artifacts.remove_stale(folder)  # temporary files of a killed process
        ignored = ignored_on_resume(given, config)
        if data is None:
            config.data = _resume_data(run, given)
            if config.data == given.data and "DATA" in ignored:
                ignored.remove("DATA")  # the run's own data is gone: the DATA given stands in for it
        if name and name != run.name:
            ignored.append("--name")
        if str(runs_dir) != "runs" and Path(runs_dir).absolute() != run.absolute().parent:
            ignored.append("--runs-dir")
        if ignored:
            print(f"--resume continues {run} with the settings in its config.json; ignoring "
                  f"{', '.join(ignored)}", file=sys.stderr)
        state = _state(run)
        if "complete" in state.get("done", []):
            raise MobilenetsError(f"run {run} is already complete")
    else:
        if not random_backbone:
            refuse_random_backbone(config)
        _low_res(config, (config.spec.height, config.spec.width))  # a bad setting fails before any work
        made_runs_dir = not Path(runs_dir).exists()
        run = new_run_dir(runs_dir, name, config)
        state = {"done": [], "history": []}
        from mobilenets.data import resolved_data

        # DATA as typed, and its absolute path for commands run from another directory.
        artifacts.write_json(run / "config.json",
                             {**config.to_dict(), "data_resolved": resolved_data(config.data)})
    threads = apply_thread_plan(config)
    if threads:
        print(f"small training steps: TensorFlow runs {threads[1]} ops at once, "
              f"{threads[0]} thread each", file=sys.stderr)
    keras.utils.set_random_seed(config.seed)
    cache_dir = Path(cache_dir) if cache_dir and config.cache_features else None
    if cache_dir:
        for folder in (cache_dir / "features", _image_cache(cache_dir)):
            artifacts.remove_stale(folder)
    try:
        return _train_run(run, config, state, cache_dir, data, started)
    except MobilenetsError:
        if not resume and not (run / "checkpoints" / "state.json").exists():
            # Refused before its first epoch (bad data, a split that decodes to
            # nothing): the folder holds only settings, and would block its name.
            shutil.rmtree(run, ignore_errors=True)
            if made_runs_dir:
                with contextlib.suppress(OSError):  # only if still empty: another run may be in it
                    os.rmdir(runs_dir)
        raise
    except KeyboardInterrupt:
        command = "retrain" if config.mode == "retrain" else "train"
        print(f"\ninterrupted: every finished epoch is saved; continue with "
              f"'mobilenets {command} --resume {run}'", file=sys.stderr)
        raise


def refuse_random_backbone(config: TrainConfig) -> None:
    """Refuse a retrain whose frozen backbone has random weights.

    A freshly initialised MobileNet's pooled features shrink to ~1e-16: a head
    trained on them learns nothing (validation accuracy = the majority share).
    Training every layer (`mobilenets train`) is what random weights need.
    """
    if config.mode == "retrain" and str(config.weights).lower() == "none":
        raise MobilenetsError(
            "retrain --weights none would train a head on a random backbone's features (~1e-16), "
            "which learns nothing; use 'mobilenets train' to train the whole network, or "
            "--weights imagenet or a weights file")


def _train_run(run: Path, config: TrainConfig, state: dict, cache_dir, data, started: float) -> Path:
    import keras

    from mobilenets.data import open_dataset

    if data is None:
        data = open_dataset(config.data, validation_percent=config.validation_percent,
                            test_percent=config.test_percent)
    if config.faces:
        from mobilenets.faces import face_cropped

        data, faces_report = face_cropped(data, config.validation_percent, config.test_percent,
                                          cache_dir=cache_dir)
        artifacts.write_json(run / "faces.json", faces_report)
    data.write_report(run / "data_report.json")
    classes = list(data.classes)
    artifacts.write_text(run / "labels.txt", "\n".join(classes) + "\n")
    splits = data.splits  # as scanned: files that fail to decode later may empty a split
    aug = Augment.parse(config.augment)
    strategy = _strategy(config)
    state["replicas"] = strategy.num_replicas_in_sync if strategy is not None else 1

    with _scope(strategy):
        model = build_for_config(config, len(classes))
    if config.mode == "retrain":
        if "head" not in state["done"]:
            set_trainable(model, 0)
            # Under a strategy the head trains on images: features would be computed on one device.
            if aug.is_identity and config.cache_features and strategy is None:
                model = _head_on_features(model, run, config, data, splits, state, cache_dir)
            else:
                if not aug.is_identity:
                    print("augmentation is on: bottleneck features are not cached "
                          "(each epoch sees new images)", file=sys.stderr)
                model = _fit_phase(model, run, "head", config, data, splits, config.epochs,
                                   config.learning_rate, state, started, strategy, aug, cache_dir)
        else:
            with _scope(strategy):
                model = load_checkpoint(run / "checkpoints" / "head.keras")
        if config.fine_tune and "fine_tune" not in state["done"]:
            set_trainable(model, config.fine_tune)
            lr = config.fine_tune_learning_rate or config.learning_rate / 10
            model = _fit_phase(model, run, "fine_tune", config, data, splits,
                               config.fine_tune_epochs, lr, state, started, strategy, aug, cache_dir)
    else:
        model = _fit_phase(model, run, "train", config, data, splits, config.epochs,
                           config.learning_rate, state, started, strategy, aug, cache_dir)

    if strategy is not None:  # evaluate and save a plain, single-device copy
        plain = keras.Model.from_config(model.get_config())
        plain.set_weights(model.get_weights())
        model = plain
    finish_run(run, model, data, splits, state, started, _image_cache(cache_dir),
               flip_tta=bool(config.augment.get("flip_left_right")))
    return run


def finish_run(run: Path, model, data, splits: tuple[str, ...], state: dict, started: float,
               image_cache: Path | None = None, flip_tta: bool = False) -> dict:
    """Save the model, evaluate it and write metrics, curves and the summary.

    With `flip_tta` (runs trained with flips) the test split is also scored
    with flip test-time augmentation, reported beside the plain accuracy
    (`mobilenets evaluate --tta flip` gives the full report).
    """
    from mobilenets.evaluate import evaluate_arrays, top_k_column

    with artifacts.atomic_path(run / "model.keras") as tmp:
        model.save(tmp)
    size = tuple(model.input_shape[1:3])
    metrics = {"train_seconds": round(time.monotonic() - started, 1),
               "feature_cache_hit": state.get("feature_cache_hit"),
               "stopped_by_time_budget": state.get("stopped_by_time_budget", False),
               "replicas": state.get("replicas", 1)}
    rows = []
    for split in ("val", "test"):
        if split in splits:
            images, labels, paths = data.arrays(split, size, cache_dir=image_cache)
            result = evaluate_arrays(model, images, labels, list(data.classes), paths)
            metrics[split] = {k: result[k] for k in ("accuracy", "top_k_accuracy", "k", "count")}
            rows.append({"split": split, "images": result["count"],
                         "accuracy": result["accuracy"], **top_k_column(result)})
            if split == "test" and flip_tta:
                tta = evaluate_arrays(model, images, labels, list(data.classes), paths, tta="flip")
                metrics[split]["accuracy_flip_tta"] = tta["accuracy"]
                rows.append({"split": "test, flip TTA", "images": tta["count"], "accuracy": tta["accuracy"],
                             **top_k_column(tta)})
            if split == "test":
                from mobilenets.evaluate import write_evaluation

                write_evaluation(result, run / "evaluation")
    # Again now that every split was decoded: truncated files show up only then.
    report = data.report()
    data.write_report(run / "data_report.json")
    if report.get("skipped"):
        print(f"skipped {len(report['skipped'])} unreadable file(s); reasons in "
              f"{run / 'data_report.json'}", file=sys.stderr)
    metrics["skipped_files"] = len(report.get("skipped", []))
    artifacts.write_json(run / "metrics.json", metrics)
    plot_history(state["history"], run / "training_curves.png")
    state["done"].append("complete")
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    from mobilenets.results import write_rows

    print(f"run: {run}", file=sys.stderr)
    if rows:
        write_rows(rows, "table", title=f"{run.name}")
    return metrics


def plot_history(history: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, phases in sequence."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(history) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = [row.get(prefix + metric, np.nan) for row in history]
            if not np.all(np.isnan(ys)):
                ax.plot(x, ys, style, label=(prefix or "train_") + metric)
        phases = [row["phase"] for row in history]
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="grey", lw=0.8)
                ax.text(i + 0.6, ax.get_ylim()[1], phases[i], va="top", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
