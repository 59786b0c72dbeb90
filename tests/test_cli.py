"""The CLI: real examples, JSON output, one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from mobilenets.cli import build_parser, main


def test_zoo_json(capsys):
    assert main(["zoo", "--version", "v1", "--filter", "v1-1.00-*", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["macs_m"] for r in rows] == [568.7, 418.1, 290.7, 186.4]
    assert rows[0]["params"] == 4_253_864 and rows[0]["top1"] == 70.9


def test_zoo_markdown(capsys):
    assert main(["zoo", "--filter", "v3-small-*", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| spec |") and "v3-small-1.00-224-min" in out


def test_profile_json(capsys):
    assert main(["profile", "v1-0.50-32", "--classes", "10", "--json", "--per-layer"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["params"], d["trainable_params"]) == (834_666, 823_722)
    assert isinstance(d["macs"], int) and d["layers"][0]["type"] == "InputLayer"


@pytest.mark.parametrize("argv, fragment", [
    (["profile", "v9-1.0-224"], "not a model spec: 'v9-1.0-224'"),
    (["profile", "/no/such/model.tflite"], "no such model file"),
    (["zoo", "--filter", "nothing*"], "no registry variant matches"),
    (["profile"], "the following arguments are required"),
])
def test_errors_are_one_line_exit_2(argv, fragment, capsys):
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def _run(argv) -> int:
    """main()'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_every_command_has_an_example():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "example:\n  mobilenets " + name in p.format_help(), name


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "mobilenets", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "profile" in out and "zoo" in out
