"""Helpers shared by the benchmark scripts in this folder (not a public API).

    from _common import offline_keras_home, print_rows, write_json

Each script runs on its own (`python benchmarks/<name>.py`); Python puts this
folder on `sys.path`, so `import _common` works without installing anything.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
WEIGHTS = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
# The CLI as a user runs it: the console script installed in the venv.
MOBILENETS = Path(sys.executable).with_name("mobilenets")


def offline_keras_home(parent: "str | os.PathLike | None" = None) -> Path:
    """A `KERAS_HOME` whose `models/` links the shared ImageNet weights, set in `os.environ`.

    Keras reads `KERAS_HOME` when it is imported, so call this first; child
    processes inherit it. Nothing is downloaded and nothing is copied.
    """
    home = Path(tempfile.mkdtemp(prefix="keras-home-", dir=parent))
    (home / "models").mkdir()
    if WEIGHTS.is_file():
        (home / "models" / WEIGHTS.name).symlink_to(WEIGHTS)
    os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return home


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b, digits: int = 2):
    """a / b rounded, or None when either is missing."""
    if a is None or not b:
        return None
    return round(a / b, digits)


def environment() -> dict:
    """What the figures were measured on (saved with every JSON result)."""
    import numpy as np

    env = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(),
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "affinity": len(os.sched_getaffinity(0)), "numpy": np.__version__,
           "loadavg_1m": round(os.getloadavg()[0], 2), "commit": _git_commit()}
    from mobilenets.compare import package_version

    env["tensorflow"] = package_version("tensorflow-cpu", "tensorflow")
    env["keras"] = package_version("keras")
    return env


def with_end_load(env: dict) -> dict:
    """`env` (taken at the start) plus the load average now, at the end."""
    return dict(env, loadavg_1m_end=round(os.getloadavg()[0], 2))


def _git_commit() -> str | None:
    """The repository's HEAD (with "+dirty" when library files differ from it)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def print_rows(rows: list[dict], title: str, columns=None) -> None:
    """A titled table through the project's own writer (plain text off a terminal)."""
    from mobilenets.results import write_rows

    print(f"\n{title}")
    write_rows(rows, "table", columns=columns)
    sys.stdout.flush()


def write_json(path: "str | os.PathLike", result: dict) -> None:
    from mobilenets.artifacts import write_json as atomic_write_json

    atomic_write_json(Path(path), result)
    print(f"\nwrote {path}")


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_json(path: "str | os.PathLike") -> dict:
    return json.loads(Path(path).read_text())


def measured(cmd: list[str], env: dict, log_path: Path) -> dict:
    """Run `cmd` in a fresh process, output to `log_path`: wall s, max RSS GB and CPU s from its rusage.

    Exits the benchmark with the log's tail when the command fails.
    """
    log(" ".join(cmd))
    start = time.monotonic()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = Path(log_path).read_text(errors="replace")[-2000:]
        raise SystemExit(f"{Path(log_path).stem} failed (exit {code}):\n{tail}")
    return {"wall_s": round(wall, 1), "max_rss_gb": round(usage.ru_maxrss / 2**20, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def verdict(rows: list[dict], key: str, target: str, args) -> int:
    """Print how many rows meet the target (`row[key]` true), write `--json`, and return the exit code."""
    ok = all(r[key] for r in rows)
    print(f"\n{'PASS' if ok else 'FAIL'}: {sum(bool(r[key]) for r in rows)} of {len(rows)} {target}")
    if getattr(args, "json", None):
        write_json(args.json, {"rows": rows, "environment": environment(), "args": vars(args)})
    return 0 if ok else 1
