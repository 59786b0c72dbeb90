"""Augmentation: the options a user writes, and what the TF ops do to images."""

import numpy as np
import pytest

from mobilenets.augment import PRESETS, Augment, augment_fn
from mobilenets.errors import MobilenetsError

# ------------------------------------------------------------------ options


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_parses_to_its_settings_and_describes_itself_back(name):
    a = Augment.parse(name)
    assert a == Augment(**PRESETS[name])
    assert Augment.parse(a.describe()) == a
    assert a.is_identity == (name == "none")


def test_nothing_given_is_no_augmentation():
    assert Augment.parse(None) == Augment.parse("") == Augment.parse("none") == Augment()
    assert Augment().is_identity and Augment().describe() == "none"


def test_short_names_full_names_and_dashes_mean_the_same():
    a = Augment.parse("flip,crop=10,scale=5,brightness=20")
    assert a == Augment(flip_left_right=True, random_crop=10.0, random_scale=5.0, random_brightness=20.0)
    assert Augment.parse("flip-left-right, random_crop=10, random-scale=5,BRIGHTNESS=20") == a
    assert a.describe() == "flip,crop=10,scale=5,brightness=20"


def test_presets_and_keys_mix_and_later_items_win():
    a = Augment.parse("cifar,shift=5,fill=constant")
    assert a == Augment(flip_left_right=True, pad_crop=4, shift=5.0, fill="constant")
    assert Augment.parse("cifar,flip=off").flip_left_right is False
    assert Augment.parse("flip=0,retrain").flip_left_right is True


def test_an_augment_or_a_dict_passes_through_and_config_json_rebuilds_it():
    a = Augment.parse("retrain,shift=10")
    assert Augment.parse(a) is a
    assert Augment.parse(a.to_dict()) == a
    assert Augment.parse({"flip_left_right": True}) == Augment.parse("flip")


@pytest.mark.parametrize("text, message", [
    ("rotate=10", "unknown augmentation 'rotate=10' in 'rotate=10'; use presets none, flip, shift, retrain, cifar"),
    ("flip,cutmix", "unknown augmentation 'cutmix' in 'flip,cutmix'"),
    ("crop=ten", "bad value for random_crop in 'crop=ten'. Received 'ten'"),
    ("flip=maybe", "bad value for flip_left_right in 'flip=maybe'. Received 'maybe'"),
    ("pad_crop=2.5", "bad value for pad_crop in 'pad_crop=2.5'. Received '2.5'"),
    ("crop=100", "random_crop is a percentage in [0, 100). Received random_crop=100.0"),
    ("brightness=-5", "random_brightness is a percentage in [0, 100). Received random_brightness=-5.0"),
    ("pad_crop=-1", "pad_crop must be a whole number of pixels >= 0. Received pad_crop=-1"),
    ("shift=5,fill=wrap", "fill must be one of reflect, constant. Received fill='wrap'"),
])
def test_bad_options_are_one_line_errors_quoting_the_value(text, message):
    with pytest.raises(MobilenetsError) as e:
        Augment.parse(text)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_the_unknown_option_error_lists_the_keys_a_user_can_write():
    with pytest.raises(MobilenetsError) as e:
        Augment.parse("rotate=10")
    for key in ("flip", "crop", "scale", "brightness", "shift", "pad_crop", "fill"):
        assert key in str(e.value)


# ------------------------------------------------------------------ TF ops


def _images(n=16, h=8, w=12):
    """A batch whose every image differs left to right (so a flip shows) and from the others."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, h, w, 3)).astype("uint8")


def _run(augment, images, seed=(1, 2)):
    fn = augment_fn(augment, images.shape[-3:-1])
    labels = np.arange(len(images)) if images.ndim == 4 else np.int64(7)
    out, out_labels = fn(images, labels, np.array(seed, "int64"))
    return np.asarray(out), np.asarray(out_labels), labels


@pytest.mark.parametrize("augment", ["none", "flip", "shift", "retrain", "cifar", "shift=20,fill=constant"])
def test_ops_keep_shape_return_float32_in_0_255_and_leave_labels(augment):
    images = _images()
    out, out_labels, labels = _run(augment, images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(out_labels, labels)
    one, one_label, _ = _run(augment, images[0])
    assert one.shape == images[0].shape and one.dtype == np.float32 and one_label == 7


def test_no_augmentation_returns_the_pixels_unchanged():
    images = _images()
    out, _, _ = _run("none", images)
    np.testing.assert_array_equal(out, images.astype("float32"))


def test_flip_mirrors_some_images_left_to_right_and_leaves_the_rest():
    images = _images()
    out, _, _ = _run("flip", images)
    flipped = [np.array_equal(o, im[:, ::-1]) for o, im in zip(out, images)]
    kept = [np.array_equal(o, im) for o, im in zip(out, images)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image is one or the other
    assert any(flipped) and any(kept)  # each image draws its own coin


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    images = _images()
    a, _, _ = _run("retrain,shift=10", images, seed=(3, 4))
    b, _, _ = _run("retrain,shift=10", images, seed=(3, 4))
    c, _, _ = _run("retrain,shift=10", images, seed=(5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_brightness_scales_each_image_by_one_factor_within_its_range():
    images = np.full((8, 4, 4, 3), 100, "uint8")
    out, _, _ = _run("brightness=20", images)
    for o in out:
        assert np.allclose(o, o.flat[0])  # one factor per image
        assert 80 - 1e-3 <= o.flat[0] <= 120 + 1e-3
    assert len({round(float(o.flat[0]), 3) for o in out}) > 1


def test_pad_crop_is_a_window_of_the_reflect_padded_image():
    images = _images(n=8, h=8, w=8)
    out, _, _ = _run("pad_crop=2", images)
    for o, im in zip(out, images):
        padded = np.pad(im, [(2, 2), (2, 2), (0, 0)], mode="reflect").astype("float32")
        windows = [padded[y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(np.array_equal(o, win) for win in windows)
