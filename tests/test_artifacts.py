"""Atomic writes: whole files or none, with ordinary permissions."""

import os
import stat

import pytest

from mobilenets import artifacts


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_follow_the_umask(tmp_path, umask_022):
    path = artifacts.write_text(tmp_path / "labels.txt", "a\nb\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "a\nb\n"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_json_handles_numpy_and_paths(tmp_path):
    import json

    import numpy as np

    p = artifacts.write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(2),
                                                   "c": tmp_path})
    assert json.loads(p.read_text()) == {"a": 0.5, "b": [0, 1], "c": str(tmp_path)}
