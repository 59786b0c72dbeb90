"""Evaluating a run: the report files, the CLI, flip test-time augmentation."""

import json

import numpy as np
import pytest

import _tiny
from _tiny import tiny_config as tiny
from _tiny import COLOURS
from mobilenets.cli import main
from mobilenets.train import run_training


def make_folder(root, per_class=12, **kw):
    return _tiny.make_folder(root, per_class=per_class, **kw)


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "colours")


def test_evaluate_writes_json_png_and_misclassified(folder, tmp_path, capsys):
    run = run_training(tiny(folder, epochs=1), runs_dir=tmp_path / "runs", name="e")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    out = run / "evaluation-test"
    assert (out / "evaluation.json").is_file() and (out / "confusion_matrix.png").is_file()
    assert sum(map(sum, r["confusion_matrix"])) == r["count"]
    rows = (out / "misclassified.csv").read_text().splitlines()
    assert len(rows) - 1 == len(r["misclassified"]) == round(r["count"] * (1 - r["accuracy"]))
    assert [c["class"] for c in r["per_class"]] == sorted(COLOURS)
    assert main(["evaluate", str(run), "--split", "test", "--tta", "flip", "--out", str(tmp_path / "tta")]) == 0
    assert "(flip TTA)" in capsys.readouterr().out
    assert json.loads((tmp_path / "tta" / "evaluation.json").read_text())["tta"] == "flip"


def test_flip_tta_averages_each_image_with_its_mirror_image():
    from mobilenets.errors import MobilenetsError
    from mobilenets.evaluate import evaluate_arrays

    def model(images):
        # Class 0 if the left half is brighter, 1 if the right one is; class 2
        # scores 0.6 of the brighter half, so only the average of an image
        # and its mirror image (0.5, 0.5, 0.6) picks it.
        x = np.asarray(images, dtype="float32") / 255
        w = x.shape[2] // 2
        left, right = x[:, :, :w].mean(axis=(1, 2, 3)), x[:, :, w:].mean(axis=(1, 2, 3))
        scores = np.stack([left, right, 0.6 * np.maximum(left, right)], axis=1)
        return scores / scores.sum(axis=1, keepdims=True)

    images = np.zeros((4, 6, 6, 3), dtype="uint8")
    images[:2, :, :3] = 255  # bright left
    images[2:, :, 3:] = 255  # bright right
    labels = np.full(4, 2)
    plain = evaluate_arrays(model, images, labels, ["left", "right", "both"])
    flipped = evaluate_arrays(model, images, labels, ["left", "right", "both"], tta="flip")
    assert (plain["accuracy"], plain["tta"]) == (0.0, "none")
    assert (flipped["accuracy"], flipped["tta"]) == (1.0, "flip")
    with pytest.raises(MobilenetsError, match="tta"):
        evaluate_arrays(model, images, labels, ["left", "right", "both"], tta="rotate")
