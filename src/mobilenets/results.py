"""Flat result rows, written one way for every command.

    write_rows(rows, fmt="table", title="MobileNet zoo")

A result is a list of flat dicts (`spec, params, macs, latency_ms_p50, ...`),
timm-style. The same rows become a rich table, Markdown, CSV or JSON, so the
CLI, the README tables and the benchmark files all come from one writer.
"""

from __future__ import annotations

import csv
import io
import json
import sys

FORMATS = ("table", "md", "csv", "json")


def human(value, key: str = "") -> str:
    """A cell as people read it: 4,253,864 / 568.7M / 0.706 / yes."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if key.endswith("_mb") or key.endswith("_ms") or "_ms_" in key:
            return f"{value:.2f}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped (`\\n`), so a file name stays on its line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def render(rows: list[dict], fmt: str = "table", columns: list[str] | None = None,
           headers: dict[str, str] | None = None) -> str:
    """Render rows as text in one of `FORMATS`.

    Args:
        rows: flat dicts; missing keys render as `-`.
        fmt: `table` (aligned text), `md`, `csv` or `json`.
        columns: the keys to show, in order (default: all, first-seen order).
        headers: display names for keys (table and md only).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Received {fmt!r}")
    columns = columns or _columns(rows)
    headers = headers or {}
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    names = [headers.get(c, c) for c in columns]
    cells = [[human(r.get(c), c) for c in columns] for r in rows]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]
    if fmt == "md":
        lines = ["| " + " | ".join(names) + " |",
                 "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [line(names), line(["-" * w for w in widths])] + [line(row) for row in cells]
    return "\n".join(lines) + "\n"


def write_rows(rows: list[dict], fmt: str = "table", columns=None, headers=None,
               title: str | None = None, file=None) -> None:
    """Print rows; `table` goes through rich when writing to a terminal."""
    file = file or sys.stdout
    if fmt == "table" and file.isatty():
        from rich.console import Console
        from rich.table import Table

        columns = columns or _columns(rows)
        table = Table(title=title)
        for c in columns:
            table.add_column((headers or {}).get(c, c),
                             justify="right" if all(_is_number(r.get(c)) for r in rows) else "left")
        for r in rows:
            table.add_row(*[human(r.get(c), c) for c in columns])
        Console(file=file).print(table)
        return
    file.write(render(rows, fmt, columns, headers))


def _columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k)
    return list(seen)


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
