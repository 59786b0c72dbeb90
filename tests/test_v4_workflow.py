"""MobileNetV4 through every command: train from scratch at 32 px, export int8, predict, benchmark, compare."""

import contextlib
import io
import json

import pytest

from _tiny import make_folder
from mobilenets.cli import main

SPEC = "v4-conv-s-0.25-32"  # Conv-S at a quarter width: 0.5 M params, CIFAR-sized


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of the `scratch` recipe (stride-1 stem, low-res first epochs) on 30 images."""
    root = tmp_path_factory.mktemp("v4")
    folder = make_folder(root / "colours", per_class=10, size=32)
    code, _, err = _cli(["train", str(folder), "--arch", SPEC, "--preset", "scratch", "--epochs", "1",
                         "--batch-size", "8", "--validation-percent", "20", "--test-percent", "20",
                         "--runs-dir", str(root / "runs"), "--name", "v4", "--no-cache"])
    assert code == 0, err[-2000:]
    return root / "runs" / "v4"


def test_train_from_scratch_writes_a_v4_run(run):
    import keras

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["spec"] == SPEC and cfg["stem_stride"] == 1
    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert model.get_layer("stem_conv").strides == (1, 1)
    assert model.output_shape == (None, 3)
    assert (run / "metrics.json").is_file()


def test_export_int8_is_fully_delegated_and_predicts(run):
    from mobilenets.benchmark import op_delegation
    from mobilenets.export import export

    # plain int8 keeps the test fast; reconstruction is checked on V4 below (slow).
    r = export(run, quantize="none,int8", calibration_size=8, parity_images=12, int8_method="plain")
    int8 = r.files["model_int8.tflite"]
    ops = op_delegation(int8)
    # No hard-swish in V4: every op but the uint8 I/O conversion and softmax runs on XNNPACK.
    assert {o["op"] for o in ops if not o["delegated"]} <= {"QUANTIZE", "SOFTMAX"}
    assert {o["op"] for o in ops} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"}
    assert {row["model"] for row in r.rows} >= {"model_int8.tflite", "model_float32.tflite"}
    code, out, err = _cli(["predict", str(int8), str(next((run.parent.parent / "colours" / "red").iterdir())),
                           "--json"])
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["label"] in ("blue", "green", "red")


def test_benchmark_and_profile_a_v4_spec(tmp_path):
    from mobilenets.benchmark import benchmark

    r = benchmark([SPEC], runs=3, warmup=0, workdir=tmp_path)
    (row,) = r["rows"]
    assert row["model"] == f"{SPEC} (random)" and row["latency_ms_p50"] > 0
    code, out, _ = _cli(["profile", "v4-conv-s-224", "--json"])
    assert code == 0 and json.loads(out)["trainable_params"] == 3_774_024


@pytest.mark.slow
def test_int8_reconstruction_takes_v4s_blocks(run, tmp_path):
    from mobilenets.export import export

    r = export(run, quantize="int8", calibration_size=8, parity_images=12, out_dir=tmp_path / "ex")
    assert r.files["model_int8.tflite"].is_file()
    assert any(row["model"] == "model_int8.tflite" for row in r.rows)


@pytest.mark.slow
def test_compare_v4_with_v1(tmp_path):
    code, out, err = _cli(["compare", SPEC, "v1-0.25-32", "--runs", "3", "--warmup", "0",
                           "--out", str(tmp_path / "cmp"), "--format", "json"])
    assert code == 0, err[-2000:]
    rows = {r["spec"]: r for r in json.loads(out)}
    assert rows[SPEC]["int8_ms_t1"] > 0 and rows[SPEC]["int8_mb"] < rows[SPEC]["float_mb"]
