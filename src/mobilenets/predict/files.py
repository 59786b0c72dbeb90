"""Classify many files, streaming, and print the results as text or JSON lines.

    for row in predict_files(load_classifier(model), list_images(["photos/"]), k=3):
        ...
    counts = write_predictions(predict_files(...), json_lines=True)

Folders are walked recursively and stream through `predict_files`: images
are decoded in a thread pool while the model runs, at most a few batches
ahead, so memory stays flat for any number of files. An unreadable file
gives an error record and the others go on; the CLI exits 0 when at least
one image was classified and 2 when none could be.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from mobilenets.env import progress_bar
from mobilenets.errors import MobilenetsError

if TYPE_CHECKING:
    from mobilenets.predict.classifiers import Classifier

DEFAULT_TOP_K = 5


def list_images(inputs: Iterable["str | os.PathLike"]) -> list[Path]:
    """Image files from files and folders (folders recursively, sorted).

    A named file is kept whatever its extension (it will be reported if it
    is not an image); inside folders only image extensions are taken. A name
    that does not exist is kept too, so it is reported per file, and so are
    broken (dangling or looping) symbolic links inside folders.

    Args:
        inputs: files and folders.

    Raises:
        MobilenetsError: nothing to classify.
    """
    from mobilenets.data import IMAGE_EXTENSIONS

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*")
                          if f.suffix.lower() in IMAGE_EXTENSIONS and (f.is_file() or _broken_link(f))
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    if not out:
        raise MobilenetsError(f"no images in {', '.join(map(str, inputs))}")
    return out


def _broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def top_k(probs: np.ndarray, labels: list[str], k: int = DEFAULT_TOP_K) -> list[dict]:
    """The k best classes of one probability row, best first.

    Args:
        probs: `(classes,)` probabilities.
        labels: one label per class.
        k: how many (capped at the number of classes).
    """
    k = max(1, min(int(k), len(probs)))
    best = np.argsort(-probs, kind="stable")[:k]
    return [{"label": labels[i], "index": int(i), "score": round(float(probs[i]), 5)} for i in best]


def _decode(path: Path, size: tuple[int, int], cropper=None) -> tuple[np.ndarray, bool | None]:
    """The image at the model's size, cropped to its largest face with a cropper."""
    from mobilenets.data import load_image, resize_images

    if cropper is None:
        return load_image(path, size), None
    face, found = cropper.crop(load_image(path))
    return resize_images(face[None], size)[0], found


def predict_files(classifier: Classifier, paths: list[Path], k: int = DEFAULT_TOP_K,
                  batch_size: int = 16, workers: int | None = None,
                  progress: bool | None = None, faces=None) -> Iterator[dict]:
    """Classify files, streaming: decode in threads while the model runs.

    Args:
        classifier: from `load_classifier`.
        paths: image files (see `list_images`).
        k: classes per image.
        batch_size: images per model call.
        workers: decoding threads (default: CPU count, at least 2).
        progress: draw a progress bar on stderr (default: when it is a terminal).
        faces: a `mobilenets.faces.FaceCropper`: classify each image's
            largest face (the whole image when none is found; rows then
            carry `"face": false`).

    Yields:
        In input order, `{"path", "label", "score", "top_k": [{"label", "index",
        "score"}]}` for each image or `{"path", "error"}` for each file that
        could not be read.
    """
    from mobilenets.data import BadImage

    if k < 1:
        raise MobilenetsError(f"--top-k must be >= 1. Received {k}")
    if batch_size < 1:
        raise MobilenetsError(f"--batch-size must be >= 1. Received {batch_size}")
    workers = workers or max(2, os.cpu_count() or 2)
    window = max(2 * batch_size, 4 * workers)  # decoded images waiting, at most
    size = classifier.input_size
    todo = iter(paths)
    pending: collections.deque = collections.deque()

    def fill():
        while len(pending) < window:
            p = next(todo, None)
            if p is None:
                return
            pending.append((p, pool.submit(_decode, p, size, faces)))

    def run(batch):
        probs = classifier.predict(np.stack([im for _, (im, _) in batch]))
        for (p, (_, found)), row in zip(batch, probs):
            best = top_k(row, classifier.labels, k)
            result = {"path": str(p), "label": best[0]["label"], "score": best[0]["score"], "top_k": best}
            if found is not None:
                result["face"] = found
            yield result

    with ThreadPoolExecutor(max_workers=workers) as pool, \
            progress_bar("classifying", len(paths), progress, min_total=2) as bar:
        fill()
        batch: list = []
        while pending:
            path, future = pending.popleft()
            fill()
            try:
                batch.append((path, future.result()))
            except (BadImage, MobilenetsError, OSError) as e:
                if batch:
                    yield from run(batch)
                    bar.advance(len(batch))
                    batch = []
                reason = getattr(e, "reason", None) or str(e)
                bar.advance(1)
                yield {"path": str(path), "error": reason}
                continue
            if len(batch) >= batch_size:
                yield from run(batch)
                bar.advance(len(batch))
                batch = []
        if batch:
            yield from run(batch)
            bar.advance(len(batch))


def format_result(result: dict) -> str:
    """One line of text for a result record (prediction or error).

    Args:
        result: a record from `predict_files`.
    """
    from mobilenets.results import one_line

    path = one_line(result["path"])  # a newline in a file name would break the line
    if "error" in result:
        return f"{path}: error: {one_line(result['error'])}"
    best = ", ".join(f"{r['label']} {r['score']:.3f}" for r in result["top_k"])
    return f"{path}: {best}"


def write_predictions(results: Iterable[dict], json_lines: bool = False, file=None) -> dict:
    """Print results as they come: text lines or JSON lines.

    Args:
        results: records from `predict_files`.
        json_lines: one JSON object per line instead of text.
        file: where to write (default stdout).

    Returns:
        `{"images", "predicted", "errors"}` counts.
    """
    counts = {"images": 0, "predicted": 0, "errors": 0}
    for r in results:
        counts["images"] += 1
        counts["errors" if "error" in r else "predicted"] += 1
        # sys.stdout is looked up per line: a progress bar redirects it while it runs.
        print(json.dumps(r) if json_lines else format_result(r), file=file or sys.stdout, flush=True)
    return counts
