"""Atomic writes: every artifact appears whole or not at all.

    write_json(run_dir / "metrics.json", {"accuracy": 0.93})

Each writer puts the bytes in a temporary file in the target's own folder and
renames it over the target (`os.replace` is atomic on one file system), so a
crash or kill -9 never leaves a half-written file behind.

A kill -9 does leave the temporary file itself. Every temporary name carries
its writer's pid (`.<name>.tmp-<pid>-<random>`), so `remove_stale(folder)`
can delete those of processes that are gone and keep a live writer's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from mobilenets.errors import MobilenetsError


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike", suffix: str | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    Args:
        path: the final file.
        suffix: the temporary file's suffix (default: `path`'s own, since
            some writers, such as `keras.Model.save`, choose the format by it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=_temp_prefix(path.name), suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are for sharing
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def scratch_dir(parent: "str | os.PathLike", name: str = "scratch"):
    """Yield a new empty folder `.<name>.tmp-<pid>-<random>` in `parent`; remove it after."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(name), dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(folder: "str | os.PathLike") -> list[Path]:
    """Delete the temporary files and folders in `folder` whose writer has died.

    Only names made by `atomic_path` and `scratch_dir` count, and only those
    of a process that no longer runs: a concurrent writer's (or this
    process's own) are kept.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing, or not a folder: nothing of ours in it
        return []
    removed = []
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or pid_alive(int(m.group(1))):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (this process counts as running)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)-")


def _temp_prefix(name: str) -> str:
    return f".{name}.tmp-{os.getpid()}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: "str | os.PathLike", data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: "str | os.PathLike", text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: "str | os.PathLike", obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def read_json(path: "str | os.PathLike") -> dict:
    """A JSON object from a file, or one line saying why the file is not one."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MobilenetsError(f"cannot read {path}: {e}") from None
    if not isinstance(obj, dict):
        raise MobilenetsError(f"cannot read {path}: it holds a JSON {type(obj).__name__}, not an object")
    return obj


def _jsonable(obj):
    """numpy scalars/arrays and paths, as JSON understands them."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
