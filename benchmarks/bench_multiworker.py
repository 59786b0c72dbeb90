"""Two workers on one core each against one worker on one core: images per second and accuracy.

    .venv/bin/python benchmarks/bench_multiworker.py --epochs 6

Runs `mobilenets train DATA --distribute multiworker` as two processes on
free localhost ports, each with its own TF_CONFIG, pinned to core 0 and core 1
(`taskset`), and the same command as one worker (a one-task TF_CONFIG, the
same custom training step) pinned to core 0; then, for reference, Keras's
`fit` path (`--distribute none`) on core 0. Same data, epochs and global
batch. Images per second = training images x epochs / the summed epoch
seconds in history.csv (start-up, tracing of the first epoch included in
neither side's wall time column).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MOBILENETS, environment, log, print_rows, verdict

from mobilenets.train.multiworker import local_ports

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")




def _train(args, runs: Path, name: str, cores: list[int], distribute: str) -> dict:
    cmd = [str(MOBILENETS), "train", args.data, "--arch", args.arch, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--low-res", "0", "--no-cache", "--seed", "0",
           "--runs-dir", str(runs), "--name", name, "--distribute", distribute]
    ports = local_ports(len(cores))
    procs = []
    start = time.monotonic()
    for index, core in enumerate(cores):
        env = dict(os.environ)
        if distribute == "multiworker":
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                           "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(["taskset", "-c", str(core), *cmd], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{name} failed:\n{err[-2000:]}")
    wall = time.monotonic() - start
    run = runs / name
    rows = list(csv.DictReader((run / "history.csv").open()))
    seconds = sum(float(r["seconds"]) for r in rows)
    later = sum(float(r["seconds"]) for r in rows[1:])  # without the first epoch's tracing
    images = json.loads((run / "data_report.json").read_text())["sizes"]["train"]
    metrics = json.loads((run / "metrics.json").read_text())
    return {"setup": name, "workers": len(cores) if distribute == "multiworker" else 1,
            "cores": ",".join(map(str, cores)), "epochs": len(rows),
            "img_per_s": round(images * len(rows) / seconds, 1),
            "img_per_s_after_epoch_1": round(images * (len(rows) - 1) / later, 1) if later else None,
            "wall_s": round(wall, 1), "val_accuracy": metrics["val"]["accuracy"],
            "test_accuracy": metrics["test"]["accuracy"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--arch", default="v1-0.25-32")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    runs = Path(tempfile.mkdtemp(prefix="bench-multiworker-"))
    env = environment()
    rows = []
    for name, cores, distribute in (("two-workers", [0, 1], "multiworker"), ("one-worker", [0], "multiworker"),
                                    ("keras-fit", [0], "none")):
        log(f"{name} on core(s) {cores}")
        rows.append(_train(args, runs, name, cores, distribute))
    one = rows[1]["img_per_s_after_epoch_1"]
    rows[0]["speedup_vs_one_worker"] = round(rows[0]["img_per_s_after_epoch_1"] / one, 2) if one else None
    for r in rows:
        r["accuracy_within_5_points"] = abs(r["val_accuracy"] - rows[1]["val_accuracy"]) <= 0.05
    print_rows(rows, f"{args.data}, {args.arch}, {args.epochs} epochs, global batch {args.batch_size} "
                     f"(load {env['loadavg_1m']})")
    return verdict(rows, "accuracy_within_5_points", "setups within 5 points of one worker's val accuracy", args)


if __name__ == "__main__":
    sys.exit(main())
