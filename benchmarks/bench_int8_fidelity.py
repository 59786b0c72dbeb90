"""Does the int8 file keep the Keras model's answers? Plain converter int8 vs `--int8-method reconstruct`.

    .venv/bin/python benchmarks/bench_int8_fidelity.py --json int8_fidelity.json
    .venv/bin/python benchmarks/bench_int8_fidelity.py --only v1-0.25-224 --runs-dir /tmp/runs

Models, as a user makes them (the `mobilenets` console script, default
settings, the shared ImageNet weights through an offline `KERAS_HOME`):

* `mobilenets retrain ../shared/data/pokemon-types --arch A` for A in
  v1-0.25-224, v2-0.35-224, v2-0.50-224 (5 classes, 839 images);
* `mobilenets train ../shared/data/fer-emotion-48px.tar.gz --preset emotion
  --time-budget M` (7 classes; the preset's model, V2 0.5 at 96 px, trained
  for M minutes instead of its 30: the int8 question is the same).

Each run is exported twice, `--quantize int8 --io uint8` with
`--int8-method plain` (the TFLite converter's own post-training int8: the
baseline) and `--int8-method reconstruct` (the default), in the same session.
The figures are export's own parity report (`export_report.json`): top-1
agreement with Keras and accuracy, with 95% intervals, on up to 1000 images
int8 calibration did not use (pokemon: test + val + the unused part of
train, 639 images; FER: 1000 of test + validation), the file size and
one-thread latency (median of export's timed images), and how long export
took. `keras_noise` is the Keras model's agreement with itself under +-2 of
uniform pixel noise on the same images (export's `keras_stability`): how
fragile the model's own answers are, the yardstick to read int8 against. Both
files are integer-only (uint8 in, uint8 out, every op int8).

Targets (issue 15): agreement >= 0.98 and accuracy within 1 point of Keras.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MOBILENETS, SHARED, environment, load_json, log, print_rows, with_end_load, write_json

POKEMON = SHARED / "data" / "pokemon-types"
FER = SHARED / "data" / "fer-emotion-48px.tar.gz"
MODELS = {
    "v1-0.25-224": ["retrain", str(POKEMON), "--arch", "v1-0.25-224"],
    "v2-0.35-224": ["retrain", str(POKEMON), "--arch", "v2-0.35-224"],
    "v2-0.50-224": ["retrain", str(POKEMON), "--arch", "v2-0.50-224"],
    "emotion": ["train", str(FER), "--preset", "emotion"],
}
METHODS = ("plain", "reconstruct")
TARGET_AGREEMENT = 0.98
TARGET_DROP = 0.01


def keras_home(parent: Path) -> Path:
    """An offline KERAS_HOME linking every shared ImageNet weights file (V1 and V2)."""
    home = Path(tempfile.mkdtemp(prefix="keras-home-", dir=parent))
    (home / "models").mkdir()
    for weights in sorted((SHARED / "weights").glob("*.h5")):
        (home / "models" / weights.name).symlink_to(weights)
    os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return home


def run(cmd: list[str], log_path: Path) -> float:
    """Run `cmd`, its output appended to `log_path`; seconds taken. Exit 3 (the gate) is expected."""
    log("$ " + shlex.join(cmd))
    start = time.perf_counter()
    with open(log_path, "a") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if code not in (0, 3):
        sys.exit(f"failed (exit {code}): {shlex.join(cmd)}\n"
                 + "".join(log_path.read_text().splitlines(True)[-15:]))
    return time.perf_counter() - start


def measure(name: str, runs_dir: Path, minutes: float) -> list[dict]:
    run_dir = runs_dir / name
    logf = runs_dir / f"{name}.log"
    train = [str(MOBILENETS), *MODELS[name], "--runs-dir", str(runs_dir), "--name", name]
    if name == "emotion":
        train += ["--time-budget", f"{minutes:g}"]
    if not (run_dir / "model.keras").is_file():
        run(train, logf)
    rows = []
    for method in METHODS:
        out = run_dir / f"export-{method}"
        cmd = [str(MOBILENETS), "export", str(run_dir), "--quantize", "int8", "--io", "uint8",
               "--int8-method", method, "--out", str(out)]
        seconds = run(cmd, logf)
        report = load_json(out / "export_report.json")
        keras = next(r for r in report["rows"] if r["format"] == "keras")
        int8 = next(r for r in report["rows"] if r.get("quantize") == "int8")
        floor = report.get("keras_stability") or {}
        ok = (int8["agreement"] >= TARGET_AGREEMENT and int8["accuracy_drop"] <= TARGET_DROP)
        rows.append({
            "model": name, "int8": method, "images": int8["images"],
            "agreement": int8["agreement"], "agreement_95ci": _interval(int8, "agreement"),
            "keras_noise": floor.get("agreement"),
            "keras_acc": keras["accuracy"], "int8_acc": int8["accuracy"],
            "drop": int8["accuracy_drop"], "drop_95ci": _interval(int8, "accuracy_drop"),
            "kb": round(int8["file_mb"] * 1024), "p50_ms": int8.get("latency_ms"),
            "export_s": round(seconds), "target": "met" if ok else "missed",
            "commands": [shlex.join(train), shlex.join(cmd)],
        })
    return rows


def _interval(row: dict, key: str) -> str | None:
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    return None if low is None else f"[{low:.3f}, {high:.3f}]"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated models: " + ", ".join(MODELS))
    p.add_argument("--runs-dir", type=Path, help="keep runs here (default: a temporary folder); "
                   "runs already in it are reused")
    p.add_argument("--minutes", type=float, default=12, help="emotion training budget (default 12)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    if not POKEMON.is_dir():
        sys.exit(f"needs the shared data: {POKEMON} is missing")
    env = environment()
    tmp = Path(tempfile.mkdtemp(prefix="int8-fidelity-"))
    runs_dir = args.runs_dir or tmp / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    keras_home(tmp)
    rows = []
    for name in names:
        rows.extend(measure(name, runs_dir, args.minutes))
    columns = ["model", "int8", "images", "agreement", "agreement_95ci", "keras_noise", "keras_acc", "int8_acc",
               "drop", "drop_95ci", "kb", "p50_ms", "export_s", "target"]
    print_rows(rows, f"int8 vs Keras: plain converter int8 against reconstruct (target: agreement >= "
               f"{TARGET_AGREEMENT}, drop <= {TARGET_DROP * 100:g} point)", columns)
    for name in names:
        by = {r["int8"]: r for r in rows if r["model"] == name}
        if len(by) == 2:
            print(f"{name}: disagreements {1 - by['plain']['agreement']:.3f} -> "
                  f"{1 - by['reconstruct']['agreement']:.3f} "
                  f"({(1 - by['plain']['agreement']) / max(1 - by['reconstruct']['agreement'], 1e-9):.1f}x fewer)")
    if args.json:
        write_json(args.json, {"environment": with_end_load(env), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
