"""Faces: crop the face before the classifier sees it, and the face-attribute data.

    report = crop_faces_in_folder("photos/", "photos-faces/", margin=0.2)

Three concerns, all for the seed article's two face models (gender on
IMDB-WIKI with MobileNet V1 0.5-224, emotion with MobileNet V2 1.4-224):

- `FaceCropper` finds the largest face with OpenCV's bundled Haar cascade
  (`cv2.data.haarcascades`; nothing is downloaded at run time), crops it with
  a margin and falls back to the whole image when it finds none. Images
  smaller than `already_cropped_below` pixels on a side (FER's 48x48 faces)
  are taken to be face crops already and pass through without detection.
  `crop_faces_in_folder` applies it to a whole image-folder tree, which is
  the simplest way to put faces in front of any part of the pipeline.
- `load_imdb_wiki` / `imdb_wiki_to_folder` / `gender_dataset` read the
  IMDB-WIKI release and write it as a `female/ male/` folder tree; they live
  in `mobilenets.imdb_wiki` (below `data`, which opens .mat files through
  them) and are re-exported here.
- `PRESETS` holds the emotion and gender training settings.

Boxes are `(x1, y1, x2, y2)` in 0-based pixel coordinates, `x2`/`y2`
exclusive, so `image[y1:y2, x1:x2]` is the face.

OpenCV is imported inside the functions that need it, so
`import mobilenets.faces` stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobilenets.data import IMAGE_EXTENSIONS
from mobilenets.env import cache_home
from mobilenets.errors import MobilenetsError
from mobilenets.imagetree import (REPORT_NAME, as_rgb, atomic_tree, check_dst, expand_box,
                                  parallel_map, read_image, save_image)
from mobilenets.imdb_wiki import (GENDER_CLASSES, FaceRecord, find_mat, gender_dataset,
                                  imdb_wiki_to_folder, load_imdb_wiki)
from mobilenets.specs import parse_spec

CASCADE = "haarcascade_frontalface_default.xml"
EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

_INSTALL_HINT = 'pip install "opencv-python-headless>=4.8,<5"'


def _cv2():
    try:
        import cv2
    except ModuleNotFoundError as e:
        if e.name != "cv2":  # an OpenCV that is there but broken says why itself
            raise
        raise MobilenetsError(
            f"face detection needs OpenCV with its Haar cascades, which is not installed: {_INSTALL_HINT}"
        ) from None
    return cv2


# --------------------------------------------------------------------------
# Face detection and cropping
# --------------------------------------------------------------------------


class FaceCropper:
    """Crop the largest face of an image, or keep the whole image.

        cropper = FaceCropper(margin=0.2)
        face, found = cropper.crop(rgb)      # face is always HxWx3 uint8
        cropper.report()                     # {"images": 1, "found": 1, ...}

    One instance may be shared by the threads of a pool: each thread gets its
    own `cv2.CascadeClassifier` (they are not thread-safe) and the counters
    are updated under a lock.

    Args:
        margin: widen the detected box by this fraction of its width (and
            height) on every side before cropping; clamped to the image.
        min_size: the smallest face to look for, in pixels of the input.
        already_cropped_below: an image whose shorter side is below this
            many pixels is taken to be a face crop already (FER's 48x48
            faces): it skips detection, is returned whole with `found=True`
            and is counted as `already_cropped`. 0 disables this.
        cascade: a file name in `cv2.data.haarcascades` or a path to a Haar
            cascade XML file.
        scale_factor: `detectMultiScale`'s image-pyramid step.
        min_neighbors: `detectMultiScale`'s vote threshold; higher means
            fewer, surer detections.
        detect_max_side: detect on a copy shrunk so its longer side is at
            most this many pixels; the box is scaled back, the crop taken
            from the full-size image.
    """

    def __init__(
        self,
        margin: float = 0.2,
        min_size: int = 30,
        *,
        already_cropped_below: int = 64,
        cascade: str = CASCADE,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        detect_max_side: int = 640,
    ):
        if not (isinstance(margin, (int, float, np.floating)) and 0 <= margin <= 2):
            raise MobilenetsError(f"margin must be a fraction of the face size in [0, 2]. Received margin={margin!r}")
        if int(min_size) != min_size or min_size < 1:
            raise MobilenetsError(f"min_size must be a whole number of pixels >= 1. Received min_size={min_size!r}")
        if already_cropped_below < 0:
            raise MobilenetsError(
                f"already_cropped_below must be >= 0. Received already_cropped_below={already_cropped_below!r}"
            )
        if scale_factor <= 1:
            raise MobilenetsError(f"scale_factor must be > 1. Received scale_factor={scale_factor!r}")
        if min_neighbors < 0:
            raise MobilenetsError(f"min_neighbors must be >= 0. Received min_neighbors={min_neighbors!r}")
        if detect_max_side < 64:
            raise MobilenetsError(f"detect_max_side must be >= 64. Received detect_max_side={detect_max_side!r}")
        self.margin = float(margin)
        self.min_size = int(min_size)
        self.already_cropped_below = int(already_cropped_below)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.detect_max_side = int(detect_max_side)
        self.cascade_path = _cascade_path(cascade)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.found = 0
        self.fallback = 0
        self.already_cropped = 0
        self._classifier()  # fail now, not in a worker thread, if the file is bad

    def _classifier(self):
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            cv2 = _cv2()
            try:
                classifier = cv2.CascadeClassifier(self.cascade_path)
            except (cv2.error, SystemError):  # OpenCV raises on malformed XML
                classifier = None
            if classifier is None or classifier.empty():
                raise MobilenetsError(f"not a Haar cascade OpenCV can load: {self.cascade_path}")
            self._local.classifier = classifier
        return classifier

    def detect(self, image: np.ndarray) -> "tuple[int, int, int, int] | None":
        """Find the largest face.

        Args:
            image: HxWx3 RGB, HxWx4 RGBA, HxWx1 or HxW greyscale, uint8.

        Returns:
            The face box `(x1, y1, x2, y2)` (without margin), or None when
            the cascade finds no face. Does not touch the counters.
        """
        rgb = as_rgb(image)
        return self._detect(rgb)

    def _detect(self, rgb: np.ndarray):
        cv2 = _cv2()
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        # Haar detection time grows with pixel count; faces big enough to
        # classify survive the shrink, and the crop is cut from the original.
        scale = min(1.0, self.detect_max_side / max(h, w))
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        # Evens out exposure, as OpenCV's own face-detection sample does.
        grey = cv2.equalizeHist(grey)
        min_px = max(1, round(self.min_size * scale))
        boxes = self._classifier().detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        if len(boxes) == 0:
            return None
        x, y, bw, bh = max((tuple(int(v) for v in b) for b in boxes), key=lambda b: b[2] * b[3])
        full_h, full_w = rgb.shape[:2]
        return (math.floor(x / scale), math.floor(y / scale),
                min(full_w, math.ceil((x + bw) / scale)), min(full_h, math.ceil((y + bh) / scale)))

    def crop(self, image: np.ndarray) -> "tuple[np.ndarray, bool]":
        """Crop the largest face with the margin, or return the whole image.

        Args:
            image: HxWx3 RGB, HxWx4 RGBA, HxWx1 or HxW greyscale, uint8.

        Returns:
            `(crop, found)`: `crop` is always HxWx3 uint8 RGB (greyscale is
            repeated into three channels); `found` is False when no face was
            detected and `crop` is the whole image. An image smaller than
            `already_cropped_below` on a side comes back whole with
            `found=True`.
        """
        rgb = as_rgb(image)
        h, w = rgb.shape[:2]
        if min(h, w) < self.already_cropped_below:
            self._count("already_cropped")
            return rgb, True
        box = self._detect(rgb)
        if box is None:
            self._count("fallback")
            return rgb, False
        self._count("found")
        x1, y1, x2, y2 = expand_box(box, self.margin, (h, w))
        return rgb[y1:y2, x1:x2], True

    def _count(self, name: str):
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def report(self) -> dict:
        """Counters and settings as a flat JSON-ready dict.

        `images` = `found` + `fallback` + `already_cropped`.
        """
        with self._lock:
            found, fallback, already = self.found, self.fallback, self.already_cropped
        return {
            "images": found + fallback + already,
            "found": found,
            "fallback": fallback,
            "already_cropped": already,
            "margin": self.margin,
            "min_size": self.min_size,
            "already_cropped_below": self.already_cropped_below,
            "cascade": Path(self.cascade_path).name,
        }


def _cascade_path(cascade: str) -> str:
    path = Path(cascade)
    if path.is_file():
        return str(path)
    cv2 = _cv2()
    bundled = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".") / cascade
    if bundled.is_file():
        return str(bundled)
    raise MobilenetsError(
        f"no Haar cascade {cascade!r}: not a file, and not bundled with this OpenCV "
        f"{cv2.__version__} (5.x bundles none; {_INSTALL_HINT})"
    )



def crop_faces_in_folder(
    src: "str | os.PathLike",
    dst: "str | os.PathLike",
    margin: float = 0.2,
    *,
    min_size: int = 30,
    already_cropped_below: int = 64,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write a face-cropped copy of an image-folder tree.

    Every image under `src` (any depth: `class/x.jpg` or
    `train/class/x.jpg`) is written as RGB to the same relative path under
    `dst`, cropped to its largest face, or whole when none is found; files
    that are not images, hidden files and unreadable images are left out. The tree is
    built in a temporary folder beside `dst` and renamed into place at the
    end, so `dst` is either complete or absent. `dst/faces.json` holds the
    report.

    Args:
        src: the image-folder tree to read.
        dst: the folder to create (must not exist unless `overwrite`).
        margin: see `FaceCropper`.
        min_size: see `FaceCropper`.
        already_cropped_below: see `FaceCropper`.
        workers: threads (default: CPU count, at most 8).
        overwrite: replace an existing `dst`.

    Returns:
        The report: `FaceCropper.report()` plus `written`, `unreadable`,
        `src` and `dst`.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise MobilenetsError(f"not a folder of images: {src}")
    check_dst(dst, overwrite, inside=src)
    files = [p for p in sorted(src.rglob("*")) if _is_image(p, src)]
    if not files:
        raise MobilenetsError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {src}")
    cropper = FaceCropper(margin, min_size, already_cropped_below=already_cropped_below)

    def one(path: Path, out_root: Path) -> bool:
        image = read_image(path)
        if image is None:
            return False
        face, _ = cropper.crop(image)
        save_image(face, out_root / path.relative_to(src))
        return True

    with atomic_tree(dst, overwrite) as tmp:
        written = parallel_map(lambda p: one(p, tmp), files, workers)
        report = {**cropper.report(), "written": sum(written), "unreadable": len(files) - sum(written),
                  "src": str(src), "dst": str(dst)}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


# --------------------------------------------------------------------------
# Folder-tree helpers
# --------------------------------------------------------------------------


def _is_image(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    return (path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
            and not any(part.startswith(".") for part in rel.parts))


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FacePreset:
    """Training settings for a face-attribute model.

    Attributes:
        name: the preset's key in `PRESETS`.
        arch: the model spec to train (`mobilenets.specs` grammar).
        image_size: input side in pixels (the spec's resolution).
        classes: the class folder names, or None to take them from the data.
        faces: crop faces (`FaceCropper`) before training and prediction.
        epochs, batch_size, learning_rate: the training run.
        flip_left_right, random_crop, random_scale, random_brightness, pad_crop:
            augmentation, in `mobilenets.augment.Augment`'s terms (percent;
            pad_crop in pixels).
        weights: the backbone's starting weights.
        recipe: "" trains like `retrain` (new head on a frozen backbone);
            a `mobilenets.train.PRESETS` name (e.g. "scratch") trains every
            layer, starting from `weights`, with that recipe's optimiser,
            schedule and regularisation.
        stem_stride: with a recipe, the first convolution's stride.
        weight_decay: with a recipe, its weight decay instead of the
            recipe's own (None keeps the recipe's).
        dataset: what the preset is meant to train on.
        seed_arch: the architecture the seed article used, for the record.
        notes: why the settings are what they are.
    """

    name: str
    arch: str
    image_size: int
    classes: "tuple[str, ...] | None"
    faces: bool
    epochs: int
    batch_size: int
    learning_rate: float
    flip_left_right: bool = True
    random_crop: float = 0.0
    random_scale: float = 0.0
    random_brightness: float = 0.0
    pad_crop: int = 0
    weights: str = "imagenet"
    recipe: str = ""
    stem_stride: int = 2
    weight_decay: float | None = None
    dataset: str = ""
    seed_arch: str = ""
    notes: str = ""

    def __post_init__(self):
        spec = parse_spec(self.arch)
        if not (spec.square and spec.height == self.image_size):
            raise MobilenetsError(f"preset {self.name!r}: image_size={self.image_size} does not match "
                                  f"arch {self.arch!r}")

    @property
    def spec(self):
        """The `ModelSpec` of `arch`."""
        return parse_spec(self.arch)

    def augment_options(self) -> dict:
        """The augmentation as keyword arguments for `Augment` / `Augment.parse`."""
        return {"flip_left_right": self.flip_left_right, "random_crop": self.random_crop,
                "random_scale": self.random_scale, "random_brightness": self.random_brightness,
                "pad_crop": self.pad_crop}

    def to_dict(self) -> dict:
        """JSON-ready, for config.json."""
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        return d


PRESETS: dict[str, FacePreset] = {
    "emotion": FacePreset(
        name="emotion",
        # Measured (benchmarks/bench_emotion.py, 20 min on one core each): V2
        # 0.5 from ImageNet at 96 px (FER's 48 px faces upscaled) reached
        # 58% validation after its first epoch, above what V1 0.5, V3-Small
        # and the seed's V2 1.4 reached from scratch at 48 px in the whole
        # budget. Every layer trains (BatchNorm included) with the scratch
        # recipe: SGD + Nesterov, warm-up + cosine, label smoothing, weight
        # decay; ImageNet weights for V2 1.4 are not in the offline cache,
        # and at 224 px one epoch would take hours on 2 CPU cores.
        arch="v2-0.50-96",
        image_size=96,
        classes=EMOTION_CLASSES,
        faces=True,
        epochs=10,
        batch_size=128,
        learning_rate=0.02,
        flip_left_right=True,
        pad_crop=4,
        weights="imagenet",
        recipe="scratch",
        stem_stride=2,
        # What the figures above were measured with (the scratch recipe's
        # then); the recipe's 5e-3 since is untested from ImageNet weights.
        weight_decay=5e-4,
        dataset="FER2013-derived 48x48 faces (../shared/data/fer-emotion-48px.tar.gz)",
        seed_arch="v2-1.40-224",
        notes="Seed: MobileNet V2 1.4-224 on AffectNet. FER images are face crops already "
              "(below 64 px, so FaceCropper passes them through); faces=True crops photos "
              "at prediction time.",
    ),
    "gender": FacePreset(
        name="gender",
        arch="v1-0.50-224",
        image_size=224,
        classes=GENDER_CLASSES,
        faces=True,
        epochs=10,
        batch_size=64,
        learning_rate=1e-3,
        flip_left_right=True,
        random_crop=10.0,
        random_scale=10.0,
        random_brightness=10.0,
        dataset="IMDB-WIKI (wiki.mat/imdb.mat + 00/..99/) or a female/ male/ folder; see gender_dataset",
        seed_arch="v1-0.50-224",
        notes="Seed: MobileNet V1 0.5-224 on IMDB-WIKI, single-face photos only.",
    ),
}


def get_preset(name: str) -> FacePreset:
    """A preset from `PRESETS` by name.

    Args:
        name: `emotion` or `gender`.
    """
    try:
        return PRESETS[str(name).strip().lower()]
    except KeyError:
        raise MobilenetsError(f"no face preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def face_cropped(data, validation_percent: float = 10, test_percent: float = 10,
                 margin: float = 0.2, cache_dir: "str | os.PathLike | None" = None):
    """The same image folder with every image cropped to its largest face.

    The cropped tree is made once under the cache (keyed by the folder's
    files, their sizes and times, and the margin) and reused afterwards.

    Args:
        data: an opened `mobilenets.data.ImageFolder`.
        validation_percent, test_percent: as for `ImageFolder`.
        margin: see `FaceCropper`.
        cache_dir: parent of the cropped trees (default: `mobilenets.env.cache_home()`).

    Returns:
        (`ImageFolder` of the cropped tree, the face report dict)
    """
    from mobilenets.data import ImageFolder

    root = getattr(data, "root", None)
    if root is None:
        raise MobilenetsError(f"--faces needs an image folder; {data.name!r} is a built-in array dataset")
    root = Path(root)
    h = hashlib.sha256(f"{root.resolve()}|{margin}".encode())
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    dst = Path(cache_dir or cache_home()) / "faces" / f"{root.name}-{h.hexdigest()[:16]}"
    if not (dst / REPORT_NAME).is_file():
        crop_faces_in_folder(root, dst, margin=margin, overwrite=dst.exists())
    report = json.loads((dst / REPORT_NAME).read_text())
    return ImageFolder(dst, validation_percent, test_percent), report
