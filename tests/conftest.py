"""Shared fixtures: the real data in ../shared, a private Keras cache."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """`../shared`; tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture
def keras_home(tmp_path, monkeypatch, shared) -> Path:
    """A KERAS_HOME whose models/ holds the shared official weight files.

    Links, not copies: nothing of ../shared lands in the repo or the temp dir.
    """
    models = tmp_path / "keras_home" / "models"
    models.mkdir(parents=True)
    for f in (shared / "weights").glob("*_no_top.h5"):
        (models / f.name).symlink_to(f)
    monkeypatch.setenv("KERAS_HOME", str(models.parent))
    return models.parent
