"""Pure choices over flat compare rows: the Pareto front and the pick within a budget.

    mobilenets compare v1-0.50-160 v2-0.35-224 --threads 1,2 --budget-ms 5 --max-size-mb 2

Nothing here measures or reads files: rows in, a frontier or a `Choice` out,
so the report's plots and the compare command agree on what "best" means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mobilenets.errors import MobilenetsError

FORMATS = ("float", "int8")  # .tflite files measured: float32 and int8 (uint8 I/O)
METRICS = ("accuracy", "top1", "macs_m")  # what "most accurate" means, best first
METRIC_TEXT = {"accuracy": "accuracy after retraining", "top1": "published ImageNet top-1",
               "macs_m": "MACs (no accuracy known)"}


def is_number(v) -> bool:
    """A real number: True and False are not figures."""
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
    usable = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y))]
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
        if any(is_number(r.get(m)) for r in rows):
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
    known = [r for r in rows if is_number(r.get(metric))
             and (budget_ms is None or is_number(r.get(lat)))
             and (max_size_mb is None or is_number(r.get(size)))]

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
