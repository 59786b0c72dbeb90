"""Atomic writes: every artifact appears whole or not at all.

    write_json(run_dir / "metrics.json", {"accuracy": 0.93})

Each writer puts the bytes in a temporary file in the target's own folder and
renames it over the target (`os.replace` is atomic on one file system), so a
crash or kill -9 never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


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
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are for sharing
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def _jsonable(obj):
    """numpy scalars/arrays and paths, as JSON understands them."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
