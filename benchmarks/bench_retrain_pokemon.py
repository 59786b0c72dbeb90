"""How long `mobilenets retrain` takes end to end, and how accurate it gets.

    .venv/bin/python benchmarks/bench_retrain_pokemon.py --warm-runs 3 --json pokemon.json

Retrains `v1-0.25-224` (ImageNet weights) on `../shared/data/pokemon-types`
(839 images, 5 classes) exactly as a user runs it: the `mobilenets` console
script in a fresh process, so every wall time includes Python, TensorFlow and
Keras start-up, scanning and decoding the folder, training, evaluation and
writing the run directory.

* cold: an empty `--cache-dir` and a fresh runs dir (nothing decoded or
  cached yet; the OS file cache is not dropped, the machine is shared).
* warm: the same cache again (decoded images and bottleneck features are
  hits), a fresh runs dir each time; the median of `--warm-runs`.
* baseline: `--no-cache`, the same run without the bottleneck-feature cache
  (the head trains through the frozen backbone every epoch), measured in the
  same invocation, so the cache's speed-up is a ratio on the same machine.

Targets on 2 cores: cold < 60 s, warm < 15 s.

Accuracy: test (and validation) accuracy from each run's `metrics.json`, head
only and with fine-tuning settings (`--settings`), all sharing the warm cache.
The pokemon test split holds 65 images (validation 98): one image is 1.5
points, so differences of a few points are noise.
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

from _common import (MOBILENETS, SHARED, environment, with_end_load, load_json, log, median,
                     offline_keras_home, print_rows, ratio, write_json)

TARGETS_S = {"cold": 60.0, "warm": 15.0}

# Accuracy settings: name -> extra `mobilenets retrain` flags. "head" is the
# plain retrain (its figures come from the warm runs, no extra run).
SETTINGS = {
    "head": [],
    "ft20x5": ["--fine-tune", "20", "--fine-tune-epochs", "5"],
    "ft40x10": ["--fine-tune", "40", "--fine-tune-epochs", "10"],
    "ft80x10": ["--fine-tune", "80", "--fine-tune-epochs", "10"],
    "ft80x10-flip": ["--fine-tune", "80", "--fine-tune-epochs", "10", "--flip-left-right"],
    "ft80x20": ["--fine-tune", "80", "--fine-tune-epochs", "20"],
    # The best found (see benchmarks/README.md): a 3x higher learning rate for
    # the head (3e-3) and so for fine-tuning (lr / 10 = 3e-4).
    "ft80x20-lr3e-3": ["--fine-tune", "80", "--fine-tune-epochs", "20", "--learning-rate", "0.003"],
}
DEFAULT_SETTINGS = "head,ft20x5,ft80x20-lr3e-3"


def retrain(args, extra: list[str], cache_dir: Path | None, runs_dir: Path, name: str,
            env: dict) -> dict:
    """One `mobilenets retrain` in a fresh process: its wall time and metrics.json."""
    cmd = [str(MOBILENETS), "retrain", str(args.data), "--arch", args.arch,
           "--runs-dir", str(runs_dir), "--name", name, *extra]
    cmd += ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    log("$ " + shlex.join(cmd))
    runs_dir.mkdir(parents=True, exist_ok=True)
    log_path = runs_dir / f"{name}.log"
    start = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"retrain failed (exit {proc.returncode}); see {log_path}:\n"
                 + "".join(log_path.read_text().splitlines(True)[-15:]))
    metrics = load_json(runs_dir / name / "metrics.json")
    return {"wall_s": round(wall, 2), "in_process_s": metrics["train_seconds"],
            # Python/TF/Keras import, argument parsing, config: before run_training starts.
            "startup_s": round(wall - metrics["train_seconds"], 2),
            "feature_cache_hit": metrics.get("feature_cache_hit"),
            "val_accuracy": metrics.get("val", {}).get("accuracy"),
            "test_accuracy": metrics.get("test", {}).get("accuracy"),
            "val_images": metrics.get("val", {}).get("count"),
            "test_images": metrics.get("test", {}).get("count"),
            "command": "mobilenets " + shlex.join(cmd[1:])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data" / "pokemon-types")
    p.add_argument("--arch", default="v1-0.25-224")
    p.add_argument("--cold-runs", type=int, default=1, help="cold runs, each with a new empty cache")
    p.add_argument("--warm-runs", type=int, default=3, help="warm runs (median reported)")
    p.add_argument("--baseline-runs", type=int, default=1,
                   help="--no-cache runs (about 100 s each on 2 cores)")
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help=f"accuracy settings, comma-separated, from: {', '.join(SETTINGS)}; "
                        "'none' skips the accuracy runs")
    p.add_argument("--workdir", type=Path, help="keep caches and runs here (default: a temp dir)")
    p.add_argument("--json", metavar="OUT", help="also write all rows as JSON")
    args = p.parse_args(argv)
    settings = [] if args.settings == "none" else [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    if not args.data.is_dir():
        p.error(f"no dataset folder at {args.data}")

    env_start = environment()  # load average before this run's own work
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_retrain_pokemon-"))
    work.mkdir(parents=True, exist_ok=True)
    offline_keras_home(work)
    env = dict(os.environ, MOBILENETS_CACHE=str(work / "default-cache"))
    log(f"work dir {work}")

    runs: list[dict] = []

    def measure(kind: str, i: int, extra: list[str], cache: Path | None) -> dict:
        row = {"kind": kind, "run": i + 1,
               **retrain(args, extra, cache, work / f"runs-{kind}-{i + 1}", f"{kind}-{i + 1}", env)}
        runs.append(row)
        log(f"{kind} #{i + 1}: {row['wall_s']} s (test accuracy {row['test_accuracy']})")
        return row

    warm_cache = None
    for i in range(args.cold_runs):
        cache = work / f"cache-{i + 1}"  # fresh and empty
        measure("cold", i, [], cache)
        warm_cache = warm_cache or cache
    warm_cache = warm_cache or work / "cache-1"
    if args.cold_runs == 0:
        measure("prime", 0, [], warm_cache)
    for i in range(args.warm_runs):
        measure("warm", i, [], warm_cache)
    for i in range(args.baseline_runs):
        measure("no-cache", i, [], None)

    accuracy = []
    for name in settings:
        if name == "head":
            same = [r for r in runs if r["kind"] in ("warm", "cold", "prime")]
            row = dict(same[-1], setting="head")
        else:
            row = dict(measure(f"acc-{name}", 0, SETTINGS[name], warm_cache), setting=name)
        accuracy.append({"setting": row["setting"], "flags": " ".join(SETTINGS[name]) or "(defaults)",
                         "val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"],
                         "val_images": row["val_images"], "test_images": row["test_images"],
                         "wall_s": row["wall_s"]})

    def wall(kind):
        return median([r["wall_s"] for r in runs if r["kind"] == kind])

    baseline = wall("no-cache")
    summary = []
    for kind in ("cold", "warm"):
        value = wall(kind)
        if value is None:
            continue
        n = sum(r["kind"] == kind for r in runs)
        summary.append({"measure": f"{kind} retrain", "runs": n, "wall_s_median": value,
                        "no_cache_s": baseline, "speedup_vs_no_cache": ratio(baseline, value),
                        "target_s": TARGETS_S[kind], "target_met": value < TARGETS_S[kind],
                        "startup_s": median([r["startup_s"] for r in runs if r["kind"] == kind])})

    print_rows([{k: r[k] for k in ("kind", "run", "wall_s", "in_process_s", "startup_s",
                                   "feature_cache_hit", "test_accuracy")} for r in runs],
               "Every run (wall = the whole `mobilenets retrain` process)")
    print_rows(summary, f"Speed: {args.arch} on {args.data.name}, medians, baseline = --no-cache "
                        f"in the same invocation ({os.cpu_count()} CPUs)")
    if accuracy:
        print_rows(accuracy, "Accuracy per setting (from metrics.json; test = 65 images, 1 image = 1.5 points)")
    if args.json:
        write_json(args.json, {"benchmark": "retrain_pokemon", "arch": args.arch, "data": str(args.data),
                               "environment": with_end_load(env_start), "summary": summary,
                               "accuracy": accuracy, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
