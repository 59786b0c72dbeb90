"""Run folders: make one per run, read back its settings and state, resume it.

    run = new_run_dir("runs", None, config)   # runs/<data>-<spec>-<timestamp>
    config, state = load_run_config(run), load_state(run)
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError
from mobilenets.rundir import CONFIG, is_run, read_config
from mobilenets.train.config import TrainConfig
from mobilenets.train.presets import apply_preset


@dataclass
class Job:
    """One run in progress, as each phase needs it: folder, settings, data, state.

    Attributes:
        dir: the run folder (`runs/<name>`).
        config: the run's settings (its config.json).
        data: the opened dataset (`mobilenets.data.ImageData`).
        splits: the data's splits as scanned (files that fail to decode later may empty one).
        augment: `config.augment`, parsed (`mobilenets.augment.Augment`).
        state: the resumable state (`checkpoints/state.json`), updated as the run goes.
        started: `time.monotonic()` at the start: the time budget counts from it.
        strategy: the distribution strategy, or None for one device.
        cache_dir: where features and decoded images are cached (None: nowhere).
        images_dir: where the decoded images are kept and read back in batches:
            the cache's, or a scratch folder removed after the run (None: in memory).
    """

    dir: Path
    config: TrainConfig
    data: object
    splits: tuple
    augment: object
    state: dict
    started: float
    strategy: object = None
    cache_dir: Path | None = None
    images_dir: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The model's input (height, width)."""
        return self.config.spec.height, self.config.spec.width


def new_run_dir(runs_dir: "str | os.PathLike", name: str | None, config: TrainConfig) -> Path:
    """Make `runs/<name>` for one new run: the given name, else `<data>-<spec>-<timestamp>`.

    The folder is made with one `mkdir` that fails if it exists, so two runs
    never share one: a default name taken by a run started in the same
    second gets `-2`, `-3`, ...; a given name that exists is refused.
    """
    runs = Path(runs_dir)
    if name:
        check_run_name(name)
    runs.mkdir(parents=True, exist_ok=True)
    if name:
        run = runs / name
        try:
            run.mkdir()
        except FileExistsError:
            if is_run(run):
                raise MobilenetsError(f"run {run} exists; pass --resume {run} to continue it, "
                                      f"or a new --name") from None
            raise MobilenetsError(f"{run} exists and is not a run; remove it or pass another --name") from None
        return run
    data = Path(config.data.split(":")[-1]).name.replace(".tar.gz", "") or "data"
    base = f"{data}-{config.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        run = runs / (base if n == 1 else f"{base}-{n}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise MobilenetsError(f"{runs} already holds {base} and 998 more like it; pass --name")


def check_run_name(name: str) -> None:
    """A run name is one plain folder name inside --runs-dir."""
    if not name.strip() or name == "." or ".." in name or any(c in name for c in "/\\\0"):
        raise MobilenetsError(f"--name takes a plain folder name, made inside --runs-dir "
                              f"(no '/', '\\' or '..'). Received {name!r}")


def load_run_config(run: Path) -> TrainConfig:
    if not is_run(run):
        raise MobilenetsError(f"not a run directory (no {CONFIG}): {run}")
    return TrainConfig.from_dict(read_config(run))


def resume_data(run: Path, given: TrainConfig) -> str:
    """The data a resumed run reads: its own (as typed, else its absolute path), else the DATA given."""
    from mobilenets.data import run_data

    command = "retrain" if given.mode == "retrain" else "train"
    saved = read_config(run)
    try:
        return run_data(saved, f"give it as DATA: mobilenets {command} --resume {run} DATA") or given.data
    except MobilenetsError:
        if not given.data:
            raise
        return given.data


# Settings that have no flag of their own (set by presets) or that --resume honours.
_NOT_FLAGS = {"data", "mode", "preset", "cache_features", "bn_momentum", "low_res_scale"}


_FLAG_NAMES = {"time_budget_minutes": "--time-budget", "augment": "--augment (or an augmentation flag)"}


def ignored_on_resume(given: TrainConfig, run: TrainConfig) -> list[str]:
    """The flags in `given` that a resumed run (which keeps `run`'s settings) ignores.

    A flag counts as given when its value differs from what the command
    builds with no flags (the defaults, then `given.preset`), and as ignored
    when it also differs from the run's own value.
    """
    default_preset = None if given.mode == "retrain" else "scratch"
    baseline = apply_preset(TrainConfig(data="", mode=given.mode), given.preset)
    out = []
    if given.data and given.data != run.data:
        out.append("DATA")
    if given.preset != default_preset and given.preset != run.preset:
        out.append("--preset")
    for f in fields(TrainConfig):
        if f.name in _NOT_FLAGS:
            continue
        value = getattr(given, f.name)
        if value != getattr(baseline, f.name) and value != getattr(run, f.name):
            out.append(_FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-")))
    return out


def load_state(run: Path) -> dict:
    path = run / "checkpoints" / "state.json"
    if not path.is_file():
        return {"done": [], "history": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MobilenetsError(f"cannot resume: {path} is unreadable or truncated ({e})") from None
    if not isinstance(state, dict):
        raise MobilenetsError(f"cannot resume: {path} holds no training state")
    return state


def load_checkpoint(path: Path):
    """A run's checkpoint (weights and optimizer state), or one line saying what is wrong with it."""
    import keras

    if not path.is_file():
        raise MobilenetsError(f"cannot resume: checkpoint {path} is missing")
    if not zipfile.is_zipfile(path):
        raise MobilenetsError(f"cannot resume: checkpoint {path} is truncated or corrupt "
                              f"(a .keras file is a zip archive)")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001 - any failure to read is this file's
        first = first_line(e)
        if "Lambda" in first:
            raise MobilenetsError(f"cannot resume: checkpoint {path} holds a Lambda layer (Python code), "
                                  f"which safe loading refuses; no run writes one") from None
        raise MobilenetsError(f"cannot resume: checkpoint {path} cannot be read: {first[:200]}") from None
