"""Do what is missing for one candidate: convert, profile, time; save after every step.

    mobilenets compare v1-0.25-128 --threads 1,2 --repeats 3

Each step first looks in the candidate's record and returns at once when
its result is still valid, so Ctrl-C loses at most the step in progress.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mobilenets import artifacts
from mobilenets.compare.choice import FORMATS
from mobilenets.compare.records import (FILE_NAMES, Context, converter, file_ok, flat_row,
                                        forget_latency, latency_id, load_record, record_path)
from mobilenets.compare.retrain import ensure_trained
from mobilenets.env import report
from mobilenets.errors import MobilenetsError
from mobilenets.rundir import MODEL
from mobilenets.specs import ModelSpec


def candidate(spec: ModelSpec, ctx: Context, bar, samples: int = 1) -> dict:
    """Do what is missing for one candidate, saving the record after every step.

    Args:
        spec: the candidate.
        ctx: the comparison's settings.
        bar: the progress bar (`describe`, `advance`).
        samples: latency samples every file should have after this pass
            (round n of `ctx.repeats` asks for n).
    """
    record = load_record(ctx.out, spec)
    path = record_path(ctx.out, spec)
    did = []

    def save():
        artifacts.write_json(path, record)

    def step(what: str):
        bar.describe(f"{spec.name}: {what}")
        did.append(what)

    note, source, error = None, "random", None
    try:
        if ctx.data is not None:
            source, note = ensure_trained(spec, ctx, record, step, save)
        ensure_files(spec, ctx, record, source, step, save)
        ensure_profile(spec, ctx, record, source, step, save)
        for t in ctx.threads:
            for fmt in FORMATS:
                ensure_latency(ctx, record, source, fmt, t, samples, step, save)
    except MobilenetsError as e:
        error = str(e)
        report(f"{spec.name}: {error}")
    row = flat_row(spec, ctx, record, source)
    row["note"] = "; ".join(n for n in (note, error) if n) or None
    if did or record.get("row") != row:  # a pure re-use leaves the file untouched
        record["row"] = row
        save()
    return dict(row, reused=not did)


def ensure_files(spec, ctx: Context, record: dict, source: str, step, save) -> None:
    """float32 and int8 .tflite files of the spec (random weights, 1000 classes)."""
    if source != "random":
        return  # the retrained run's export made them
    files = record["files"].setdefault("random", {})
    folder = ctx.out / "models" / spec.name
    artifacts.remove_stale(folder)  # what a killed conversion left
    for fmt in FORMATS:
        if file_ok(ctx.out, files.get(fmt), ctx.tools):
            continue
        step(f"converting to {'float32' if fmt == 'float' else 'int8'} .tflite")
        path = folder / FILE_NAMES[fmt]
        folder.mkdir(parents=True, exist_ok=True)
        _convert_spec(spec, fmt, path)
        files[fmt] = {"path": path.relative_to(ctx.out).as_posix(), "bytes": path.stat().st_size,
                      "made_with": converter(ctx.tools)}
        forget_latency(record, "random", fmt)
        save()


def _convert_spec(spec: ModelSpec, fmt: str, dest: Path) -> None:
    """benchmark.spec_tflite in a scratch folder, then one atomic rename into place."""
    import keras

    from mobilenets.benchmark import spec_tflite
    from mobilenets.env import quiet_native_stderr

    with artifacts.scratch_dir(dest.parent, "convert") as tmp:
        with quiet_native_stderr():
            made = spec_tflite(spec, tmp, "int8" if fmt == "int8" else "none")
        os.replace(made, dest)
    keras.backend.clear_session()


def ensure_profile(spec, ctx: Context, record: dict, source: str, step, save) -> None:
    if source in record["profile"]:
        return
    from mobilenets.profile import profile

    step("profiling")
    if source == "random":
        p = profile(spec)
    else:
        run = ctx.out / record["train"][source]["run"]
        p = profile(run / MODEL)
    record["profile"][source] = {"params": p.params, "macs": p.macs, "macs_m": round(p.macs / 1e6, 1),
                                 "weight_bytes": p.weight_bytes,
                                 "peak_activation_bytes": p.peak_activation_bytes}
    import keras

    keras.backend.clear_session()
    save()


def ensure_latency(ctx: Context, record: dict, source: str, fmt: str, threads: int,
                   samples: int, step, save) -> None:
    """Time a file until it has `samples` samples (fresh processes); keep the lowest p50."""
    key = latency_id(ctx, source, fmt, threads)
    entry = record["latency"].get(key)
    if not entry or "samples" not in entry or entry.get("cpu") != ctx.cpu \
            or entry.get("litert") != ctx.tools.get("litert"):
        entry = {"cpu": ctx.cpu, "litert": ctx.tools.get("litert"), "samples": []}
    if len(entry["samples"]) >= samples:
        return
    from mobilenets.benchmark import benchmark

    n = len(entry["samples"]) + 1
    step(f"{'float32' if fmt == 'float' else 'int8'} latency, {threads} thread{'s' * (threads > 1)}"
         + (f" ({n} of {ctx.repeats})" if ctx.repeats > 1 else ""))
    path = ctx.out / record["files"][source][fmt]["path"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    row = benchmark([str(path)], threads=(threads,), runs=ctx.runs, warmup=ctx.warmup)["rows"][0]
    keep = ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "init_ms", "first_ms",
            "throughput", "peak_rss_mb", "gmacs_per_s")
    entry["samples"].append(dict({k: row.get(k) for k in keep}, load1=load,
                                 measured_at=time.strftime("%Y-%m-%dT%H:%M:%S")))
    best = min(entry["samples"], key=lambda m: m["latency_ms_p50"])
    entry.update({k: best[k] for k in keep})  # the least disturbed sample speaks for the file
    record["latency"][key] = entry
    save()
