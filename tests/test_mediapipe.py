"""A client nobody here wrote reads our files: MediaPipe Tasks' ImageClassifier.

MediaPipe pulls OpenCV 5, which would replace the project's OpenCV 4, so it
lives in its own venv, `.venv-mediapipe`, that `make test` (or `make
mediapipe`) builds from `tests/mediapipe-requirements.txt`. Without it these
tests skip and say how to build it. MediaPipe runs in a subprocess
(`tests/_mediapipe_classify.py`) on each exported file and must name our
classes and agree with `mobilenets predict`.
"""

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from mobilenets.cli import main
from mobilenets.data import load_image

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-mediapipe"
SCRIPT = Path(__file__).with_name("_mediapipe_classify.py")
PER_CLASS = 10  # pokemon images per type classified


@pytest.fixture(scope="session")
def mediapipe_python() -> Path:
    """.venv-mediapipe's python, or a skip that says how to build it."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").is_file() or not python.is_file():
        log = ROOT / ".venv-mediapipe.log"
        lines = log.read_text().strip().splitlines() if log.is_file() else []
        said = ([ln for ln in lines if ln.startswith("ERROR")] or lines)[-1:]
        pytest.skip("MediaPipe venv not built: `make mediapipe` builds .venv-mediapipe"
                    + (f" (the last build said: {said[0][:200]})" if said else ""))
    return python


def mediapipe_top1(python: Path, models: list[Path], images: list[Path]) -> dict[Path, "list | dict"]:
    """MediaPipe's top category of each image by model: `{"path", "index", "label", "score"}`
    rows, or `{"error": ...}` for a model it refuses."""
    job = json.dumps({"models": list(map(str, models)), "images": list(map(str, images))})
    done = subprocess.run([str(python), str(SCRIPT)], input=job, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"MediaPipe failed: {done.stderr[-2000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {model: results[str(model)] for model in models}


def predict_top1(model: Path, images: list[Path], capsys) -> tuple[dict, list[dict]]:
    """`mobilenets predict --json`: the model line, then one record per image."""
    capsys.readouterr()
    assert main(["predict", str(model), *map(str, images), "--json", "--top-k", "1"]) == 0
    header, *rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return header["model"], rows


def test_published_coral_model_says_macaw(mediapipe_python, shared):
    """The harness itself: a file with standard metadata made by others."""
    models = shared / "models"
    coral = models / "mobilenet_v1_0.25_128_quant.tflite"
    [best] = mediapipe_top1(mediapipe_python, [coral], [models / "parrot.jpg"])[coral]
    assert best["label"] == "macaw" and best["index"] == 89


@pytest.mark.slow
def test_every_exported_kind_runs_in_mediapipe(mediapipe_python, shared, keras_home, tmp_path, capsys):
    """Retrain a tiny pokemon-type model, export every kind of file, classify in MediaPipe.

    Images are resized to the model's size first (as `mobilenets predict`
    does), so both clients see the same pixels and float files must agree on
    every image; int8 files at least as often as int8 agrees with Keras.
    """
    from mobilenets.export import export

    data = shared / "data" / "pokemon-types"
    assert main(["retrain", str(data), "--arch", "v1-0.25-96", "--epochs", "15", "--seed", "0",
                 "--runs-dir", str(tmp_path / "runs"), "--name", "pk",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    run = tmp_path / "runs" / "pk"
    classes = (run / "labels.txt").read_text().split()
    uint8 = export(run, quantize="none,float16,dynamic,int8", io="uint8", calibration_size=50,
                   parity_images=100)
    float_io = export(run, out_dir=tmp_path / "float-io", quantize="int8", io="float32",
                      calibration_size=50, parity_images=100)
    keras_agreement = {("uint8", r["model"]): r["agreement"] for r in uint8.rows}
    keras_agreement.update({("float32", r["model"]): r["agreement"] for r in float_io.rows})
    files = {("uint8", name): path for name, path in uint8.files.items()}
    files[("float32", "model_int8.tflite")] = float_io.files["model_int8.tflite"]

    sized = tmp_path / "images"
    sized.mkdir()
    images = []
    for cls in classes:
        for src in sorted((data / cls).glob("*.jpg"))[:PER_CLASS]:
            Image.fromarray(load_image(src, (96, 96))).save(sized / f"{cls}-{src.stem}.png")
            images.append(sized / f"{cls}-{src.stem}.png")

    # What the standard metadata fixes: a float file with only our entries (as exported before).
    old = tmp_path / "old_float32.tflite"
    old.write_bytes(_without_standard_metadata(files[("uint8", "model_float32.tflite")].read_bytes()))
    mediapipe = mediapipe_top1(mediapipe_python, [*files.values(), old], images)
    assert "NormalizationOptions" in mediapipe[old]["error"]
    summary = {}
    for (io, name), path in files.items():
        header, ours = predict_top1(path, images, capsys)
        assert header["name"] == "MobileNet v1-0.25-96" and header["labels"] == len(classes)
        theirs = mediapipe[path]
        assert isinstance(theirs, list), f"MediaPipe refused {name}: {theirs}"
        assert {r["label"] for r in theirs} <= set(classes), f"{name}: not our class names"
        agree = sum(a["label"] == b["label"] for a, b in zip(ours, theirs)) / len(images)
        summary[f"{name} ({io} I/O)"] = {"agreement": agree,
                                          "labels": sorted({r["label"] for r in theirs})}
        if "int8" in name:
            assert agree >= keras_agreement[(io, name)], (name, io, agree, keras_agreement)
        else:
            assert agree == 1.0, (name, agree)
    print(json.dumps({"images": len(images), "agreement_with_mobilenets_predict": summary,
                      "int8_agreement_with_keras": {f"{n} ({io} I/O)": a for (io, n), a in
                                                    keras_agreement.items() if "int8" in n}}))


def _without_standard_metadata(data: bytes) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.metadata = [m for m in model.metadata if m.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())  # re-packed: the labels zip is gone too
