"""Models built through keras.applications, with the counts the sources give."""

import numpy as np
import pytest

from mobilenets.errors import MobilenetsError
from mobilenets.models import (HEAD_LAYERS, backbone_layer_count, build_model,
                               imagenet_weight_files)


@pytest.mark.parametrize("spec, classes, params", [
    ("v1-1.00-224", 1000, 4_253_864),
    ("v2-1.00-224", 1000, 3_538_984),
    ("v1-0.50-32", 10, 834_666),  # the seed's CIFAR-10 table
])
def test_exact_param_counts(spec, classes, params):
    assert build_model(spec, classes=classes).count_params() == params


def test_seed_table_trainable_split():
    m = build_model("v1-0.50-32", classes=10)
    trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
    assert (trainable, m.count_params() - trainable) == (823_722, 10_944)


def test_new_head_and_preprocessing_take_raw_pixels():
    m = build_model("v1-0.25-32", classes=4, head="new", preprocessing=True)
    names = [layer.name for layer in m.layers]
    assert names[1] == "preprocess"
    assert names[-3:] == list(HEAD_LAYERS)
    assert backbone_layer_count(m) == len(names) - 3
    out = m.predict(np.full((2, 32, 32, 3), 255.0, "float32"), verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_weight_file_names_follow_keras():
    from mobilenets.specs import parse_spec

    assert imagenet_weight_files(parse_spec("v1-0.25-128"))[:2] == [
        "mobilenet_2_5_128_tf_no_top.h5", "mobilenet_2_5_224_tf_no_top.h5"]
    assert imagenet_weight_files(parse_spec("v2-0.35-96"))[0] == (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5")
    assert imagenet_weight_files(parse_spec("v3-large-0.50-224")) == []


def test_imagenet_weights_from_keras_cache(keras_home, shared):
    import h5py

    m = build_model("v1-0.25-96", classes=3, weights="imagenet", head="new")
    kernel = m.get_layer("conv1").get_weights()[0]
    with h5py.File(shared / "weights" / "mobilenet_2_5_224_tf_no_top.h5") as f:
        stored = f["conv1"]["conv1"]["kernel:0"][()]
    np.testing.assert_array_equal(kernel, stored)


def test_v2_legacy_layer_names_load_by_order(keras_home):
    m = build_model("v2-0.35-96", classes=3, weights="imagenet", head="new")
    w = m.get_layer("Conv1").get_weights()[0]
    assert np.abs(w).sum() > 0 and w.std() > 0.01


def test_missing_weights_offline_says_what_to_do(keras_home):
    with pytest.raises(MobilenetsError) as e:
        build_model("v1-0.75-128", classes=3, weights="imagenet", head="new")
    msg = str(e.value)
    assert "mobilenet_7_5_128_tf_no_top.h5" in msg and "--weights" in msg
    assert "\n" not in msg


def test_full_model_h5_gives_imagenet_predictions(shared):
    from PIL import Image

    m = build_model("v1-0.25-224", weights=shared / "weights" /
                    "mobilenet_v1_0.25_224_imagenet_full_model.h5", preprocessing=True)
    img = Image.open(shared / "models" / "cat.bmp").convert("RGB").resize((224, 224))
    probs = m.predict(np.asarray(img, "float32")[None], verbose=0)[0]
    assert int(probs.argmax()) in range(281, 286)  # the ImageNet cat classes


def test_bad_weights_path():
    with pytest.raises(MobilenetsError, match="weights file not found"):
        build_model("v1-0.25-32", classes=2, weights="/nonexistent.h5", head="new")


def test_a_keras_refusal_without_a_message_is_still_one_line(monkeypatch):
    import keras

    def refuse(**kwargs):
        raise ValueError()

    monkeypatch.setattr(keras.applications, "MobileNet", refuse)
    with pytest.raises(MobilenetsError, match=r"^cannot build v1-0\.25-128: ValueError$"):
        build_model("v1-0.25-128")
