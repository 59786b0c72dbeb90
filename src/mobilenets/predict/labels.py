"""Class labels aligned one to one with a model's outputs (files are read by `mobilenets.rundir`).

    labels = align_labels(["cat", "dog"], outputs=3, source="labels.txt")   # background, cat, dog

A labels list one shorter than the outputs gets `background` as class 0 (the
TF-slim convention); a list that starts with `background` and is one longer
loses it.
"""

from __future__ import annotations

from mobilenets.errors import MobilenetsError


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
