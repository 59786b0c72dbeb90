"""Run a comparison: every candidate measured (and retrained), then summarized and reported.

    mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" --threads 1,2 --budget-ms 5
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mobilenets import artifacts
from mobilenets.compare.choice import (FORMATS, METRIC_TEXT, Choice, choose, latency_key,
                                       pareto_front, pick_metric)
from mobilenets.compare.measure import candidate
from mobilenets.compare.records import Context, cpu_model, tool_versions
from mobilenets.compare.retrain import data_name, train_key
from mobilenets import env
from mobilenets.errors import MobilenetsError
from mobilenets.specs import parse_spec


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
    ctx = Context(out=out, threads=threads, runs=runs, warmup=warmup, cpu=cpu_model(),
                  tools=tool_versions(), data=data, epochs=epochs, weights=str(weights),
                  cache_dir=cache_dir, dataset=dataset, repeats=repeats,
                  train_key=train_key(data, epochs, weights) if data is not None else None)
    done, measured = 0, set()
    try:
        with _progress_bar(len(specs) * repeats, progress) as bar:
            # Repeats go round the whole list, so a busy spell on a shared
            # machine hits one sample of many files, not every sample of one.
            for samples in range(1, repeats + 1):
                rows = []
                for spec in specs:
                    rows.append(candidate(spec, ctx, bar, samples))
                    if not rows[-1]["reused"]:
                        measured.add(spec.name)
                    done += 1
                    bar.advance()
    except KeyboardInterrupt:
        env.report(f"\ninterrupted: {done} of {len(specs) * repeats} candidate passes are finished and kept "
               f"in {out / 'rows'}; the same command continues where this one stopped")
        raise
    for r in rows:  # reused: nothing was done for it in any round
        r["reused"] = r["spec"] not in measured

    result = summarize(rows, out, threads, with_data=data is not None, budget_ms=budget_ms,
                       max_size_mb=max_size_mb, budget_format=budget_format,
                       budget_threads=budget_threads, data_name=data_name(data))
    settings = {"threads": list(threads), "runs": runs, "warmup": warmup, "repeats": repeats, "data": data,
                "epochs": epochs, "weights": str(weights), "budget_ms": budget_ms,
                "max_size_mb": max_size_mb, "budget_format": budget_format,
                "budget_threads": budget_threads, "command": command}
    artifacts.write_json(out / "results.json", {
        "settings": settings, "rows": result.rows, "metric": result.metric,
        "choice": result.choice.sentence if result.choice else None,
        "chosen": result.choice.row["spec"] if result.choice and result.choice.row else None})
    if report:
        from mobilenets.compare.plots import write_plots
        from mobilenets.compare.report import environment, model_sections, write_report

        result.plots = write_plots(result, out / "plots", budget_ms=budget_ms, fmt=budget_format,
                                   threads=ctx.budget_threads(budget_threads))
        models = model_sections(rows, out, ctx.dataset) if data is not None else []
        result.report_path = write_report(
            out / "report.html", result, models=models, settings=settings,
            environment=environment(threads, rows))
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
