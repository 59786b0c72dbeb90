"""Tiny real inputs for the export / predict / benchmark tests.

A folder of generated JPEGs and a run directory as mobilenets.train writes it
(model.keras taking raw pixels, labels.txt, config.json), built without
training: these tests are about shipping a model, not about its accuracy.
A freshly initialised MobileNet's activations shrink layer by layer to ~1e-8
(every class gets exactly 1/3), so BatchNorm statistics are set from one
batch of the images: outputs then differ from image to image, as a trained
model's do.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def make_folder(root: Path, per_class: int = 10, size: int = 40, seed: int = 0) -> Path:
    """Class folders of noisy solid-colour JPEGs."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            px = np.clip(np.array(rgb) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(px).save(root / name / f"{name}_{i:03d}.jpg", quality=90)
    return root


def make_run(root: Path, data: Path, spec: str = "v1-0.25-32", seed: int = 0) -> Path:
    """A run directory as mobilenets.train.runs lays it out, with an untrained model."""
    import keras

    from mobilenets.benchmark import settle_batchnorm
    from mobilenets.models import build_model

    keras.utils.set_random_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    classes = sorted(COLOURS)
    model = build_model(spec, classes=len(classes), head="new", preprocessing=True)
    size = int(spec.rsplit("-", 1)[1])
    files = sorted(Path(data).rglob("*.jpg"))
    batch = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size))) for f in files])
    settle_batchnorm(model, batch)
    model.save(root / "model.keras")
    (root / "labels.txt").write_text("\n".join(classes) + "\n")
    (root / "config.json").write_text(json.dumps({
        "spec": spec, "image_size": [size, size], "classes": classes, "data": str(data),
        "validation_percent": 20, "test_percent": 30}))
    return root


def tiny_config(data, **kw):
    """The TrainConfig of a tiny run on `data`: V1 0.25 at 32 px from random weights, 3 epochs."""
    from mobilenets.train import TrainConfig

    base = dict(data=str(data), arch="v1-0.25-32", weights="none", epochs=3, batch_size=8,
                learning_rate=0.01, validation_percent=20, test_percent=20)
    base.update(kw)
    return TrainConfig(**base)
