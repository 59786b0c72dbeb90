"""MobileNetV4 from its block tables: the published counts, the spec grammar, names, weights."""

import numpy as np
import pytest

from mobilenets.models import build_model
from mobilenets.models_v4 import ARCHITECTURES, blocks, make_divisible
from mobilenets.profile import profile
from mobilenets.specs import ModelSpec, parse_spec
from mobilenets.zoo import list_variants, variant


# Trainable params are what timm and the paper count (BatchNorm's moving
# statistics are buffers there); timm's model cards round to 0.1 M / 0.1 G.
@pytest.mark.parametrize("spec, trainable, mmacs, timm_params_m, timm_gmacs, paper_params_m, paper_gmacs", [
    ("v4-conv-s-224", 3_774_024, 186.0, 3.8, 0.2, 3.8, 0.2),
    ("v4-conv-m-256", 9_715_512, 1080.2, 9.7, 1.1, 9.2, 1.0),
    ("v4-conv-l-384", 32_590_864, 6376.2, 32.6, 6.4, 31.0, 5.9),
])
def test_published_counts(spec, trainable, mmacs, timm_params_m, timm_gmacs, paper_params_m, paper_gmacs):
    p = profile(spec)
    assert p.trainable_params == trainable
    assert round(p.macs / 1e6, 1) == mmacs
    assert round(p.trainable_params / 1e6, 1) == timm_params_m
    assert round(p.macs / 1e9, 1) == timm_gmacs
    # The paper's Conv-M and Conv-L figures are below its own released
    # architecture's (README: "The MobileNets, computed"); Conv-S agrees.
    assert p.trainable_params / 1e6 >= paper_params_m - 0.05
    assert p.macs / 1e9 >= paper_gmacs - 0.05


def test_timm_conv_small_at_224_is_3_77_m_and_0_19_gmacs():
    p = profile("v4-conv-s-224")
    assert (round(p.trainable_params / 1e6, 2), round(p.macs / 1e9, 2)) == (3.77, 0.19)


def test_the_tables_hold_all_four_uib_forms_and_fused_ib():
    forms = {b.form for arch in ARCHITECTURES.values() for stage in arch.stages for b in stage}
    assert forms == {"conv", "fused", "ExtraDW", "IB", "ConvNext", "FFN"}
    # Conv-S: 2 + 2 + 6 + 6 + 1 blocks once repeats unroll; four stride-2 blocks after the stem.
    table = blocks(parse_spec("v4-conv-s-224"))
    assert len(table) == 17 and sum(b.stride == 2 for b in table) == 4
    assert len(blocks(parse_spec("v4-conv-m-256"))) == 23
    assert len(blocks(parse_spec("v4-conv-l-384"))) == 28


@pytest.mark.parametrize("text, family, alpha, h, w, name", [
    ("v4-conv-s-224", "v4-conv-s", 1.0, 224, 224, "v4-conv-s-224"),
    ("V4-Conv-M-256", "v4-conv-m", 1.0, 256, 256, "v4-conv-m-256"),
    ("v4-conv-l-1.00-384", "v4-conv-l", 1.0, 384, 384, "v4-conv-l-384"),
    ("v4-conv-s-0.5-32", "v4-conv-s", 0.5, 32, 32, "v4-conv-s-0.50-32"),
    ("v4-conv-s-224x160", "v4-conv-s", 1.0, 224, 160, "v4-conv-s-224x160"),
    ("mobilenet_v4_conv_s_1.00_224", "v4-conv-s", 1.0, 224, 224, "v4-conv-s-224"),
])
def test_spec_grammar(text, family, alpha, h, w, name):
    spec = parse_spec(text)
    assert spec == ModelSpec(family, alpha, h, w)
    assert spec.name == name and spec.version == "v4"
    assert parse_spec(spec.name) == parse_spec(spec.keras_name) == spec


@pytest.mark.parametrize("text", ["v4-conv-x-224", "v4-conv-s", "v4-conv-s-16", "v4-conv-s-224-min",
                                  "v4-conv-s-3.0-224"])
def test_bad_v4_specs(text):
    from mobilenets.errors import SpecError

    with pytest.raises(SpecError, match="v4-conv"):
        parse_spec(text)


def test_width_multiplier_rounds_like_timm():
    # make_divisible(c * alpha, 8), never 10% below; the stem stays 32 below 1.0.
    assert [make_divisible(c) for c in (96 * 0.5, 64 * 0.35, 960 * 0.35, 20)] == [48, 24, 336, 24]
    m = build_model("v4-conv-s-0.50-32", classes=3)
    assert m.get_layer("stem_conv").filters == 32
    assert m.get_layer("block_0_conv").filters == 16
    assert m.get_layer("block_16_conv").filters == 480
    assert m.get_layer("conv_head").filters == 1280


def test_layer_names_are_predictable_and_the_head_is_v4s():
    m = build_model("v4-conv-s-32", classes=5)
    names = [layer.name for layer in m.layers]
    assert names[:4] == ["image", "stem_conv_pad", "stem_conv", "stem_conv_bn"]
    assert names[-8:] == ["block_16_conv_relu", "avg_pool", "conv_head", "conv_head_bn", "conv_head_relu",
                          "flatten", "dropout", "predictions"]
    assert m.get_layer("conv_head").use_bias is False
    # ExtraDW block 4: depthwise (no activation), expand, depthwise stride 2, project; no residual.
    block = [n for n in names if n.startswith("block_4_")]
    assert block == ["block_4_dw_start", "block_4_dw_start_bn", "block_4_expand", "block_4_expand_bn",
                     "block_4_expand_relu", "block_4_dw_mid_pad", "block_4_dw_mid", "block_4_dw_mid_bn",
                     "block_4_dw_mid_relu", "block_4_project", "block_4_project_bn"]
    assert "block_5_add" in names and "block_10_add" not in names
    assert {type(layer).__name__ for layer in m.layers} <= {
        "InputLayer", "ZeroPadding2D", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
        "GlobalAveragePooling2D", "Flatten", "Dropout", "Dense"}


def test_heads_and_a_keras_weights_file_of_the_same_architecture(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    a = build_model("v4-conv-s-0.50-32", classes=4, head="new", preprocessing=True)
    path = tmp_path / "v4.weights.h5"
    a.save_weights(path)
    b = build_model("v4-conv-s-0.50-32", classes=4, head="new", preprocessing=True, weights=str(path))
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert build_model("v4-conv-s-32", head="none").output_shape == (None, 960)


def test_zoo_lists_v4_with_the_papers_top1():
    assert [v.name for v in list_variants("v4")] == ["v4-conv-s-224", "v4-conv-m-256", "v4-conv-l-384"]
    assert [v.top1 for v in list_variants("v4")] == [73.8, 79.9, 82.9]
    assert variant("v4-conv-s-224").top1_source == "paper-v4"
    assert not variant("v4-conv-s-224").imagenet_weights
    assert variant("v4-conv-s-256").top1 is None  # published at 224 only
