"""Predict: third-party and own models, labels, streaming folders, bad files."""

import json

import numpy as np
import pytest

from _tiny import make_folder, make_run
from mobilenets.cli import main
from mobilenets.data import load_image
from mobilenets.errors import MobilenetsError
from mobilenets.export import export, load_source
from mobilenets.predict import (TFLiteClassifier, align_labels, list_images, load_classifier,
                                predict_files)

CAT_CLASSES = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese",
               "Egyptian cat", "lynx, catamount"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("predict") / "colours", per_class=6)


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", folder)


@pytest.fixture(scope="module")
def tflite(run):
    return export(run, quantize="none", parity=False).files["model_float32.tflite"]


@pytest.fixture
def messy(folder, tmp_path):
    """Two good images, a truncated JPEG, a text file posing as .jpg, and a note that is ignored."""
    good = sorted((folder / "red").glob("*.jpg"))[:2]
    d = tmp_path / "messy"
    d.mkdir()
    for i, p in enumerate(good):
        (d / f"good_{i}.jpg").write_bytes(p.read_bytes())
    (d / "truncated.jpg").write_bytes(good[0].read_bytes()[:200])
    (d / "text.jpg").write_text("not an image\n")
    (d / "notes.txt").write_text("skipped: not an image extension\n")
    return d


def test_shared_model_cat_and_parrot(shared, capsys):
    models = shared / "models"
    argv = ["predict", str(models / "mobilenet_v1_0.25_128_quant.tflite"), str(models / "cat.bmp"),
            str(models / "parrot.jpg"), "--labels", str(models / "imagenet_labels.txt"), "--json",
            "--top-k", "3"]
    assert main(argv) == 0
    header, *lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"].rsplit("/", 1)[1] for r in lines] == ["cat.bmp", "parrot.jpg"]
    assert lines[0]["label"] in CAT_CLASSES
    assert lines[1]["label"] == "macaw"
    assert len(lines[1]["top_k"]) == 3 and lines[1]["top_k"][0]["index"] == 89
    # The first line is what the file says about itself (its TFLite Metadata, its tensors).
    model = header["model"]
    assert model["name"] == "ImageClassifier" and model["labels"] == 1001
    assert model["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert model["input"]["dtype"] == "uint8" and model["input"]["zero_point"] == 128
    assert model["float_ops"] == {} and model["associated_files"] == ["imagenet_labels.txt"]


def test_shared_model_labels_come_from_its_metadata_zip(shared):
    clf = load_classifier(shared / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    assert len(clf.labels) == 1001 and clf.labels[89] == "macaw"


def test_shared_model_reads_its_quantization(shared):
    clf = load_classifier(shared / "models" / "mobilenet_v1_0.25_128_quant.tflite",
                          labels=shared / "models" / "imagenet_labels.txt")
    assert clf.input_size == (128, 128) and clf.input_range is None  # uint8: pixels as they are
    assert len(clf.labels) == 1001 and clf.labels[0] == "background"
    probs = clf.predict(np.zeros((1, 128, 128, 3), np.uint8))
    assert probs.shape == (1, 1001) and 0 <= probs.min() and probs.max() <= 1  # dequantized


def test_align_labels():
    assert align_labels(["a", "b"], 3) == ["background", "a", "b"]
    assert align_labels(["background", "a", "b"], 2) == ["a", "b"]
    assert align_labels(None, 2) == ["0", "1"]
    with pytest.raises(MobilenetsError, match="has 5 labels but the model has 3 outputs"):
        align_labels(list("abcde"), 3, "x.txt")


def test_folder_with_bad_files_reports_them_and_predicts_the_others(tflite, messy, capsys):
    assert main(["predict", str(tflite), str(messy), "--json", "--top-k", "2"]) == 0
    records = {r["path"].rsplit("/", 1)[1]: r for r in map(json.loads, capsys.readouterr().out.splitlines())
               if "model" not in r}
    assert set(records) == {"good_0.jpg", "good_1.jpg", "truncated.jpg", "text.jpg"}
    assert records["truncated.jpg"] == {"path": str(messy / "truncated.jpg"),
                                        "error": records["truncated.jpg"]["error"]}
    assert "truncated" in records["truncated.jpg"]["error"]
    assert "not an image" in records["text.jpg"]["error"]
    for name in ("good_0.jpg", "good_1.jpg"):
        assert records[name]["label"] in {"blue", "green", "red"} and len(records[name]["top_k"]) == 2


def test_text_output_and_all_bad_is_exit_2(tflite, messy, tmp_path, capsys):
    assert main(["predict", str(tflite), str(messy / "truncated.jpg"), str(messy / "good_0.jpg")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{messy / 'truncated.jpg'}: error: ") and len(out) == 2
    assert main(["predict", str(tflite), str(messy / "text.jpg"), str(tmp_path / "missing.png")]) == 2
    captured = capsys.readouterr()
    assert "file not found" in captured.out
    assert captured.err.count("\n") == 1 and "none of the 2 files could be read" in captured.err


def test_broken_links_are_reported_and_a_newline_in_a_name_stays_on_its_line(tflite, messy, capsys):
    (messy / "gone.jpg").symlink_to(messy / "nowhere.jpg")
    (messy / "loop.jpg").symlink_to(messy / "loop.jpg")
    (messy / "two\nlines.jpg").write_bytes((messy / "good_0.jpg").read_bytes())
    for name in ("truncated.jpg", "text.jpg"):
        (messy / name).unlink()
    assert main(["predict", str(tflite), str(messy)]) == 0
    captured = capsys.readouterr()
    lines = {line.split(": ", 1)[0].rsplit("/", 1)[1]: line.split(": ", 1)[1]
             for line in captured.out.splitlines()}
    assert sorted(lines) == ["gone.jpg", "good_0.jpg", "good_1.jpg", "loop.jpg", "two\\nlines.jpg"]
    assert lines["gone.jpg"].startswith("error: broken symbolic link (to ")
    assert lines["loop.jpg"] == "error: symbolic link loop"
    assert not lines["two\\nlines.jpg"].startswith("error")
    assert "3 of 5 images classified, 2 unreadable" in captured.err
    assert main(["predict", str(tflite), str(messy), "--json"]) == 0  # JSON keeps the name as it is
    paths = [json.loads(line).get("path") for line in capsys.readouterr().out.splitlines()]
    assert str(messy / "two\nlines.jpg") in paths


def test_streaming_keeps_order_across_batches(run, tflite, folder):
    paths = list_images([folder])
    assert len(paths) == 18
    clf = load_classifier(tflite)
    results = list(predict_files(clf, paths, k=1, batch_size=4, workers=3))
    assert [r["path"] for r in results] == [str(p) for p in paths]
    keras = load_classifier(run)  # the run directory: Keras, labels from labels.txt
    again = list(predict_files(keras, paths, k=1, batch_size=7))
    assert [r["label"] for r in again] == [r["label"] for r in results]


def test_float_tflite_without_metadata_assumes_minus1_1(run, tflite, tmp_path, folder):
    """A third-party float model: [-1, 1] unless --input-range says otherwise."""
    plain = _write(tmp_path / "plain.tflite", _without_metadata(tflite.read_bytes()))
    images = np.stack([load_image(p, (32, 32)) for p in list_images([folder])[:4]])
    default = TFLiteClassifier(plain)
    assert default.input_range == (-1.0, 1.0) and default.labels == ["0", "1", "2"]
    as_pixels = load_classifier(plain, input_range="0,255")
    keras_probs = load_source(run).model.predict_on_batch(images.astype("float32"))
    np.testing.assert_allclose(as_pixels.predict(images), keras_probs, atol=2e-4)
    assert not np.allclose(default.predict(images), keras_probs, atol=1e-3)


def test_float_tflite_with_standard_metadata_only_uses_its_normalization(run, tflite, tmp_path, folder):
    """A float file from elsewhere whose TFLite Metadata says mean/std: that is its input range."""
    from mobilenets.tflite import CONFIG_KEY, LABELS_KEY, ClassifierInfo, read_metadata, write_metadata

    bare = _without_metadata(tflite.read_bytes())
    assert not read_metadata(bare).keys() & {CONFIG_KEY, LABELS_KEY, "TFLITE_METADATA"}
    images = np.stack([load_image(p, (32, 32)) for p in list_images([folder])[:4]])
    keras_probs = load_source(run).model.predict_on_batch(images.astype("float32"))
    pixels = _write(tmp_path / "pixels.tflite", write_metadata(bare, ClassifierInfo("x", list("abc"))))
    clf = TFLiteClassifier(pixels)
    assert clf.input_range == (0.0, 255.0) and clf.labels == ["a", "b", "c"]
    np.testing.assert_allclose(clf.predict(images), keras_probs, atol=2e-4)
    halves = ClassifierInfo("x", list("abc"), mean=(127.5,), std=(127.5,))
    assert TFLiteClassifier(_write(tmp_path / "halves.tflite", write_metadata(bare, halves))
                            ).input_range == (-1.0, 1.0)


def test_predict_json_starts_with_what_the_file_says(tflite, folder, capsys):
    assert main(["predict", str(tflite), str(folder / "red"), "--json", "--top-k", "1"]) == 0
    header, *rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = header["model"]
    assert model["name"] == "MobileNet v1-0.25-32" and model["labels"] == 3
    assert model["normalization"] == {"mean": [0.0], "std": [1.0]}  # raw 0-255 pixels
    assert model["input"]["dtype"] == "float32" and "CONV_2D" in model["float_ops"]
    assert model["mobilenets"]["quantize"] == "none" and len(rows) == 6


def _without_metadata(data: bytes) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.metadata = [m for m in model.metadata
                      if not m.name.startswith(b"mobilenets") and m.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d / "missing.tflite", "no such model file"),
    (lambda d: _write(d / "truncated.tflite", b"\x1c\0\0\0TFL3" + b"\0" * 40), "cannot load TFLite model"),
    (lambda d: _write(d / "text.keras", b"hello\n"), "not a Keras model file"),
    (lambda d: _write(d / "model.onnx", b"x"), "unsupported model file"),
])
def test_bad_model_files_give_one_line(make, fragment, tmp_path, folder, capsys):
    model = make(tmp_path)
    assert main(["predict", str(model), str(folder)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_truncated_real_tflite(tflite, tmp_path, folder, capsys):
    cut = _write(tmp_path / "cut.tflite", tflite.read_bytes()[: tflite.stat().st_size // 3])
    assert main(["predict", str(cut), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "cannot load TFLite model" in err and err.count("\n") == 1


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_faces_flag_classifies_faces_and_falls_back_to_whole_images(tflite, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (220, 260, 3), np.uint8)).save(tmp_path / "noise.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / "small.jpg")
    capsys.readouterr()
    assert main(["predict", str(tflite), str(tmp_path / "noise.jpg"), str(tmp_path / "small.jpg"),
                 "--faces", "--json"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()][1:]  # after the model line
    assert [r["face"] for r in rows] == [False, True]  # no face: whole image; 40 px: a crop already
    assert "1 images without a face classified whole, 1 already face crops" in captured.err
