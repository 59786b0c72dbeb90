"""The machine-facing helpers every module shares: error text, versions, cores, stderr, progress."""

import os
import subprocess
import sys

import pytest

from mobilenets.env import first_line, package_version, package_versions, progress_bar, usable_cores


@pytest.mark.parametrize("message, expected", [
    ("one line", "one line"),
    ("\n\n  first\nsecond\n", "first"),
    ("", "ValueError"),
    ("   \n  ", "ValueError"),
])
def test_first_line_is_the_first_non_blank_line_or_the_type(message, expected):
    assert first_line(ValueError(message)) == expected


def test_first_line_can_prefer_a_marked_line_and_cut_it():
    e = RuntimeError("loc(fused[...]): in model\n  /x.py:3: error: 'tfl.conv' op is not supported\nmore")
    assert first_line(e) == "loc(fused[...]): in model"
    assert first_line(e, prefer="error:") == "/x.py:3: error: 'tfl.conv' op is not supported"
    assert first_line(RuntimeError("no marker\nhere"), prefer="error:") == "no marker"
    assert first_line(RuntimeError("x" * 500), limit=300) == "x" * 300


def test_package_versions_name_only_what_is_installed():
    assert package_version("no-such-dist-17", "numpy") == package_version("numpy")
    assert package_version("no-such-dist-17") is None
    assert list(package_versions("numpy", "no-such-dist-17")) == ["numpy"]


def test_usable_cores_is_at_most_the_machine_count():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_quiet_native_stderr_hides_writes_to_fd_2():
    code = ("import os\nfrom mobilenets.env import quiet_native_stderr\n"
            "with quiet_native_stderr():\n    os.write(2, b'hidden\\n')\n"
            "os.write(2, b'shown\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    assert proc.stderr == "shown\n"


def test_a_hidden_progress_bar_takes_the_same_calls_and_draws_nothing(capsys):
    with progress_bar("work", total=3, enabled=False) as bar:
        bar.advance()
        bar.advance(2)
        bar.update(description="work done", completed=3, total=3)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_by_default_skips_small_jobs_and_non_terminals(capsys):
    with progress_bar("work", total=3, min_total=500) as bar:
        bar.advance(3)
    with progress_bar("work", total=3) as bar:  # pytest's stderr is not a terminal
        bar.advance(3)
    assert capsys.readouterr().err == ""


def test_a_drawn_progress_bar_shows_its_text_and_count_on_stderr(capsys):
    with progress_bar("work", total=3, enabled=True, transient=False) as bar:
        bar.advance(2)
        bar.update(description="work done", completed=3)
    out, err = capsys.readouterr()
    assert out == "" and "work done" in err and "3/3" in err
