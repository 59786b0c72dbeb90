"""Export: every quantize mode, integer I/O, embedded labels, parity, one-line errors."""

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from _tiny import make_folder, make_run
from mobilenets.cli import main
from mobilenets.errors import MobilenetsError
from mobilenets.export import (TFLITE_NAMES, convert, export, has_hard_swish, int8_friendly, load_source,
                               parse_quantize, save_traced)
from mobilenets.predict import TFLiteClassifier, open_interpreter
from mobilenets.profile import float_ops
from mobilenets.tflite import (CONFIG_KEY, LABELS_KEY, ClassifierInfo, embed_metadata, read_metadata, split_zip,
                               standard_metadata, write_metadata)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return make_run(root / "run", make_folder(root / "colours"))


@pytest.fixture(scope="module")
def exported(run):
    """All four .tflite modes in one CLI call (one SavedModel, one calibration).

    The untrained model's outputs are near 1/3 each, so its int8 file
    disagrees with Keras on many images: the gate fails and the command exits 3.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["export", str(run), "--quantize", "none,float16,dynamic,int8",
                       "--calibration-size", "20"])
    files = {name: run / "export" / name for name in TFLITE_NAMES.values()}
    return SimpleNamespace(files=files, out=out.getvalue(), err=err.getvalue(), status=status)


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
    converted = convert(saved, "int8", io, images)
    interp = Interpreter(model_content=converted)
    interp.allocate_tensors()
    d, o = interp.get_input_details()[0], interp.get_output_details()[0]
    assert d["dtype"] == dtype and o["dtype"] == dtype
    if io == "int8":
        assert d["quantization"] == (1.0, zero_point)
    # The metadata says what the tensor takes: pixel - 128 for int8, the pixel for float32.
    data = write_metadata(converted, ClassifierInfo("m", list("abc")))
    assert standard_metadata(data)["inputs"][0]["mean"] == [-float(zero_point)]


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
    assert split_zip(again)[1] == split_zip(data)[1] == {"labels.txt": b"blue\ngreen\nred\n"}


def test_every_file_carries_standard_tflite_metadata(exported, run):
    """What MediaPipe and the Android tools read: names, RGB, normalization, labels.txt zipped on."""
    files_info = json.loads((run / "export" / "config.json").read_text())["files"]
    for name, path in exported.files.items():
        data = path.read_bytes()
        meta = standard_metadata(data)
        assert meta["name"] == "MobileNet v1-0.25-32" and meta["min_parser_version"] == "1.0.0"
        assert all(meta[k] for k in ("description", "version", "author", "license"))
        image, scores = meta["inputs"][0], meta["outputs"][0]
        assert image["color_space"] == "RGB" and (image["mean"], image["std"]) == ([0.0], [1.0])
        assert (image["min"], image["max"]) == ([0.0], [255.0])
        assert scores["files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
        assert split_zip(data)[1] == {"labels.txt": b"blue\ngreen\nred\n"}
        # config.json describes the final bytes, metadata and zip included.
        assert files_info[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert files_info[name]["bytes"] == len(data)


def test_files_exported_before_standard_metadata_still_predict(exported, tmp_path):
    """An older export has only our entries (no TFLITE_METADATA, no zip): labels still come out."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(exported.files["model_int8.tflite"].read_bytes()), 0)
    model.metadata = [m for m in model.metadata if m.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    old = tmp_path / "old_int8.tflite"
    old.write_bytes(bytes(builder.Output()))
    assert split_zip(old.read_bytes())[1] == {} and standard_metadata(old) is None
    clf = TFLiteClassifier(old)
    assert clf.labels == ["blue", "green", "red"] and clf.input_range == (0.0, 255.0)


def test_profile_shows_what_our_int8_file_says(exported, capsys):
    assert main(["profile", str(exported.files["model_int8.tflite"]), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert meta["name"] == "MobileNet v1-0.25-32" and meta["labels"] == 3
    assert meta["float_ops"] == {} and meta["normalization"] == {"mean": [0.0], "std": [1.0]}
    assert meta["input"] == {"dtype": "uint8", "shape": [1, 32, 32, 3], "scale": 1.0, "zero_point": 0}
    assert meta["mobilenets"]["quantize"] == "int8"


def test_parity_report(exported, run):
    report = json.loads((run / "export" / "export_report.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert list(rows)[0] == "keras" and set(TFLITE_NAMES.values()) <= set(rows)
    for r in rows.values():
        assert {"format", "quantize", "io", "file_mb", "images", "accuracy", "agreement",
                "accuracy_drop", "test_accuracy", "latency_ms"} <= set(r)
        assert 0 <= r["agreement"] <= 1 and 0 <= r["accuracy"] <= 1 and r["latency_ms"] > 0
        assert r["images"] == rows["keras"]["images"] == report["parity_images"] > 0
        assert r["accuracy_low"] <= r["accuracy"] <= r["accuracy_high"]
    for name in TFLITE_NAMES.values():
        r = rows[name]
        assert r["agreement_low"] <= r["agreement"] <= r["agreement_high"]
        assert r["accuracy_drop_low"] <= r["accuracy_drop"] <= r["accuracy_drop_high"]
        assert r["accuracy_drop"] == pytest.approx(rows["keras"]["accuracy"] - r["accuracy"], abs=1e-3)
    assert rows["model_float32.tflite"]["agreement"] == 1.0
    assert rows["model_float32.tflite"]["accuracy"] == rows["keras"]["accuracy"]
    floor = report["keras_stability"]
    assert floor["pixels"] == 2 and floor["images"] == report["parity_images"]
    assert floor["agreement_low"] <= floor["agreement"] <= floor["agreement_high"] <= 1
    cfg = json.loads((run / "export" / "config.json").read_text())
    assert cfg["calibration"]["size"] == 20 and set(cfg["files"]) == set(TFLITE_NAMES.values())
    assert cfg["source"].endswith("model.keras") and cfg["spec"] == "v1-0.25-32"


def test_keras_stability_finds_answers_that_pixel_noise_flips():
    """A model deciding on mean brightness > 128: images far from 128 keep their answer under
    +-2 of noise, images at 128 flip; the measure tells them apart."""
    import keras

    from mobilenets.export import keras_stability

    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.array([[1.0, -1.0]] * 3) / 3, np.array([-128.0, 128.0])])
    firm = np.concatenate([np.full((10, 8, 8, 3), 40, np.uint8), np.full((10, 8, 8, 3), 220, np.uint8)])
    top1 = np.asarray(model(firm.astype("float32"))).argmax(1)
    assert list(top1) == [1] * 10 + [0] * 10
    assert keras_stability(model, firm, top1)["agreement"] == 1.0
    edge = np.full((40, 8, 8, 3), 128, np.uint8)
    edge[:20] += 1  # 129: a margin the noise's mean (std ~0.1 over 192 values) never undoes; 128: a tie
    top1 = np.asarray(model(edge.astype("float32"))).argmax(1)
    shaky = keras_stability(model, edge, top1)
    assert shaky["images"] == 40 and 0.5 <= shaky["agreement"] < 0.9
    assert shaky["agreement_low"] <= shaky["agreement"] <= shaky["agreement_high"]
    assert keras_stability(model, edge, top1) == shaky  # seeded


def test_parity_leaves_out_the_calibration_images(exported, run):
    """The tiny run's 30 images: calibration takes the training split, parity gets val and test."""
    from mobilenets.data import open_dataset

    report = json.loads((run / "export" / "export_report.json").read_text())
    cfg = json.loads((run / "export" / "config.json").read_text())
    ds = open_dataset(json.loads((run / "config.json").read_text())["data"],
                      validation_percent=20, test_percent=30)
    assert report["calibration_images"] == len(cfg["calibration"]["files"]) == len(ds.files("train"))
    assert report["calibration_overlap"] == 0
    assert report["parity_splits"] == {"test": len(ds.files("test")), "val": len(ds.files("val"))}
    assert report["parity_images"] == len(ds.files("test")) + len(ds.files("val"))


def test_parity_images_are_disjoint_from_calibration_on_real_data(shared):
    """pokemon-types (839 images): its 65 test images alone were ±6 points of noise;
    test + val + the training images calibration left out make over 500."""
    from mobilenets.data import open_dataset
    from mobilenets.export import calibration_images, parity_images

    data = shared / "data" / "pokemon-types"
    calibration = calibration_images(data, (16, 16), 200)
    ds = open_dataset(data)
    images, labels, splits, ids = parity_images(ds, (16, 16), 1000, exclude=set(calibration.files))
    assert len(calibration.files) == len(calibration.images) == 200
    assert not set(ids) & set(calibration.files)
    assert len(images) == len(labels) == len(ids) >= 500
    # Every held-out image is in, then training images.
    assert (splits == "test").sum() == len(ds.files("test"))
    assert (splits == "val").sum() == len(ds.files("val"))
    assert (splits == "train").sum() == len(ds.files("train")) - 200
    few, _, few_splits, _ = parity_images(ds, (16, 16), 100, exclude=set(calibration.files))
    assert len(few) == 100 and set(few_splits) == {"test", "val"}


def test_gate_warns_names_the_file_and_exits_3(exported, run):
    report = json.loads((run / "export" / "export_report.json").read_text())
    failed = report["gate"]["failed"]
    assert exported.status == 3 and "model_int8.tflite" in {f["model"] for f in failed}
    warnings = [ln for ln in exported.err.splitlines() if "warning:" in ln]
    assert len(warnings) == len(failed)
    for f, line in zip(failed, warnings):
        assert line == f"mobilenets export: warning: {f['message']}"
    assert "--allow-drop" in exported.err.splitlines()[-1]
    # The files and the report are written all the same, for the user to look at.
    assert all(path.is_file() for path in exported.files.values())
    assert "accuracy [95% CI]" in exported.out


def test_allow_drop_warns_and_exits_0(run, tmp_path, capsys):
    assert main(["export", str(run), "--quantize", "int8", "--calibration-size", "20",
                 "--out", str(tmp_path / "out"), "--allow-drop"]) == 0
    err = capsys.readouterr().err
    assert "warning: model_int8.tflite: agreement" in err and "failed the parity gate" not in err
    report = json.loads((tmp_path / "out" / "export_report.json").read_text())
    assert report["gate"]["failed"][0]["model"] == "model_int8.tflite"


@pytest.mark.parametrize("flag, value, fragment", [
    ("--min-agreement", "1.5", "between 0 and 1. Received '1.5'"),
    ("--min-agreement", "high", "between 0 and 1. Received 'high'"),
    ("--max-drop", "-0.01", ">= 0 (0.01 = 1 percentage point). Received '-0.01'"),
    ("--parity-images", "0", ">= 1. Received '0'"),
])
def test_gate_flags_are_checked_when_parsed(flag, value, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "runs/x", flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be" in err and fragment in err and err.count("\n") == 1


def test_export_flag_defaults_are_the_library_defaults():
    from mobilenets import export as lib
    from mobilenets.cli import build_parser

    args = build_parser().parse_args(["export", "runs/x"])
    assert (args.min_agreement, args.max_drop, args.parity_images, args.calibration_size) == (
        lib.DEFAULT_MIN_AGREEMENT, lib.DEFAULT_MAX_DROP, lib.DEFAULT_PARITY_IMAGES,
        lib.DEFAULT_CALIBRATION_SIZE)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "3 when one has agreement below" in sub.choices["export"].format_help()


def test_int8_refuses_float_ops(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: keras.ops.sin(t))(inputs)  # no int8 kernel
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1)(x))
    saved = save_traced(keras.Model(inputs, x), tmp_path / "sin")
    calibration = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), np.uint8)
    with pytest.raises(MobilenetsError, match="int8 export left float ops in the model: .*SIN"):
        convert(saved, "int8", "uint8", calibration)


def test_hard_swish_is_found_and_rewritten_to_the_same_function():
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Activation("hard_swish")(keras.layers.Conv2D(2, 1)(inputs)))
    rewritten = int8_friendly(model)
    assert has_hard_swish(model) and not has_hard_swish(rewritten)
    images = np.random.default_rng(0).uniform(-8, 8, (2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(rewritten(images), model(images), atol=1e-5)


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
    # Wrapped flat, not nested: int8 reconstruction reaches the model's own convolutions.
    r = export(tmp_path / "plain.h5", quantize="int8", calibration=make_folder(tmp_path / "c", per_class=3),
               calibration_size=9, parity=False, out_dir=tmp_path / "int8", progress=False)
    info = json.loads((r.out_dir / "config.json").read_text())["files"]["model_int8.tflite"]
    assert info["int8_method"] == "reconstruct" and info["reconstructed_layers"] == sum(
        1 for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense"))



# --------------------------------------------------------------- one set


def _consistent(folder) -> set[str]:
    """The files config.json lists, after checking each one's sha256; fails on any mismatch."""
    import hashlib

    cfg = json.loads((folder / "config.json").read_text())
    for name, info in cfg["files"].items():
        if "sha256" in info:
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == info["sha256"], name
    return set(cfg["files"])


def test_reexport_replaces_the_set_whole(exported, run, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(run / "export", out)  # the module's set: four modes and a report
    r = export(run, out_dir=out, quantize="dynamic", parity=False)
    # The earlier files and the earlier report went with their set.
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "labels.txt", "model_dynamic.tflite"]
    assert _consistent(out) == {"model_dynamic.tflite"} and r.files == {
        "model_dynamic.tflite": out / "model_dynamic.tflite"}
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging or old set left beside it


def test_export_refuses_a_folder_that_is_not_an_export(run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(MobilenetsError, match=r"holds files that are not an export \(notes.txt\)"):
        export(run, out_dir=tmp_path, quantize="none", parity=False)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_leftovers_of_a_killed_export_are_cleaned(tmp_path):
    """A kill between the swap's two renames: the old set is back, the new one removed."""
    from mobilenets.export import clean_leftovers

    dest = tmp_path / "export"
    dead = 2 ** 22 + 1  # above the default pid_max: no such process
    (tmp_path / f".export.old-{dead}-ab12").mkdir()
    (tmp_path / f".export.old-{dead}-ab12" / "config.json").write_text("{}")
    (tmp_path / f".export.staging-{dead}-ab12").mkdir()
    (tmp_path / f".other.staging-{dead}-cd34").mkdir()  # another folder's: not ours to touch
    clean_leftovers(dest)
    assert (dest / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.staging-{dead}-cd34", "export"]
    (dest / ".export-x1y2").mkdir()  # scratch folders of earlier versions, inside the set
    (dest / ".convert-x1y2").mkdir()
    (tmp_path / f".export.staging-{os.getpid()}-live").mkdir()  # this process's own: a leftover
    clean_leftovers(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json"]


@pytest.mark.slow
def test_kill_9_during_reexport_keeps_the_old_set(exported, run, tmp_path):
    """SIGKILL a re-export once its new float32 file is written: the old set (float32 and
    int8, config.json's sha256 sums) is untouched, and the next export cleans up."""
    from _debris import kill_9_when

    out = tmp_path / "export"
    shutil.copytree(run / "export", out)  # the module's full set: four modes and a report
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    before_files = _consistent(out)
    # A different model makes different files: a mixed set would show.
    other = make_run(tmp_path / "other", make_folder(tmp_path / "colours"), seed=1)
    kill_9_when(["export", other, "--out", out, "--quantize", "none,int8", "--calibration-size", "20"],
                lambda: any(tmp_path.glob(".export.staging-*/model_float32.tflite")), "export")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert _consistent(out) == before_files
    assert list(tmp_path.glob(".export.staging-*"))  # what the killed run left
    export(other, out_dir=out, quantize="none", parity=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert _consistent(out) == {"model_float32.tflite"}
