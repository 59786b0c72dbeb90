"""rundir: one reader of a run folder or model file, used by every command that takes one."""

import json

import pytest

from mobilenets.errors import MobilenetsError
from mobilenets.rundir import model_files, read_labels, run_models


def _run(tmp_path, model=True, labels="cat\n\ndog\n", config=None):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config or {"classes": ["a", "b"]}))
    if labels is not None:
        (run / "labels.txt").write_text(labels)
    if model:
        (run / "model.keras").write_bytes(b"not read here")
    return run


def test_a_run_folder_names_its_model_config_and_labels(tmp_path):
    run = _run(tmp_path)
    found = model_files(run)
    assert found.model_path == run / "model.keras"
    assert found.run_dir == run
    assert found.config == {"classes": ["a", "b"]}
    assert found.labels == ["cat", "dog"]  # labels.txt wins over the config's classes
    assert found.labels_source == str(run / "labels.txt")


def test_labels_fall_back_to_the_configs_classes_then_to_none(tmp_path):
    run = _run(tmp_path, labels=None)
    assert model_files(run).labels == ["a", "b"]
    alone = tmp_path / "alone.h5"
    alone.write_bytes(b"x")
    found = model_files(alone)
    assert (found.run_dir, found.config, found.labels) == (None, {}, None)


def test_a_model_file_in_a_run_folder_reads_what_lies_beside_it(tmp_path):
    run = _run(tmp_path)
    found = model_files(run / "model.keras")
    assert found.run_dir is None and found.labels == ["cat", "dog"] and found.config["classes"] == ["a", "b"]


@pytest.mark.parametrize("make, need_run, message", [
    (lambda t: _run(t, model=False), False, "the run has not finished; --resume it"),
    (lambda t: t, False, "not a run directory"),
    (lambda t: t, True, "not a run directory (no config.json)"),
    (lambda t: t / "missing.keras", False, "no such model file"),
])
def test_what_is_missing_is_one_line(tmp_path, make, need_run, message):
    with pytest.raises(MobilenetsError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        model_files(make(tmp_path), need_run=need_run)
    assert "\n" not in str(err.value)


def test_a_broken_config_is_one_line_naming_it(tmp_path):
    run = _run(tmp_path)
    (run / "config.json").write_text("{trunc")
    with pytest.raises(MobilenetsError, match="config.json"):
        model_files(run)


def test_run_models_lists_the_keras_model_then_exported_files(tmp_path):
    run = _run(tmp_path)
    (run / "export").mkdir()
    for name in ("model_int8.tflite", "model_float32.tflite"):
        (run / "export" / name).write_bytes(b"x")
    assert [p.name for p in run_models(run)] == ["model.keras", "model_float32.tflite", "model_int8.tflite"]


def test_read_labels_skips_blank_lines_and_names_a_missing_file(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text(" cat \n\n dog\n")
    assert read_labels(f) == ["cat", "dog"]
    with pytest.raises(MobilenetsError, match="no such labels file"):
        read_labels(tmp_path / "nope.txt")
