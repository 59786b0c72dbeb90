"""The profiler reproduces the papers from the graph, for Keras and TFLite."""

import pytest

from mobilenets.errors import MobilenetsError
from mobilenets.profile import profile


@pytest.mark.parametrize("spec, paper_mmacs", [
    ("v1-1.00-224", 569), ("v1-1.00-192", 418), ("v1-1.00-160", 290), ("v1-1.00-128", 186),
    ("v1-0.75-224", 325), ("v1-0.50-224", 149), ("v1-0.25-224", 41),
])
def test_mobilenet_v1_paper_macs(spec, paper_mmacs):
    assert abs(profile(spec).macs / 1e6 - paper_mmacs) < 1.0


def test_macs_change_with_resolution_unlike_the_seed_table():
    macs = {r: profile(f"v1-1.00-{r}").macs for r in (224, 192, 160, 128)}
    assert macs[224] > macs[192] > macs[160] > macs[128]


def test_v2_paper():
    p = profile("v2-1.00-224")
    assert abs(p.macs / 1e6 - 300) < 3
    assert abs(p.params / 1e6 - 3.4) < 0.15


@pytest.mark.parametrize("spec, lo, hi", [
    ("v3-large-1.00-224", 215, 220),  # published 217 (Keras/slim) and 219 (paper)
    ("v3-small-1.00-224", 55, 67),  # paper 56, slim table 66
])
def test_v3_published(spec, lo, hi):
    assert lo <= profile(spec).macs / 1e6 <= hi


def test_per_layer_rows_sum_to_total():
    p = profile("v1-0.25-128")
    assert sum(r["macs"] for r in p.layers) == p.macs
    assert sum(r["params"] for r in p.layers) == p.params
    dw = [r for r in p.layers if r["name"] == "conv_dw_1"][0]
    assert dw["type"] == "DepthwiseConv2D" and dw["output_shape"] == [1, 64, 64, 8]
    assert p.weight_bytes == 4 * p.params
    assert p.peak_activation_bytes > 0


def test_published_tflite_matches_keras(shared):
    """A quantized TFLite model no one here made: same MACs as our Keras build."""
    tfl = profile(shared / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    keras = profile("v1-0.25-128", classes=1001)
    assert tfl.source == "tflite" and tfl.input_shape == [128, 128, 3]
    assert abs(tfl.macs - keras.macs) / keras.macs < 0.01
    assert abs(tfl.params - keras.params) / keras.params < 0.03  # BN folded into convs
    assert tfl.weight_bytes < keras.weight_bytes / 3  # uint8 weights
    assert tfl.file_bytes > tfl.weight_bytes


def test_tflite_profile_shows_what_the_file_says(shared, capsys):
    """Any file's metadata: a published model's name, labels, normalization, I/O, float ops."""
    from mobilenets.cli import main

    model = shared / "models" / "mobilenet_v1_0.25_128_quant.tflite"
    meta = profile(model).metadata
    assert meta["name"] == "ImageClassifier" and meta["labels"] == 1001
    assert meta["normalization"] == {"mean": [127.5], "std": [127.5]} and meta["float_ops"] == {}
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["zero_point"] == 128
    assert main(["profile", str(model)]) == 0
    out = capsys.readouterr().out
    for text in ("ImageClassifier", "yes (min parser 1.0.0)", "1001 (imagenet_labels.txt)",
                 "mean [127.5], std [127.5]", "scale 0.0078125, zero point 128", "none (all integer)"):
        assert text in out


def test_describe_a_published_model(shared):
    from mobilenets.profile import describe

    d = describe(shared / "models" / "mobilenet_v1_0.25_128_quant.tflite")
    assert d["name"] == "ImageClassifier" and d["labels"] == 1001
    assert d["input"] == {"dtype": "uint8", "shape": [1, 128, 128, 3], "scale": 0.0078125, "zero_point": 128}
    assert d["float_ops"] == {} and d["mobilenets"] is None
    assert d["metadata_entries"] == ["TFLITE_METADATA", "min_runtime_version"]


def test_keras_file(tmp_path):
    from mobilenets.models import build_model

    m = build_model("v1-0.25-32", classes=3, head="new", preprocessing=True)
    m.save(tmp_path / "m.keras")
    p = profile(tmp_path / "m.keras")
    assert p.params == m.count_params() and p.file_bytes > 0


@pytest.mark.parametrize("name, content, fragment", [
    ("bad.keras", b"hello", "not a Keras model file"),
    ("bad.h5", b"hello", "not a Keras model file"),
    ("bad.tflite", b"hello world!", "not a TFLite model"),
])
def test_bad_model_files(tmp_path, name, content, fragment):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(MobilenetsError, match=fragment):
        profile(f)


def test_truncated_tflite(tmp_path, shared):
    f = tmp_path / "cut.tflite"
    f.write_bytes((shared / "models" / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()[:5000])
    with pytest.raises(MobilenetsError, match="cannot load TFLite model"):
        profile(f)
