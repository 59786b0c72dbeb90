"""Retrain every candidate with one recipe, export it, and keep its accuracy in the record.

    mobilenets compare --grid "v2:0.35,0.5:224,160" --data photos/ --epochs 10

Same data, epochs, weights and seed for every candidate; the files measured
are the run's exported float32 and int8 `.tflite`: the model you would ship.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from mobilenets.compare.choice import FORMATS, is_number
from mobilenets.compare.records import EXPORT_NAMES, Context, file_ok, forget_latency
from mobilenets.errors import MobilenetsError


def train_key(data, epochs, weights) -> str:
    where = str(Path(data).resolve()) if Path(str(data)).exists() else str(data)
    text = json.dumps({"data": where, "epochs": epochs, "weights": str(weights), "seed": 0},
                      sort_keys=True)
    return "train-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def data_name(data) -> str | None:
    if data is None:
        return None
    return Path(str(data).split(":")[-1]).name.replace(".tar.gz", "") or str(data)


def ensure_trained(spec, ctx: Context, record: dict, step, save) -> tuple[str, str | None]:
    """Retrain and export; returns (source, note). A failure leaves source 'random'."""
    key = ctx.train_key
    entry = record["train"].get(key, {})
    if entry.get("accuracy") is not None and file_ok(ctx.out, record["files"].get(key, {}).get("int8")) \
            and file_ok(ctx.out, record["files"].get(key, {}).get("float")):
        return key, None
    run = ctx.out / "runs" / f"{spec.name}-{key[len('train-'):]}"
    if str(ctx.weights).lower() == "imagenet":
        from mobilenets.models import has_imagenet_weights

        if not has_imagenet_weights(spec):
            return "random", (f"not retrained: no official ImageNet weights exist for {spec.name} "
                              f"(pass --weights none to retrain every candidate from random weights)")
    try:
        if not (run / "metrics.json").is_file():
            step(f"retraining on {data_name(ctx.data)}")
            _train(spec, ctx, run)
        step("exporting float32 and int8")
        export_dir = _export(run)
    except MobilenetsError as e:
        if not (run / "checkpoints" / "state.json").is_file():
            shutil.rmtree(run, ignore_errors=True)  # nothing to resume; retry afresh next time
        return "random", f"not retrained: {e}"
    metrics = json.loads((run / "metrics.json").read_text())
    split = metrics.get("test") or metrics.get("val") or {}
    parity = _parity_accuracy(export_dir)
    record["train"][key] = {
        "run": run.relative_to(ctx.out).as_posix(), "data": str(ctx.data), "epochs": ctx.epochs,
        "weights": ctx.weights,
        "accuracy": _pct(split.get("accuracy")), "images": split.get("count"),
        "float_accuracy": _pct(parity.get("float")), "int8_accuracy": _pct(parity.get("int8")),
    }
    files = record["files"].setdefault(key, {})
    for fmt in FORMATS:
        p = export_dir / EXPORT_NAMES[fmt]
        files[fmt] = {"path": p.relative_to(ctx.out).as_posix(), "bytes": p.stat().st_size}
        forget_latency(record, key, fmt)
    record["profile"].pop(key, None)
    save()
    return key, None


def _pct(v):
    return round(100 * v, 2) if is_number(v) else None


def _train(spec, ctx: Context, run: Path) -> None:
    from mobilenets.data import cache_home
    from mobilenets.train import TrainConfig, run_training

    config = TrainConfig(data=str(ctx.data), arch=spec.name, mode="retrain", weights=ctx.weights)
    if ctx.epochs is not None:
        config.epochs = ctx.epochs
    resume = run if (run / "checkpoints" / "state.json").is_file() else None
    if resume is None and run.exists():
        shutil.rmtree(run)  # a run that died before its first checkpoint
    run_training(config, runs_dir=run.parent, name=run.name, resume=resume,
                 cache_dir=ctx.cache_dir or cache_home(), data=ctx.dataset)
    import keras

    keras.backend.clear_session()


def _export(run: Path) -> Path:
    from mobilenets.export import export

    out = run / "export"
    if all((out / n).is_file() for n in EXPORT_NAMES.values()) and (out / "config.json").is_file():
        return out
    export(run, out_dir=out, quantize="none,int8")
    import keras

    keras.backend.clear_session()
    return out


def _parity_accuracy(export_dir: Path) -> dict:
    try:
        rows = json.loads((export_dir / "export_report.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return {}
    names = {v: k for k, v in EXPORT_NAMES.items()}
    # Parity also runs on training images calibration did not use; the test
    # images' accuracy is the one that stands next to the run's test accuracy.
    return {names[r["model"]]: r["test_accuracy"] if r.get("test_accuracy") is not None
            else r.get("accuracy") for r in rows if r.get("model") in names}
