import pytest

from mobilenets.errors import SpecError
from mobilenets.specs import ModelSpec, parse_spec


@pytest.mark.parametrize("text, family, alpha, h, w, minimal", [
    ("v1-0.50-160", "v1", 0.5, 160, 160, False),
    ("v1-0.5-32", "v1", 0.5, 32, 32, False),
    ("V2-1.40-224", "v2", 1.4, 224, 224, False),
    ("v3-large-1.00-224", "v3-large", 1.0, 224, 224, False),
    ("v3-small-0.75-224-min", "v3-small", 0.75, 224, 224, True),
    ("v1-0.25-224x160", "v1", 0.25, 224, 160, False),
    ("mobilenet_1.0_224", "v1", 1.0, 224, 224, False),
    ("mobilenet_v1_0.50_160", "v1", 0.5, 160, 160, False),
    ("mobilenet_v2_1.4_224", "v2", 1.4, 224, 224, False),
    ("mobilenet_v3_small_minimalistic_1.0_224", "v3-small", 1.0, 224, 224, True),
])
def test_parse(text, family, alpha, h, w, minimal):
    assert parse_spec(text) == ModelSpec(family, alpha, h, w, minimal)


@pytest.mark.parametrize("text", ["v1-0.50-160", "v3-small-0.75-224-min", "v1-0.25-224x160"])
def test_canonical_name_round_trips(text):
    spec = parse_spec(text)
    assert spec.name == text
    assert parse_spec(spec.keras_name) == spec


@pytest.mark.parametrize("text, fragment", [
    ("v4-1.0-224", "not a model spec: 'v4-1.0-224'"),
    ("v1-0.50", "not a model spec"),
    ("mobilenet", "not a model spec"),
    ("v1-0.50-16", "each side of the input must be from 32 to 1024 pixels. Received 16x16"),
    ("v1-1.0-99999", "each side of the input must be from 32 to 1024 pixels. Received 99999x99999"),
    ("v1-0.25-224x4096", "from 32 to 1024 pixels. Received 224x4096"),
    ("mobilenet_v1_1.0_2000", "from 32 to 1024 pixels. Received 2000x2000"),
    ("v1-0-224", "alpha (width multiplier) must be from 0.05 to 2.0. Received alpha=0.0"),
    ("v1-0.01-224", "alpha (width multiplier) must be from 0.05 to 2.0. Received alpha=0.01"),
    ("v2-3.0-224", "must be from 0.05 to 2.0. Received alpha=3.0"),
    ("v2-1.0-224-min", "only for V3"),
])
def test_bad_specs_quote_input(text, fragment):
    with pytest.raises(SpecError) as e:
        parse_spec(text)
    msg = str(e.value)
    assert fragment in msg
    assert "\n" not in msg
    assert repr(text) in msg


def test_error_lists_valid_forms():
    with pytest.raises(SpecError, match="v3-small-<alpha>-<res>"):
        parse_spec("resnet50")


@pytest.mark.parametrize("text", ["v1-0.25-32", "v2-0.35-32", "v3-small-0.75-32", "v1-0.05-32",
                                  "v2-2.00-1024", "v1-1.00-1024x32", "v3-large-1.00-224"])
def test_the_edges_of_the_bounds_are_specs(text):
    assert parse_spec(text).name == text


@pytest.mark.parametrize("spec", ["v1-0.05-32", "v2-0.05-32", "v3-small-0.05-32", "v3-large-2.00-32"])
def test_the_narrowest_and_widest_specs_build(spec):
    from mobilenets.models import build_model

    assert build_model(spec, classes=2).output_shape == (None, 2)
