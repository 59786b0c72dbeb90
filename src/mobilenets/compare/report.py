"""One self-contained HTML page for a comparison.

    mobilenets compare v1-1.00-224 v2-1.00-224 --threads 1,2 --out compare/   # compare/report.html

The page needs nothing but itself: plots and thumbnails are inlined as
base64 data URIs, the table sorts with a few lines of inline JavaScript (no
CDN), and an environment section says where the numbers were measured.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.compare.choice import is_number
from mobilenets.compare.records import cpu_model
from mobilenets.env import package_version, usable_cores
from mobilenets.results import human


def data_uri(source: "bytes | str | os.PathLike", mime: str = "image/png") -> str:
    """A `data:` URI of a file's (or bytes') content.

    Args:
        source: bytes, or a path to read.
        mime: the content type.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    return f"data:{mime};base64," + base64.b64encode(raw).decode("ascii")


def thumbnail_uri(image, size: int = 96) -> str | None:
    """A small JPEG data URI of an image file or pixel array (None if unreadable).

    Args:
        image: a path, an (H, W[, C]) array, or None.
        size: the longer side in pixels; small images are enlarged without blur.
    """
    if image is None:
        return None
    from PIL import Image

    try:
        if isinstance(image, np.ndarray):
            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                arr = np.clip(arr * (255 if arr.max() <= 1 else 1), 0, 255).astype(np.uint8)
            im = Image.fromarray(arr.squeeze())
        else:
            im = Image.open(image)
            im.load()
        im = im.convert("RGB")
        scale = size / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.NEAREST if scale > 1 else Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        return data_uri(buf.getvalue(), "image/jpeg")
    except Exception:  # noqa: BLE001 - a broken image must not break the report
        return None


def model_sections(rows: list[dict], out: Path, dataset=None, gallery_size: int = 24) -> list[dict]:
    """Per retrained model: accuracy, confusion matrix PNG and misclassified thumbnails.

    Args:
        rows: flat compare rows; those with a `run` (retrained) get a section.
        out: the compare output folder the runs are under.
        dataset: the opened dataset, to show a built-in dataset's images
            (their paths such as `digits/test/00012` are not files).
        gallery_size: misclassified images shown per model, most confident first.
    """
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
            gallery.append(dict(m, thumb=thumbnail_uri(_image_of(m["path"], dataset, arrays))))
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


def environment(threads, rows: list[dict] | None = None) -> dict[str, str]:
    """Where and with what the numbers were measured.

    Args:
        threads: thread counts used.
        rows: compare rows (their `measured_at` gives the measurement dates).
    """
    usable = usable_cores()
    stamps = sorted(r[k] for r in rows or [] for k in ("measured_from", "measured_at") if r.get(k))
    env = {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "threads used": ", ".join(str(t) for t in threads),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "TensorFlow": package_version("tensorflow-cpu", "tensorflow") or "-",
        "Keras": package_version("keras") or "-",
        "LiteRT (ai-edge-litert)": package_version("ai-edge-litert") or "-",
        "mobilenets": package_version("mobilenets") or "-",
        "report written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if stamps:
        env["latencies measured"] = stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} to {stamps[-1]}"
    loads = [r["load1_max"] for r in rows or [] if r.get("load1_max") is not None]
    if loads:
        busy = max(loads) > (usable or 1)
        env["load while measuring"] = (
            f"1-minute load average up to {max(loads):.1f} on {usable} usable cores"
            + (": other programs were running, so latencies (2-thread ones most) may be inflated"
               if busy else ""))
    return env


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
 padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee}
th{background:#f4f4f4;cursor:pointer;user-select:none;text-align:left;position:sticky;top:0}
th.num,td.num{text-align:right}tr.pareto td:first-child{font-weight:600;color:#b00}
tr.chosen{background:#fff6cc}.choice{background:#fff6cc;border-left:4px solid #e0b000;padding:8px 12px}
.plots img{max-width:100%;border:1px solid #eee;margin:6px 0}.muted{color:#777;font-size:12px}
.gallery{display:flex;flex-wrap:wrap;gap:8px}.gallery figure{margin:0;width:112px;font-size:11px}
.gallery img{width:96px;height:96px;object-fit:contain;background:#f4f4f4;display:block}
code{background:#f4f4f4;padding:1px 4px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
dt{font-weight:600}dd{margin:0}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, i){
    th.title = 'click to sort';
    th.addEventListener('click', function(){
      var asc = th.dataset.dir !== 'asc';
      table.querySelectorAll('th').forEach(function(h){ delete h.dataset.dir; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      var body = table.tBodies[0];
      var value = function(row){
        var c = row.cells[i], v = c.getAttribute('data-v');
        return v === null ? c.textContent : (v === '' ? null : parseFloat(v));
      };
      Array.prototype.slice.call(body.rows).sort(function(a, b){
        var x = value(a), y = value(b);
        if (x === null) return 1; if (y === null) return -1;
        var d = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return asc ? d : -d;
      }).forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _table(rows: list[dict], columns: list[str], headers: dict[str, str], chosen: str | None) -> str:
    numeric = {c: all(r.get(c) is None or is_number(r.get(c)) for r in rows) for c in columns}
    head = "".join(f'<th class="{"num" if numeric[c] else ""}">{_e(headers.get(c, c))}</th>'
                   for c in columns)
    body = []
    for r in rows:
        cls = " ".join(k for k, on in (("pareto", r.get("pareto")), ("chosen", r["spec"] == chosen)) if on)
        cells = []
        for c in columns:
            v = r.get(c)
            if numeric[c]:
                cells.append(f'<td class="num" data-v="{"" if v is None else v}">{_e(human(v, c))}</td>')
            else:
                cells.append(f"<td>{_e(human(v, c))}</td>")
        body.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    return (f'<table class="sortable" id="results"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _model_section(m: dict) -> str:
    parts = [f"<h3>{_e(m['spec'])}</h3>",
             f"<p>accuracy {human(m.get('accuracy'))}% (Keras), int8 .tflite "
             f"{human(m.get('int8_accuracy'))}%, on {m.get('count')} test images; "
             f"{m.get('misclassified')} misclassified.</p>"]
    png = m.get("confusion_png")
    if png and Path(png).is_file():
        parts.append(f'<img class="confusion" alt="confusion matrix of {_e(m["spec"])}" '
                     f'src="{data_uri(png)}">')
    if m.get("gallery"):
        figs = []
        for g in m["gallery"]:
            img = (f'<img alt="{_e(Path(g["path"]).name)}" src="{g["thumb"]}">' if g.get("thumb")
                   else '<div class="muted">(no image)</div>')
            figs.append(f'<figure>{img}<figcaption>{_e(g["true"])} &rarr; <b>{_e(g["predicted"])}</b> '
                        f'{g["confidence"]:.2f}<br><span class="muted">{_e(Path(g["path"]).name)}'
                        f"</span></figcaption></figure>")
        parts.append(f"<p>Misclassified (most confident first, {len(figs)} shown):</p>"
                     f'<div class="gallery">{"".join(figs)}</div>')
    return "\n".join(parts)


def render_report(result, models: list[dict] = (), settings: dict | None = None,
                  environment: dict | None = None, title: str = "Which MobileNet?") -> str:
    """The report page as one HTML string.

    Args:
        result: a `mobilenets.compare.Comparison` (rows, columns, plots, choice).
        models: per retrained model: spec, accuracy, confusion_png, gallery.
        settings: the compare settings (command, runs, warmup, ...).
        environment: from `environment()`.
        title: the page title.
    """
    settings = settings or {}
    chosen = result.choice.row["spec"] if result.choice and result.choice.row else None
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    if settings.get("command"):
        out.append(f"<p><code>{_e(settings['command'])}</code></p>")
    if result.choice:
        out.append(f'<p class="choice" id="choice">{_e(result.choice.sentence)}</p>')
    metric_note = {
        "top1": "Accuracy here is the <b>published ImageNet top-1</b> of each architecture (TF-slim / "
                "Keras tables), not measured on this machine; the models timed have random weights.",
        "accuracy": "Accuracy is measured: every candidate retrained with the same recipe and "
                    "evaluated on the test split; int8 accuracy is the exported int8 .tflite's.",
        "macs_m": "No accuracy is known for these candidates; MACs stand in for capacity.",
    }[result.metric]
    counts = [r["latency_samples"] for r in result.rows if r.get("latency_samples")]
    low, high = min(counts, default=1), max(counts, default=1)
    many = f"{low}" if low == high else f"{low} to {high}"
    how = (f"the lowest of {many} such p50s per file, from fresh processes spread over the run"
           if high > 1 else "each file and thread count in a fresh process")
    out.append(f"<p>{metric_note} Latency is LiteRT's p50 over {settings.get('runs', '?')} calls "
               f"after {settings.get('warmup', '?')} warm-up calls, batch 1; {how}. "
               "Red names are on the Pareto frontier.</p>")
    out.append('<h2>Plots</h2><div class="plots">')
    for name, path in result.plots.items():
        out.append(f'<img id="plot-{_e(name)}" alt="{_e(name)}" src="{data_uri(path)}">')
    out.append("</div>")
    out.append("<h2>Candidates</h2><p class=muted>Click a column to sort.</p>")
    out.append(_table(result.rows, result.columns, result.headers, chosen))
    for note in result.notes:
        out.append(f'<p class="muted">{_e(note)}</p>')
    sources = sorted({r.get("top1_source") for r in result.rows if r.get("top1_source")})
    if sources:
        from mobilenets.zoo import SOURCES

        out.append('<p class="muted">Published top-1 sources: '
                   + "; ".join(f"{_e(s)}: {_e(SOURCES.get(s, s))}" for s in sources) + "</p>")
    if models:
        out.append("<h2>Per model: confusion matrix and misclassified images</h2>")
        out += [_model_section(m) for m in models]
    if environment:
        out.append("<h2>Environment</h2><dl>")
        out += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in environment.items()]
        out.append("</dl>")
    if settings:
        out.append("<h2>Settings</h2><dl>")
        out += [f"<dt>{_e(k)}</dt><dd>{_e(json.dumps(v))}</dd>"
                for k, v in settings.items() if k != "command"]
        out.append("</dl>")
    out.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(out) + "\n"


def write_report(path, result, models: list[dict] = (), settings: dict | None = None,
                 environment: dict | None = None) -> Path:
    """Write the self-contained report page atomically.

    Args:
        path: the `.html` file.
        result: a `mobilenets.compare.Comparison`.
        models: per retrained model sections (see `render_report`).
        settings: the compare settings.
        environment: from `environment()`.
    """
    return artifacts.write_text(path, render_report(result, models, settings, environment))
