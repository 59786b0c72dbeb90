"""The Python API: the commands as calls, keywords named as their flags, errors as one line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mobilenets as mn

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_import_leaves_tensorflow_unloaded_and_train_compare_profile_are_modules_and_calls():
    code = ("import sys, mobilenets as mn\n"
            "from mobilenets.train import TrainConfig\n"
            "from mobilenets.compare import candidates\n"
            "import mobilenets.train as t\n"
            "assert t is mn.train and callable(mn.train) and callable(mn.compare)\n"
            "assert mn.train.TrainConfig is TrainConfig and mn.compare.candidates is candidates\n"
            "from mobilenets.profile import profile\n"
            "assert callable(mn.profile) and mn.profile.profile is profile\n"
            "mn.Run, mn.load, mn.retrain\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("call, keyword", [
    (lambda: mn.retrain("digits", epoch=3), "epoch"),
    (lambda: mn.train("digits", fine_tune=3), "fine_tune"),  # a retrain flag
    (lambda: mn.compare(["v1-0.25-128"], format="csv"), "format"),  # printing only
    (lambda: mn.load("model.tflite", top_k=3), "top_k"),  # predict's, not load's
])
def test_an_unknown_keyword_is_named_with_the_valid_ones(call, keyword):
    with pytest.raises(mn.MobilenetsError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and f"no keyword {keyword!r}" in message and "valid: " in message


def test_values_are_checked_by_the_flags_own_rules(tmp_path):
    with pytest.raises(mn.MobilenetsError, match=r"retrain\(\): epochs must be a whole number >= 1"):
        mn.retrain("digits", epochs=0)
    with pytest.raises(mn.MobilenetsError, match="optimizer must be one of adam, nadam, sgd"):
        mn.train("digits", optimizer="lion")
    with pytest.raises(mn.MobilenetsError, match="flip_left_right takes True or False"):
        mn.retrain("digits", flip_left_right="yes")
    with pytest.raises(mn.MobilenetsError, match="must sum to less than 100"):
        mn.retrain("digits", validation_percent=60, test_percent=40)
    with pytest.raises(mn.MobilenetsError, match="spec"):
        mn.retrain("digits", arch="v9-0.25-32", runs_dir=tmp_path)
    with pytest.raises(mn.MobilenetsError, match="give DATA"):
        mn.retrain()
    with pytest.raises(mn.MobilenetsError, match="threads must be comma-separated whole numbers"):
        mn.compare(["v1-0.25-128"], threads=[1, 0])
    with pytest.raises(mn.MobilenetsError, match="give candidates"):
        mn.compare([])
    assert not (tmp_path / "runs").exists()


def test_run_refuses_a_missing_folder_a_file_and_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(mn.MobilenetsError, match="no run folder at"):
        mn.Run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(mn.MobilenetsError, match="not a run folder"):
        mn.Run(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mn.MobilenetsError, match=r"no config.json"):
        mn.Run(tmp_path / "empty")


def test_an_unfinished_run_opens_and_says_how_to_continue(tmp_path):
    run_dir = tmp_path / "half"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"data": "digits", "arch": "v1-0.25-32", "mode": "scratch"}))
    (run_dir / "labels.txt").write_text("a\nb\n")
    run = mn.Run(run_dir)
    assert (run.name, run.labels, run.config.arch, run.complete) == ("half", ["a", "b"], "v1-0.25-32", False)
    assert repr(run) == f"Run({str(run_dir)!r}, spec='v1-0.25-32', incomplete)"
    resume = re.escape(f"mobilenets.train(resume={str(run_dir)!r})")
    for use in (lambda: run.metrics, run.evaluate, run.export, run.load):
        with pytest.raises(mn.MobilenetsError, match=resume):
            use()
    with pytest.raises(mn.MobilenetsError, match="no keyword 'quantise'"):
        run.export(quantise="int8")  # keywords are checked before anything else


def test_readme_python_api_names_what_the_package_has():
    block = re.search(r"## Python API\n.*?```python\n(.*?)```", README, re.S)
    assert block, "README lost its Python API example"
    names = set(re.findall(r"\bmn\.(\w+)\(", block.group(1)))
    assert names >= {"retrain", "train", "Run", "load", "compare"}
    assert all(callable(getattr(mn, n)) for n in names)


def test_predict_takes_files_arrays_and_batches(tmp_path):
    from PIL import Image

    from _tiny import make_folder, make_run

    data = make_folder(tmp_path / "data", per_class=2)
    clf = mn.load(make_run(tmp_path / "run", data))  # an untrained run directory
    labels = ["blue", "green", "red"]
    assert clf.labels == labels and clf.input_size == (32, 32)
    image = np.asarray(Image.open(next(data.rglob("*.jpg"))))  # 40x40: resized to 32x32
    one = clf.predict(image, top_k=2)
    assert len(one) == 2 and {label for label, _ in one} <= set(labels) and one[0][1] >= one[1][1]
    assert clf.predict(next(data.rglob("*.jpg")), top_k=2) == one
    assert clf.predict(Image.fromarray(image), top_k=2) == one
    assert clf.predict(image.astype(np.float32), top_k=2) == one
    batch = clf.predict(np.stack([image, image[:, ::-1]]), top_k=1)
    assert len(batch) == 2 and batch[0] == one[:1]
    assert clf.probabilities([image, image[..., 0]]).shape == (2, 3)
    with pytest.raises(mn.MobilenetsError, match="give image \\* 255"):
        clf.predict(image / 255.0)
    with pytest.raises(mn.MobilenetsError, match="top_k must be a whole number >= 1"):
        clf.predict(image, top_k=0)
    with pytest.raises(mn.MobilenetsError, match="file not found"):
        clf.predict(tmp_path / "missing.jpg")


@pytest.mark.slow
def test_train_reopen_evaluate_export_load_predict(tmp_path):
    run = mn.train("digits", arch="v1-0.25-32", epochs=1, low_res=0, runs_dir=tmp_path / "runs", name="x",
                   cache_dir=tmp_path / "cache")
    assert isinstance(run, mn.Run) and run.path == tmp_path / "runs" / "x" and run.complete
    again = mn.Run(tmp_path / "runs" / "x")
    assert (again.name, again.config.epochs, again.config.preset) == ("x", 1, "scratch")
    assert again.labels == [str(d) for d in range(10)] and again.model_path.is_file()
    test = again.metrics["test"]
    assert repr(again) == f"Run({str(again.path)!r}, spec='v1-0.25-32', classes=10, accuracy={test['accuracy']:.4f})"

    r = again.evaluate(split="test", top_k=3)
    assert r["count"] == test["count"] and r["accuracy"] == pytest.approx(test["accuracy"])
    assert Path(r["out_dir"]) == again.path / "evaluation-test"

    files = again.export(quantize=["none", "int8"], calibration_size=16, parity_images=64,
                         int8_method="plain", allow_drop=True)
    assert set(files) == {"model_float32.tflite", "model_int8.tflite"}
    assert all(p.is_file() and p.parent == again.path / "export" for p in files.values())

    from mobilenets.data import open_dataset

    images, labels, _ = open_dataset("digits").arrays("test", (32, 32))
    keras = again.load()
    for clf in (mn.load(files["model_int8.tflite"]), keras):
        assert clf.labels == again.labels
        top = clf.predict(images[0], top_k=3)
        assert len(top) == 3 and all(label in again.labels for label, _ in top)
        assert [t[0][0] for t in clf.predict(images[:8])] == [again.labels[i] for i in
                                                              clf.probabilities(images[:8]).argmax(1)]
