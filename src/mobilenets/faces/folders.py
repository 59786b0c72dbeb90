"""Face-cropped copies of image-folder trees: written once, atomically, and cached for a dataset.

    report = crop_faces_in_folder("photos/", "photos-faces/", margin=0.2)
    data, report = face_cropped(ImageFolder("photos/"))    # made once under the cache, reused

Putting a cropped tree in front of the ordinary folder pipeline is the
simplest way to give any part of it (train, evaluate) faces instead of photos.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mobilenets.data import IMAGE_EXTENSIONS
from mobilenets.env import cache_home
from mobilenets.errors import MobilenetsError
from mobilenets.faces.detect import FaceCropper
from mobilenets.imagetree import REPORT_NAME, atomic_tree, check_dst, parallel_map, read_image, save_image


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


def _is_image(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    return (path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
            and not any(part.startswith(".") for part in rel.parts))


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
