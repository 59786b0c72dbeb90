"""The .tflite file contract: standard TFLite Metadata, the labels zip, our entries."""

import io
import zipfile

import pytest

from mobilenets.tflite import (LABELS_KEY, ClassifierInfo, attach_files, embed_metadata, labels_in,
                               parse_metadata, read_metadata, split_zip, standard_metadata,
                               write_metadata)


@pytest.fixture(scope="module")
def coral(shared) -> bytes:
    """A published model with standard metadata that someone else wrote."""
    return (shared / "models" / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()


def test_reads_a_published_models_metadata(coral, shared):
    meta = standard_metadata(coral)
    assert meta["name"] == "ImageClassifier" and meta["min_parser_version"] == "1.0.0"
    image, = meta["inputs"]
    assert image["color_space"] == "RGB" and image["mean"] == [127.5] and image["std"] == [127.5]
    assert (image["min"], image["max"]) == ([0.0], [255.0])
    assert meta["outputs"][0]["files"] == [{"name": "imagenet_labels.txt", "type": "TENSOR_AXIS_LABELS"}]
    labels, source = labels_in(coral)
    assert source == "imagenet_labels.txt"
    assert labels == (shared / "models" / "imagenet_labels.txt").read_text().split("\n")[:len(labels)]


def test_write_metadata_round_trip(coral):
    info = ClassifierInfo("MobileNet test", ["bird", "cat"] * 500 + ["dog"], description="d",
                          version="7", author="me", license="Apache-2.0")
    data = write_metadata(coral, info, {LABELS_KEY: b"x\n"})
    meta = standard_metadata(data)
    assert {k: meta[k] for k in ("name", "description", "version", "author", "license")} == {
        "name": "MobileNet test", "description": "d", "version": "7", "author": "me",
        "license": "Apache-2.0"}
    assert meta["min_parser_version"] == "1.0.0"
    image, scores = meta["inputs"][0], meta["outputs"][0]
    assert image["color_space"] == "RGB" and (image["mean"], image["std"]) == ([0.0], [1.0])
    assert (image["min"], image["max"]) == ([0.0], [255.0])  # a uint8 input
    assert scores["files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
    # Packed as TFLite Support packs it: the flatbuffer, then a zip anyone can list.
    assert read_metadata(data)["TFLITE_METADATA"][4:8] == b"M001"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == ["labels.txt"]  # the published file's own zip was replaced
        assert z.read("labels.txt").decode().splitlines() == info.labels
    assert labels_in(data) == ([b"x".decode()], LABELS_KEY)  # our entry comes first
    assert write_metadata(coral, info, {LABELS_KEY: b"x\n"}) == data  # same input, same bytes


def test_embed_metadata_keeps_the_zip_and_does_not_grow(coral):
    data = embed_metadata(coral, {"extra": b"1" * 1000})
    assert split_zip(data)[1] == split_zip(coral)[1] and zipfile.is_zipfile(io.BytesIO(data))
    again = embed_metadata(data, {"extra": b"2" * 1000})
    assert len(again) == len(data) and read_metadata(again)["extra"] == b"2" * 1000


def test_no_zip_and_bad_metadata():
    plain, files = split_zip(b"\x1c\0\0\0TFL3" + b"\0" * 40)
    assert files == {} and plain.startswith(b"\x1c")
    assert attach_files(attach_files(plain, {"a.txt": b"a"}), {}) == plain
    with pytest.raises(ValueError, match="M001"):
        parse_metadata(b"\x1c\0\0\0TFL3")
    assert standard_metadata(b"not a model") is None and labels_in(b"not a model") == (None, None)
