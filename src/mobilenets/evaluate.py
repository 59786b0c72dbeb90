"""How good is a trained model: accuracy, per-class scores, confusions.

    mobilenets evaluate runs/pets data/pets --split test

Metrics come from scikit-learn. Results are written as `evaluation.json`,
`confusion_matrix.png` and `misclassified.csv` (retrain.py's
`--print_misclassified_test_images`, as a file you can sort).
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.env import report
from mobilenets.errors import MobilenetsError
from mobilenets.rundir import EVALUATION, KERAS_SUFFIXES, evaluation_dir, model_files


TTA = ("none", "flip")


def evaluate_arrays(model, images: np.ndarray, labels: np.ndarray, classes: list[str],
                    paths: list | None = None, k: int = 5, batch_size: int = 64,
                    tta: str = "none") -> dict:
    """Evaluate a Keras model (or any `predict_fn(images) -> probs`) on arrays.

    Args:
        model: a Keras model taking 0-255 pixels, or a callable returning
            class probabilities for a batch of images.
        images: uint8 or float images, shape (N, H, W, 3), or an
            `ImageSplit` (`mobilenets.data`), read a batch at a time.
        labels: int class indices, shape (N,).
        classes: class names, index-aligned with the model's outputs.
        paths: file of each image, for the misclassified list.
        k: top-k accuracy's k (capped at the number of classes).
        tta: test-time augmentation: `flip` averages the probabilities of
            each image and its mirror image (for models trained with
            `--flip-left-right`; twice the inference work).

    Returns:
        A JSON-serialisable dict. `k` is the k used (at most the number of
        classes); `top_k_accuracy` is None when k is not below the number of
        classes, where it would be 1.0 by construction.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if len(images) == 0:
        raise MobilenetsError("nothing to evaluate: the split has no images")
    if tta not in TTA:
        raise MobilenetsError(f"tta must be one of {', '.join(TTA)}. Received {tta!r}")
    probs = _predict(model, images, batch_size)
    if tta == "flip":
        probs = (probs + _predict(model, images, batch_size, flip=True)) / 2
    labels = np.asarray(labels).astype(int)
    pred = probs.argmax(axis=1)
    k = min(k, len(classes))
    topk = np.argsort(-probs, axis=1)[:, :k]
    idx = list(range(len(classes)))
    p, r, f1, support = precision_recall_fscore_support(labels, pred, labels=idx, zero_division=0)
    misclassified = [
        {"path": str(paths[i]) if paths is not None else str(i), "true": classes[labels[i]],
         "predicted": classes[pred[i]], "confidence": round(float(probs[i, pred[i]]), 4)}
        for i in np.flatnonzero(pred != labels)
    ]
    misclassified.sort(key=lambda m: -m["confidence"])
    return {
        "count": int(len(labels)),
        "tta": tta,
        "accuracy": round(float((pred == labels).mean()), 4),
        "k": k,
        "top_k_accuracy": (round(float((topk == labels[:, None]).any(axis=1).mean()), 4)
                           if k < len(classes) else None),
        "classes": list(classes),
        "per_class": [
            {"class": c, "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
             "f1": round(float(f1[i]), 4), "support": int(support[i])}
            for i, c in enumerate(classes)
        ],
        "macro_f1": round(float(np.mean(f1)), 4),
        "confusion_matrix": confusion_matrix(labels, pred, labels=idx).tolist(),
        "misclassified": misclassified,
    }


def top_k_column(result: dict) -> dict:
    """`{"top-5": 0.93}` for a result table, or `{}` when top-k says nothing (k >= classes)."""
    if result.get("top_k_accuracy") is None:
        return {}
    return {f"top-{result['k']}": result["top_k_accuracy"]}


def _predict(model, images, batch_size: int, flip: bool = False) -> np.ndarray:
    """Probabilities a batch at a time: float32 (and mirrored) copies of one batch, never of the split."""
    if isinstance(images, np.ndarray) and not hasattr(model, "predict"):
        return np.asarray(model(np.ascontiguousarray(images[:, :, ::-1]) if flip else images))
    out = []
    for batch in _batches(images, batch_size):
        if flip:
            batch = batch[:, :, ::-1]
        if hasattr(model, "predict"):
            out.append(np.asarray(model.predict_on_batch(batch.astype("float32"))))
        else:
            out.append(np.asarray(model(np.ascontiguousarray(batch))))
    return np.concatenate(out)


def _batches(images, batch_size: int):
    if hasattr(images, "batches"):  # an ImageSplit, read from disk a batch at a time
        return images.batches(batch_size)
    return (images[i:i + batch_size] for i in range(0, len(images), batch_size))


def write_evaluation(result: dict, out_dir: Path) -> Path:
    """Write evaluation.json, confusion_matrix.png and misclassified.csv."""
    out_dir = Path(out_dir)
    artifacts.write_json(out_dir / EVALUATION, result)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["path", "true", "predicted", "confidence"], lineterminator="\n")
    w.writeheader()
    w.writerows(result["misclassified"])
    artifacts.write_text(out_dir / "misclassified.csv", buf.getvalue())
    plot_confusion(result["confusion_matrix"], result["classes"], out_dir / "confusion_matrix.png",
                   title=f"accuracy {result['accuracy']:.3f} on {result['count']} images")
    return out_dir


def plot_confusion(matrix, classes: list[str], path: Path, title: str = "") -> None:
    """A row-normalised confusion matrix with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def evaluate(target, data=None, split: str = "test", out_dir=None, k: int = 5,
             faces: bool | None = None, tta: str = "none") -> dict:
    """Evaluate a run directory or a `.keras`/`.h5` model on a dataset split.

    Args:
        target: run directory or model file.
        data: dataset (folder, builtin name, ...); default: the run's own.
        split: `train`, `val` or `test`.
        out_dir: where to write results (default: `<run>/evaluation-<split>`
            or beside the model file).
        k: top-k accuracy's k.
        faces: crop images to faces first (default: as the run was trained).
        tta: `flip` averages each image's and its mirror image's predictions.
    """
    from mobilenets.data import open_dataset, run_data
    from mobilenets.profile import load_keras_model

    target = Path(target)
    if target.is_file() and target.suffix.lower() not in KERAS_SUFFIXES:
        hint = (" (export's parity report scores a .tflite; predict classifies with one)"
                if target.suffix.lower() == ".tflite" else "")
        raise MobilenetsError(f"evaluate takes a run directory or a .keras or .h5 model file{hint}. "
                              f"Received {target}")
    found = model_files(target, need_run=True)
    model_path = found.model_path
    config = found.config if found.run_dir else {}
    default_out = evaluation_dir(found, split)
    model = load_keras_model(model_path)
    if data is None:
        if "data" not in config:
            raise MobilenetsError("give the data to evaluate on (a model file has no run config)")
        data = run_data(config, f"give it as DATA: mobilenets evaluate {target} DATA")
    ds = open_dataset(data, validation_percent=config.get("validation_percent", 10),
                      test_percent=config.get("test_percent", 10)) if isinstance(data, (str, Path)) else data
    if faces if faces is not None else config.get("faces"):
        from mobilenets.faces import face_cropped

        ds, _ = face_cropped(ds, config.get("validation_percent", 10), config.get("test_percent", 10))
    classes = list(ds.classes)
    n_out = model.output_shape[-1]
    if n_out != len(classes):
        raise MobilenetsError(f"the model has {n_out} outputs but the data has {len(classes)} classes")
    # Decoded to a temporary store and read in batches: a split of any size fits.
    with tempfile.TemporaryDirectory(prefix="mobilenets-evaluate-") as scratch:
        images = ds.stream(split, tuple(model.input_shape[1:3]), cache_dir=scratch)
        result = evaluate_arrays(model, images, images.labels, classes, images.paths, k=k, tta=tta)
    skipped = ds.skipped_in(split)
    result["split"] = split
    result["model"] = str(model_path)
    # Named as in a run's data_report.json (the list) and metrics.json (the count).
    result["skipped"], result["skipped_files"] = skipped, len(skipped)
    out = Path(out_dir) if out_dir else default_out
    write_evaluation(result, out)
    result["out_dir"] = str(out)
    if skipped:
        report(f"skipped {skipped_text(skipped)} of the {split!r} split; reasons in "
               f"{out / EVALUATION}")
    return result


def skipped_text(skipped: list[dict], show: int = 3) -> str:
    """`3 unreadable files (a.jpg, b.jpg, ...)`: how many, and the first few names."""
    from mobilenets.results import one_line

    names = [one_line(s["path"]) for s in skipped[:show]] + (["..."] if len(skipped) > show else [])
    return f"{len(skipped)} unreadable file{'s' * (len(skipped) != 1)} ({', '.join(names)})"
