"""Build MobileNets the way `keras.applications` builds them.

    model = build_model("v1-0.25-224", classes=5, weights="imagenet", head="new",
                        preprocessing=True)

Every V1-V3 model here is a flat functional model made by `keras.applications`, so
official weight files load into it exactly (by name or by layer order) and
layer names stay predictable (`conv_dw_3`, `block_5_expand`). V4, which
keras.applications lacks, is built the same way from its block tables by
`mobilenets.models_v4`. Two heads:

* `head="keras"`: the architecture's own classifier (V1's `conv_preds`, V2's
  `predictions`, ...), as in the seed's CIFAR-10 model.
* `head="new"`: global average pool -> dropout -> dense softmax, on top of a
  backbone built with `include_top=False`; the transfer-learning head.

With `preprocessing=True` the model takes raw 0-255 pixels and scales them to
[-1, 1] itself (all three MobileNet generations expect [-1, 1]), or, for a
timm checkpoint with the hub's `config.json` beside it, with its mean and std.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenets.env import first_line, report
from mobilenets.errors import MobilenetsError
from mobilenets.models_timm import MOBILENET_SCALING, TIMM_NAMES, input_scaling, load_timm_weights
from mobilenets.models_v4 import mobilenet_v4
from mobilenets.specs import ModelSpec, parse_spec

# Layer names of the new head; train.build freezes everything before them.
HEAD_LAYERS = ("head_pool", "head_dropout", "head_predictions")
PREPROCESS_LAYER = "preprocess"

V1_WEIGHT_ALPHAS = (0.25, 0.5, 0.75, 1.0)
V1_WEIGHT_RESOLUTIONS = (128, 160, 192, 224)
V2_WEIGHT_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
V2_WEIGHT_RESOLUTIONS = (96, 128, 160, 192, 224)
V3_WEIGHT_ALPHAS = (0.75, 1.0)


def keras_home() -> Path:
    """Where Keras caches downloads (`$KERAS_HOME`, else `~/.keras`)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def has_imagenet_weights(spec: ModelSpec) -> bool:
    """Whether official Keras ImageNet weights exist for this architecture."""
    if spec.version == "v4":
        return False  # Keras publishes none; timm's are PyTorch checkpoints
    if spec.family == "v1":
        return spec.alpha in V1_WEIGHT_ALPHAS
    if spec.family == "v2":
        return spec.alpha in V2_WEIGHT_ALPHAS
    if spec.minimalistic:
        return spec.alpha == 1.0
    return spec.alpha in V3_WEIGHT_ALPHAS


def imagenet_weight_files(spec: ModelSpec, include_top: bool = False) -> list[str]:
    """Keras's file names for this spec's ImageNet weights, best match first.

    The first name is the one Keras itself would fetch for the spec's input
    size; the others are the same architecture at other resolutions, whose
    weights fit too (convolution weights do not depend on the input size).
    """
    if not has_imagenet_weights(spec):
        return []
    top = "" if include_top else "_no_top"
    if spec.family == "v1":
        text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[spec.alpha]
        rows = _preferred(spec, V1_WEIGHT_RESOLUTIONS)
        return [f"mobilenet_{text}_{r}_tf{top}.h5" for r in rows]
    if spec.family == "v2":
        rows = _preferred(spec, V2_WEIGHT_RESOLUTIONS)
        return [
            f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{spec.alpha}_{r}{top}.h5"
            for r in rows
        ]
    size = spec.family[3:]
    minimal = "_minimalistic" if spec.minimalistic else ""
    name = f"{size}{minimal}_224_{spec.alpha}_float"
    return [f"weights_mobilenet_v3_{name}{top}_v2.h5" if not include_top
            else f"weights_mobilenet_v3_{name}.h5"]


def _preferred(spec: ModelSpec, available: tuple[int, ...]) -> list[int]:
    """Resolutions to try: Keras's own choice first (its size, else 224)."""
    first = spec.height if spec.square and spec.height in available else 224
    return [first] + [r for r in sorted(available, reverse=True) if r != first]


def cached_imagenet_weights(spec: ModelSpec, include_top: bool = False) -> Path | None:
    """The first cached Keras weight file that fits `spec`, if any."""
    for name in imagenet_weight_files(spec, include_top):
        path = keras_home() / "models" / name
        if path.is_file():
            return path
    return None


def _application(spec: ModelSpec, **kwargs):
    import keras

    kwargs.setdefault("name", spec.keras_name)
    if spec.version == "v4":
        return mobilenet_v4(spec, **kwargs)
    if spec.family == "v1":
        return keras.applications.MobileNet(alpha=spec.alpha, **kwargs)
    if spec.family == "v2":
        return keras.applications.MobileNetV2(alpha=spec.alpha, **kwargs)
    builder = (
        keras.applications.MobileNetV3Large
        if spec.family == "v3-large"
        else keras.applications.MobileNetV3Small
    )
    # V3 carries its own [-1, 1] rescaling; ours is added uniformly instead.
    return builder(
        alpha=spec.alpha,
        minimalistic=spec.minimalistic,
        include_preprocessing=False,
        **kwargs,
    )


def build_model(
    spec: "str | ModelSpec",
    classes: int = 1000,
    weights: "str | os.PathLike | None" = None,
    head: str = "keras",
    dropout: float | None = None,
    preprocessing: bool = False,
):
    """Build a MobileNet as a flat Keras functional model.

    Args:
        spec: a model spec (`"v1-0.50-160"`) or `ModelSpec`.
        classes: number of output classes.
        weights: `None`/`"none"` (random init), `"imagenet"` (official Keras
            weights: from the Keras cache, else downloaded), a path to a
            Keras weights file (no-top or full ImageNet model), or for V4 a
            timm checkpoint (`model.safetensors`; a classifier of another
            size than `classes` is left out).
        head: `"keras"` for the architecture's own classifier, `"new"` for
            pool -> dropout -> dense softmax on a headless backbone, or
            `"none"` for the backbone alone with global average pooling.
        dropout: dropout before the classifier (default: Keras's, and 0.2
            for the new head).
        preprocessing: if True the model takes 0-255 pixels.

    Returns:
        An uncompiled `keras.Model`.
    """
    import keras

    spec = parse_spec(spec)
    if head not in ("keras", "new", "none"):
        raise MobilenetsError(f"head must be 'keras', 'new' or 'none'. Received head={head!r}")
    if classes < 1:
        raise MobilenetsError(f"classes must be >= 1. Received classes={classes}")
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None

    scaling = _input_scaling(weights, preprocessing)
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = inputs
    if preprocessing:
        x = keras.layers.Rescaling(scaling[0], offset=scaling[1], name=PREPROCESS_LAYER)(x)

    include_top = head == "keras"
    app_kwargs = dict(input_tensor=x, include_top=include_top, weights=None)
    if include_top:
        app_kwargs.update(classes=classes)
        # V1 and V3 heads take a dropout rate; V2's Keras head has no dropout.
        if dropout is not None and spec.family != "v2":
            app_kwargs["dropout" if spec.family == "v1" else "dropout_rate"] = dropout
    elif head == "none":
        app_kwargs["pooling"] = "avg"
    try:
        base = _application(spec, **app_kwargs)
    except ValueError as e:
        raise MobilenetsError(f"cannot build {spec.name}: {first_line(e)}") from None

    if weights is not None:
        _load_weights(base, spec, weights, include_top=include_top, classes=classes)

    if head != "new":
        return base
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_LAYERS[0])(base.output)
    x = keras.layers.Dropout(0.2 if dropout is None else dropout, name=HEAD_LAYERS[1])(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name=HEAD_LAYERS[2])(x)
    return keras.Model(inputs, outputs, name=base.name)


def _input_scaling(weights, preprocessing: bool) -> tuple:
    """The pixel Rescaling: [-1, 1], unless a timm checkpoint's config.json says otherwise."""
    if weights is None or Path(weights).suffix != ".safetensors" or not Path(weights).is_file():
        return MOBILENET_SCALING
    scaling = input_scaling(weights)
    if scaling is None:
        report(f"{weights}: no timm config.json beside it to give the input mean and std; "
               "assuming [-1, 1] (timm's 'inception' normalization). Checkpoints trained on ImageNet's "
               "mean and std need the config.json from the same hub folder")
        return MOBILENET_SCALING
    if not preprocessing and scaling != MOBILENET_SCALING:
        report(f"{weights} was trained on ImageNet's mean and std (config.json), not [-1, 1]: "
               "scale the inputs so, or build with preprocessing=True")
    return scaling


def _load_weights(model, spec: ModelSpec, weights, include_top: bool, classes: int) -> None:
    if str(weights).lower() == "imagenet":
        if include_top and classes != 1000:
            raise MobilenetsError(
                f"ImageNet weights with the Keras head need classes=1000. Received classes={classes}; "
                "use head='new' for your own classes"
            )
        path = cached_imagenet_weights(spec, include_top) or _download_imagenet(spec, include_top)
    else:
        path = Path(weights)
        if not path.is_file():
            raise MobilenetsError(f"weights file not found: {path}")
        if path.suffix == ".safetensors":  # timm's PyTorch checkpoints, mapped by name
            load_timm_weights(model, spec, path)
            return
    try:
        model.load_weights(str(path))
        return
    except Exception as first_error:  # noqa: BLE001 - try the full-model layout next
        if include_top:
            raise MobilenetsError(
                f"cannot load weights {path} into {spec.name}: {first_line(first_error)}"
            ) from None
    # A full (with-top) ImageNet model file: load it into the matching
    # full architecture and copy the backbone layers across by name.
    try:
        full = _application(spec, input_shape=spec.input_shape, include_top=True,
                            weights=str(path), classes=1000)
    except Exception as e:  # noqa: BLE001
        raise MobilenetsError(
            f"cannot load weights {path} into {spec.name}: {first_line(e)}"
        ) from None
    donor = {layer.name: layer for layer in full.layers}
    for layer in model.layers:
        if layer.weights and layer.name in donor:
            layer.set_weights(donor[layer.name].get_weights())


def _download_imagenet(spec: ModelSpec, include_top: bool) -> Path:
    """Fetch the weights through Keras's own downloader, or say what to do."""
    names = imagenet_weight_files(spec, include_top)
    if not names and spec.version == "v4":
        raise MobilenetsError(
            f"Keras publishes no ImageNet weights for {spec.name}; pass timm's checkpoint instead: "
            f"model.safetensors with its config.json, from huggingface.co/timm/{TIMM_NAMES[spec.family]}.*")
    if not names:
        raise MobilenetsError(
            f"no official ImageNet weights exist for {spec.name}; "
            "use --weights none or a weights file"
        )
    from keras.utils import get_file

    from keras.src.applications import mobilenet, mobilenet_v2, mobilenet_v3

    base_url = {"v1": mobilenet, "v2": mobilenet_v2}.get(spec.family, mobilenet_v3).BASE_WEIGHT_PATH
    try:
        return Path(get_file(names[0], base_url + names[0], cache_dir=str(keras_home()),
                             cache_subdir="models"))
    except Exception as e:  # noqa: BLE001 - any network failure means the same to the user
        raise MobilenetsError(
            f"ImageNet weights for {spec.name} are not cached and could not be downloaded "
            f"({first_line(e)}): put {names[0]} in {keras_home() / 'models'}/ "
            "or pass --weights PATH or --weights none"
        ) from None


def backbone_layer_count(model) -> int:
    """Number of layers before the new head (all of them without one)."""
    names = [layer.name for layer in model.layers]
    return names.index(HEAD_LAYERS[0]) if HEAD_LAYERS[0] in names else len(names)
