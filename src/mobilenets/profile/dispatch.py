"""`profile(target)`: a spec, a Keras model or a model file, to the counter that reads it.

    profile("v1-1.00-224"); profile(model); profile("runs/pets/export/model_int8.tflite")
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenets.errors import MobilenetsError
from mobilenets.profile.base import Profile
from mobilenets.profile.keras_graph import load_keras_model, profile_keras
from mobilenets.profile.tflite_file import profile_tflite

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".tflite")


def profile(target, classes: int = 1000) -> Profile:
    """Profile a model.

    Args:
        target: a spec string or `ModelSpec` (built without weights, with the
            architecture's own classifier for `classes` classes), a
            `keras.Model`, or a path to a `.keras`, `.h5` or `.tflite` file.
        classes: classifier size when `target` is a spec.

    Returns:
        A `Profile`.
    """
    import keras

    if isinstance(target, keras.Model):
        return profile_keras(target)
    if isinstance(target, (str, os.PathLike)) and (
        Path(target).suffix.lower() in MODEL_SUFFIXES or Path(target).exists()
    ):
        return profile_file(Path(target))
    from mobilenets.models import build_model

    return profile_keras(build_model(target, classes=classes))


def profile_file(path: Path) -> Profile:
    """Profile a `.tflite`, `.keras` or full-model `.h5` file."""
    if not path.is_file():
        raise MobilenetsError(f"no such model file: {path}")
    if path.suffix.lower() == ".tflite":
        p = profile_tflite(path)
    else:
        p = profile_keras(load_keras_model(path))
    p.file_bytes = path.stat().st_size
    return p
