"""CIFAR-10 test accuracy after M minutes: the seed's recipe against ours, same hardware.

    .venv/bin/python benchmarks/bench_cifar_recipes.py --minutes 30 --sequential --json recipes.json

Trains `v1-0.50-32` from scratch on the shared JPEG CIFAR-10 twice, with the
`mobilenets train` console script as a user runs it:

* seed: `--preset seed-cifar10` (the seed article's recipe: Nadam 1e-3,
  batch 32, shift 0.1 + flip, constant learning rate) with `--epochs 200`
  (the seed's own number) and `--time-budget M`: it trains until the epoch
  that passes M minutes ends;
* ours: `--preset scratch` (SGD + Nesterov, warm-up + cosine, label
  smoothing, weight decay, pad-crop + flip, stride-1 stem, batch 128, the
  first half of the epochs at 24 px) with `--epochs 200 --time-budget M`: the tool fits the
  cosine schedule to the budget itself, re-planning after every epoch from
  the measured epoch time. `--ours-flags "..."` adds `mobilenets train`
  flags to ours only (e.g. `--stem-stride 2 --block-strides 2,1,2,2`), to measure a
  variant of the recipe the same way.

`--archs A,B` instead pairs two architectures under ours (the seed's recipe
is not run), e.g. MobileNetV4 Conv-S against the V1 0.5 the recipe was made
for (issue 20):

    .venv/bin/python benchmarks/bench_cifar_recipes.py --minutes 30 --archs v1-0.50-32,v4-conv-s-32

Same hardware, same invocation, two ways:

* `--sequential`: one recipe after the other, each with the whole machine
  (all cores); what a user with this machine gets from each recipe;
* default: both at the same time, each pinned to its own core (`taskset -c
  0` and `taskset -c 1`), so neither can profit from a quiet moment the
  other missed.

Test accuracy is on the 10,000 official test images (`metrics.json`).
Target: ours >= 85% after 30 minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MOBILENETS, SHARED, environment, with_end_load, load_json, log, print_rows, write_json

TARGET_ACCURACY = 0.85
TARGET_MINUTES = 30
SEED_EPOCHS = 200  # the seed article's epochs; the time budget ends the run first
RECIPES = {"seed": "seed-cifar10", "ours": "scratch"}


def train_cmd(args, preset: str, core: int, runs_dir: Path, name: str, extra: list[str],
              pin: bool, arch: str) -> list[str]:
    cmd = [str(MOBILENETS), "train", str(args.data), "--arch", arch, "--preset", preset,
           "--runs-dir", str(runs_dir), "--name", name, *extra]
    if args.cache_dir:
        cmd += ["--cache-dir", str(args.cache_dir)]
    return (["taskset", "-c", str(core)] if pin else []) + cmd


def run_pair(cmds: dict[str, list[str]], runs_dir: Path, sequential: bool = False) -> dict[str, dict]:
    """Run the commands (all at once, or one after another); wall time and metrics of each."""
    if sequential:
        results = {}
        for name, cmd in cmds.items():
            results.update(run_pair({name: cmd}, runs_dir))
        return results
    runs_dir.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name, cmd in cmds.items():
        log("$ " + shlex.join(cmd))
        out = open(runs_dir / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out,
                       time.perf_counter())
    results = {}
    for name, (proc, out, start) in procs.items():
        code = proc.wait()
        out.close()
        wall = time.perf_counter() - start
        log_path = runs_dir / f"{name}.log"
        if code != 0:
            for other, (p, _, _) in procs.items():
                if p.poll() is None:
                    p.terminate()
            sys.exit(f"{name} failed (exit {code}); see {log_path}:\n"
                     + "".join(log_path.read_text().splitlines(True)[-15:]))
        run = runs_dir / name
        metrics = load_json(run / "metrics.json")
        history = (run / "history.csv").read_text().splitlines()[1:]
        results[name] = {"wall_s": round(wall, 1), "metrics": metrics, "epochs": len(history),
                         "epoch_seconds": _epoch_seconds(log_path.read_text()),
                         "command": shlex.join(cmds[name]), "run": str(run)}
    return results


def _epoch_seconds(log_text: str) -> list[float]:
    """Each epoch's time as Keras prints it (`1404/1404 - 97s - 69ms/step - ...`)."""
    return [float(s) for s in re.findall(r"^\s*\d+/\d+ - (\d+(?:\.\d+)?)s - ", log_text, re.M)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=TARGET_MINUTES, help="training budget per recipe")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--arch", default="v1-0.50-32")
    p.add_argument("--cores", default="0,1", help="the seed's core, ours' core (taskset -c)")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (for machines without taskset)")
    p.add_argument("--sequential", action="store_true",
                   help="one recipe after the other, each with all cores (default: concurrent, pinned)")
    p.add_argument("--recipes", default="seed,ours",
                   help="which to run, in this order (default seed,ours; one alone needs --sequential)")
    p.add_argument("--cache-dir", type=Path, help="the tool's --cache-dir (default: its own default)")
    p.add_argument("--runs-dir", type=Path, help="where the runs go (default: a new temp dir)")
    p.add_argument("--ours-flags", default="", metavar="FLAGS",
                   help="extra `mobilenets train` flags for ours only, e.g. \"--stem-stride 2 --block-strides 2,1,2,2\"")
    p.add_argument("--archs", metavar="A,B",
                   help="pair two architectures under ours instead of seed against ours")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = p.parse_args(argv)
    cores = [int(c) for c in args.cores.split(",")]
    if len(cores) != 2:
        p.error(f"--cores takes two core numbers. Received {args.cores!r}")
    if args.pin and not args.sequential and not shutil.which("taskset"):
        p.error("taskset not found (util-linux); install it or pass --no-pin")
    if not args.data.exists():
        p.error(f"no dataset at {args.data}")
    if args.archs:  # name -> (preset, arch)
        archs = args.archs.split(",")
        if len(archs) != 2 or len(set(archs)) != 2:
            p.error(f"--archs takes two different specs. Received {args.archs!r}")
        recipes = {f"ours-{a}": (RECIPES["ours"], a) for a in archs}
    else:
        recipes = {r: (RECIPES[r], args.arch) for r in args.recipes.split(",") if r in RECIPES}
        if len(recipes) != len(args.recipes.split(",")) or not recipes:
            p.error(f"--recipes takes seed and/or ours. Received {args.recipes!r}")
    if len(recipes) == 1 and not args.sequential:
        p.error("one recipe alone runs with --sequential (the concurrent mode pairs two)")
    env_start = environment()  # load average before this run's own work
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="bench_cifar_recipes-"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log(f"runs in {runs_dir}; budget {args.minutes:g} min per recipe")

    budget = ["--epochs", str(SEED_EPOCHS), "--time-budget", f"{args.minutes:g}"]
    pin = args.pin and not args.sequential
    results = run_pair({
        recipe: train_cmd(args, preset, core, runs_dir, recipe,
                          budget + (shlex.split(args.ours_flags) if recipe.startswith("ours") else []),
                          pin, arch)
        for (recipe, (preset, arch)), core in zip(recipes.items(), cores)
    }, runs_dir, sequential=args.sequential)

    smoke = args.minutes < TARGET_MINUTES
    rows = []
    for (recipe, (preset, arch)), core in zip(recipes.items(), cores):
        r, m = results[recipe], results[recipe]["metrics"]
        config = load_json(Path(r["run"]) / "config.json")
        rows.append({"recipe": recipe, "arch": arch, "preset": preset,
                     "flags": args.ours_flags if recipe.startswith("ours") else "",
                     "core": core if pin else "all",
                     "batch": config["batch_size"], "epochs": r["epochs"],
                     "epoch_s_median": sorted(r["epoch_seconds"])[len(r["epoch_seconds"]) // 2]
                     if r["epoch_seconds"] else None,
                     "train_s": m["train_seconds"], "wall_s": r["wall_s"],
                     "stopped_by_budget": m["stopped_by_time_budget"],
                     "val_accuracy": m.get("val", {}).get("accuracy"),
                     "test_accuracy": m.get("test", {}).get("accuracy")})
    acc = {row["recipe"]: row["test_accuracy"] for row in rows}
    ours_acc = acc.get("ours")
    label = f"SMOKE TEST ({args.minutes:g} min, not the {TARGET_MINUTES}-min target run)" if smoke else \
        f"{args.minutes:g} minutes each"
    how = "one after the other, all cores each" if args.sequential else "concurrent, one pinned core each"
    print_rows(rows, f"CIFAR-10 {args.archs or args.arch} from scratch, {label}: {how}")
    if args.archs:
        a, b = rows
        print(f"\n{b['arch']} - {a['arch']}: {b['test_accuracy'] - a['test_accuracy']:+.4f} test accuracy "
              f"in {b['epochs']} vs {a['epochs']} epochs")
    if "seed" in acc and ours_acc is not None:
        print(f"\nours - seed: {ours_acc - acc['seed']:+.4f} test accuracy")
    if ours_acc is not None:
        verdict = "met" if ours_acc >= TARGET_ACCURACY else "NOT met"
        print(f"ours: target >= {TARGET_ACCURACY:.0%} after {TARGET_MINUTES} min: "
              + (verdict if not smoke else f"not judged (smoke test; ours reached {ours_acc:.2%})"))
    print(f"runs: {runs_dir}")
    if args.json:
        write_json(args.json, {"benchmark": "cifar_recipes", "minutes": args.minutes,
                               "arch": args.archs or args.arch,
                               "ours_flags": args.ours_flags,
                               "sequential": args.sequential, "smoke_test": smoke,
                               "environment": with_end_load(env_start), "rows": rows, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
