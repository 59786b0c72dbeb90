"""An export folder as one set: staged, swapped in whole, every file labelled and summed.

    with staged_folder("runs/pets/export") as out:
        path, info = write_tflite(out, tflite, source, spec, "int8", "uint8", meta, labels_text)

Every file, `labels.txt`, `config.json` (whose sha256 sums match the files)
and `export_report.json` are written into a fresh `.<folder>.staging-*`
folder beside the export folder, which replaces the old folder whole at the
end. A killed export leaves the old set as it was; the next export removes
what the killed one left.

The class labels travel inside each .tflite twice: as standard TFLite
Metadata with `labels.txt` zipped onto the file (what MediaPipe Tasks, the
LiteRT Support Library and Android Studio read; see `mobilenets.tflite`) and
as our entries `mobilenets_labels` and `mobilenets_config` (JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mobilenets import artifacts
from mobilenets.env import package_version
from mobilenets.errors import MobilenetsError
from mobilenets.tflite import CONFIG_KEY, LABELS_KEY, ClassifierInfo, graph_interpreter, write_metadata

if TYPE_CHECKING:
    from mobilenets.export.source import Source

TFLITE_NAMES = {"none": "model_float32.tflite", "float16": "model_float16.tflite",
                "dynamic": "model_dynamic.tflite", "int8": "model_int8.tflite"}
# Whose versions an export's config.json records: they decide what a conversion writes.
VERSIONED_PACKAGES = ("mobilenets", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert")
# The files of an export folder; a folder holding anything else is not replaced.
EXPORT_NAMES = frozenset({*TFLITE_NAMES.values(), "saved_model", "model.onnx", "labels.txt",
                          "config.json", "export_report.json"})


@contextlib.contextmanager
def staged_folder(dest: "str | os.PathLike"):
    """Yield an empty folder beside `dest`; on success it replaces `dest` whole.

    What a killed earlier export left beside `dest` is cleaned up first (an
    old set it had moved away comes back). `dest` itself may be missing,
    empty, or an earlier export; a folder holding other files is refused,
    since it would be replaced.

    Args:
        dest: the export folder.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(dest)
    _check_replaceable(dest)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = dest.with_name(f".{dest.name}.staging-{token}")
    staging.mkdir()  # not mkdtemp: its 0700 would become the export folder's mode
    try:
        yield staging
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{token}")
            os.rename(dest, old)
        os.rename(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def clean_leftovers(dest: "str | os.PathLike") -> list[Path]:
    """Remove what killed exports left in and beside an export folder.

    Beside it: `.<name>.staging-<pid>-*` (a set being written) and
    `.<name>.old-<pid>-*` (the old set, moved away during the swap; put back
    when `dest` is missing, i.e. the kill came between the two renames).
    Folders of a process still running are left alone. Inside it: the
    `.export-*` and `.convert-*` scratch folders of earlier versions.

    Args:
        dest: the export folder.

    Returns:
        The paths removed.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed = []
    staging, old = f".{dest.name}.staging-", f".{dest.name}.old-"
    olds = []
    for p in sorted(dest.parent.iterdir()):
        for prefix in (staging, old):
            if p.name.startswith(prefix) and p.is_dir() and not _owner_running(p.name[len(prefix):]):
                (olds if prefix == old else removed).append(p)
    if olds and not dest.exists():
        back = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(back, dest)
        olds.remove(back)
    removed += olds
    if dest.is_dir():
        removed += [p for p in dest.iterdir() if p.is_dir() and p.name.startswith((".export-", ".convert-"))]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def _owner_running(suffix: str) -> bool:
    """Whether the process whose pid starts `suffix` (`<pid>-<random>`) is alive."""
    try:
        pid = int(suffix.split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # this process starts one export at a time: its own are leftovers
    return artifacts.pid_alive(pid)


def _recorded_files(config: Path) -> list[str]:
    """The files an earlier export's config.json lists (none if it is not one)."""
    try:
        files = json.loads(config.read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(name) for name in files] if isinstance(files, dict) else []


def _check_replaceable(dest: Path) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise MobilenetsError(f"the export folder is a file: {dest}")
    ours = EXPORT_NAMES | set(_recorded_files(dest / "config.json"))
    foreign = sorted(p.name for p in dest.iterdir() if p.name not in ours and not p.name.startswith("."))
    if foreign:
        raise MobilenetsError(f"{dest} holds files that are not an export ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}): a re-export replaces the "
                              f"whole folder, so give --out a new or empty folder")


def _classifier_info(source: "Source", spec, mode: str, io: str) -> ClassifierInfo:
    """What the standard metadata of one exported file says (it takes raw 0-255 pixels)."""
    ours = package_version("mobilenets") or "dev"
    kind = {"none": "float32", "float16": "float16 weights", "dynamic": "int8 weights",
            "int8": f"int8, {io} input and output"}[mode]
    shown = ", ".join(source.labels[:5]) + (", ..." if len(source.labels) > 5 else "")
    cfg = source.config
    return ClassifierInfo(
        name=f"MobileNet {spec}" if spec else source.model.name,
        labels=source.labels,
        description=f"Classifies an RGB image into {len(source.labels)} classes ({shown}). "
                    f"{kind.capitalize()}; takes raw 0-255 pixels. Made by mobilenets {ours}.",
        version=f"{source.model_path.name} sha256 {sha256_file(source.model_path)[:12]}",
        author=str(cfg.get("author") or "mobilenets export"),
        license=str(cfg.get("license") or "not stated by the model's owner (the MobileNet "
                                          "architecture and ImageNet weights are Apache-2.0)"))


def _input_quantization(tflite: bytes) -> dict:
    interp = graph_interpreter(tflite)
    d = interp.get_input_details()[0]
    o = interp.get_output_details()[0]
    return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(v) for v in d["shape"]],
            "scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1]),
            "output_dtype": np.dtype(o["dtype"]).name, "output_scale": float(o["quantization"][0]),
            "output_zero_point": int(o["quantization"][1])}


def write_tflite(out: Path, tflite: bytes, source: "Source", spec, mode: str, io: str,
                 meta_config: dict, labels_text: str) -> tuple[Path, dict]:
    """Write one .tflite, labelled, into the export folder.

    Args:
        out: the (staged) export folder.
        tflite: the converter's bytes.
        source: the exported model (its labels, config and file name go into the metadata).
        spec: the model spec, or None.
        mode: the quantize mode (names the file, `TFLITE_NAMES`).
        io: the file's input/output type.
        meta_config: our `mobilenets_config` entry, without `quantize` and `io`.
        labels_text: `labels.txt`'s text.

    Returns:
        `(path, facts)`: the file and what config.json records of it (format,
        quantize, io, bytes, sha256, input quantization).
    """
    meta = dict(meta_config, quantize=mode, io=io)
    # Standard TFLite Metadata and labels.txt zipped on (MediaPipe, Android), plus ours.
    tflite = write_metadata(tflite, _classifier_info(source, spec, mode, io),
                            {LABELS_KEY: labels_text.encode(), CONFIG_KEY: json.dumps(meta).encode()})
    path = artifacts.write_bytes(out / TFLITE_NAMES[mode], tflite)
    return path, dict(format="tflite", quantize=mode, io=io, bytes=len(tflite),
                      sha256=hashlib.sha256(tflite).hexdigest(), input=_input_quantization(tflite))


def write_report(out: Path, report, calibration_images: int, min_agreement: float, max_drop: float,
                 failed: list[dict]) -> Path:
    """Write `export_report.json`: the parity report, the gate and the files that failed it.

    Args:
        out: the (staged) export folder.
        report: a `mobilenets.export.parity.ParityReport`.
        calibration_images: how many images int8 calibration used.
        min_agreement: the gate's lowest agreement.
        max_drop: the gate's largest accuracy drop.
        failed: `parity_failures` of the report.
    """
    return artifacts.write_json(out / "export_report.json", {
        "note": report.note,
        "parity_images": report.images, "parity_splits": report.splits,
        "calibration_images": calibration_images,
        "calibration_overlap": report.overlap,
        "gate": {"min_agreement": min_agreement, "max_drop": max_drop, "failed": failed},
        "keras_stability": report.stability,
        "rows": report.rows})


def dir_bytes(path: Path) -> int:
    """The bytes of every file under a folder (a SavedModel's size).

    Args:
        path: the folder.
    """
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path: the file.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
