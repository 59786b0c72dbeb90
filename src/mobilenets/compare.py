"""Which MobileNet: exact cost, measured speed and accuracy of many candidates, side by side.

    mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" v2-1.00-224 --threads 1,2 --budget-ms 5

For every candidate spec: params and MACs (`mobilenets.profile`), the size of
its float32 and int8 `.tflite` files, their LiteRT latency at each thread
count (p50 over `runs` calls, each (file, threads) in a fresh process, by
`mobilenets.benchmark`), and the published ImageNet top-1 from the registry.
With `data`, every candidate is also retrained with one recipe (same epochs,
same weights, same seed), exported (`mobilenets.export`), and the files that
are measured are the exported ones: the model you would ship.

Everything lands under the output folder (default `compare/`):

    rows/<spec>.json     what is known about one candidate, written atomically
                         after every step, so Ctrl-C loses at most one step
    models/<spec>/       float32.tflite, int8.tflite (random weights, 1000 classes)
    runs/<spec>-<key>/   retrain runs (with data), their export/ folder
    plots/*.png, report.html, results.json

A re-run reads `rows/` and only does what is missing: a new thread count
measures that thread count only; a candidate with everything is `reused`.
Files are reused only when made by the same TensorFlow and mobilenets
versions, latencies only when measured on the same CPU model with the same
LiteRT; delete `rows/` and `models/` to start over.

`choose` picks the most accurate candidate within a latency and/or size
budget (accuracy after retraining if known, else published ImageNet top-1,
else the largest MACs) and says why in one sentence.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mobilenets import artifacts
from mobilenets.errors import MobilenetsError, SpecError
from mobilenets.specs import ModelSpec, parse_spec

FORMATS = ("float", "int8")  # .tflite files measured: float32 and int8 (uint8 I/O)
FILE_NAMES = {"float": "float32.tflite", "int8": "int8.tflite"}
EXPORT_NAMES = {"float": "model_float32.tflite", "int8": "model_int8.tflite"}
GRID_FAMILIES = ("v1", "v2", "v3-large", "v3-small", "v3-large-min", "v3-small-min")
GRID_FORM = "family:alphas:resolutions such as 'v1:1.0,0.75,0.5:224,160'"
RECORD_VERSION = 1
METRICS = ("accuracy", "top1", "macs_m")  # what "most accurate" means, best first
METRIC_TEXT = {"accuracy": "accuracy after retraining", "top1": "published ImageNet top-1",
               "macs_m": "MACs (no accuracy known)"}


# ------------------------------------------------------------------ candidates


def parse_grid(text: str) -> list[ModelSpec]:
    """Specs of a grid `family:alphas:resolutions`, alphas outer, resolutions inner.

    Args:
        text: e.g. `"v1:1.0,0.75,0.5,0.25:224,192,160,128"`; family is one of
            `GRID_FAMILIES`; a resolution may be `HxW`.

    Returns:
        The specs, in grid order.

    Raises:
        MobilenetsError: one line quoting `text`.
    """
    def bad(why: str):
        return MobilenetsError(f"bad --grid {text!r}: {why}; expected {GRID_FORM}")

    parts = [p.strip() for p in str(text).strip().lower().split(":")]
    if len(parts) != 3 or not all(parts):
        raise bad("need three ':'-separated parts")
    family, alphas, resolutions = parts
    if family not in GRID_FAMILIES:
        raise bad(f"family must be one of {', '.join(GRID_FAMILIES)}")
    minimal = family.endswith("-min")
    family = family.removesuffix("-min")
    try:
        alpha_values = [float(a) for a in alphas.split(",")]
    except ValueError:
        raise bad(f"alphas must be numbers, got {alphas!r}") from None
    sizes = []
    for r in resolutions.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:x(\d+))?\s*", r)
        if not m:
            raise bad(f"resolutions must be integers or HxW, got {r.strip()!r}")
        sizes.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    try:
        return [ModelSpec(family, a, h, w, minimal) for a in alpha_values for h, w in sizes]
    except SpecError as e:
        raise bad(str(e)) from None


def candidates(specs=(), grids=()) -> list[ModelSpec]:
    """Specs and grids as one list, duplicates dropped, first occurrence kept.

    Args:
        specs: spec strings (`v2-1.00-224`, `mobilenet_v1_0.50_160`, ...).
        grids: grid strings for `parse_grid`.
    """
    out = [parse_spec(s) for s in specs]
    for g in grids:
        out += parse_grid(g)
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------ pure choices


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pareto_front(rows: list[dict], x: str, y: str) -> list[dict]:
    """The rows no other row beats on both `x` (lower is better) and `y` (higher is better).

    Args:
        rows: flat rows; rows without a number in `x` or `y` are left out.
        x: the key to minimise, e.g. `int8_ms_t2`.
        y: the key to maximise, e.g. `top1`.

    Returns:
        The frontier rows, by increasing `x` (and so increasing `y`). Of rows
        with equal `x` and `y` only the first is kept.
    """
    usable = [r for r in rows if _number(r.get(x)) and _number(r.get(y))]
    front, best = [], None
    for r in sorted(usable, key=lambda r: (r[x], -r[y])):
        if best is None or r[y] > best:
            front.append(r)
            best = r[y]
    return front


def pick_metric(rows: list[dict]) -> str:
    """`accuracy` if any row has it, else `top1`, else `macs_m`.

    Args:
        rows: flat rows.
    """
    for m in METRICS:
        if any(_number(r.get(m)) for r in rows):
            return m
    return METRICS[-1]


def latency_key(fmt: str, threads: int) -> str:
    """The row key of a latency: `int8_ms_t2`.

    Args:
        fmt: `float` or `int8`.
        threads: thread count.
    """
    return f"{fmt}_ms_t{threads}"


def measured_threads(rows: list[dict]) -> list[int]:
    """Thread counts that have a latency column in `rows`, ascending."""
    found = {int(m.group(1)) for r in rows for k in r
             if (m := re.fullmatch(r"(?:float|int8)_ms_t(\d+)", k))}
    return sorted(found)


@dataclass
class Choice:
    """The pick within a budget and the sentence that explains it."""

    row: dict | None
    sentence: str
    metric: str
    latency_key: str
    size_key: str
    alternative: dict | None = None


def choose(rows: list[dict], budget_ms: float | None = None, max_size_mb: float | None = None,
           fmt: str = "int8", threads: int | None = None, metric: str | None = None,
           metric_text: str | None = None) -> Choice:
    """The most accurate row within a latency and/or file-size budget.

    Args:
        rows: flat compare rows (`spec`, `<fmt>_ms_t<n>`, `<fmt>_mb`, metric).
        budget_ms: the latest acceptable p50 latency (None: no limit).
        max_size_mb: the largest acceptable `.tflite` file (None: no limit).
        fmt: which file the budget applies to: `int8` (default) or `float`.
        threads: which thread count's latency (default: the largest measured).
        metric: what "accurate" means: `accuracy`, `top1` or `macs_m`
            (default: `pick_metric(rows)`).
        metric_text: how to name the metric in the sentence.

    Returns:
        A `Choice`; `row` is None when nothing fits, and the sentence says
        what the fastest (or smallest) candidate would need.
    """
    if fmt not in FORMATS:
        raise MobilenetsError(f"budget format must be float or int8. Received {fmt!r}")
    if budget_ms is not None and budget_ms <= 0 or max_size_mb is not None and max_size_mb <= 0:
        raise MobilenetsError(f"budgets must be > 0. Received budget_ms={budget_ms}, "
                              f"max_size_mb={max_size_mb}")
    if threads is None:
        threads = max(measured_threads(rows) or [1])
    metric = metric or pick_metric(rows)
    what = metric_text or METRIC_TEXT.get(metric, metric)
    lat, size = latency_key(fmt, threads), f"{fmt}_mb"
    fmt_name = "int8" if fmt == "int8" else "float32"
    thr = f"{threads} thread{'s' if threads != 1 else ''}"
    known = [r for r in rows if _number(r.get(metric))
             and (budget_ms is None or _number(r.get(lat)))
             and (max_size_mb is None or _number(r.get(size)))]

    def fits(r):
        return ((budget_ms is None or r[lat] <= budget_ms)
                and (max_size_mb is None or r[size] <= max_size_mb))

    limits = []
    if budget_ms is not None:
        limits.append(f"{budget_ms:g} ms")
    if max_size_mb is not None:
        limits.append(f"{max_size_mb:g} MB")
    limit_text = " and ".join(limits) or "no budget"
    inside = [r for r in known if fits(r)]
    if not inside:
        if not known:
            sentence = f"No candidate has both a {what} figure and a measured {fmt_name} latency."
        else:
            key = lat if budget_ms is not None else size
            low = min(known, key=lambda r: r[key])
            unit = "ms" if key == lat else "MB"
            sentence = (f"No candidate fits within {limit_text} ({fmt_name}, {thr}): the "
                        f"{'fastest' if key == lat else 'smallest'}, {low['spec']}, "
                        f"{'takes' if key == lat else 'is'} {_ms(low[key])} {unit}.")
        return Choice(None, sentence, metric, lat, size)
    best = max(inside, key=lambda r: (r[metric], -(r.get(lat) or 0)))
    measured = []
    if budget_ms is not None:
        measured.append(f"{_ms(best[lat])} ms {fmt_name}, {thr}")
    if max_size_mb is not None:
        measured.append(f"{best[size]:.1f} MB {fmt_name} file")
    value = _metric_value(best[metric], metric, what)
    lead = "biggest" if metric == "macs_m" else "most accurate"
    sentence = (f"{best['spec']} is the {lead} model within {limit_text} "
                f"({'; '.join(measured)}): {value}")
    better = [r for r in known if r[metric] > best[metric]]
    alternative = None
    if better:
        key = lat if budget_ms is not None else size
        alternative = min(better, key=lambda r: (r[key], -r[metric]))
        gain = alternative[metric] - best[metric]
        gain_text = (f"has {gain:.0f} M more MACs" if metric == "macs_m"
                     else f"would be {gain:.1f} points better")
        costs = []
        if budget_ms is not None and alternative[lat] > budget_ms:
            costs.append(f"takes {_ms(alternative[lat])} ms")
        if max_size_mb is not None and alternative[size] > max_size_mb:
            costs.append(f"is {alternative[size]:.1f} MB")
        sentence += f"; {alternative['spec']} {gain_text} but {' and '.join(costs)}."
    else:
        sentence += "; no candidate is more accurate." if metric != "macs_m" else "."
    return Choice(best, sentence, metric, lat, size, alternative)


def _ms(v: float) -> str:
    """Milliseconds as people read them: 0.07 ms, 3.1 ms, 25 ms."""
    return f"{v:.2f}" if v < 1 else f"{v:.1f}" if v < 20 else f"{v:.0f}"


def _metric_value(v: float, metric: str, what: str) -> str:
    if metric == "macs_m":
        return f"{v:.1f} M MACs (no accuracy known)"
    return f"{v:.1f}% {what}"


# ------------------------------------------------------------------ results


@dataclass
class Comparison:
    """What `compare` produced."""

    rows: list[dict]
    columns: list[str]
    headers: dict[str, str]
    out_dir: Path
    choice: Choice | None = None
    metric: str = "top1"
    report_path: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def columns_for(rows: list[dict], threads, with_data: bool) -> tuple[list[str], dict[str, str]]:
    """Table columns and their headers for compare rows.

    Args:
        rows: flat compare rows.
        threads: thread counts measured.
        with_data: whether candidates were retrained (accuracy columns).
    """
    cols = ["spec", "params", "macs_m", "top1"]
    if with_data:
        cols += ["accuracy", "int8_accuracy", "weights"]
    cols += ["float_mb", "int8_mb"]
    headers = {"macs_m": "MACs (M)", "top1": "ImageNet top-1 % (published)",
               "accuracy": "accuracy %", "int8_accuracy": "int8 accuracy %",
               "float_mb": "float32 MB", "int8_mb": "int8 MB", "pareto": "Pareto"}
    for t in threads:
        for fmt in FORMATS:
            cols.append(latency_key(fmt, t))
            headers[cols[-1]] = f"{'float32' if fmt == 'float' else 'int8'} ms ({t} thr)"
    cols.append("pareto")
    if any(r.get("note") for r in rows):
        cols.append("note")
    return cols, headers


# ------------------------------------------------------------------ compare


def compare(specs, out_dir="compare", threads=(1,), runs: int = 50, warmup: int = 5,
            data=None, epochs: int | None = None, weights: str = "imagenet",
            cache_dir=None, repeats: int = 1, budget_ms: float | None = None,
            max_size_mb: float | None = None,
            budget_format: str = "int8", budget_threads: int | None = None,
            report: bool = True, progress: bool | None = None,
            command: str | None = None) -> Comparison:
    """Profile, convert, time (and with `data` retrain) every candidate; reuse what is stored.

    Args:
        specs: candidate specs (strings or `ModelSpec`; see `candidates`).
        out_dir: the output folder and cache (default `compare/`).
        threads: thread counts, e.g. `(1, 2)` or `"1,2"`.
        runs: timed calls per latency (p50 is reported).
        warmup: untimed calls before timing.
        data: a dataset to retrain every candidate on (folder, archive,
            `digits`, ...); None: no retraining, published top-1 only.
        epochs: retrain epochs (default: the retrain recipe's).
        weights: `imagenet` (default), `none` or a weights file, for every
            candidate. A candidate without ImageNet weights here gets an
            error in its row; there is no silent fallback to `none`.
        cache_dir: bottleneck-feature cache for retraining (default:
            `mobilenets.data.cache_home()`).
        repeats: time every file in this many fresh processes, spread over
            the whole comparison, and keep the lowest p50 (on a shared
            machine the least disturbed); a re-run with more repeats only
            adds the missing samples.
        budget_ms: latency budget for `choose`.
        max_size_mb: file-size budget for `choose`.
        budget_format: `int8` (default) or `float`: the file the budget applies to.
        budget_threads: thread count of the budget (default: the largest).
        report: write plots and `report.html`.
        progress: a progress bar on stderr (default: when it is a terminal).
        command: the command line, shown in the report.

    Returns:
        A `Comparison`.
    """
    from mobilenets.benchmark import parse_threads

    threads = parse_threads(threads)
    specs = [parse_spec(s) for s in specs]
    specs = list(dict.fromkeys(specs))
    if not specs:
        raise MobilenetsError("give at least one candidate: specs such as v1-0.50-160 or --grid")
    if runs < 1 or warmup < 0 or repeats < 1:
        raise MobilenetsError(f"need --runs >= 1, --warmup >= 0 and --repeats >= 1. "
                              f"Received runs={runs}, warmup={warmup}, repeats={repeats}")
    if budget_format not in FORMATS:
        raise MobilenetsError(f"--budget-format must be float or int8. Received {budget_format!r}")
    if budget_threads is not None and budget_threads not in threads:
        raise MobilenetsError(f"--budget-threads {budget_threads} is not one of --threads "
                              f"{','.join(map(str, threads))}")
    dataset = None
    if data is not None:  # bad data is refused before anything is written
        from mobilenets.data import open_dataset

        dataset = open_dataset(data)
    out = Path(out_dir)
    (out / "rows").mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "rows", out / "plots"):
        artifacts.remove_stale(folder)  # temporary files of a killed compare
    ctx = _Context(out=out, threads=threads, runs=runs, warmup=warmup, cpu=cpu_model(),
                   tools=tool_versions(), data=data, epochs=epochs, weights=str(weights),
                   cache_dir=cache_dir)
    if data is not None:
        ctx.dataset = dataset
        ctx.train_key = _train_key(data, epochs, weights)

    ctx.repeats = repeats
    done, measured = 0, set()
    try:
        with _progress_bar(len(specs) * repeats, progress) as bar:
            # Repeats go round the whole list, so a busy spell on a shared
            # machine hits one sample of many files, not every sample of one.
            for ctx.want in range(1, repeats + 1):
                rows = []
                for spec in specs:
                    rows.append(_candidate(spec, ctx, bar))
                    if not rows[-1]["reused"]:
                        measured.add(spec.name)
                    done += 1
                    bar.advance()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {done} of {len(specs) * repeats} candidate passes are finished and kept "
              f"in {out / 'rows'}; the same command continues where this one stopped", file=sys.stderr)
        raise
    for r in rows:  # reused: nothing was done for it in any round
        r["reused"] = r["spec"] not in measured

    result = summarize(rows, out, threads, with_data=data is not None, budget_ms=budget_ms,
                       max_size_mb=max_size_mb, budget_format=budget_format,
                       budget_threads=budget_threads, data_name=_data_name(data))
    settings = {"threads": list(threads), "runs": runs, "warmup": warmup, "repeats": repeats, "data": data,
                "epochs": epochs, "weights": str(weights), "budget_ms": budget_ms,
                "max_size_mb": max_size_mb, "budget_format": budget_format,
                "budget_threads": budget_threads, "command": command}
    artifacts.write_json(out / "results.json", {
        "settings": settings, "rows": result.rows, "metric": result.metric,
        "choice": result.choice.sentence if result.choice else None,
        "chosen": result.choice.row["spec"] if result.choice and result.choice.row else None})
    if report:
        from mobilenets import report as report_mod

        result.plots = report_mod.write_plots(result, out / "plots", budget_ms=budget_ms,
                                              fmt=budget_format, threads=ctx.budget_threads(budget_threads))
        models = _model_sections(rows, out, ctx) if data is not None else []
        result.report_path = report_mod.write_report(
            out / "report.html", result, models=models, settings=settings,
            environment=report_mod.environment(threads, rows))
    return result


def summarize(rows: list[dict], out_dir, threads, with_data: bool = False,
              budget_ms=None, max_size_mb=None, budget_format: str = "int8",
              budget_threads: int | None = None, data_name: str | None = None) -> Comparison:
    """Pareto flags, the budget choice, columns: a `Comparison` from finished rows.

    Args:
        rows: flat compare rows (changed in place: `pareto` is set).
        out_dir: the output folder.
        threads: thread counts measured.
        with_data: whether candidates were retrained.
        budget_ms: latency budget (None: no choice unless `max_size_mb`).
        max_size_mb: size budget.
        budget_format: `int8` or `float`.
        budget_threads: thread count for the budget and the frontier.
        data_name: the dataset's name, for the sentence.
    """
    metric = pick_metric(rows)
    t = budget_threads or max(threads)
    front = {r["spec"] for r in pareto_front(rows, latency_key(budget_format, t), metric)}
    for r in rows:
        r["pareto"] = r["spec"] in front
    columns, headers = columns_for(rows, threads, with_data)
    metric_text = (f"accuracy on {data_name} after retraining" if metric == "accuracy" and data_name
                   else None)
    choice = None
    if budget_ms is not None or max_size_mb is not None:
        choice = choose(rows, budget_ms, max_size_mb, budget_format, t, metric, metric_text)
    notes = [f"Pareto: fastest for its {METRIC_TEXT[metric]} at {budget_format} latency, "
             f"{t} thread{'s' if t != 1 else ''}"]
    return Comparison(rows=rows, columns=columns, headers=headers, out_dir=Path(out_dir),
                      choice=choice, metric=metric, notes=notes)


# ------------------------------------------------------------------ one candidate


@dataclass
class _Context:
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
    want: int = 1  # latency samples wanted by the current round

    def budget_threads(self, budget_threads):
        return budget_threads or max(self.threads)


def _record_path(out: Path, spec: ModelSpec) -> Path:
    return out / "rows" / f"{spec.name}.json"


def load_record(out_dir, spec) -> dict:
    """The stored record of one candidate (empty if none or unreadable).

    Args:
        out_dir: the compare output folder.
        spec: the candidate.
    """
    spec = parse_spec(spec)
    path = _record_path(Path(out_dir), spec)
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


def _candidate(spec: ModelSpec, ctx: _Context, bar) -> dict:
    """Do what is missing for one candidate, saving the record after every step."""
    record = load_record(ctx.out, spec)
    path = _record_path(ctx.out, spec)
    did = []

    def save():
        artifacts.write_json(path, record)

    def step(what: str):
        bar.describe(f"{spec.name}: {what}")
        did.append(what)

    note, source, error = None, "random", None
    try:
        if ctx.data is not None:
            source, note = _ensure_trained(spec, ctx, record, step, save)
        _ensure_files(spec, ctx, record, source, step, save)
        _ensure_profile(spec, ctx, record, source, step, save)
        for t in ctx.threads:
            for fmt in FORMATS:
                _ensure_latency(ctx, record, source, fmt, t, step, save)
    except MobilenetsError as e:
        error = str(e)
        print(f"{spec.name}: {error}", file=sys.stderr)
    row = _flat_row(spec, ctx, record, source)
    row["note"] = "; ".join(n for n in (note, error) if n) or None
    if did or record.get("row") != row:  # a pure re-use leaves the file untouched
        record["row"] = row
        save()
    return dict(row, reused=not did)


def _flat_row(spec: ModelSpec, ctx: _Context, record: dict, source: str) -> dict:
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
            m = record["latency"].get(_latency_id(ctx, source, fmt, t))
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


def _latency_id(ctx: _Context, source: str, fmt: str, threads: int) -> str:
    return f"{source}/{fmt}/t{threads}/r{ctx.runs}/w{ctx.warmup}"


def _file_ok(out: Path, entry: dict | None, tools: dict | None = None) -> bool:
    if not entry:
        return False
    if tools is not None and entry.get("made_with") != _converter(tools):
        return False
    p = out / entry["path"]
    return p.is_file() and p.stat().st_size == entry["bytes"]


def _converter(tools: dict) -> dict:
    return {k: tools.get(k) for k in ("tensorflow", "mobilenets")}


def _ensure_files(spec, ctx: _Context, record: dict, source: str, step, save) -> None:
    """float32 and int8 .tflite files of the spec (random weights, 1000 classes)."""
    if source != "random":
        return  # the retrained run's export made them
    files = record["files"].setdefault("random", {})
    folder = ctx.out / "models" / spec.name
    artifacts.remove_stale(folder)  # what a killed conversion left
    for fmt in FORMATS:
        if _file_ok(ctx.out, files.get(fmt), ctx.tools):
            continue
        step(f"converting to {'float32' if fmt == 'float' else 'int8'} .tflite")
        path = folder / FILE_NAMES[fmt]
        folder.mkdir(parents=True, exist_ok=True)
        _convert_spec(spec, fmt, path)
        files[fmt] = {"path": path.relative_to(ctx.out).as_posix(), "bytes": path.stat().st_size,
                      "made_with": _converter(ctx.tools)}
        _forget_latency(record, "random", fmt)
        save()


def _convert_spec(spec: ModelSpec, fmt: str, dest: Path) -> None:
    """benchmark.spec_tflite in a scratch folder, then one atomic rename into place."""
    import keras

    from mobilenets.benchmark import spec_tflite
    from mobilenets.export import quiet_native_stderr

    with artifacts.scratch_dir(dest.parent, "convert") as tmp:
        with quiet_native_stderr():
            made = spec_tflite(spec, tmp, "int8" if fmt == "int8" else "none")
        os.replace(made, dest)
    keras.backend.clear_session()


def _forget_latency(record: dict, source: str, fmt: str) -> None:
    """A new file makes its old timings meaningless."""
    for k in [k for k in record["latency"] if k.startswith(f"{source}/{fmt}/")]:
        del record["latency"][k]


def _ensure_profile(spec, ctx: _Context, record: dict, source: str, step, save) -> None:
    if source in record["profile"]:
        return
    from mobilenets.profile import profile

    step("profiling")
    if source == "random":
        p = profile(spec)
    else:
        run = ctx.out / record["train"][source]["run"]
        p = profile(run / "model.keras")
    record["profile"][source] = {"params": p.params, "macs": p.macs, "macs_m": round(p.macs / 1e6, 1),
                                 "weight_bytes": p.weight_bytes,
                                 "peak_activation_bytes": p.peak_activation_bytes}
    import keras

    keras.backend.clear_session()
    save()


def _ensure_latency(ctx: _Context, record: dict, source: str, fmt: str, threads: int,
                    step, save) -> None:
    """Time a file until it has `ctx.repeats` samples (fresh processes); keep the lowest p50."""
    key = _latency_id(ctx, source, fmt, threads)
    entry = record["latency"].get(key)
    if not entry or "samples" not in entry or entry.get("cpu") != ctx.cpu \
            or entry.get("litert") != ctx.tools.get("litert"):
        entry = {"cpu": ctx.cpu, "litert": ctx.tools.get("litert"), "samples": []}
    if len(entry["samples"]) >= ctx.want:
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


# ------------------------------------------------------------------ retraining


def _train_key(data, epochs, weights) -> str:
    where = str(Path(data).resolve()) if Path(str(data)).exists() else str(data)
    text = json.dumps({"data": where, "epochs": epochs, "weights": str(weights), "seed": 0},
                      sort_keys=True)
    return "train-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def _data_name(data) -> str | None:
    if data is None:
        return None
    return Path(str(data).split(":")[-1]).name.replace(".tar.gz", "") or str(data)


def _ensure_trained(spec, ctx: _Context, record: dict, step, save) -> tuple[str, str | None]:
    """Retrain and export; returns (source, note). A failure leaves source 'random'."""
    key = ctx.train_key
    entry = record["train"].get(key, {})
    if entry.get("accuracy") is not None and _file_ok(ctx.out, record["files"].get(key, {}).get("int8")) \
            and _file_ok(ctx.out, record["files"].get(key, {}).get("float")):
        return key, None
    run = ctx.out / "runs" / f"{spec.name}-{key[len('train-'):]}"
    if str(ctx.weights).lower() == "imagenet":
        from mobilenets.models import has_imagenet_weights

        if not has_imagenet_weights(spec):
            return "random", (f"not retrained: no official ImageNet weights exist for {spec.name} "
                              f"(pass --weights none to retrain every candidate from random weights)")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
            if not (run / "metrics.json").is_file():
                step(f"retraining on {_data_name(ctx.data)}")
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
        _forget_latency(record, key, fmt)
    record["profile"].pop(key, None)
    save()
    return key, None


def _pct(v):
    return round(100 * v, 2) if _number(v) else None


def _train(spec, ctx: _Context, run: Path) -> None:
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


# ------------------------------------------------------------------ report inputs


def _model_sections(rows: list[dict], out: Path, ctx: _Context, gallery_size: int = 24) -> list[dict]:
    """Per retrained model: accuracy, confusion matrix PNG and misclassified thumbnails."""
    from mobilenets.report import thumbnail_uri

    sections, arrays = [], {}
    for r in rows:
        if not r.get("run"):
            continue
        ev_dir = out / r["run"] / "evaluation"
        try:
            ev = json.loads((ev_dir / "evaluation.json").read_text())
        except (OSError, ValueError):
            continue
        gallery = []
        for m in ev.get("misclassified", [])[:gallery_size]:
            gallery.append(dict(m, thumb=thumbnail_uri(_image_of(m["path"], ctx.dataset, arrays))))
        sections.append({"spec": r["spec"], "accuracy": r.get("accuracy"),
                         "int8_accuracy": r.get("int8_accuracy"), "count": ev.get("count"),
                         "classes": ev.get("classes", []),
                         "confusion_matrix": ev.get("confusion_matrix"),
                         "confusion_png": ev_dir / "confusion_matrix.png",
                         "misclassified": len(ev.get("misclassified", [])), "gallery": gallery})
    return sections


def _image_of(path: str, dataset, arrays: dict):
    """A file path as it is; a built-in dataset's pseudo path (`digits/test/00012`) as its pixels."""
    p = Path(path)
    if p.is_file():
        return p
    parts = str(path).split("/")
    if dataset is None or len(parts) < 3 or not parts[-1].isdigit():
        return None
    try:
        if parts[-2] not in arrays:
            arrays[parts[-2]] = dataset.arrays(parts[-2])[0]
        return arrays[parts[-2]][int(parts[-1])]
    except Exception:  # noqa: BLE001 - a thumbnail is a nicety; the row still shows the path
        return None


# ------------------------------------------------------------------ small helpers


def package_version(*names: str) -> str | None:
    """The installed version of the first of `names` that is installed.

    Args:
        names: distribution names, e.g. `"tensorflow-cpu", "tensorflow"`.
    """
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


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


class _NoBar:
    def describe(self, text: str) -> None:
        pass

    def advance(self) -> None:
        pass


class _RichBar:
    def __init__(self, progress, task):
        self.progress, self.task = progress, task

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def advance(self) -> None:
        self.progress.advance(self.task)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool | None):
    """A rich bar across the candidates on stderr (default: when stderr is a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _NoBar()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    with Progress(TextColumn("{task.description:<46}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True)) as progress:
        yield _RichBar(progress, progress.add_task("compare", total=total))
