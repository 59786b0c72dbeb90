"""Class labels for a model's outputs: read from a file, aligned one to one with the outputs.

    labels = align_labels(read_labels("labels.txt"), outputs=1001, source="labels.txt")

A labels list one shorter than the outputs gets `background` as class 0 (the
TF-slim convention); a list that starts with `background` and is one longer
loses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mobilenets.errors import MobilenetsError


def read_labels(path: "str | os.PathLike") -> list[str]:
    """Labels from a text file, one per line (blank lines skipped).

    Args:
        path: the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MobilenetsError(f"no such labels file: {path}")
    try:
        return _label_lines(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise MobilenetsError(f"cannot read labels file {path}: {e.strerror}") from None


def _label_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def align_labels(labels: list[str] | None, outputs: int, source: str = "labels") -> list[str]:
    """Labels that index the model's outputs one to one.

    Args:
        labels: the labels found, or None (then `"0"`, `"1"`, ... are used).
        outputs: the number of model outputs.
        source: where the labels came from, for the error message.

    Raises:
        MobilenetsError: the counts cannot be reconciled.
    """
    if labels is None:
        return [str(i) for i in range(outputs)]
    if len(labels) == outputs:
        return list(labels)
    if len(labels) == outputs - 1:
        return ["background"] + list(labels)
    if len(labels) == outputs + 1 and labels[0].strip().lower() == "background":
        return list(labels[1:])
    raise MobilenetsError(f"{source} has {len(labels)} labels but the model has {outputs} outputs")
