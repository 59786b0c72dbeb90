"""The README stays true: its commands parse, its generated tables match the tool."""

import re
import shlex
from pathlib import Path

import pytest

from mobilenets.cli import build_parser, main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _readme_commands():
    for line in README.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(".venv/bin/mobilenets "):
            yield shlex.split(line)[1:]


@pytest.mark.parametrize("argv", list(_readme_commands()), ids=" ".join)
def test_readme_commands_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.func


def test_readme_shows_the_two_setup_commands_and_make_has_them():
    assert "make demo" in README and "make test" in README
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_v1_table_is_what_the_tool_prints(capsys):
    block = re.search(r"<!-- generated: zoo-v1 -->\n`[^`]*`\n\n(.*?)<!-- /generated -->", README, re.S)
    assert block, "README lost its generated V1 table"
    assert main(["zoo", "--version", "v1", "--format", "md"]) == 0
    assert capsys.readouterr().out == block.group(1)


def _modules(src: Path) -> dict[str, str]:
    """Every module's source by its name in the map: `compare.plots` for a package's module,
    `compare` for its `__init__.py`; private files (`_x.py`, `__main__.py`) are left out."""
    out = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts and not any(x.startswith("_") for x in parts):
            out[".".join(parts)] = p.read_text()
    return out


def test_architecture_map_is_true_to_the_imports():
    """Each module imports only what the README's map says it may, and the map names no ghosts."""
    src = Path(__file__).resolve().parents[1] / "src" / "mobilenets"
    table = re.findall(r"^\| `([\w.]+)` \| [^|]+ \| ([^|]+) \|$", README, re.M)
    allowed = {m: set(re.findall(r"[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*", cell)) for m, cell in table}
    modules = _modules(src)
    assert set(modules) <= set(allowed), f"missing from the map: {set(modules) - set(allowed)}"
    assert set(allowed) <= set(modules), f"the map names no such module: {set(allowed) - set(modules)}"
    for m, text in modules.items():
        if m == "cli":
            continue
        imported = set(re.findall(r"from mobilenets\.([\w.]+) import", text))
        imported |= set(re.findall(r"from mobilenets import (\w+)", text))
        assert imported - {m} <= allowed[m], f"{m} imports {imported - allowed[m] - {m}}"


def _circles(modules: dict[str, str]) -> list[set[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan's SCCs)."""
    graph = {m: {i for i in re.findall(r"from mobilenets\.([\w.]+) import", text)
                 + re.findall(r"from mobilenets import (\w+)", text) if i in modules and i != m}
             for m, text in modules.items()}
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on.add(m)
        for n in graph[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            group = set()
            while not group or m not in group:
                group.add(stack.pop())
            on.difference_update(group)
            if len(group) > 1:
                groups.append(group)

    for m in graph:
        if m not in index:
            visit(m)
    return groups


def test_no_modules_import_each_other():
    """Lazy imports inside functions count too: a loop of them is still a circle."""
    modules = _modules(Path(__file__).resolve().parents[1] / "src" / "mobilenets")
    circles = _circles(modules)
    assert not circles, f"modules that import each other: {circles}"
