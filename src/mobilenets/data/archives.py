"""Dataset archives: the cache folder, and tar files extracted safely, once.

    folder = extract_archive("photos.tar.gz")   # under cache_home()/datasets
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from pathlib import Path

from mobilenets.artifacts import remove_stale, scratch_dir
from mobilenets.data.base import SPLIT_FOLDERS
from mobilenets.env import cache_home, first_line, progress_bar
from mobilenets.errors import MobilenetsError

# tarfile's filter errors (Python >= 3.10.12); older Pythons get our own checks.
_FilterError = getattr(tarfile, "FilterError", tarfile.TarError)


def extract_archive(archive: "str | os.PathLike", cache_dir: "str | os.PathLike | None" = None,
                    progress: bool | None = None) -> Path:
    """Extract a tar archive once into the cache and return the folder.

    The folder name holds a hash of the archive's path, size and mtime, so a
    changed archive is extracted afresh; extraction goes to a temporary
    folder renamed into place, so an interrupted run leaves nothing half done.

    Args:
        archive: a .tar, .tar.gz or .tgz file.
        cache_dir: parent folder (default: `cache_home()/datasets`).
        progress: show a spinner while extracting (default: when stderr is a terminal).

    Returns:
        The extracted folder.
    """
    archive = Path(archive)
    st = archive.stat()
    digest = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = re.sub(r"(\.tar)?(\.gz|\.tgz|\.bz2|\.xz)?$", "", archive.name) or "data"
    parent = Path(cache_dir) if cache_dir else cache_home() / "datasets"
    dest = parent / f"{stem}-{digest}"
    if dest.is_dir():
        return dest
    remove_stale(parent)  # what a killed extraction left
    with scratch_dir(parent, dest.name) as tmp:
        with progress_bar(f"extracting {archive.name}", None, progress):
            safe_extract(archive, tmp)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # another process won the race: use its copy
                raise
    return dest


def safe_extract(archive: "str | os.PathLike", dest: "str | os.PathLike") -> None:
    """Extract a tar archive, refusing anything that would land outside `dest`.

    Uses tarfile's "data" filter (no absolute paths, no `..`, no links out,
    no devices); on Pythons without it every member is checked first.

    Args:
        archive: a .tar, .tar.gz or .tgz file.
        dest: the folder to extract into.

    Raises:
        MobilenetsError: the archive is unreadable or has an unsafe member.
    """
    dest = Path(dest)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.errorlevel = 1
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.10.12
                members = tar.getmembers()
                for m in members:
                    _check_member(m)
                tar.extractall(dest, members=members)
    except _FilterError as e:
        raise MobilenetsError(f"unsafe archive {archive}: {first_line(e)}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise MobilenetsError(f"cannot extract {archive}: {first_line(e)}") from None


def _check_member(member: tarfile.TarInfo) -> None:  # pragma: no cover - old Pythons only
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
        raise _FilterError(f"member {name!r} would be extracted outside the destination")
    if not (member.isfile() or member.isdir()):
        raise _FilterError(f"member {name!r} is a link or special file")


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _is_cifar_python_tar(path: Path) -> bool:
    try:
        with tarfile.open(path) as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError):
        return False
    return first is not None and first.name.lstrip("./").startswith("cifar-10-batches-py")


def _dataset_root(folder: Path) -> Path:
    """Step into a lone top-level folder (`photos.tar.gz` -> `photos/`) unless it is a split."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        if (len(entries) == 1 and entries[0].is_dir()
                and entries[0].name.lower() not in SPLIT_FOLDERS):
            folder = entries[0]
        else:
            return folder
