"""A run's epoch rows on disk: `history.csv` and `training_curves.png`.

    write_history(run / "history.csv", state["history"])
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mobilenets import artifacts


def write_history(path: Path, history: list[dict]) -> None:
    keys: dict = {}
    for row in history:
        keys.update(dict.fromkeys(row))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(keys), lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    artifacts.write_text(path, out.getvalue())


def plot_history(history: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, phases in sequence."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(history) + 1)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            ys = [row.get(prefix + metric, np.nan) for row in history]
            if not np.all(np.isnan(ys)):
                ax.plot(x, ys, style, label=(prefix or "train_") + metric)
        phases = [row["phase"] for row in history]
        for i in range(1, len(phases)):
            if phases[i] != phases[i - 1]:
                ax.axvline(i + 0.5, color="grey", lw=0.8)
                ax.text(i + 0.6, ax.get_ylim()[1], phases[i], va="top", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
