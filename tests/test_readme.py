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


def test_architecture_map_is_true_to_the_imports():
    """Each module imports only what the README's map says it may."""
    src = Path(__file__).resolve().parents[1] / "src" / "mobilenets"
    table = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", README, re.M)
    allowed = {m: set(re.findall(r"[a-z_]+", cell)) for m, cell in table}
    modules = {p.stem for p in src.glob("*.py") if not p.stem.startswith("_")}
    assert modules <= set(allowed), f"missing from the map: {modules - set(allowed)}"
    for m in modules - {"cli"}:
        text = (src / f"{m}.py").read_text()
        imported = set(re.findall(r"from mobilenets\.(\w+) import", text))
        imported |= set(re.findall(r"from mobilenets import (\w+)", text))
        assert imported - {m} <= allowed[m], f"{m} imports {imported - allowed[m] - {m}}"
