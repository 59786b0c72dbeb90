"""The run folder's layout, and the one reader of a trained Keras model with what lies beside it.

    from mobilenets.rundir import model_files
    found = model_files("runs/pets")        # or runs/pets/model.keras, or any .keras / .h5
    found.model_path, found.config, found.labels, found.labels_source

A run folder (what `retrain` and `train` write; RUN on every command line)
holds `config.json` (every setting), `labels.txt` (one class per output, in
order), `model.keras` (written when training ends), `metrics.json`,
`data_report.json`, `history.csv`, `export/` once exported and
`evaluation-<split>/` once evaluated. A model file
outside a run is read with the `labels.txt` and `config.json` beside it when
they are there. evaluate, export, predict, benchmark, compare and the Python
API all find a run's files here, so they agree on what a run is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mobilenets import artifacts
from mobilenets.errors import MobilenetsError

MODEL = "model.keras"
CONFIG = "config.json"
LABELS = "labels.txt"
METRICS = "metrics.json"
EXPORT = "export"
EVALUATION = "evaluation.json"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class ModelFiles:
    """A Keras model file and what its folder says about it."""

    model_path: Path
    run_dir: Path | None  # the run folder, when a folder was given
    config: dict  # config.json beside the model, or {}
    labels: list[str] | None  # labels.txt beside it, else the config's classes, else None
    labels_source: str | None  # the file the labels came from

    @property
    def folder(self) -> Path:
        return self.model_path.parent


def is_run(path: "str | os.PathLike") -> bool:
    """Whether `path` is a run folder (it has a config.json), finished or not."""
    return (Path(path) / CONFIG).is_file()


def read_config(folder: "str | os.PathLike") -> dict:
    """A folder's `config.json` ({} without one; one line if it is unreadable)."""
    path = Path(folder) / CONFIG
    return artifacts.read_json(path) if path.is_file() else {}


def read_labels(path: "str | os.PathLike") -> list[str]:
    """Labels from a text file, one per line (blank lines skipped).

    Args:
        path: the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MobilenetsError(f"no such labels file: {path}")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise MobilenetsError(f"cannot read labels file {path}: {e.strerror}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def model_files(target: "str | os.PathLike", need_run: bool = False) -> ModelFiles:
    """The Keras model a run folder or model file names, with its config and labels.

    Args:
        target: a run folder, or a `.keras` / `.h5` model file.
        need_run: a folder must be a run (have a config.json), as evaluate
            needs one to find its data.

    Raises:
        MobilenetsError: one line naming what is missing.
    """
    target = Path(target)
    run_dir = None
    if target.is_dir():
        if need_run and not is_run(target):
            raise MobilenetsError(f"not a run directory (no config.json): {target}")
        if not (target / MODEL).is_file():
            raise MobilenetsError(f"no {MODEL} in {target}: " + (
                "the run has not finished; --resume it" if is_run(target) else "not a run directory"))
        run_dir, model_path = target, target / MODEL
    elif target.exists():
        model_path = target
    else:
        raise MobilenetsError(f"no such model file: {target}")
    config = read_config(model_path.parent)
    labels, source = None, None
    if (model_path.parent / LABELS).is_file():
        labels, source = read_labels(model_path.parent / LABELS), str(model_path.parent / LABELS)
    elif config.get("classes"):
        labels, source = [str(c) for c in config["classes"]], str(model_path.parent / CONFIG)
    return ModelFiles(model_path, run_dir, config, labels, source)


def run_models(run: "str | os.PathLike") -> list[Path]:
    """Every model a run folder holds: `model.keras`, then its exported `.tflite` files."""
    run = Path(run)
    return ([run / MODEL] if (run / MODEL).is_file() else []) + \
        sorted((run / EXPORT).glob("*.tflite")) + sorted(run.glob("*.tflite"))


def evaluation_dir(found: ModelFiles, split: str) -> Path:
    """Where `evaluate` writes a split's results: `<run>/evaluation-<split>/` for a run,
    `<stem>-evaluation-<split>/` beside a model file."""
    if found.run_dir is not None:
        return found.run_dir / f"evaluation-{split}"
    return found.folder / f"{found.model_path.stem}-evaluation-{split}"


def evaluations(target: "str | os.PathLike") -> list[Path]:
    """Every finished evaluation of a run folder or model file, sorted by name: a run's
    `evaluation/` (its test split, written by training) and `evaluation-<split>/` (by
    `evaluate`), or a model file's `<stem>-evaluation-<split>/`.

    A folder counts when it holds `evaluation.json`.
    """
    target = Path(target)
    folder, pattern = (target, "evaluation*") if target.is_dir() else (
        target.parent, f"{target.stem}-evaluation-*")
    return [d for d in sorted(folder.glob(pattern)) if (d / EVALUATION).is_file()]
