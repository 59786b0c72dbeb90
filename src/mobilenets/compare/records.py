"""One stored record per candidate (`rows/<spec>.json`) and what makes its parts reusable.

    mobilenets compare v1-0.25-128 v2-0.35-96 --out compare/   # compare/rows/v1-0.25-128.json

A record keeps the profile, the .tflite files, every latency sample and the
retrain result of one spec. Files are stamped with the TensorFlow and
mobilenets versions that made them, latencies with the CPU model and LiteRT
version that measured them, so a re-run reuses only what still holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mobilenets.compare.choice import FORMATS, latency_key
from mobilenets.env import package_version
from mobilenets.specs import ModelSpec, parse_spec

RECORD_VERSION = 1
FILE_NAMES = {"float": "float32.tflite", "int8": "int8.tflite"}
EXPORT_NAMES = {"float": "model_float32.tflite", "int8": "model_int8.tflite"}


@dataclass(frozen=True)
class Context:
    """What every step of one comparison needs: where it writes, how it measures and retrains.

    Fixed once the comparison starts; what changes from round to round (the
    latency samples wanted) is an argument of the step, not a field here.
    """

    out: Path
    threads: tuple
    runs: int
    warmup: int
    cpu: str
    tools: dict = field(default_factory=dict)
    data: object = None
    epochs: int | None = None
    weights: str = "imagenet"
    cache_dir: object = None
    dataset: object = None
    train_key: str | None = None
    repeats: int = 1

    def budget_threads(self, budget_threads):
        return budget_threads or max(self.threads)


def record_path(out: Path, spec: ModelSpec) -> Path:
    return out / "rows" / f"{spec.name}.json"


def load_record(out_dir, spec) -> dict:
    """The stored record of one candidate (empty if none or unreadable).

    Args:
        out_dir: the compare output folder.
        spec: the candidate.
    """
    spec = parse_spec(spec)
    path = record_path(Path(out_dir), spec)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("version") != RECORD_VERSION or record.get("spec") != spec.name:
        record = {}
    record.setdefault("version", RECORD_VERSION)
    record["spec"] = spec.name
    for key in ("profile", "files", "latency", "train"):
        record.setdefault(key, {})
    return record


def flat_row(spec: ModelSpec, ctx: Context, record: dict, source: str) -> dict:
    from mobilenets.zoo import variant

    v = variant(spec)
    prof = record["profile"].get(source, {})
    row = {"spec": spec.name, "params": prof.get("params"), "macs_m": prof.get("macs_m"),
           "top1": v.top1, "top1_source": v.top1_source}
    if ctx.data is not None:
        train = record["train"].get(ctx.train_key, {})
        row["accuracy"] = train.get("accuracy")
        row["int8_accuracy"] = train.get("int8_accuracy")
        row["weights"] = ctx.weights if source != "random" else "- (not retrained)"
        row["run"] = train.get("run")
    files = record["files"].get(source, {})
    for fmt in FORMATS:
        f = files.get(fmt)
        row[f"{fmt}_mb"] = round(f["bytes"] / 2**20, 2) if f else None
    for t in ctx.threads:
        for fmt in FORMATS:
            m = record["latency"].get(latency_id(ctx, source, fmt, t))
            row[latency_key(fmt, t)] = m["latency_ms_p50"] if m and m.get("samples") else None
    row["measured"] = "retrained export" if source != "random" else "random weights, 1000 classes"
    samples = [m for k, e in record["latency"].items() if k.startswith(f"{source}/")
               for m in e.get("samples", [])]
    counts = [len(e.get("samples", [])) for k, e in record["latency"].items() if k.startswith(f"{source}/")]
    row["latency_samples"] = min(counts) if counts else 0  # p50s behind each latency (lowest kept)
    row["measured_from"] = min((m["measured_at"] for m in samples), default=None)
    row["measured_at"] = max((m["measured_at"] for m in samples), default=None)
    loads = [m["load1"] for m in samples if m.get("load1") is not None]
    row["load1_max"] = round(max(loads), 2) if loads else None
    return row


def latency_id(ctx: Context, source: str, fmt: str, threads: int) -> str:
    return f"{source}/{fmt}/t{threads}/r{ctx.runs}/w{ctx.warmup}"


def file_ok(out: Path, entry: dict | None, tools: dict | None = None) -> bool:
    if not entry:
        return False
    if tools is not None and entry.get("made_with") != converter(tools):
        return False
    p = out / entry["path"]
    return p.is_file() and p.stat().st_size == entry["bytes"]


def converter(tools: dict) -> dict:
    return {k: tools.get(k) for k in ("tensorflow", "mobilenets")}


def forget_latency(record: dict, source: str, fmt: str) -> None:
    """A new file makes its old timings meaningless."""
    for k in [k for k in record["latency"] if k.startswith(f"{source}/{fmt}/")]:
        del record["latency"][k]


def tool_versions() -> dict:
    """Versions that change conversions (TensorFlow, mobilenets) and timings (LiteRT)."""
    return {"tensorflow": package_version("tensorflow-cpu", "tensorflow"),
            "keras": package_version("keras"), "litert": package_version("ai-edge-litert"),
            "mobilenets": package_version("mobilenets")}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else `platform.processor()`)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                    name = line.split(":", 1)[1].strip()
                    if name and not name.isdigit():
                        return name
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
