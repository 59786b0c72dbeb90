"""Registry-driven: every variant builds, and the registry is what the CLI lists."""

import pytest

from mobilenets.models import build_model, has_imagenet_weights
from mobilenets.zoo import VARIANTS, list_variants, variant


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.name)
def test_every_variant_builds(v):
    small = v.spec.with_resolution(32)
    model = build_model(small, classes=3)
    assert model.output_shape == (None, 3)
    assert model.input_shape == (None, 32, 32, 3)


def test_registry_covers_the_issue_grid():
    assert len(list_variants("v1")) == 16
    assert len(list_variants("v2")) == 30
    assert len(list_variants("v3")) == 8
    assert len(list_variants("v4")) == 3
    assert {v.spec.alpha for v in list_variants("v1")} == {1.0, 0.75, 0.5, 0.25}
    assert {v.spec.height for v in list_variants("v2")} == {96, 128, 160, 192, 224}


def test_published_top1_has_a_source():
    for v in VARIANTS:
        assert (v.top1 is None) == (v.top1_source is None)
    assert variant("v1-1.00-224").top1 == 70.9
    assert variant("v2-1.40-224").top1 == 75.0
    assert variant("v2-1.40-160").top1 is None  # never published


def test_weights_availability_matches_keras():
    assert variant("v3-small-1.00-224-min").imagenet_weights
    assert not variant("v3-small-0.75-224-min").imagenet_weights
    assert not has_imagenet_weights(variant("v1-0.35-224").spec)


def test_filter():
    names = [v.name for v in list_variants(pattern="v1-*-224")]
    assert names == ["v1-1.00-224", "v1-0.75-224", "v1-0.50-224", "v1-0.25-224"]
    with pytest.raises(ValueError, match="Received version='v5'"):
        list_variants("v5")
