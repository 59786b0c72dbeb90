"""IMDB-WIKI: read the release, filter it, write it as a `female/ male/` folder tree.

    folder = gender_dataset("wiki_crop/")   # converted once, cached, reused

`load_imdb_wiki` / `imdb_wiki_to_folder` / `gender_dataset` read the
IMDB-WIKI release (`wiki.mat` or `imdb.mat` beside the `00/ ... 99/` image
folders), filter it as its publishers recommend, and write a plain
`female/ male/` folder tree that the ordinary folder pipeline trains on.
`mobilenets.data.open_dataset` opens a .mat file or its folder through
`gender_dataset`; `mobilenets.faces` re-exports these names.

Boxes are `(x1, y1, x2, y2)` in 0-based pixel coordinates, `x2`/`y2`
exclusive, so `image[y1:y2, x1:x2]` is the face. SciPy is imported only to
read a .mat file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilenets.env import cache_home
from mobilenets.errors import MobilenetsError
from mobilenets.imagetree import (REPORT_NAME, as_rgb, atomic_tree, check_dst, expand_box,
                                  parallel_map, read_image, save_image)

GENDER_CLASSES = ("female", "male")

# The struct fields of wiki.mat / imdb.mat that the loader reads.
_MAT_FIELDS = ("full_path", "gender", "face_location", "face_score", "second_face_score")


@dataclass(frozen=True)
class FaceRecord:
    """One usable IMDB-WIKI photo.

    Attributes:
        path: the image file.
        label: "female" or "male".
        box: the face `(x1, y1, x2, y2)`, 0-based, converted from the .mat's
            1-based inclusive MATLAB box.
        face_score: the publishers' face-detector score.
    """

    path: Path
    label: str
    box: tuple[float, float, float, float]
    face_score: float


def find_mat(path: "str | os.PathLike") -> Path:
    """The IMDB-WIKI metadata file: `path` itself, or `wiki.mat`/`imdb.mat` in it.

    Args:
        path: a `.mat` file or the folder that holds one.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("wiki.mat", "imdb.mat"):
            if (path / name).is_file():
                return path / name
        raise MobilenetsError(f"no wiki.mat or imdb.mat in {path}")
    raise MobilenetsError(f"no such file or folder: {path}")


def load_imdb_wiki(
    mat_path: "str | os.PathLike",
    *,
    min_face_score: float = 1.0,
    max_second_face_score: float | None = None,
    image_root: "str | os.PathLike | None" = None,
    check_files: bool = True,
) -> "tuple[list[FaceRecord], dict]":
    """Read and filter IMDB-WIKI's `wiki.mat` / `imdb.mat`.

    A photo is kept when, checked in this order (a dropped photo is counted
    under the first test it fails): there is exactly one face
    (`second_face_score` is NaN, or below `max_second_face_score` when
    given), `face_score` is above `min_face_score` (-inf means no face),
    the gender is known (not NaN), and the image file exists. A photo whose
    `face_location` is not 4 finite numbers counts as having no face.

    Args:
        mat_path: the `.mat` file (MATLAB v5, as published) or its folder.
        min_face_score: keep faces scoring above this (publishers' detector).
        max_second_face_score: None keeps only photos with no second face;
            a number also keeps photos whose second face scores below it.
        image_root: the folder that `full_path` is relative to (default: the
            .mat's folder, which holds `00/ ... 99/`).
        check_files: drop records whose image file is missing.

    Returns:
        `(records, counts)`: the kept `FaceRecord`s in .mat order, and a
        dict with `total`, `second_face`, `no_face`, `low_face_score`,
        `unknown_gender`, `missing_file`, `kept`, `female`, `male`.
    """
    mat_path = find_mat(mat_path)
    root = Path(image_root) if image_root is not None else mat_path.parent
    fields = _read_mat(mat_path)
    counts = dict.fromkeys(("total", "second_face", "no_face", "low_face_score", "unknown_gender",
                            "missing_file", "kept", "female", "male"), 0)
    records = []
    for rel, gender, loc, score, second in zip(*(fields[k] for k in _MAT_FIELDS)):
        counts["total"] += 1
        if not (math.isnan(second) or (max_second_face_score is not None and second < max_second_face_score)):
            counts["second_face"] += 1
        elif not math.isfinite(score) or loc is None:
            counts["no_face"] += 1
        elif not score > min_face_score:
            counts["low_face_score"] += 1
        elif math.isnan(gender) or gender not in (0.0, 1.0):
            counts["unknown_gender"] += 1
        elif check_files and not (root / rel).is_file():
            counts["missing_file"] += 1
        else:
            label = GENDER_CLASSES[int(gender)]
            x1, y1, x2, y2 = loc
            records.append(FaceRecord(root / rel, label, (x1 - 1, y1 - 1, x2, y2), score))
            counts["kept"] += 1
            counts[label] += 1
    return records, counts


def _read_mat(mat_path: Path) -> dict:
    """The .mat's struct fields as flat Python lists, one entry per photo."""
    try:
        from scipy.io import loadmat
    except ModuleNotFoundError as e:
        if e.name not in ("scipy", "scipy.io"):  # a SciPy that is there but broken says why itself
            raise
        raise MobilenetsError('reading IMDB-WIKI .mat files needs SciPy, which is not installed: '
                              'pip install "scipy>=1.11"') from None
    try:
        mat = loadmat(str(mat_path))
    except NotImplementedError:
        raise MobilenetsError(f"{mat_path} is a MATLAB v7.3 (HDF5) file; IMDB-WIKI publishes v5 files, "
                              f"save it with -v7 or re-download it") from None
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... on garbage
        raise MobilenetsError(f"not a readable MATLAB .mat file: {mat_path} ({type(e).__name__}: {e})") from None
    keys = [k for k in ("wiki", "imdb") if k in mat]
    if not keys:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise MobilenetsError(f"{mat_path} holds no 'wiki' or 'imdb' struct (variables: {found})")
    struct = mat[keys[0]]
    names = struct.dtype.names or ()
    missing = [f for f in _MAT_FIELDS if f not in names]
    if missing or struct.size != 1:
        raise MobilenetsError(f"{mat_path}: struct {keys[0]!r} is not IMDB-WIKI metadata "
                              f"(missing fields: {', '.join(missing) or 'none'}; size {struct.size})")
    record = struct.flat[0]
    try:
        fields = {
            "full_path": [_cell_str(c) for c in np.ravel(record["full_path"])],
            "gender": [float(v) for v in np.ravel(record["gender"])],
            "face_location": [_cell_box(c) for c in np.ravel(record["face_location"])],
            "face_score": [float(v) for v in np.ravel(record["face_score"])],
            "second_face_score": [float(v) for v in np.ravel(record["second_face_score"])],
        }
    except (TypeError, ValueError, IndexError) as e:
        raise MobilenetsError(f"{mat_path}: garbled IMDB-WIKI field ({e})") from None
    lengths = {k: len(v) for k, v in fields.items()}
    if len(set(lengths.values())) != 1:
        raise MobilenetsError(f"{mat_path}: IMDB-WIKI fields differ in length: {lengths}")
    return fields


def _cell_str(cell) -> str:
    """A MATLAB cell holding a char array, as loadmat returns it."""
    flat = np.ravel(cell)
    return str(flat[0]) if flat.size else ""


def _cell_box(cell) -> "tuple[float, float, float, float] | None":
    """A face_location cell; None (counted as no face) unless it holds 4 finite numbers."""
    flat = np.ravel(np.asarray(cell, dtype=np.float64))
    if flat.size != 4 or not np.isfinite(flat).all():
        return None
    return tuple(float(v) for v in flat)


def imdb_wiki_to_folder(
    mat_path: "str | os.PathLike",
    dst: "str | os.PathLike",
    crop: bool | None = None,
    margin: float = 0.4,
    *,
    min_face_score: float = 1.0,
    max_second_face_score: float | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write IMDB-WIKI's usable photos as a `female/ male/` folder tree.

    Output files are named after `full_path` with `/` as `_`
    (`17_10000217_1981-05-05_2009.jpg`), saved as RGB JPEG. The tree is built
    beside `dst` and renamed into place, so `dst` is complete or absent;
    `dst/faces.json` holds the report.

    Args:
        mat_path: `wiki.mat` / `imdb.mat`, or the folder holding it.
        dst: the folder to create (must not exist unless `overwrite`).
        crop: cut out `face_location` widened by `margin`. None (default)
            crops unless the folder is the publishers' `wiki_crop`/`imdb_crop`
            release, whose images are cropped already (with a 40% margin)
            while `face_location` still refers to the original photo.
        margin: fraction of the face size added on every side when cropping.
        min_face_score: see `load_imdb_wiki`.
        max_second_face_score: see `load_imdb_wiki`.
        workers: threads (default: CPU count, at most 8).
        overwrite: replace an existing `dst`.

    Returns:
        The report: `load_imdb_wiki`'s counts plus `written`, `unreadable`,
        `crop`, `margin`, `source` and `dst`.
    """
    if margin < 0:
        raise MobilenetsError(f"margin must be >= 0. Received margin={margin!r}")
    mat_path = find_mat(mat_path)
    if crop is None:
        crop = not mat_path.parent.name.lower().endswith("_crop")
    dst = Path(dst)
    check_dst(dst, overwrite)
    records, counts = load_imdb_wiki(mat_path, min_face_score=min_face_score,
                                     max_second_face_score=max_second_face_score)
    if not records:
        raise MobilenetsError(f"no usable photos in {mat_path} after filtering: {counts}")
    root = mat_path.parent

    def one(record: FaceRecord, out_root: Path) -> bool:
        image = read_image(record.path)
        if image is None:
            return False
        image = as_rgb(image)
        if crop:
            x1, y1, x2, y2 = expand_box(record.box, margin, image.shape)
            image = image[y1:y2, x1:x2]
        name = record.path.relative_to(root).as_posix().replace("/", "_")
        save_image(image, (out_root / record.label / name).with_suffix(".jpg"))
        return True

    with atomic_tree(dst, overwrite) as tmp:
        for label in GENDER_CLASSES:
            (tmp / label).mkdir()
        written = sum(parallel_map(lambda r: one(r, tmp), records, workers))
        report = {**counts, "written": written, "unreadable": len(records) - written, "crop": crop,
                  "margin": margin, "source": str(mat_path), "dst": str(dst)}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def gender_dataset(
    path: "str | os.PathLike",
    *,
    cache_dir: "str | os.PathLike | None" = None,
    crop: bool | None = None,
    margin: float = 0.4,
    min_face_score: float = 1.0,
    max_second_face_score: float | None = None,
) -> Path:
    """A `female/ male/` image folder for the gender model, from either layout.

    A folder with `female/` and `male/` sub-folders is returned unchanged.
    IMDB-WIKI (a `.mat` file, or a folder holding `wiki.mat`/`imdb.mat`) is
    converted once with `imdb_wiki_to_folder` into a cache folder keyed by
    the .mat file and the options, and the cached folder is reused after.

    Args:
        path: the folder or `.mat` file.
        cache_dir: where converted trees go (default:
            `mobilenets.env.cache_home()/gender`).
        crop: see `imdb_wiki_to_folder`.
        margin: see `imdb_wiki_to_folder`.
        min_face_score: see `load_imdb_wiki`.
        max_second_face_score: see `load_imdb_wiki`.

    Returns:
        The folder whose class sub-folders are `female` and `male`.
    """
    path = Path(path)
    if path.is_dir() and all((path / c).is_dir() for c in GENDER_CLASSES):
        return path
    if path.is_dir() and not any((path / n).is_file() for n in ("wiki.mat", "imdb.mat")):
        raise MobilenetsError(
            f"not a gender dataset: {path} has neither female/ and male/ sub-folders "
            f"nor IMDB-WIKI's wiki.mat/imdb.mat"
        )
    mat_path = find_mat(path)
    stat = mat_path.stat()
    options = {"crop": crop, "margin": margin, "min_face_score": min_face_score,
               "max_second_face_score": max_second_face_score}
    key = hashlib.sha256(json.dumps(
        [str(mat_path.resolve()), stat.st_size, stat.st_mtime_ns, options], sort_keys=True
    ).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else cache_home() / "gender"
    dst = root / f"{mat_path.parent.name}-{mat_path.stem}-{key}"
    if not (dst / REPORT_NAME).is_file():
        try:
            imdb_wiki_to_folder(mat_path, dst, overwrite=dst.exists(), **options)
        except MobilenetsError:
            if not (dst / REPORT_NAME).is_file():  # else a concurrent run finished it first
                raise
    return dst
