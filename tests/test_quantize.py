"""int8 reconstruction: range equalization, kernels on the converter's grid, the export option."""

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from _tiny import make_folder, make_run
from mobilenets.cli import main
from mobilenets.export import export, load_source
from mobilenets.export.quantization import exact_input
from mobilenets.predict import load_classifier
from mobilenets.quantize import HEADROOM, MAX_GAIN, equalize, reconstruct
from mobilenets.quantize.graph import bn_gain, consumer_map, folding_bn, kernel_kind, rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantize")
    folder = make_folder(root / "colours", per_class=8)
    files = sorted(folder.rglob("*.jpg"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32))) for f in files])
    return root, folder, images


def _grid_levels(model):
    """Per kernel layer: its BatchNorm-folded kernel in units of the converter's per-channel scale."""
    consumers = consumer_map(model)
    out = {}
    for layer in model.layers:
        kind = kernel_kind(layer)
        if not kind:
            continue
        w = rows(layer.kernel.numpy(), kind)
        bn = folding_bn(layer, consumers)
        if bn is not None:
            w = w * bn_gain(bn)[:, None]
        scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        out[layer.name] = w / scale
    return out


def test_equalize_keeps_the_float_outputs_and_fills_the_int8_range(tiny):
    import keras

    root, folder, images = tiny
    model = load_source(make_run(root / "v1", folder)).model
    work, gains = equalize(model, images)
    assert gains and any(np.max(k) > 1.01 for k in gains.values())
    x = images.astype(np.float32)
    np.testing.assert_allclose(work.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    name = next(iter(gains))
    probe = keras.Model(work.inputs, work.get_layer(name).output)
    peak = probe.predict(x, verbose=0).reshape(-1, gains[name].size).max(axis=0)
    scaled = (gains[name] > 1.0) & (gains[name] < MAX_GAIN)
    assert scaled.any()
    np.testing.assert_allclose(peak[scaled], 6.0 / HEADROOM, rtol=1e-3)  # room to grow on unseen images
    assert model.get_weights()[0] is not work.get_weights()[0]  # the input model is untouched


@pytest.mark.parametrize("spec", ["v1-0.25-32", "v2-0.35-32"])
def test_reconstructed_kernels_sit_on_the_int8_grid(tiny, spec):
    """The converter rounds folded kernels to max|w|/127 steps: ours are already there."""
    root, folder, images = tiny
    model = load_source(make_run(root / spec, folder, spec=spec)).model
    work, reports = reconstruct(model, images)
    assert len(reports) == sum(1 for layer in model.layers if kernel_kind(layer))
    for name, levels in _grid_levels(work).items():
        np.testing.assert_allclose(levels, np.round(levels), atol=2e-3, err_msg=name)
    # Over the network, the refit kernels reproduce the float layers better than rounding does.
    assert np.median([r.output_error for r in reports]) < np.median([r.output_error_plain for r in reports])


def test_both_int8_methods_make_integer_only_files_and_say_which(tiny, tmp_path):
    """Fidelity is measured on trained models (benchmarks/bench_int8_fidelity.py); here:
    reconstruct changes the weights, not the file's kind, size or ops, and the set says how."""
    from mobilenets.profile import float_ops

    root, folder, images = tiny
    run = make_run(tmp_path / "run", folder)
    files = {}
    for method in ("plain", "reconstruct"):
        r = export(run, quantize="int8", out_dir=tmp_path / method, int8_method=method,
                   calibration_size=24, parity=False, progress=False)
        files[method] = r.files["model_int8.tflite"].read_bytes()
        assert not float_ops(files[method])
        probs = load_classifier(r.files["model_int8.tflite"]).predict(images)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02)
        info = json.loads((tmp_path / method / "config.json").read_text())["files"]["model_int8.tflite"]
        assert info["int8_method"] == method
        assert (info.get("reconstructed_layers", 0) > 0) == (method == "reconstruct")
        assert "exact per pixel" in info["input_rescaling"]
        # In the file, the pixels' int8 tensor after the Rescaling has one level per pixel value.
        interp = Interpreter(model_content=files[method])
        pre = [t for t in interp.get_tensor_details() if "preprocess" in t["name"] and t["dtype"] == np.int8
               and len(t["shape"]) == 4 and t["shape"][1] > 1]  # the activation, not the 1x1 kernel
        assert pre and all(np.isclose(t["quantization"][0], 1 / 127.5) and t["quantization"][1] == 0
                           for t in pre)
    assert files["plain"] != files["reconstruct"]
    assert abs(len(files["plain"]) - len(files["reconstruct"])) < 0.01 * len(files["plain"])


@pytest.mark.parametrize("spec", ["v1-0.25-32", "v2-0.35-32"])
def test_exact_input_keeps_the_answers_and_every_pixel_level(tiny, spec):
    """x / 127.5 - 1 as one layer computing (x - 128) / 127.5 (a value the int8 grid holds for
    every pixel), its half-pixel shift folded into the first convolution."""
    import keras

    root, folder, images = tiny
    model = load_source(make_run(root / ("exact-" + spec), folder, spec=spec)).model
    work, shift = exact_input(model)
    assert shift == pytest.approx(0.5 / 127.5)
    x = images.astype(np.float32)
    # The first convolution's output is the same except where it reads its zero padding (for
    # stride 2 "same": the last row and column), which now stands for pixel 128, not 127.5.
    conv = next(layer.name for layer in model.layers if type(layer).__name__ == "Conv2D")
    kernel = model.get_layer(conv).kernel.numpy()
    first, moved = (keras.Model(m.inputs, m.get_layer(conv).output).predict(x, verbose=0)
                    for m in (model, work))
    np.testing.assert_allclose(moved[:, :-1, :-1] + shift * kernel.sum(axis=(0, 1, 2)),
                               first[:, :-1, :-1], atol=1e-4)
    assert np.abs(moved - first).max() <= shift * np.abs(kernel).sum(axis=(0, 1, 2)).max() + 1e-4
    pre = keras.Model(work.inputs, work.get_layer("preprocess").output).predict(x, verbose=0)
    np.testing.assert_allclose(pre * 127.5, x - 128, atol=1e-3)
    assert type(model.get_layer("preprocess")).__name__ == "Rescaling"  # the input model is untouched
    headless = keras.Model(model.inputs, keras.layers.Dense(2)(keras.layers.Flatten()(
        model.get_layer("preprocess").output)))
    assert exact_input(headless) == (headless, None)  # no first convolution to take the shift


def test_int8_method_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path), "--int8-method", "magic"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--int8-method" in err and "magic" in err
