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
    ("v1-0.50-16", "at least 32x32. Received 16x16"),
    ("v1-0-224", "Received alpha=0.0"),
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
