"""Tests for mobilenets.data and mobilenets.augment on real image files made in tmp_path.

    pytest tests/test_data.py -q
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenets.augment import Augment, augment_fn
from mobilenets.data import (
    ArrayDataset,
    BadImage,
    ImageFolder,
    load_builtin,
    load_image,
    make_dataset,
    open_dataset,
    safe_extract,
    which_set,
)
from mobilenets.errors import MobilenetsError

SHARED = Path(__file__).resolve().parents[2] / "shared"
POKEMON = SHARED / "data" / "pokemon-types"

COLOURS = {"a": (220, 30, 30), "b": (30, 30, 220), "c": (30, 200, 30)}


def _img(path: Path, colour=(128, 128, 128), size=(8, 8), noise: bool = False, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if noise:
        rng = np.random.default_rng(zlib.crc32(path.name.encode()))
        im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    else:
        im = Image.new("RGB", size, colour)
    im.save(path, **save)
    return path


def _folder(root: Path, per_class: int = 3, classes=("a", "b"), prefix: str = "img", **kw) -> Path:
    for c in classes:
        for i in range(per_class):
            _img(root / c / f"{prefix}{i:03d}.jpg", COLOURS.get(c, (90, 90, 90)), **kw)
    return root


def _splits(folder: ImageFolder) -> dict[str, str]:
    """`{class/name: split}` for every usable file."""
    return {f"{p.parent.name}/{p.name}": s for s in ("train", "val", "test") for p, _ in folder.files(s)}


# --------------------------------------------------------------------------- splitting


def test_which_set_follows_retrain_py():
    for name in ("cat.jpg", "dog_001.png", "x_nohash_3.jpg"):
        base = name.split("_nohash_")[0] if "_nohash_" in name else name
        digest = int(hashlib.sha1(base.encode()).hexdigest(), 16)
        pct = (digest % (2**27)) * (100.0 / (2**27 - 1))
        expected = "val" if pct < 10 else "test" if pct < 20 else "train"
        assert which_set(name) == expected
        assert which_set(f"/some/dir/{name}") == expected
    assert which_set("cat.jpg", 0, 0) == "train"
    assert which_set("cat.jpg", 99.99, 0) == "val"


def test_hash_split_is_stable_when_images_are_added(tmp_path):
    root = _folder(tmp_path / "d", per_class=30)
    before = _splits(ImageFolder(root, 25, 25))
    assert set(before.values()) == {"train", "val", "test"}
    _folder(root, per_class=30, prefix="new")
    _img(root / "c" / "only.jpg")  # a new class too
    for i in range(3):
        _img(root / "c" / f"more{i}.jpg")
    after = _splits(ImageFolder(root, 25, 25))
    assert len(after) == len(before) + 64
    assert all(after[name] == split for name, split in before.items())
    assert all(split == which_set(name, 25, 25) for name, split in after.items())


def test_nohash_files_share_a_split(tmp_path):
    for person in range(25):
        for k in range(3):
            for c in ("a", "b"):
                _img(tmp_path / c / f"p{person}_nohash_{k}.jpg")
    splits = _splits(ImageFolder(tmp_path))
    for person in range(25):
        assert len({splits[f"{c}/p{person}_nohash_{k}.jpg"] for k in range(3) for c in "ab"}) == 1
        # retrain.py drops everything from "_nohash_" on, the extension too.
        assert splits[f"a/p{person}_nohash_0.jpg"] == which_set(f"p{person}")


def test_pre_split_layout(tmp_path):
    _folder(tmp_path / "train", per_class=4)
    _folder(tmp_path / "validation", per_class=2)
    _folder(tmp_path / "test", per_class=1)
    folder = ImageFolder(tmp_path)
    assert folder.layout == "split-folders"
    assert folder.classes == ["a", "b"]
    assert folder.split_sizes() == {"train": 8, "val": 4, "test": 2}
    assert folder.counts()["val"] == {"a": 2, "b": 2}
    assert [label for _, label in folder.files("val")] == [0, 0, 1, 1]
    assert all(p.parent.parent.name == "test" for p, _ in folder.files("test"))


def test_pre_split_without_val_or_test(tmp_path):
    _folder(tmp_path / "train", per_class=40)
    _folder(tmp_path / "test", per_class=2)
    folder = ImageFolder(tmp_path, validation_percent=20)
    val = {p.name for p, _ in folder.files("val")}
    assert val == {p.name for p, _ in folder.files("train") + folder.files("val")
                   if which_set(p.name, 20, 0) == "val"}
    assert val and folder.split_sizes()["test"] == 4

    only_train = tmp_path / "only"
    _folder(only_train / "train", per_class=2)
    _folder(only_train / "val", per_class=1)
    folder = ImageFolder(only_train)
    assert folder.split_sizes() == {"train": 4, "val": 2, "test": 0}
    assert folder.splits == ("train", "val")
    with pytest.raises(MobilenetsError, match="'test' split .* is empty"):
        folder.dataset("test", 8)


def test_recursive_listing_extensions_and_hidden_files(tmp_path):
    _img(tmp_path / "a" / "x.JPG")
    _img(tmp_path / "a" / "deep" / "er" / "y.jpeg")
    _img(tmp_path / "a" / "z.PNG", format="PNG")
    _img(tmp_path / "b" / "g.gif", format="GIF")
    _img(tmp_path / "b" / "w.WebP", format="WEBP")
    _img(tmp_path / "b" / "m.bmp", format="BMP")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    _img(tmp_path / "b" / ".hidden.jpg")
    _img(tmp_path / ".cache" / "h.jpg")
    folder = ImageFolder(tmp_path, 0, 0)
    assert folder.classes == ["a", "b"]
    assert sorted(p.name for p, _ in folder.files("train")) == ["g.gif", "m.bmp", "w.WebP",
                                                                 "x.JPG", "y.jpeg", "z.PNG"]
    assert folder.report()["ignored"] == 1
    images, labels, paths = folder.arrays("train", (4, 6))
    assert images.shape == (6, 4, 6, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1]



def test_tiff_images_are_read_like_any_other(tmp_path):
    _img(tmp_path / "a" / "x.tif", COLOURS["a"], format="TIFF")
    _img(tmp_path / "a" / "y.TIFF", COLOURS["a"], format="TIFF")
    _img(tmp_path / "b" / "z.jpg", COLOURS["b"])
    folder = ImageFolder(tmp_path, 0, 0)
    assert sorted(p.name for p, _ in folder.files("train")) == ["x.tif", "y.TIFF", "z.jpg"]
    assert folder.report()["ignored"] == 0
    images, labels, _ = folder.arrays("train", (4, 4))
    assert labels.tolist() == [0, 0, 1] and tuple(images[0, 0, 0]) == COLOURS["a"]


# --------------------------------------------------------------------------- errors


def test_folder_errors(tmp_path):
    with pytest.raises(MobilenetsError, match="no such folder"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(MobilenetsError, match="not a folder"):
        ImageFolder(tmp_path / "file.jpg")
    one = _folder(tmp_path / "one", classes=("a",))
    with pytest.raises(MobilenetsError, match=r"1 class folder \('a'\).*at least 2 classes"):
        ImageFolder(one)
    with pytest.raises(MobilenetsError, match="no class folders"):
        ImageFolder(tmp_path / "one" / "a")
    empty = _folder(tmp_path / "empty")
    (empty / "c").mkdir()
    with pytest.raises(MobilenetsError, match="class folder 'c' has no usable images"):
        ImageFolder(empty)
    bad_only = _folder(tmp_path / "bad_only")
    (bad_only / "c").mkdir()
    (bad_only / "c" / "x.jpg").write_text("text")
    with pytest.raises(MobilenetsError, match="'c' has no usable images"):
        ImageFolder(bad_only)
    with pytest.raises(MobilenetsError, match="sum to less than 100"):
        ImageFolder(bad_only, 60, 40)
    folder = ImageFolder(_folder(tmp_path / "ok"))
    with pytest.raises(MobilenetsError, match="split must be one of"):
        folder.files("holdout")
    with pytest.raises(MobilenetsError, match="image_size is needed"):
        folder.arrays("train")
    with pytest.raises(MobilenetsError, match="resize_mode"):
        folder.arrays("train", 8, resize_mode="squash")


def test_bad_files_are_skipped_counted_and_reported(tmp_path):
    train = tmp_path / "train"
    _folder(train, per_class=3, size=(16, 16))
    _folder(tmp_path / "val", per_class=1)
    (train / "a" / "zero.jpg").write_bytes(b"")
    (train / "a" / "readme.jpg").write_text("this is a text file, renamed .jpg\n")
    good = _img(train / "b" / "noise.jpg", size=(64, 64), noise=True, quality=95).read_bytes()
    (train / "b" / "cut.jpg").write_bytes(good[: len(good) // 2])

    folder = ImageFolder(tmp_path)
    reasons = {s["path"]: s["reason"] for s in folder.skipped}
    assert reasons == {"train/a/zero.jpg": "empty file (0 bytes)",
                       "train/a/readme.jpg": "not an image (unrecognised file contents)"}
    images, labels, paths = folder.arrays("train", (8, 8))
    assert images.shape == (7, 8, 8, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert not any("cut.jpg" in p for p in paths) and any("noise.jpg" in p for p in paths)

    report = folder.report()
    assert len(report["skipped"]) == 3
    assert {"path": "train/b/cut.jpg", "reason": "truncated image data"} in report["skipped"]
    assert report["sizes"]["train"] == 7 and report["decoded"] == ["train"]
    # A second size does not decode (or skip) the bad file again.
    assert folder.arrays("train", (4, 4))[0].shape == (7, 4, 4, 3)
    assert len(folder.report()["skipped"]) == 3

    verified = ImageFolder(tmp_path, verify=True)
    assert len(verified.skipped) == 3 and verified.split_sizes()["train"] == 7


# --------------------------------------------------------------------------- odd images


def test_load_image_odd_modes(tmp_path):
    grey = Image.new("L", (6, 4), 77)
    grey.save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").tolist() == np.full((4, 6, 3), 77).tolist()

    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgba.save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [255, 0, 0]

    pal = Image.new("RGB", (4, 4), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png")[2, 2].tolist() == [0, 128, 255]
    pal.save(tmp_path / "pal.gif", transparency=0)
    assert load_image(tmp_path / "pal.gif")[2, 2].tolist() == [255, 255, 255]

    Image.new("LA", (3, 3), (10, 0)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[0, 0].tolist() == [255, 255, 255]
    Image.new("1", (3, 3), 1).save(tmp_path / "bw.bmp")
    assert load_image(tmp_path / "bw.bmp")[0, 0].tolist() == [255, 255, 255]

    deep = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    # Scaled by 255/65535, not clipped at 255.
    assert load_image(tmp_path / "deep.png")[0, :, 0].tolist() == [0, 4, 128, 255]

    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    r, g, b = load_image(tmp_path / "cmyk.jpg")[2, 2].tolist()
    assert r > 230 and g < 25 and b < 25


def test_load_image_applies_exif_orientation(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 50  # the left (red) half is now on top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 50
    assert load_image(tmp_path / "rot.jpg", (10, 5)).shape == (10, 5, 3)


def test_load_image_resize_modes_and_errors(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # a blue strip on the left quarter
    im.save(tmp_path / "wide.png")
    stretched = load_image(tmp_path / "wide.png", (10, 10))
    cropped = load_image(tmp_path / "wide.png", 10, resize_mode="center_crop")
    assert stretched.shape == cropped.shape == (10, 10, 3) and stretched.dtype == np.uint8
    assert stretched[5, 0, 2] == 255 and cropped[5, 0, 0] == 255  # the crop cut the strip off

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    for name, reason in [("empty.png", "empty file"), ("text.jpg", "not an image"),
                         ("missing.jpg", "file not found")]:
        with pytest.raises(BadImage, match=reason) as info:
            load_image(tmp_path / name)
        assert isinstance(info.value, MobilenetsError) and info.value.reason.startswith(reason)


def test_load_image_reads_bytes_as_it_reads_files_and_bounds_pixels(tmp_path):
    """An upload's bytes decode exactly as the file does; too many pixels is refused from the header."""
    from mobilenets.data import ImageTooLarge

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    assert np.array_equal(load_image(data, (32, 32)), load_image(tmp_path / "a.jpg", (32, 32)))
    with pytest.raises(BadImage, match="upload: empty file"):
        load_image(b"")
    for side, message in ((5000, "5000x5000 pixels, over the limit of 1,000,000"),
                          (20000, "could be decompression bomb")):  # past Pillow's own limit
        buf = io.BytesIO()
        Image.new("1", (side, side)).save(buf, "PNG")  # kilobytes that would decode to megapixels
        with pytest.raises(ImageTooLarge, match=f"too large to decode safely: .*{message}"):
            load_image(buf.getvalue(), (32, 32), max_pixels=1_000_000)


# --------------------------------------------------------------------------- reports and caches


def test_report_is_json_and_written_atomically(tmp_path):
    root = _folder(tmp_path / "d", per_class=3, classes=("a", "b", "c"))
    (root / "b" / "bad.jpg").write_bytes(b"")
    folder = ImageFolder(root, validation_percent=0, test_percent=0)
    report = folder.report()
    assert report["classes"] == ["a", "b", "c"] and report["layout"] == "hashed"
    assert report["counts"]["train"] == {"a": 3, "b": 3, "c": 3}
    assert report["sizes"] == {"train": 9, "val": 0, "test": 0} and report["total"] == 9
    assert report["skipped"] == [{"path": "b/bad.jpg", "reason": "empty file (0 bytes)"}]
    assert sum("fewer than 20" in w for w in report["warnings"]) == 3
    out = folder.write_report(tmp_path / "out" / "data.json")
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert [p.name for p in out.parent.iterdir()] == ["data.json"]


def test_disk_cache_reuses_decoded_arrays(tmp_path):
    root = _folder(tmp_path / "d", per_class=4)
    (root / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    cache = tmp_path / "cache"
    first = ImageFolder(root, 0, 0).arrays("train", (8, 8), cache_dir=cache)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    again = ImageFolder(root, 0, 0)
    second = again.arrays("train", (8, 8), cache_dir=cache)
    assert np.array_equal(first[0], second[0]) and first[2] == second[2]
    assert [s["path"] for s in again.skipped] == ["a/bad.jpg"]
    _img(root / "b" / "new.jpg")
    third = ImageFolder(root, 0, 0).arrays("train", (8, 8), cache_dir=cache)
    assert len(third[0]) == len(first[0]) + 1 and len(list(cache.iterdir())) == 4


def test_stream_decodes_to_a_disk_store_read_back_in_batches(tmp_path):
    root = _folder(tmp_path / "d", per_class=5, noise=True)
    (root / "b" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    cache = tmp_path / "cache"
    in_memory = ImageFolder(root, 0, 0).stream("train", (6, 4))
    folder = ImageFolder(root, 0, 0)
    on_disk = folder.stream("train", (6, 4), cache_dir=cache)
    assert len(on_disk) == len(in_memory) == 10 and on_disk.image_shape == (6, 4, 3)
    assert [s["path"] for s in folder.skipped_in("train")] == ["b/bad.jpg"]
    batches = list(on_disk.batches(3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]  # never the whole split at once
    assert np.array_equal(np.concatenate(batches), in_memory.read())
    assert np.array_equal(on_disk.labels, in_memory.labels) and on_disk.paths == in_memory.paths
    assert np.array_equal(on_disk.take([7, 0, 7]), in_memory.read()[[7, 0, 7]])
    # One key for the same pixels, wherever they are; the store is a plain .npy.
    assert on_disk.content_key == in_memory.content_key
    (store,) = cache.glob("*.npy")
    assert np.array_equal(np.load(store), in_memory.read())
    # A store whose folder was removed (a scratch folder) is decoded again, not read from nowhere.
    for f in cache.iterdir():
        f.unlink()
    assert np.array_equal(folder.stream("train", (6, 4), cache_dir=cache).read(), in_memory.read())


def test_a_store_left_by_an_interrupted_decode_is_not_reused(tmp_path, monkeypatch):
    import mobilenets.data.folder as folder_module

    root = _folder(tmp_path / "d", per_class=40, noise=True)
    cache = tmp_path / "cache"
    calls = {"n": 0}
    real = folder_module.load_image

    def dies_half_way(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 40:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(folder_module, "load_image", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        ImageFolder(root, 0, 0, workers=1).stream("train", (8, 8), cache_dir=cache)
    assert list(cache.iterdir()) == []  # no store, no temporary file
    monkeypatch.setattr(folder_module, "load_image", real)
    whole = ImageFolder(root, 0, 0).stream("train", (8, 8), cache_dir=cache)
    assert len(whole) == 80 and sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    # A store whose .json was never written (killed in between) is decoded again.
    (meta,) = cache.glob("*.json")
    meta.unlink()
    again = ImageFolder(root, 0, 0).stream("train", (8, 8), cache_dir=cache)
    assert np.array_equal(np.concatenate(list(again.batches(16))), whole.read()) and meta.is_file()


def test_make_dataset_reads_a_disk_store_like_an_array(tmp_path):
    folder = ImageFolder(_folder(tmp_path / "d", per_class=6, noise=True), 0, 0)
    images = folder.stream("train", (8, 8), cache_dir=tmp_path / "cache")
    kw = dict(batch_size=5, shuffle=True, seed=1, augment="flip")
    from_disk = [(x.numpy(), y.numpy()) for x, y in make_dataset(images, images.labels, **kw)]
    from_memory = [(x.numpy(), y.numpy()) for x, y in make_dataset(images.read(), images.labels, **kw)]
    assert len(from_disk) == 3
    for (a, b), (c, d) in zip(from_disk, from_memory):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    prefix = list(make_dataset(images, images.labels[:7], batch_size=4))
    assert [len(y) for _, y in prefix] == [4, 3]


# --------------------------------------------------------------------------- tf.data and augmentation


def test_dataset_yields_float_images_and_int_labels(tmp_path):
    folder = ImageFolder(_folder(tmp_path, per_class=5), 0, 0)
    ds = folder.dataset("train", (12, 10), batch_size=4)
    batches = list(ds)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype.name == "float32" and y.dtype.name == "int32"
    assert tuple(x.shape) == (4, 12, 10, 3)
    assert tuple(ds.element_spec[0].shape) == (None, 12, 10, 3)
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert 0 <= images.min() and images.max() <= 255
    # Label 0 is class "a" (red), 1 is "b" (blue).
    assert (images[labels == 0][..., 0].mean() > 180) and (images[labels == 1][..., 2].mean() > 180)

    shuffled = folder.dataset("train", (12, 10), batch_size=10, shuffle=True, seed=3)
    order1 = next(iter(shuffled))[1].numpy()
    assert sorted(order1.tolist()) == sorted(labels.tolist())
    assert order1.tolist() == next(iter(folder.dataset("train", (12, 10), batch_size=10,
                                                      shuffle=True, seed=3)))[1].numpy().tolist()


def test_augmentation_changes_pixels_keeps_shape_and_is_seedable(tmp_path):
    root = _folder(tmp_path, per_class=4, size=(24, 24), noise=True)
    folder = ImageFolder(root, 0, 0)
    plain = np.concatenate([x.numpy() for x, _ in folder.dataset("train", 16, batch_size=8)])
    for spec in ("flip,crop=20,scale=20,brightness=20", "shift=20,fill=constant", "pad_crop=3",
                 "cifar", "retrain,shift=10"):
        def run(seed):
            ds = folder.dataset("train", 16, batch_size=8, augment=spec, seed=seed)
            return np.concatenate([x.numpy() for x, _ in ds]), np.concatenate([y.numpy() for _, y in ds])
        images, labels = run(7)
        assert images.shape == plain.shape == (8, 16, 16, 3) and images.dtype == np.float32
        assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
        assert not np.allclose(images, plain), spec
        assert 0 <= images.min() and images.max() <= 255
        assert np.array_equal(images, run(7)[0])

    import tensorflow as tf

    fn = augment_fn(Augment(flip_left_right=True, shift=25), (16, 16))
    single, label = fn(tf.constant(plain[0]), 3)
    assert tuple(single.shape) == (16, 16, 3) and label == 3


def test_augment_options():
    assert Augment().is_identity and Augment.parse(None).is_identity and Augment.parse("none").is_identity
    a = Augment.parse("retrain, shift=5, flip=false")
    assert a == Augment(flip_left_right=False, random_crop=10, random_scale=10,
                        random_brightness=10, shift=5)
    assert not a.is_identity and Augment.parse(a.to_dict()) == a
    assert Augment.parse("cifar") == Augment(flip_left_right=True, pad_crop=4)
    with pytest.raises(MobilenetsError, match="unknown augmentation 'zoom=3'"):
        Augment.parse("flip,zoom=3")
    with pytest.raises(MobilenetsError, match="Received shift=150"):
        Augment(shift=150)
    with pytest.raises(MobilenetsError, match="pad_crop"):
        Augment(pad_crop=-1)
    with pytest.raises(MobilenetsError, match="bad value for random_crop"):
        Augment.parse("crop=lots")


def test_make_dataset_from_arrays():
    images = np.zeros((5, 4, 4, 3), np.uint8)
    ds = make_dataset(images, [0, 1, 0, 1, 1], batch_size=2, drop_remainder=True)
    assert [y.numpy().tolist() for _, y in ds] == [[0, 1], [0, 1]]
    with pytest.raises(MobilenetsError, match="batch_size"):
        make_dataset(images, [0] * 5, batch_size=0)


# --------------------------------------------------------------------------- built-ins


def test_digits_builtin():
    digits = load_builtin("digits")
    assert digits.classes == [str(i) for i in range(10)]
    sizes = digits.split_sizes()
    assert sizes == {"train": 1437, "val": 180, "test": 180}
    images, labels, paths = digits.arrays("train")
    assert images.shape == (1437, 8, 8, 3) and images.dtype == np.uint8 and images.max() == 255
    assert np.array_equal(images[..., 0], images[..., 2]) and paths[0] == "digits/train/00000"
    again = open_dataset("digits")
    assert np.array_equal(again.arrays("test")[1], digits.arrays("test")[1])
    x, y = next(iter(digits.dataset("val", (32, 32), batch_size=16)))
    assert tuple(x.shape) == (16, 32, 32, 3) and y.dtype.name == "int32"
    report = digits.report()
    assert report["layout"] == "builtin" and report["total"] == 1797 and not report["warnings"]
    json.dumps(report)


def _fake_cifar(root: Path, per_batch: int = 4, protocol: int = 2) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        images = np.zeros((per_batch, 32, 32, 3), np.uint8)
        images[..., 0], images[..., 1], images[..., 2] = 10, 20, b  # R, G, B = 10, 20, batch
        data = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # CIFAR rows: RRR..GGG..BBB..
        batch = {b"batch_label": name.encode(), b"labels": [(b + i) % 10 for i in range(per_batch)],
                 b"data": data, b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        blob = pickle.dumps(batch, protocol=protocol)
        # Name numpy the way the published (Python 2 era) batches do.
        (folder / name).write_bytes(blob.replace(b"cnumpy._core.", b"cnumpy.core."))
    meta = {b"label_names": [c.encode() for c in ("plane", "car", "bird", "cat", "deer",
                                                    "dog", "frog", "horse", "ship", "truck")]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


def test_cifar10_from_python_batches(tmp_path):
    folder = _fake_cifar(tmp_path / "raw")
    data = load_builtin("cifar10", folder)
    assert data.classes[:2] == ["plane", "car"] and len(data.classes) == 10
    assert data.split_sizes() == {"train": 18, "val": 2, "test": 4}
    images, labels, _ = data.arrays("train")
    assert images.shape == (18, 32, 32, 3)
    assert images[0, 5, 5].tolist() == [10, 20, 0] and images[-1, 0, 0].tolist() == [10, 20, 4]
    assert data.arrays("val")[0][0, 0, 0, 2] == 4 and data.arrays("test")[0][0, 0, 0, 2] == 5
    assert labels[:4].tolist() == [0, 1, 2, 3]

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    for source in (f"cifar10:{archive}", str(archive), f"cifar10:{tmp_path / 'raw'}"):
        opened = open_dataset(source)
        assert isinstance(opened, ArrayDataset), source
        assert np.array_equal(opened.arrays("train")[0], images)
    # The archive is read in place, never extracted.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz", "raw"]

    highest = _fake_cifar(tmp_path / "p5", protocol=pickle.HIGHEST_PROTOCOL)
    assert load_builtin("cifar10", highest).split_sizes()["test"] == 4


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > evil.txt",))


def test_cifar10_loader_refuses_code_in_pickles(tmp_path):
    folder = _fake_cifar(tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))
    with pytest.raises(MobilenetsError, match="not a CIFAR-10 python batch: unexpected object"):
        load_builtin("cifar10", folder)
    with pytest.raises(MobilenetsError, match="unknown built-in dataset"):
        load_builtin("mnist")


# --------------------------------------------------------------------------- archives


def _tar_with(path: Path, members: dict[str, bytes], symlinks: dict[str, str] = {}) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in symlinks.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def test_safe_extract_rejects_members_outside(tmp_path):
    dest = tmp_path / "out" / "dest"
    dest.mkdir(parents=True)
    evil = _tar_with(tmp_path / "evil.tar.gz", {"ok.txt": b"fine", "../evil": b"gotcha"})
    with pytest.raises(MobilenetsError, match="unsafe archive"):
        safe_extract(evil, dest)
    assert not (tmp_path / "out" / "evil").exists()

    link = _tar_with(tmp_path / "link.tar.gz", {}, symlinks={"a/passwd": "/etc/passwd"})
    with pytest.raises(MobilenetsError, match="unsafe archive"):
        safe_extract(link, dest)
    with pytest.raises(MobilenetsError, match="unsafe archive"):
        open_dataset(evil, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "evil").exists()
    assert not list((tmp_path / "cache").iterdir())  # the half-extracted folder is gone


def test_open_dataset_extracts_an_image_folder_archive_once(tmp_path):
    tree = tmp_path / "tree" / "photos"
    _folder(tree / "train", per_class=6)
    _folder(tree / "test", per_class=2)
    archive = tmp_path / "photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="photos")
    cache = tmp_path / "cache"
    folder = open_dataset(archive, cache_dir=cache)
    assert isinstance(folder, ImageFolder) and folder.layout == "split-folders"
    assert folder.root.name == "photos" and folder.root.parent.parent == cache
    assert folder.split_sizes()["test"] == 4 and sum(folder.split_sizes().values()) == 16
    assert open_dataset(archive, cache_dir=cache).root == folder.root
    assert len(list(cache.iterdir())) == 1

    assert isinstance(open_dataset(tree), ImageFolder)
    with pytest.raises(MobilenetsError, match="no such dataset"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(MobilenetsError, match="not a folder or a .tar"):
        open_dataset(tmp_path / "plain.txt")


# --------------------------------------------------------------------------- real data


def test_real_pokemon_folder():
    if not POKEMON.is_dir():
        pytest.skip(f"shared data not found at {POKEMON}")
    pikachu = load_image(POKEMON / "Electric" / "025.jpg", (32, 32))
    assert pikachu.shape == (32, 32, 3) and pikachu.dtype == np.uint8 and pikachu.std() > 10
    folder = ImageFolder(POKEMON)
    assert folder.classes == ["Electric", "Fire", "Grass", "Poison", "Water"]
    assert sum(folder.split_sizes().values()) == 839 and not folder.skipped
    assert folder.counts()["train"]["Water"] > folder.counts()["train"]["Electric"]
    images, labels, paths = folder.arrays("test", (24, 24))
    assert images.shape == (len(paths), 24, 24, 3) and set(labels.tolist()) == {0, 1, 2, 3, 4}


def test_resolved_data_makes_only_the_path_part_absolute(tmp_path, monkeypatch):
    from mobilenets.data import resolved_data, run_data

    monkeypatch.chdir(tmp_path)
    assert resolved_data("digits") == "digits" and resolved_data("cifar10") == "cifar10"
    assert resolved_data("cifar10:c.tar.gz") == f"cifar10:{tmp_path / 'c.tar.gz'}"
    assert resolved_data("corpus/data") == str(tmp_path / "corpus" / "data")
    assert run_data({"data": "digits", "data_resolved": "digits"}, "") == "digits"
    assert run_data({}, "") is None
    (tmp_path / "x").mkdir()
    assert run_data({"data": "x", "data_resolved": "/gone/x"}, "") == "x"  # as typed, when it exists here
    with pytest.raises(MobilenetsError, match="missing: '/gone/y' .*'y'.*; give DATA"):
        run_data({"data": "y", "data_resolved": "/gone/y"}, "give DATA")
