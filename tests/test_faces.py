"""Faces: Haar-cascade cropping on real and drawn faces, IMDB-WIKI loading, presets."""

import concurrent.futures
import io
import json
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from mobilenets.errors import MobilenetsError
from mobilenets.faces import (
    EMOTION_CLASSES,
    PRESETS,
    FaceCropper,
    as_rgb,
    crop_faces_in_folder,
    expand_box,
    gender_dataset,
    get_preset,
    imdb_wiki_to_folder,
    load_imdb_wiki,
)
from mobilenets.specs import parse_spec

cv2 = pytest.importorskip("cv2")


def draw_face(canvas: np.ndarray, cx: int, cy: int, s: float = 1.0):
    """Draw a cartoon face (what a Haar cascade keys on: dark eyes and brows
    over a lighter face, a nose shadow, a mouth); return its ellipse box."""
    skin, dark = (210, 170, 140), (30, 20, 20)
    ax, ay = int(60 * s), int(80 * s)
    cv2.ellipse(canvas, (cx, cy), (ax, ay), 0, 0, 360, skin, -1)
    for dx in (-25, 25):
        cv2.ellipse(canvas, (cx + int(dx * s), cy - int(15 * s)), (int(14 * s), int(7 * s)), 0, 0, 360, dark, -1)
        cv2.ellipse(canvas, (cx + int(dx * s), cy - int(32 * s)), (int(18 * s), int(4 * s)), 0, 0, 360,
                    (60, 45, 40), -1)
    cv2.ellipse(canvas, (cx, cy + int(15 * s)), (int(8 * s), int(6 * s)), 0, 0, 360, (150, 110, 90), -1)
    cv2.ellipse(canvas, (cx, cy + int(42 * s)), (int(22 * s), int(6 * s)), 0, 0, 360, (70, 30, 30), -1)
    return (cx - ax, cy - ay, cx + ax, cy + ay)


def face_image(h=300, w=400, cx=200, cy=150, s=1.0, bg=90):
    img = np.full((h, w, 3), bg, np.uint8)
    box = draw_face(img, cx, cy, s)
    return img, box


def noise_image(h=300, w=400, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# ---------------------------------------------------------------- cropping


def test_as_rgb_shapes():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = as_rgb(grey)
    assert rgb.shape == (3, 4, 3) and (rgb[..., 0] == grey).all() and (rgb[..., 2] == grey).all()
    assert as_rgb(grey[:, :, None]).shape == (3, 4, 3)
    assert as_rgb(np.zeros((3, 4, 4), np.uint8)).shape == (3, 4, 3)
    three = np.zeros((3, 4, 3), np.uint8)
    assert as_rgb(three) is three
    with pytest.raises(MobilenetsError, match="float32"):
        as_rgb(np.zeros((3, 4, 3), np.float32))
    with pytest.raises(MobilenetsError, match=r"\(3, 4, 2\)"):
        as_rgb(np.zeros((3, 4, 2), np.uint8))


def test_expand_box_clamps_to_image():
    assert expand_box((50, 40, 110, 120), 0.4, (160, 200)) == (26, 8, 134, 152)
    assert expand_box((0, 0, 100, 100), 0.5, (80, 90, 3)) == (0, 0, 90, 80)
    assert expand_box((10, 10, 20, 20), 0.0, (100, 100)) == (10, 10, 20, 20)


@pytest.mark.parametrize("image", [noise_image(), np.full((240, 320, 3), 128, np.uint8)], ids=["noise", "uniform"])
def test_no_face_falls_back_to_whole_image(image):
    cropper = FaceCropper()
    out, found = cropper.crop(image)
    assert not found
    assert out.shape == image.shape and (out == image).all()
    assert cropper.report()["fallback"] == 1 and cropper.report()["found"] == 0


def test_greyscale_input_gives_rgb_output():
    grey = noise_image()[:, :, 0]
    out, found = FaceCropper().crop(grey)
    assert not found and out.shape == (300, 400, 3) and (out[..., 1] == grey).all()


def test_small_images_are_taken_as_crops_already():
    cropper = FaceCropper()
    small = np.random.default_rng(1).integers(0, 256, (48, 48), dtype=np.uint8)
    out, found = cropper.crop(small)
    assert found and out.shape == (48, 48, 3)
    assert cropper.report()["already_cropped"] == 1 and cropper.report()["images"] == 1
    # Disabled: the 48px image goes through the detector (and finds nothing).
    _, found = FaceCropper(already_cropped_below=0).crop(small)
    assert not found


@pytest.mark.parametrize("cascade", ["haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml"])
def test_drawn_face_is_found_and_cropped_with_margin(cascade):
    image, drawn = face_image(cx=230, cy=140)
    cropper = FaceCropper(margin=0.2, cascade=cascade)
    box = cropper.detect(image)
    assert box is not None and iou(box, drawn) > 0.4, (box, drawn)
    out, found = cropper.crop(image)
    assert found
    x1, y1, x2, y2 = box
    want = expand_box(box, 0.2, image.shape)
    assert out.shape == (want[3] - want[1], want[2] - want[0], 3)
    assert out.shape[0] > y2 - y1 and out.shape[1] > x2 - x1  # the margin is there
    assert cropper.report()["found"] == 1


def test_drawn_face_in_greyscale_and_in_a_large_photo():
    image, drawn = face_image()
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out, found = FaceCropper().crop(grey)
    assert found and out.ndim == 3 and out.shape[2] == 3
    # 1600x1200 is shrunk to 640 for detection; the box comes back full-size.
    big, drawn = face_image(h=1200, w=1600, cx=1000, cy=500, s=4.0)
    box = FaceCropper().detect(big)
    assert box is not None and iou(box, drawn) > 0.4, (box, drawn)


def test_largest_face_wins():
    image = np.full((300, 500, 3), 90, np.uint8)
    draw_face(image, 110, 150, s=0.7)
    big = draw_face(image, 340, 150, s=1.2)
    box = FaceCropper().detect(image)
    assert box is not None and iou(box, big) > 0.4, (box, big)


def test_one_cropper_shared_by_a_thread_pool():
    images = [face_image(cx=180 + 10 * i)[0] if i % 2 == 0 else noise_image(seed=i) for i in range(8)]
    cropper = FaceCropper()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(cropper.crop, images))
    assert [found for _, found in results] == [i % 2 == 0 for i in range(8)]
    report = cropper.report()
    assert (report["images"], report["found"], report["fallback"]) == (8, 4, 4)


def test_real_fer_faces_are_found_where_they_were_pasted(shared):
    """Real 48px FER faces, upscaled to 160 px and pasted into a grey canvas."""
    faces = []
    with tarfile.open(shared / "data" / "fer-emotion-48px.tar.gz") as tar:
        for member in tar:  # stream: only the first few members are read
            if member.isfile() and member.name.endswith(".jpg"):
                faces.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("L")))
                if len(faces) == 8:
                    break
    cropper = FaceCropper(margin=0.2)
    pasted = (120, 70, 280, 230)
    found_boxes = []
    for face in faces:
        canvas = np.full((300, 400), 128, np.uint8)
        canvas[70:230, 120:280] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
        box = cropper.detect(canvas)
        if box is not None:
            found_boxes.append(box)
            out, found = cropper.crop(canvas)
            assert found and out.shape[2] == 3
    assert len(found_boxes) >= len(faces) // 2, found_boxes
    assert all(iou(b, pasted) > 0.4 for b in found_boxes), found_boxes
    # The 48px originals are crops already: no detection, no change of size.
    out, found = cropper.crop(faces[0])
    assert found and out.shape == (48, 48, 3)


def test_cropper_rejects_bad_settings(tmp_path):
    with pytest.raises(MobilenetsError, match="margin=-0.1"):
        FaceCropper(margin=-0.1)
    with pytest.raises(MobilenetsError, match="min_size=0"):
        FaceCropper(min_size=0)
    with pytest.raises(MobilenetsError, match="no_such_cascade.xml"):
        FaceCropper(cascade="no_such_cascade.xml")
    garbage = tmp_path / "bad.xml"
    garbage.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(MobilenetsError, match="bad.xml"):
        FaceCropper(cascade=str(garbage))


def test_missing_opencv_is_a_one_line_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` sees when it is not installed
    with pytest.raises(MobilenetsError, match="pip install") as e:
        FaceCropper()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("failure", ['raise ImportError("libGL.so.1: cannot open shared object file")',
                                     "import mobilenets_no_such_module"])
def test_a_broken_opencv_says_why_itself(tmp_path, monkeypatch, failure):
    """Only a missing OpenCV gets the install hint; an ImportError from inside it surfaces."""
    (tmp_path / "cv2").mkdir()
    (tmp_path / "cv2" / "__init__.py").write_text(failure + "\n")
    monkeypatch.delitem(sys.modules, "cv2")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="libGL|mobilenets_no_such_module"):
        FaceCropper()


# ---------------------------------------------------------------- folders


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_every_image_the_cropper_writes_is_one_the_folder_pipeline_reads(tmp_path):
    from mobilenets.data import ImageFolder

    src = tmp_path / "src"
    for i, ext in enumerate((".jpg", ".png", ".tif", ".tiff", ".webp", ".bmp")):
        _save(src / ("a" if i % 2 else "b") / f"{i}{ext}", noise_image(seed=i))
    dst = tmp_path / "faces"
    report = crop_faces_in_folder(src, dst, workers=1)
    assert report["written"] == 6
    folder = ImageFolder(dst, 0, 0)
    assert sorted(p.name for p, _ in folder.files("train")) == ["0.jpg", "1.png", "2.tif", "3.tiff",
                                                                 "4.webp", "5.bmp"]


def test_crop_faces_in_folder(tmp_path):
    src = tmp_path / "src"
    for i in range(2):
        _save(src / "train" / "face" / f"{i}.png", face_image(cx=190 + 20 * i)[0])
        _save(src / "train" / "other" / f"{i}.jpg", noise_image(seed=i))
    _save(src / "test" / "face" / "small.png", np.full((48, 48), 100, np.uint8))
    (src / "train" / "face" / "notes.txt").write_text("not an image")
    (src / "train" / "other" / "broken.jpg").write_bytes(b"not a jpeg")
    _save(src / ".hidden" / "x.png", noise_image(seed=9))

    dst = tmp_path / "out" / "faces"
    report = crop_faces_in_folder(src, dst, margin=0.2, workers=2)
    assert (report["images"], report["found"], report["fallback"], report["already_cropped"]) == (5, 2, 2, 1)
    assert (report["written"], report["unreadable"]) == (5, 1)
    assert json.loads((dst / "faces.json").read_text()) == report
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert written == ["faces.json", "test/face/small.png", "train/face/0.png", "train/face/1.png",
                       "train/other/0.jpg", "train/other/1.jpg"]
    assert Image.open(dst / "train" / "face" / "0.png").size[0] < 400  # cropped
    assert Image.open(dst / "train" / "other" / "0.jpg").size == (400, 300)  # whole
    small = Image.open(dst / "test" / "face" / "small.png")
    assert small.size == (48, 48) and small.mode == "RGB"
    assert not [p for p in dst.parent.iterdir() if p.name != "faces"]  # no temporary leftovers

    with pytest.raises(MobilenetsError, match="exists"):
        crop_faces_in_folder(src, dst)
    again = crop_faces_in_folder(src, dst, margin=0.0, overwrite=True)
    assert again["margin"] == 0.0 and json.loads((dst / "faces.json").read_text())["margin"] == 0.0
    with pytest.raises(MobilenetsError, match="outside"):
        crop_faces_in_folder(src, src / "faces")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MobilenetsError, match="no images"):
        crop_faces_in_folder(tmp_path / "empty", tmp_path / "e2")
    with pytest.raises(MobilenetsError, match="not a folder"):
        crop_faces_in_folder(tmp_path / "nope", tmp_path / "e3")


# ---------------------------------------------------------------- IMDB-WIKI

# One row per photo: (full_path, gender, face_score, second_face_score, box 1-based inclusive, file?)
BOX = [51.0, 41.0, 110.0, 120.0]
ROWS = [
    ("17/10000217_1981-05-05_2009.jpg", 1.0, 4.3, np.nan, BOX, True),     # kept, male
    ("48/10000548_1925-04-04_1964.jpg", 0.0, 2.6, np.nan, BOX, True),     # kept, female
    ("12/100012_1948-07-03_2008.jpg", 1.0, 3.5, 2.3, BOX, True),          # two faces
    ("65/10001965_1930-05-23_1961.jpg", 0.0, -np.inf, np.nan, [1.0, 1.0, 200.0, 160.0], True),  # no face
    ("16/10002116_1971-05-31_2012.jpg", 1.0, 0.5, np.nan, BOX, True),     # weak face
    ("02/10002702_1960-11-09_2012.jpg", np.nan, 3.0, np.nan, BOX, True),  # unknown gender
    ("41/10003541_1937-09-27_1971.jpg", 0.0, 3.0, np.nan, BOX, False),    # file missing
    ("39/10004299_1908-08-22_1983.jpg", 0.0, 1.5, np.nan, BOX, True),     # kept, female (grey JPEG)
    ("00/10004800_1968-01-01_2000.jpg", 1.0, 5.0, np.nan, [150.0, 120.0, 220.0, 180.0], True),  # kept, box at the edge
    ("05/10005205_1950-02-02_1990.jpg", 1.0, 2.0, 0.4, BOX, True),        # weak second face
]


def write_imdb_wiki(root, key="wiki", rows=ROWS):
    """A `wiki.mat` laid out as published (1x1 struct of 1xN fields, cells of
    char arrays and of 1x4 boxes), and 200x160 JPEGs in `00/ ... 99/`."""
    from scipy.io import savemat

    n = len(rows)
    fields = ["dob", "photo_taken", "full_path", "gender", "name", "face_location", "face_score",
              "second_face_score"]
    struct = np.empty((1, 1), dtype=[(f, "O") for f in fields])

    def cell(values):
        c = np.empty((1, n), dtype=object)
        for i, v in enumerate(values):
            c[0, i] = v
        return c

    struct[0, 0]["dob"] = np.array([[723671.0 + i for i in range(n)]])
    struct[0, 0]["photo_taken"] = np.array([[2009] * n], dtype=np.uint16)
    struct[0, 0]["full_path"] = cell(np.array([r[0]]) for r in rows)
    struct[0, 0]["gender"] = np.array([[r[1] for r in rows]])
    struct[0, 0]["name"] = cell(np.array([f"Person {i}"]) if i else np.array([], dtype="<U1") for i in range(n))
    struct[0, 0]["face_location"] = cell(np.array([r[4]]) for r in rows)
    struct[0, 0]["face_score"] = np.array([[r[2] for r in rows]])
    struct[0, 0]["second_face_score"] = np.array([[r[3] for r in rows]])
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / f"{key}.mat", {key: struct})
    rng = np.random.default_rng(0)
    for i, (rel, *_, exists) in enumerate(rows):
        if exists:
            pixels = rng.integers(0, 256, (160, 200) if i == 7 else (160, 200, 3), dtype=np.uint8)
            _save(root / rel, pixels)
    return root / f"{key}.mat"


def test_load_imdb_wiki_filters_as_published(tmp_path):
    mat = write_imdb_wiki(tmp_path / "wiki")
    records, counts = load_imdb_wiki(mat)
    assert counts == {"total": 10, "second_face": 2, "no_face": 1, "low_face_score": 1, "unknown_gender": 1,
                      "missing_file": 1, "kept": 4, "female": 2, "male": 2}
    assert [r.path.name for r in records] == [ROWS[i][0].split("/")[1] for i in (0, 1, 7, 8)]
    assert [r.label for r in records] == ["male", "female", "female", "male"]
    assert records[0].box == (50.0, 40.0, 110.0, 120.0)  # MATLAB 1-based inclusive -> 0-based
    assert records[0].path == tmp_path / "wiki" / "17" / "10000217_1981-05-05_2009.jpg"
    # The folder works as well as the file; the thresholds are settings.
    _, counts = load_imdb_wiki(tmp_path / "wiki", max_second_face_score=1.0)
    assert (counts["second_face"], counts["kept"]) == (1, 5)
    _, counts = load_imdb_wiki(mat, min_face_score=3.0)
    assert (counts["low_face_score"], counts["kept"]) == (5, 2)
    _, counts = load_imdb_wiki(mat, check_files=False)
    assert (counts["missing_file"], counts["kept"]) == (0, 5)
    # A face_location cell that is not 4 numbers counts as no face, not as a broken file.
    odd = write_imdb_wiki(tmp_path / "odd", rows=[ROWS[0][:4] + ([],) + ROWS[0][5:], ROWS[1]])
    _, counts = load_imdb_wiki(odd)
    assert (counts["no_face"], counts["kept"]) == (1, 1)


def test_imdb_wiki_to_folder(tmp_path):
    mat = write_imdb_wiki(tmp_path / "wiki", key="imdb")
    dst = tmp_path / "gender"
    report = imdb_wiki_to_folder(mat, dst, margin=0.4, workers=2)
    assert (report["kept"], report["written"], report["crop"]) == (4, 4, True)
    assert sorted(p.name for p in (dst / "male").iterdir()) == ["00_10004800_1968-01-01_2000.jpg",
                                                                "17_10000217_1981-05-05_2009.jpg"]
    assert sorted(p.name for p in (dst / "female").iterdir()) == ["39_10004299_1908-08-22_1983.jpg",
                                                                  "48_10000548_1925-04-04_1964.jpg"]
    # Box (50, 40, 110, 120) + 40% of 60x80 on each side = (26, 8, 134, 152).
    assert Image.open(dst / "male" / "17_10000217_1981-05-05_2009.jpg").size == (108, 144)
    # Box (149, 119, 220, 180) + 40% of 71x61 = (120, 94, 248, 205): clamped to 200x160.
    assert Image.open(dst / "male" / "00_10004800_1968-01-01_2000.jpg").size == (200 - 120, 160 - 94)
    grey = Image.open(dst / "female" / "39_10004299_1908-08-22_1983.jpg")
    assert grey.mode == "RGB"
    assert json.loads((dst / "faces.json").read_text())["kept"] == 4

    whole = imdb_wiki_to_folder(mat, tmp_path / "whole", crop=False)
    assert not whole["crop"]
    assert Image.open(tmp_path / "whole" / "male" / "17_10000217_1981-05-05_2009.jpg").size == (200, 160)
    # The publishers' *_crop release is cropped already: not cropped again by default.
    pre = write_imdb_wiki(tmp_path / "wiki_crop")
    assert imdb_wiki_to_folder(pre, tmp_path / "pre")["crop"] is False


def test_gender_dataset_accepts_both_layouts(tmp_path):
    plain = tmp_path / "plain"
    for label in ("female", "male"):
        _save(plain / label / "a.jpg", noise_image(64, 64))
    assert gender_dataset(plain) == plain

    write_imdb_wiki(tmp_path / "wiki")
    cache = tmp_path / "cache"
    folder = gender_dataset(tmp_path / "wiki", cache_dir=cache)
    assert folder.parent == cache and {p.name for p in folder.iterdir()} == {"female", "male", "faces.json"}
    assert len(list((folder / "female").iterdir())) == 2
    stamp = (folder / "faces.json").stat().st_mtime_ns
    assert gender_dataset(tmp_path / "wiki" / "wiki.mat", cache_dir=cache) == folder  # reused
    assert (folder / "faces.json").stat().st_mtime_ns == stamp
    other = gender_dataset(tmp_path / "wiki", cache_dir=cache, margin=0.1)  # new options, new folder
    assert other != folder and other.parent == cache


def test_converted_trees_and_face_crops_go_under_xdg_cache_home(tmp_path, monkeypatch):
    from mobilenets.data import ImageFolder
    from mobilenets.faces import face_cropped

    monkeypatch.delenv("MOBILENETS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_imdb_wiki(tmp_path / "wiki")
    folder = gender_dataset(tmp_path / "wiki")
    assert folder.parent == tmp_path / "xdg" / "mobilenets" / "gender"
    cropped, _ = face_cropped(ImageFolder(folder, 0, 0))
    assert cropped.root.parent == tmp_path / "xdg" / "mobilenets" / "faces"


def test_missing_scipy_is_a_one_line_install_hint_and_a_broken_one_surfaces(tmp_path, monkeypatch):
    import types

    mat = write_imdb_wiki(tmp_path / "wiki")
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # what the import sees when SciPy is not installed
    with pytest.raises(MobilenetsError, match="pip install") as e:
        load_imdb_wiki(mat)
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "scipy.io", types.ModuleType("scipy.io"))  # installed, but no loadmat
    with pytest.raises(ImportError, match="loadmat"):
        load_imdb_wiki(mat)


def test_gender_dataset_errors(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(MobilenetsError, match="not a gender dataset"):
        gender_dataset(tmp_path / "random")
    with pytest.raises(MobilenetsError, match="no such file"):
        gender_dataset(tmp_path / "missing")
    garbled = tmp_path / "garbled" / "wiki.mat"
    garbled.parent.mkdir()
    garbled.write_bytes(b"MATLAB 5.0 MAT-file, but then nothing useful" + bytes(200))
    with pytest.raises(MobilenetsError, match="wiki.mat") as e:
        load_imdb_wiki(garbled)
    assert "\n" not in str(e.value)

    from scipy.io import savemat

    other = tmp_path / "other" / "wiki.mat"
    other.parent.mkdir()
    savemat(other, {"celebs": np.zeros((1, 3))})
    with pytest.raises(MobilenetsError, match="no 'wiki' or 'imdb' struct"):
        load_imdb_wiki(other)
    savemat(other, {"wiki": {"full_path": np.zeros((1, 3))}})
    with pytest.raises(MobilenetsError, match="missing fields: gender"):
        load_imdb_wiki(other)

    unusable = write_imdb_wiki(tmp_path / "unusable", rows=[ROWS[2], ROWS[3], ROWS[6]])
    with pytest.raises(MobilenetsError, match="no usable photos"):
        gender_dataset(unusable, cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/faces.json"))


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_consistent(name):
    preset = get_preset(name)
    assert preset.name == name
    spec = parse_spec(preset.arch)
    assert spec.height == spec.width == preset.image_size and preset.spec == spec
    parse_spec(preset.seed_arch)
    assert preset.weights == "imagenet" and preset.faces
    assert preset.epochs > 0 and preset.batch_size > 0 and 0 < preset.learning_rate < 1
    json.dumps(preset.to_dict())
    augment = pytest.importorskip("mobilenets.augment")
    assert augment.Augment.parse(preset.augment_options()).flip_left_right


def test_preset_seed_choices():
    gender, emotion = get_preset("gender"), get_preset("emotion")
    assert gender.arch == "v1-0.50-224" and gender.classes == ("female", "male")
    assert emotion.seed_arch == "v2-1.40-224" and parse_spec(emotion.arch).family == "v2"
    assert emotion.classes == EMOTION_CLASSES == ("angry", "disgust", "fear", "happy", "neutral", "sad",
                                                  "surprise")
    with pytest.raises(MobilenetsError, match="'age'"):
        get_preset("age")


def test_open_dataset_reads_the_imdb_wiki_layout(tmp_path, monkeypatch):
    from mobilenets.data import open_dataset

    monkeypatch.setenv("MOBILENETS_CACHE", str(tmp_path / "cache"))
    write_imdb_wiki(tmp_path / "wiki")
    data = open_dataset(tmp_path / "wiki", validation_percent=0, test_percent=0)
    assert data.classes == ["female", "male"]
    assert sum(data.split_sizes().values()) == 4
