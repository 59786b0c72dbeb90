"""A dataset by name, folder or archive, and the data a run's config.json names.

    data = open_dataset("photos/")   # or "digits", "cifar10", "cifar10:PATH", "photos.tar.gz", "wiki.mat"
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenets.data.archives import extract_archive, _dataset_root, _is_cifar_python_tar, _is_tar
from mobilenets.data.base import ImageData
from mobilenets.data.builtins import BUILTINS, load_builtin
from mobilenets.data.folder import ImageFolder
from mobilenets.errors import MobilenetsError


def open_dataset(
    spec_or_path: "str | os.PathLike | ImageData",
    validation_percent: float = 10,
    test_percent: float = 10,
    *,
    cache_dir: "str | os.PathLike | None" = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> ImageData:
    """Open a dataset by name, folder or archive.

    Args:
        spec_or_path: "digits", "cifar10", "cifar10:PATH", a folder of class
            folders (see `ImageFolder`), or a .tar/.tar.gz/.tgz holding such a
            folder (extracted safely once under `cache_dir`) or CIFAR-10's
            python batches. An existing folder named like a built-in wins
            over the built-in.
        validation_percent: percent of images for "val" when not pre-split.
        test_percent: percent of images for "test" when not pre-split.
        cache_dir: where archives are extracted (default: `cache_home()/datasets`).
        workers: decoding threads for folders.
        progress: show progress bars (default: when stderr is a terminal).

    Returns:
        An `ImageFolder` or an `ArrayDataset`.
    """
    if isinstance(spec_or_path, ImageData):
        return spec_or_path
    text = os.fspath(spec_or_path)
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return load_builtin(name, rest or None, validation_percent, test_percent)
    path = Path(text).expanduser()
    folder_args = dict(workers=workers, progress=progress)
    if path.suffix.lower() == ".mat" or (
            path.is_dir() and any((path / n).is_file() for n in ("wiki.mat", "imdb.mat"))):
        # IMDB-WIKI as published: filtered and written as female/ male/ once.
        from mobilenets.imdb_wiki import gender_dataset

        path = gender_dataset(path, cache_dir=cache_dir)
    if path.is_dir():
        return ImageFolder(path, validation_percent, test_percent, **folder_args)
    if not path.exists():
        raise MobilenetsError(f"no such dataset: {text!r}; give a folder, a .tar.gz of one, "
                              f"or one of {', '.join(BUILTINS)}")
    if not _is_tar(path):
        raise MobilenetsError(f"not a folder or a .tar/.tar.gz archive: {path}")
    if _is_cifar_python_tar(path):
        return load_builtin("cifar10", path, validation_percent, test_percent)
    root = _dataset_root(extract_archive(path, cache_dir, progress=progress))
    return ImageFolder(root, validation_percent, test_percent, **folder_args)


def resolved_data(text: str) -> str:
    """A DATA as typed, with its path made absolute ("cifar10:PATH" keeps its name; "digits" stays)."""
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return f"{name}:{Path(rest).expanduser().absolute()}" if rest else text
    return str(Path(text).expanduser().absolute())


def _data_exists(text: str) -> bool:
    name, colon, rest = text.partition(":")
    if name.lower() in BUILTINS and (colon or not Path(text).exists()):
        return not rest or Path(rest).expanduser().exists()
    return Path(text).expanduser().exists()


def run_data(config: dict, how: str) -> "str | None":
    """The data a run's `config.json` names, found from any working directory.

    The DATA as typed when it exists from here, else the absolute path saved
    beside it (`data_resolved`); None when the config names no data.

    Args:
        config: a run's config.json.
        how: how to pass the data instead, for the message when neither exists.
    """
    typed = config.get("data")
    if not typed:
        return None
    resolved = config.get("data_resolved") or typed
    for candidate in (typed, resolved):
        if _data_exists(candidate):
            return candidate
    raise MobilenetsError(f"the run's data is missing: {resolved!r} (typed as {typed!r}); {how}")
