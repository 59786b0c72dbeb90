"""The comparison's plots, PNGs drawn with matplotlib's Agg backend.

    mobilenets compare v1-1.00-224 v2-1.00-224 --threads 1,2   # compare/plots/*.png

* latency vs accuracy (or published ImageNet top-1, labelled as such), with
  the Pareto frontier: the candidates nothing else beats on both;
* MACs vs measured latency, with the line of median throughput: points far
  above it are slower than their MACs suggest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.compare.choice import (METRIC_TEXT, is_number, latency_key, measured_threads,
                                       pareto_front)

FORMAT_NAMES = {"float": "float32", "int8": "int8"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _label(ax, points: list[tuple[float, float, str]], fontsize: float = 7) -> None:
    """Name every point, nudging a label up or down when it would cover one already placed."""
    fig = ax.figure
    to_pt = 72 / fig.dpi
    height = fontsize * 1.15
    placed: list[tuple[float, float, float]] = []  # left, bottom, right in points
    for x, y, text in sorted(points, key=lambda p: (p[0], p[1])):
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        width = len(text) * fontsize * 0.55
        for dy in (3, -11, 12, -20, 21, -29, 30):
            left, bottom = px + 4, py + dy
            if not any(left < r and left + width > lft and abs(bottom - btm) < height
                       for lft, btm, r in placed):
                break
        placed.append((left, bottom, left + width))
        ax.annotate(text, (x, y), xytext=(4, dy), textcoords="offset points", fontsize=fontsize,
                    arrowprops=None if dy == 3 else dict(arrowstyle="-", color="0.7", lw=0.5))


def plot_latency_accuracy(rows: list[dict], path, x: str, y: str, ylabel: str, title: str,
                          other_x: str | None = None, chosen: str | None = None,
                          budget_ms: float | None = None, xlabel: str = "latency (ms, p50)") -> Path:
    """Latency vs accuracy, every candidate labelled, the Pareto frontier marked.

    Args:
        rows: flat compare rows.
        path: the PNG to write.
        x: latency key (minimised), e.g. `int8_ms_t2`.
        y: accuracy key (maximised), e.g. `top1`.
        ylabel: the y axis label (say whose accuracy it is).
        title: the plot title.
        other_x: the same models' other latency (e.g. float32), drawn faint
            and joined to each point.
        chosen: spec of the budget choice, starred.
        budget_ms: a vertical line at the latency budget.
        xlabel: the x axis label.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    pts = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y))]
    if not pts:
        ax.text(0.5, 0.5, f"no candidate has both {x} and {y}", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, Path(path))
    if other_x:
        faint = [r for r in pts if is_number(r.get(other_x))]
        for r in faint:
            ax.plot([r[other_x], r[x]], [r[y], r[y]], color="0.85", lw=1, zorder=1)
        if faint:
            ax.scatter([r[other_x] for r in faint], [r[y] for r in faint], s=22,
                       facecolors="none", edgecolors="0.6", zorder=2,
                       label=f"same model, {other_x.split('_')[0].replace('float', 'float32')}")
    front = pareto_front(pts, x, y)
    front_ids = {id(r) for r in front}
    rest = [r for r in pts if id(r) not in front_ids]
    ax.scatter([r[x] for r in rest], [r[y] for r in rest], s=30, color="tab:blue", zorder=3,
               label="candidate")
    ax.step([r[x] for r in front], [r[y] for r in front], where="post", color="tab:red", lw=1.3,
            zorder=2)
    ax.scatter([r[x] for r in front], [r[y] for r in front], s=46, color="tab:red", zorder=4,
               label="Pareto frontier (nothing faster and better)")
    if chosen:
        c = next((r for r in pts if r["spec"] == chosen), None)
        if c:
            ax.scatter([c[x]], [c[y]], marker="*", s=260, color="gold", edgecolors="black",
                       zorder=5, label=f"chosen: {chosen}")
    if budget_ms:
        ax.axvline(budget_ms, color="0.3", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
    xs = [r[x] for r in pts] + ([r[other_x] for r in pts if is_number(r.get(other_x))] if other_x else [])
    if min(xs) > 0 and max(xs) / min(xs) > 4:
        ax.set_xscale("log")
        from matplotlib.ticker import ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _label(ax, [(r[x], r[y], r["spec"]) for r in pts])
    return _save(fig, Path(path))


def plot_macs_latency(rows: list[dict], path, threads: int, label_fmt: str = "int8") -> Path:
    """MACs vs measured latency for float32 and int8, with each format's median throughput.

    Args:
        rows: flat compare rows.
        path: the PNG to write.
        threads: which thread count's latencies.
        label_fmt: the format whose points carry spec labels.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    colours = {"float": "tab:orange", "int8": "tab:green"}
    rates, everything, labels = {}, [], []
    for fmt in ("float", "int8"):
        key = latency_key(fmt, threads)
        pts = [r for r in rows if is_number(r.get(key)) and is_number(r.get("macs_m")) and r[key] > 0]
        if not pts:
            continue
        macs = np.array([r["macs_m"] for r in pts])
        ms = np.array([r[key] for r in pts])
        rate = float(np.median(macs / ms))  # M MACs per ms = GMAC/s
        rates[fmt] = rate
        everything += list(macs)
        ax.scatter(macs, ms, s=30, color=colours[fmt], zorder=3,
                   label=f"{FORMAT_NAMES[fmt]}: median {rate:.1f} GMAC/s")
        line = np.array([macs.min() * 0.8, macs.max() * 1.25])
        ax.plot(line, line / rate, ls="--", lw=1, color=colours[fmt], zorder=2)
        if fmt == label_fmt:
            labels = [(m, t, r["spec"] + (f" ({t * rate / m:.1f}x)" if not 0.8 <= t * rate / m <= 1.25
                                          else "")) for r, m, t in zip(pts, macs, ms)]
    if not rates:
        ax.text(0.5, 0.5, "no latencies measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _save(fig, Path(path))
    if max(everything) / max(min(everything), 1e-9) > 4:
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import ScalarFormatter

        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("multiply-accumulates (M, exact count)")
    ax.set_ylabel(f"latency (ms, p50, {threads} thread{'s' if threads != 1 else ''})")
    ax.set_title("MACs vs measured latency: dashed = median throughput; "
                 "(Nx) = N times slower (or faster) than its MACs predict", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _label(ax, labels if rates.get(label_fmt) else [])
    return _save(fig, Path(path))


def write_plots(result, folder, budget_ms: float | None = None, fmt: str = "int8",
                threads: int | None = None) -> dict[str, Path]:
    """Both plots of a `Comparison` as PNGs in `folder`.

    Args:
        result: a `mobilenets.compare.Comparison`.
        folder: where the PNGs go.
        budget_ms: latency budget line.
        fmt: the format of the latency axis: `int8` or `float`.
        threads: the thread count plotted (default: the largest measured).
    """
    folder = Path(folder)
    threads = threads or max(measured_threads(result.rows) or [1])
    other = "float" if fmt == "int8" else "int8"
    metric = result.metric
    ylabel = {"accuracy": "accuracy after retraining (%, test split)",
              "top1": "published ImageNet top-1 (%) - not measured here",
              "macs_m": "MACs (M) - no accuracy known"}[metric]
    chosen = result.choice.row["spec"] if result.choice and result.choice.row else None
    thr = f"{threads} thread{'s' if threads != 1 else ''}"
    return {
        "latency_accuracy": plot_latency_accuracy(
            result.rows, folder / "latency_accuracy.png", latency_key(fmt, threads), metric, ylabel,
            f"{FORMAT_NAMES[fmt]} latency ({thr}) vs {METRIC_TEXT[metric]}",
            other_x=latency_key(other, threads), chosen=chosen, budget_ms=budget_ms,
            xlabel=f"{FORMAT_NAMES[fmt]} latency (ms, p50, {thr}, LiteRT on this CPU)"),
        "macs_latency": plot_macs_latency(result.rows, folder / "macs_latency.png", threads, fmt),
    }
