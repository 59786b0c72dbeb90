"""timm MobileNetV4 checkpoints into our Keras V4 models: checked against timm's forward pass in NumPy.

No download and no PyTorch. Each test writes a checkpoint the way timm lays
one out: the keys of timm's modules (`conv_stem`, `bn1`, `blocks.<stage>.<i>`
with `ConvBnAct`'s `conv`/`bn1`, `EdgeResidual`'s `conv_exp`/`bn1`/
`conv_pwl`/`bn2`, `UniversalInvertedResidual`'s `dw_start`/`pw_exp`/`dw_mid`/
`pw_proj` each `.conv` + `.bn`, then `conv_head`, `norm_head`, `classifier`),
PyTorch's layouts (OIHW, Linear (out, in)) and BatchNorm's
`num_batches_tracked`. The keys are built here from that structure, not from
the loader's map, and the expected logits come from `timm_forward`, timm's
forward pass written out in NumPy on the checkpoint's own arrays: NCHW,
symmetric padding `((s - 1) + (k - 1)) // 2`, BatchNorm eps 1e-5.
"""

import json

import numpy as np
import pytest

from mobilenets.cli import main
from mobilenets.env import set_reporter
from mobilenets.errors import MobilenetsError
from mobilenets.models import build_model
from mobilenets.models_v4 import ARCHITECTURES
from mobilenets.safetensors_io import read_safetensors, write_safetensors
from mobilenets.specs import parse_spec

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def divisible(v: float, divisor: int = 8) -> int:
    """timm's make_divisible: nearest multiple of 8, never more than 10% below."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def timm_blocks(family: str, alpha: float = 1.0):
    """timm's block list for a variant: (stage, index, kind, options) with channels as timm's builder sets them."""
    stem = ARCHITECTURES[family].stem  # fix_stem below 1.0: the stem keeps its width
    cin, out = stem, []
    for s, stage in enumerate(ARCHITECTURES[family].stages):
        j = 0
        for row in stage:
            for r in range(row.repeat):
                cout = divisible(row.out * alpha)  # builder: round_chs_fn(out_chs)
                stride = row.stride if r == 0 else 1
                mid = divisible(cin * row.expand)
                out.append((s, j, row.kind, dict(cin=cin, cout=cout, mid=mid, stride=stride, k=row.kernel,
                                                 start=row.start, dw_mid=row.mid)))
                cin, j = cout, j + 1
    return stem, out


def timm_state(family: str, classes: int = 1000, alpha: float = 1.0, seed: int = 0) -> dict:
    """A random state_dict with timm's keys and shapes (conv weights OIHW, BatchNorm buffers)."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(key, o, i, k):
        state[f"{key}.weight"] = rng.normal(0, np.sqrt(2 / (i * k * k)), (o, i, k, k)).astype(np.float32)

    def bn(key, c):
        state[f"{key}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[f"{key}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        state[f"{key}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        state[f"{key}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        state[f"{key}.num_batches_tracked"] = np.array(1000, np.int64)

    stem, table = timm_blocks(family, alpha)
    conv("conv_stem", stem, 3, 3)
    bn("bn1", stem)
    for s, j, kind, o in table:
        p = f"blocks.{s}.{j}"
        if kind == "conv":  # ConvBnAct
            conv(f"{p}.conv", o["cout"], o["cin"], o["k"])
            bn(f"{p}.bn1", o["cout"])
        elif kind == "fused":  # EdgeResidual
            conv(f"{p}.conv_exp", o["mid"], o["cin"], o["k"])
            bn(f"{p}.bn1", o["mid"])
            conv(f"{p}.conv_pwl", o["cout"], o["mid"], 1)
            bn(f"{p}.bn2", o["cout"])
        else:  # UniversalInvertedResidual: depthwise weights are (C, 1, k, k)
            if o["start"]:
                conv(f"{p}.dw_start.conv", o["cin"], 1, o["start"])
                bn(f"{p}.dw_start.bn", o["cin"])
            conv(f"{p}.pw_exp.conv", o["mid"], o["cin"], 1)
            bn(f"{p}.pw_exp.bn", o["mid"])
            if o["dw_mid"]:
                conv(f"{p}.dw_mid.conv", o["mid"], 1, o["dw_mid"])
                bn(f"{p}.dw_mid.bn", o["mid"])
            conv(f"{p}.pw_proj.conv", o["cout"], o["mid"], 1)
            bn(f"{p}.pw_proj.bn", o["cout"])
    conv("conv_head", 1280, table[-1][3]["cout"], 1)
    bn("norm_head", 1280)
    state["classifier.weight"] = rng.normal(0, 0.03, (classes, 1280)).astype(np.float32)
    state["classifier.bias"] = rng.normal(0, 0.1, classes).astype(np.float32)
    return state


def _conv(x, w, stride=1, depthwise=False):
    """PyTorch's conv2d (NCHW, OIHW, no bias) with timm's symmetric padding."""
    k = w.shape[-1]
    pad = ((stride - 1) + (k - 1)) // 2
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = 0
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            if depthwise:
                out = out + patch * w[:, 0, i, j][None, :, None, None]
            else:
                out = out + np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def timm_forward(state: dict, family: str, x_nchw: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """timm's MobileNetV3 class running a V4 definition, in float64: logits."""
    st = {k: v.astype(np.float64) for k, v in state.items()}

    def bn(x, key, act):
        c = (None, slice(None), None, None)
        y = (x - st[f"{key}.running_mean"][c]) / np.sqrt(st[f"{key}.running_var"][c] + 1e-5)
        y = y * st[f"{key}.weight"][c] + st[f"{key}.bias"][c]
        return np.maximum(y, 0) if act else y

    x = bn(_conv(x_nchw.astype(np.float64), st["conv_stem.weight"], 2), "bn1", True)
    for s, j, kind, o in timm_blocks(family, alpha)[1]:
        p, shortcut = f"blocks.{s}.{j}", x
        if kind == "conv":
            x = bn(_conv(x, st[f"{p}.conv.weight"], o["stride"]), f"{p}.bn1", True)
            continue  # ConvBnAct: no skip
        if kind == "fused":
            x = bn(_conv(x, st[f"{p}.conv_exp.weight"], o["stride"]), f"{p}.bn1", True)
            x = bn(_conv(x, st[f"{p}.conv_pwl.weight"]), f"{p}.bn2", False)
        else:
            if o["start"]:  # strides only when there is no middle depthwise
                x = _conv(x, st[f"{p}.dw_start.conv.weight"], 1 if o["dw_mid"] else o["stride"], True)
                x = bn(x, f"{p}.dw_start.bn", False)
            x = bn(_conv(x, st[f"{p}.pw_exp.conv.weight"]), f"{p}.pw_exp.bn", True)
            if o["dw_mid"]:
                x = bn(_conv(x, st[f"{p}.dw_mid.conv.weight"], o["stride"], True), f"{p}.dw_mid.bn", True)
            x = bn(_conv(x, st[f"{p}.pw_proj.conv.weight"]), f"{p}.pw_proj.bn", False)
        if o["stride"] == 1 and o["cin"] == o["cout"]:
            x = x + shortcut
    x = x.mean(axis=(2, 3), keepdims=True)  # global pool, then V4's head conv + norm + act
    x = bn(_conv(x, st["conv_head.weight"]), "norm_head", True)[:, :, 0, 0]
    return x @ st["classifier.weight"].T + st["classifier.bias"]


def keras_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
    """Our model's logits: the input of its softmax classifier."""
    import keras

    features = keras.Model(model.input, model.get_layer("flatten").output)(x_nhwc, training=False)
    kernel, bias = model.get_layer("predictions").get_weights()
    return np.asarray(features, np.float64) @ kernel + bias


def close(ours, theirs, tol=1e-5):
    """Within `tol` of the largest logit (float32 against float64 through ~20 blocks)."""
    err = np.abs(ours - theirs).max() / np.abs(theirs).max()
    assert err < tol, f"max |diff| / max |logit| = {err:.2e}"


# Odd sizes down the network (48 -> 24 -> 12 -> 6 -> 3 -> 2) test the padding where
# TensorFlow's 'same' and PyTorch's symmetric padding part ways.
@pytest.mark.parametrize("spec, family, alpha", [
    ("v4-conv-s-64x48", "v4-conv-s", 1.0),      # ConvBnAct, ExtraDW, IB, ConvNext
    ("v4-conv-m-0.50-48", "v4-conv-m", 0.5),   # fused IB (EdgeResidual), FFN, a width multiplier
])
def test_logits_match_timms_forward(tmp_path, spec, family, alpha):
    state = timm_state(family, alpha=alpha)
    path = write_safetensors(tmp_path / "model.safetensors", state, metadata={"format": "pt"})
    model = build_model(spec, classes=1000, weights=path, head="keras")
    h, w = parse_spec(spec).height, parse_spec(spec).width
    x = np.random.default_rng(1).uniform(-1, 1, (2, h, w, 3)).astype(np.float32)
    theirs = timm_forward(state, family, x.transpose(0, 3, 1, 2), alpha)
    close(keras_logits(model, x), theirs)
    assert np.abs(theirs).max() > 1  # not a degenerate network


def test_half_precision_checkpoints_load_as_written(tmp_path):
    state = timm_state("v4-conv-s")
    x = np.random.default_rng(2).uniform(-1, 1, (1, 48, 48, 3)).astype(np.float32)
    for dtype in ("F16", "BF16"):
        path = write_safetensors(tmp_path / f"{dtype}.safetensors", state, dtype=dtype)
        rounded = read_safetensors(path)
        assert rounded["conv_stem.weight"].dtype == np.float32
        assert not np.array_equal(rounded["conv_stem.weight"], state["conv_stem.weight"])  # really rounded
        model = build_model("v4-conv-s-48", classes=1000, weights=path, head="keras")
        np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0],
                                      rounded["conv_stem.weight"].transpose(2, 3, 1, 0))
        close(keras_logits(model, x), timm_forward(rounded, "v4-conv-s", x.transpose(0, 3, 1, 2)))


def test_retrain_backbone_and_a_new_classifier_take_all_but_the_classifier(tmp_path):
    import keras

    state = timm_state("v4-conv-s")
    path = write_safetensors(tmp_path / "model.safetensors", state)
    full = build_model("v4-conv-s-48", classes=1000, weights=path, head="keras")
    x = np.random.default_rng(3).uniform(-1, 1, (2, 48, 48, 3)).astype(np.float32)
    last = full.get_layer("block_16_conv_relu").output
    want = keras.Model(full.input, last)(x, training=False).numpy().mean(axis=(1, 2))

    # retrain's backbone: no V4 head, a new pool -> dropout -> dense on top
    new = build_model("v4-conv-s-48", classes=5, weights=path, head="new")
    pooled = keras.Model(new.input, new.get_layer("head_pool").output)(x, training=False).numpy()
    np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-5)
    backbone = build_model("v4-conv-s-48", weights=path, head="none")
    np.testing.assert_allclose(backbone(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)

    # the architecture's own head for 5 classes: conv_head and norm_head load, the classifier stays new
    five = build_model("v4-conv-s-48", classes=5, weights=path, head="keras")
    np.testing.assert_array_equal(five.get_layer("conv_head").get_weights()[0],
                                  state["conv_head.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(five.get_layer("conv_head_bn").get_weights()[3], state["norm_head.running_var"])
    assert five.get_layer("predictions").get_weights()[0].shape == (1280, 5)


def test_the_hub_config_json_gives_the_pixel_normalization(tmp_path):
    state = timm_state("v4-conv-s")
    path = write_safetensors(tmp_path / "model.safetensors", state)
    pixels = np.random.default_rng(4).integers(0, 256, (2, 48, 48, 3)).astype(np.float32)

    messages = []
    old = set_reporter(messages.append)
    try:  # no config.json: [-1, 1] as every other model here, and a message saying so
        bare = build_model("v4-conv-s-48", classes=1000, weights=path, head="keras", preprocessing=True)
    finally:
        set_reporter(old)
    assert len(messages) == 1 and "no timm config.json" in messages[0]
    close(keras_logits(bare, pixels), timm_forward(state, "v4-conv-s", (pixels / 127.5 - 1).transpose(0, 3, 1, 2)))

    # timm's config.json as the hub has it (save_config_for_hf): ImageNet's mean and std
    (tmp_path / "config.json").write_text(json.dumps({
        "architecture": "mobilenetv4_conv_small", "num_classes": 1000, "num_features": 960,
        "pretrained_cfg": {"tag": "e2400_r224_in1k", "input_size": [3, 224, 224], "interpolation": "bicubic",
                           "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "num_classes": 1000,
                           "first_conv": "conv_stem", "classifier": "classifier"}}))
    model = build_model("v4-conv-s-48", classes=1000, weights=path, head="keras", preprocessing=True)
    normalized = (pixels / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    close(keras_logits(model, pixels), timm_forward(state, "v4-conv-s", normalized.transpose(0, 3, 1, 2)))

    (tmp_path / "config.json").write_text('{"pretrained_cfg": {"mean": [0.5], "std": [0.5, 0.5, 0.5]}}')
    with pytest.raises(MobilenetsError, match="mean and std must be 3 numbers each"):
        build_model("v4-conv-s-48", weights=path, preprocessing=True)


def _refused(tmp_path, spec, state, match):
    path = write_safetensors(tmp_path / "bad.safetensors", state)
    with pytest.raises(MobilenetsError, match=match) as e:
        build_model(spec, classes=1000, weights=path, head="keras")
    assert "\n" not in str(e.value)


def test_checkpoints_that_do_not_fit_are_one_line(tmp_path):
    small = timm_state("v4-conv-s")
    # Conv-M's weights into Conv-S: Conv-S's first block is a ConvBnAct, Conv-M's an EdgeResidual
    _refused(tmp_path, "v4-conv-s-32", timm_state("v4-conv-m"),
             r"bad.safetensors has no blocks\.0\.0\.conv\.weight \(shape \(32, 32, 3, 3\)\) for "
             r"v4-conv-s-32's layer block_0_conv: not a timm mobilenetv4_conv_small checkpoint\?")
    # Conv-S at width 1.0 into Conv-S at 0.5
    _refused(tmp_path, "v4-conv-s-0.50-32", small,
             r"blocks\.0\.0\.conv\.weight has shape \(32, 32, 3, 3\), v4-conv-s-0.50-32's layer "
             r"block_0_conv needs \(16, 32, 3, 3\)")
    # a key missing, a key left over (a Hybrid's attention block, say)
    _refused(tmp_path, "v4-conv-s-32", {k: v for k, v in small.items() if k != "blocks.2.3.pw_exp.bn.running_var"},
             r"has no blocks\.2\.3\.pw_exp\.bn\.running_var \(shape \(192,\)\) for v4-conv-s-32's layer block_7_expand_bn")
    _refused(tmp_path, "v4-conv-s-32", {**small, "blocks.3.6.attn.query.proj.weight": np.zeros((4, 4), np.float32)},
             r"has blocks\.3\.6\.attn\.query\.proj\.weight \(shape \(4, 4\)\), which v4-conv-s-32 has no layer for")
    # a timm checkpoint is V4's only
    _refused(tmp_path, "v1-0.25-32", small, "timm checkpoints load into MobileNetV4 specs only")


def test_cli_retrain_refuses_another_variants_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_safetensors(tmp_path / "model.safetensors", timm_state("v4-conv-m"))
    assert main(["retrain", "digits", "--arch", "v4-conv-s-32", "--weights", "model.safetensors",
                 "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mobilenets retrain: error: model.safetensors has no blocks.0.0.conv.weight")


def test_retrain_feature_cache_follows_the_checkpoints_config_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBILENETS_CACHE", str(tmp_path / "cache"))
    write_safetensors(tmp_path / "model.safetensors", timm_state("v4-conv-s"))
    argv = ["retrain", "digits", "--arch", "v4-conv-s-32", "--weights", "model.safetensors", "--epochs", "1"]

    def features():
        assert main(argv) == 0
        return [line for line in capsys.readouterr().err.splitlines() if "bottleneck features" in line]

    assert "computed" in features()[0]  # [-1, 1]: no config.json
    (tmp_path / "config.json").write_text(json.dumps({"pretrained_cfg": {"mean": list(IMAGENET_MEAN),
                                                                          "std": list(IMAGENET_STD)}}))
    assert "computed" in features()[0]  # other pixels in, other features: not the cached ones
    assert "cache hit" in features()[0]


def test_imagenet_weights_for_v4_point_to_timms_checkpoints():
    with pytest.raises(MobilenetsError, match=r"Keras publishes no ImageNet weights for v4-conv-m-224; pass "
                       r"timm's checkpoint instead: model.safetensors with its config.json, from "
                       r"huggingface.co/timm/mobilenetv4_conv_medium\.\*"):
        build_model("v4-conv-m-224", weights="imagenet", head="new")
