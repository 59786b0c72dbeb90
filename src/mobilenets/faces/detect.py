"""Find the largest face in an image with OpenCV's Haar cascade, and crop it with a margin.

    cropper = FaceCropper(margin=0.2)
    face, found = cropper.crop(rgb)      # the whole image, found=False, when there is no face

The cascade is OpenCV's bundled one (`cv2.data.haarcascades`; nothing is
downloaded at run time). Images smaller than `already_cropped_below` pixels
on a side (FER's 48x48 faces) are taken to be face crops already and pass
through without detection.

Boxes are `(x1, y1, x2, y2)` in 0-based pixel coordinates, `x2`/`y2`
exclusive, so `image[y1:y2, x1:x2]` is the face. OpenCV is imported inside
the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError
from mobilenets.imagetree import as_rgb, expand_box

CASCADE = "haarcascade_frontalface_default.xml"

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
