"""Export: every quantize mode, integer I/O, embedded labels, parity, one-line errors."""

import contextlib
import importlib.util
import io
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from _tiny import make_folder, make_run
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.export import (CONFIG_KEY, LABELS_KEY, TFLITE_NAMES, convert, embed_metadata, export,
                               float_ops, load_source, parse_quantize, read_metadata, save_traced)
from mobilenets.predict import TFLiteClassifier, open_interpreter


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return make_run(root / "run", make_folder(root / "colours"))


@pytest.fixture(scope="module")
def exported(run):
    """All four .tflite modes in one CLI call (one SavedModel, one calibration)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(run), "--quantize", "none,float16,dynamic,int8",
                     "--calibration-size", "20"]) == 0
    files = {name: run / "export" / name for name in TFLITE_NAMES.values()}
    return SimpleNamespace(files=files, out=out.getvalue())


def test_parse_quantize():
    assert parse_quantize(None) == ("none", "int8")
    assert parse_quantize("float32, int8,int8") == ("none", "int8")
    with pytest.raises(MobilenetsError, match="Received 'int4'"):
        parse_quantize("none,int4")


def test_every_mode_is_a_loadable_tflite(exported, run):
    assert all(path.is_file() for path in exported.files.values())
    sizes = {}
    for mode, name in TFLITE_NAMES.items():
        interp = open_interpreter(exported.files[name])
        d = interp.get_input_details()[0]
        assert list(d["shape"]) == [1, 32, 32, 3]
        interp.set_tensor(d["index"], np.full(d["shape"], 128, d["dtype"]))
        interp.invoke()
        out = interp.get_output_details()[0]
        assert interp.get_tensor(out["index"]).shape == (1, 3)
        sizes[mode] = exported.files[name].stat().st_size
    assert sizes["float16"] < sizes["none"] and sizes["dynamic"] < sizes["float16"]
    assert (run / "export" / "labels.txt").read_text().split() == ["blue", "green", "red"]


def test_int8_default_io_is_uint8_with_pixel_scale(exported):
    interp = open_interpreter(exported.files["model_int8.tflite"])
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    assert d["dtype"] == np.uint8 and o["dtype"] == np.uint8
    # A uint8 input value is the pixel value itself.
    assert d["quantization"] == (1.0, 0)
    assert float_ops(exported.files["model_int8.tflite"].read_bytes()) == {}
    assert "CONV_2D" in float_ops(exported.files["model_float32.tflite"].read_bytes())


@pytest.fixture(scope="module")
def saved(run, tmp_path_factory):
    return save_traced(load_source(run).model, tmp_path_factory.mktemp("saved") / "float")


@pytest.mark.parametrize("io, dtype, zero_point", [("int8", np.int8, -128), ("float32", np.float32, 0)])
def test_int8_io_types(saved, io, dtype, zero_point):
    images = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), np.uint8)
    interp = Interpreter(model_content=convert(saved, "int8", io, images))
    interp.allocate_tensors()
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    assert d["dtype"] == dtype and o["dtype"] == dtype
    if io == "int8":
        assert d["quantization"] == (1.0, zero_point)


def test_io_needs_int8(run, saved):
    with pytest.raises(MobilenetsError, match="--io uint8 needs --quantize int8"):
        export(run, quantize="none,float16", io="uint8")
    with pytest.raises(MobilenetsError, match="needs --quantize int8"):
        convert(saved, "dynamic", "int8")


def test_labels_round_trip_without_side_file(exported, tmp_path):
    for name in TFLITE_NAMES.values():
        lone = tmp_path / name  # copied away from labels.txt and config.json
        shutil.copy(exported.files[name], lone)
        meta = read_metadata(lone)
        assert meta[LABELS_KEY].decode().split() == ["blue", "green", "red"]
        assert json.loads(meta[CONFIG_KEY])["input_range"] == [0.0, 255.0]
        clf = TFLiteClassifier(lone)
        assert clf.labels == ["blue", "green", "red"] and clf.input_range == (0.0, 255.0)


def test_embed_metadata_replaces_and_keeps_others(exported):
    data = exported.files["model_float32.tflite"].read_bytes()
    again = embed_metadata(data, {LABELS_KEY: b"a\nb\nc\n", "extra": b"x"})
    meta = read_metadata(again)
    assert meta[LABELS_KEY] == b"a\nb\nc\n" and meta["extra"] == b"x" and CONFIG_KEY in meta
    assert list(meta).count(LABELS_KEY) == 1


def test_parity_report(exported, run):
    report = json.loads((run / "export" / "export_report.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows)[0] == "keras" and set(TFLITE_NAMES.values()) <= set(rows)
    for r in rows.values():
        assert {"format", "quantize", "io", "file_mb", "accuracy", "agreement", "latency_ms",
                "images"} <= set(r)
        assert 0 <= r["agreement"] <= 1 and 0 <= r["accuracy"] <= 1 and r["latency_ms"] > 0
        assert r["images"] == rows["keras"]["images"] > 0
    assert rows["model_float32.tflite"]["agreement"] == 1.0
    assert rows["model_float32.tflite"]["accuracy"] == rows["keras"]["accuracy"]
    cfg = json.loads((run / "export" / "config.json").read_text())
    assert cfg["calibration"]["size"] == 20 and set(cfg["files"]) == set(TFLITE_NAMES.values())
    assert cfg["source"].endswith("model.keras") and cfg["spec"] == "v1-0.25-32"


def test_int8_refuses_float_ops(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: keras.ops.sin(t))(inputs)  # no int8 kernel
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1)(x))
    saved = save_traced(keras.Model(inputs, x), tmp_path / "sin")
    calibration = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), np.uint8)
    with pytest.raises(MobilenetsError, match="int8 export left float ops in the model: .*SIN"):
        convert(saved, "int8", "uint8", calibration)


def test_saved_model_and_onnx(run, tmp_path):
    """ONNX needs the `onnx` extra (tf2onnx); without it only the SavedModel is checked."""
    has_onnx = importlib.util.find_spec("tf2onnx") is not None
    r = export(run, formats="saved_model,onnx" if has_onnx else "saved_model", out_dir=tmp_path)
    assert (tmp_path / "saved_model" / "saved_model.pb").is_file()
    rows = {row["model"]: row for row in r.rows}
    assert rows["saved_model"]["agreement"] == 1.0
    if not has_onnx:
        return
    if rows["model.onnx"]["agreement"] is not None:  # onnxruntime installed
        assert rows["model.onnx"]["agreement"] == 1.0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert meta[LABELS_KEY].split() == ["blue", "green", "red"]


@pytest.mark.slow
def test_v3_int8_hard_swish_is_delegated(tmp_path):
    """int8 V3 has no HARD_SWISH (XNNPACK does not take int8 HARD_SWISH): it is
    relu6(x + 3) * (x / 6), an ADD and MULs that XNNPACK runs, so the whole
    network is one XNNPACK partition between the uint8 I/O conversions."""
    from mobilenets.benchmark import op_delegation

    folder = make_folder(tmp_path / "colours", per_class=4)
    run = make_run(tmp_path / "run", folder, spec="v3-small-0.75-32")
    r = export(run, quantize="int8", calibration_size=8, parity=False)
    ops = op_delegation(r.files["model_int8.tflite"])
    assert "HARD_SWISH" not in {o["op"] for o in ops}
    assert {o["op"] for o in ops if not o["delegated"]} <= {"QUANTIZE", "SOFTMAX"}
    cfg = json.loads((run / "export" / "config.json").read_text())
    assert "relu6" in cfg["files"]["model_int8.tflite"]["hard_swish"]


@pytest.mark.parametrize("argv, fragment", [
    (["export", "{tmp}/missing.keras"], "no such model file"),
    (["export", "{tmp}/text.keras"], "not a Keras model file"),
    (["export", "{tmp}/model.tflite"], "export needs a Keras model"),
    (["export", "{tmp}", "--quantize", "int4"], "Received 'int4'"),
    (["export", "{tmp}/text.keras", "--format", "coreml"], "Received 'coreml'"),
])
def test_cli_errors_are_one_line(argv, fragment, tmp_path, capsys):
    (tmp_path / "text.keras").write_text("not a model\n")
    (tmp_path / "model.tflite").write_bytes(b"\0" * 64)
    (tmp_path / "model.keras").write_text("")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_export_prints_the_parity_table(exported, run):
    assert "agreement" in exported.out and "model_int8.tflite" in exported.out
    assert f"-> {run / 'export'}" in exported.out


def test_h5_model_without_preprocess_layer_is_wrapped(tmp_path):
    """A plain Keras MobileNet expects [-1, 1]: the export adds the Rescaling, so the file takes pixels."""
    import keras

    from mobilenets.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("v1-0.25-32", classes=3, head="new", preprocessing=False)
    model.save(tmp_path / "plain.h5")
    r = export(tmp_path / "plain.h5", parity=False)  # default none,int8: no data for int8
    assert r.out_dir == tmp_path / "plain-export" and list(r.files) == ["model_float32.tflite"]
    assert any(note.startswith("int8 skipped: no calibration data") for note in r.notes)
    cfg = json.loads((r.out_dir / "config.json").read_text())
    assert cfg["added_preprocessing"] == "Rescaling 0..255 -> (-1.0, 1.0)"
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
    expected = model.predict_on_batch(pixels.astype("float32") / 127.5 - 1)
    clf = TFLiteClassifier(r.files["model_float32.tflite"])
    np.testing.assert_allclose(clf.predict(pixels), expected, atol=1e-4)

