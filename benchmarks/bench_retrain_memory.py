"""Peak memory of `mobilenets retrain` as the dataset grows: this tree against a baseline tree.

    .venv/bin/python benchmarks/bench_retrain_memory.py --base ../i18-base --sizes 2000,10000,50000 \\
        --base-sizes 2000,10000 --json retrain_memory.json

Extracts CIFAR-10's training JPEGs (`../shared/data/cifar10-jpg.tar.gz`, 32x32)
once to a temporary folder and links balanced subsets of `--sizes` images
(the same share of every class) into folders of their own. Each size is
retrained with `mobilenets retrain DIR --arch v1-0.25-224 --epochs 1` (ImageNet
weights from the shared file through an offline `KERAS_HOME`; the pipeline
upscales every image to 224 px) in a fresh process with an empty
`--cache-dir`, so every run decodes the images and computes the features.
The same command runs with `PYTHONPATH` set to this tree's `src` ("ours") and
to `--base`'s ("baseline", e.g. a `git worktree` of main), alternating, in the
same invocation. Max RSS and CPU time come from the child's own rusage
(`os.wait4`); images/s is the size over the whole command's wall time
(start-up included, the same for both).

Target (issue 18): ours stays under 4 GB and within 1.5x of its own 2k
figure at every size, and at 2k ours is no slower than the baseline
(images/s ratio >= 1, same run). Both trees train the same head on the same
split and features, so their validation accuracy is printed side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from _common import (REPO, SHARED, environment, load_json, log, measured, offline_keras_home, print_rows, ratio,
                     verdict, with_end_load)

CIFAR = SHARED / "data" / "cifar10-jpg.tar.gz"
ARCH = "v1-0.25-224"
MAX_RSS_GB = 4.0
MAX_GROWTH = 1.5


def subsets(sizes: list[int], work: Path) -> dict[int, Path]:
    """`{size: folder}`: class folders holding `size / classes` hard links each, the first files by name."""
    train = work / "cifar10"
    log(f"extracting the training images of {CIFAR}")
    with tarfile.open(CIFAR) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.split("/")[-3:-2] == ["train"]]
        tar.extractall(train, members=members, filter="data")
    classes = sorted(p for p in next(train.rglob("train")).iterdir() if p.is_dir())
    out = {}
    for size in sizes:
        folder = work / f"cifar10-{size}"
        for c in classes:
            (folder / c.name).mkdir(parents=True)
            for f in sorted(c.iterdir())[:size // len(classes)]:
                os.link(f, folder / c.name / f.name)
        out[size] = folder
    return out


def retrain(tree: Path, folder: Path, work: Path, name: str) -> dict:
    """One `mobilenets retrain` in a fresh process: wall time, max RSS and the run's metrics."""
    runs, cache = work / "runs", Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    cmd = [sys.executable, "-m", "mobilenets", "retrain", str(folder), "--arch", ARCH, "--epochs", "1",
           "--cache-dir", str(cache), "--runs-dir", str(runs), "--name", name]
    log(f"{name}: PYTHONPATH={tree / 'src'}")
    r = measured(cmd, dict(os.environ, PYTHONPATH=str(tree / "src")), work / f"{name}.log")
    metrics = load_json(runs / name / "metrics.json")
    return {**r, "val_accuracy": metrics.get("val", {}).get("accuracy")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, required=True, help="the baseline tree (a checkout of main)")
    p.add_argument("--sizes", default="2000,10000,50000", help="dataset sizes for ours (default: %(default)s)")
    p.add_argument("--base-sizes", help="sizes the baseline runs too (default: all of --sizes)")
    p.add_argument("--json", help="write the rows and environment here")
    args = p.parse_args()
    if not CIFAR.is_file():
        print(f"skipped: {CIFAR} is not there", file=sys.stderr)
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base_sizes = set(sizes) if args.base_sizes is None else {int(s) for s in args.base_sizes.split(",") if s}
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-retrain-memory-") as tmp:
        work = Path(tmp)
        offline_keras_home(work)
        folders = subsets(sizes, work)
        rows = []
        for size in sizes:
            base = retrain(args.base.resolve(), folders[size], work, f"base-{size}") if size in base_sizes else {}
            ours = retrain(REPO, folders[size], work, f"ours-{size}")
            rows.append({"images": size, "base_rss_gb": base.get("max_rss_gb"), "ours_rss_gb": ours["max_rss_gb"],
                         "rss_ratio": ratio(ours["max_rss_gb"], base.get("max_rss_gb")),
                         "base_img_s": round(size / base["wall_s"], 1) if base else None,
                         "ours_img_s": round(size / ours["wall_s"], 1),
                         "speed_ratio": ratio(base.get("wall_s"), ours["wall_s"]),
                         "base_wall_s": base.get("wall_s"), "ours_wall_s": ours["wall_s"],
                         "base_val_acc": base.get("val_accuracy"), "ours_val_acc": ours["val_accuracy"]})
            print_rows(rows, f"mobilenets retrain --arch {ARCH} --epochs 1 on CIFAR-10 JPEGs (baseline: {args.base})")
    first = rows[0]
    for r in rows:
        r["growth_vs_first"] = ratio(r["ours_rss_gb"], first["ours_rss_gb"])
        r["meets_target"] = bool(r["ours_rss_gb"] < MAX_RSS_GB and r["growth_vs_first"] <= MAX_GROWTH
                                 and (r is not first or (r["speed_ratio"] or 0) >= 1.0))
    print_rows(rows, "with growth against the smallest size (ours)",
               columns=["images", "base_rss_gb", "ours_rss_gb", "growth_vs_first", "base_img_s", "ours_img_s",
                        "speed_ratio", "base_val_acc", "ours_val_acc", "meets_target"])
    args.base = str(args.base)
    env = with_end_load(env)
    log(f"load average: {env['loadavg_1m']} at the start, {env['loadavg_1m_end']} at the end")
    return verdict(rows, "meets_target", f"sizes under {MAX_RSS_GB} GB, within {MAX_GROWTH}x of "
                   f"{first['images']} images (and no slower than the baseline there)", args)


if __name__ == "__main__":
    sys.exit(main())
