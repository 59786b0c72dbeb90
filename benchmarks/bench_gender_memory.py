"""Peak memory of the gender workflow on an IMDB-WIKI-sized release: does it stay bounded as faces grow?

    .venv/bin/python benchmarks/bench_gender_memory.py --sizes 2000,20000 --json gender_memory.json

Writes, per size, a release laid out as IMDB-WIKI publishes it: `wiki.mat`
(a 1x1 struct of 1xN fields: full_path, gender, face_location, face_score,
second_face_score, ...) and N JPEG photos of 128x96 px in `00/ ... 99/`,
half female and half male, every face box inside its photo (with a few
rows the publishers' filter drops: no face, a second face, unknown gender).
Then runs the seed's gender workflow on it as a user does,

    mobilenets retrain wiki.mat --preset gender --arch v1-0.25-224 --epochs 1

in a fresh process with an empty `--cache-dir`: the .mat is read and
filtered, every kept face is cropped by its box into a `female/ male/`
tree, the crops are decoded to 224 px into the on-disk store, features
are extracted and the head trained. (`--arch v1-0.25-224` because the
preset's V1 0.5 ImageNet weights are not among the shared offline files;
the data path is the same.) Max RSS comes from the child's rusage.

Target (issue 18): the largest size within 1.5x of the smallest's max RSS
and under 4 GB. The photos are synthetic (smooth colour fields with a
brighter "face" box, seeded), so the accuracy printed says nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import (REPO, environment, load_json, log, measured, offline_keras_home, print_rows, ratio, verdict,
                     with_end_load)

ARCH = "v1-0.25-224"
MAX_RSS_GB = 4.0
MAX_GROWTH = 1.5
W, H = 128, 96


def write_release(root: Path, n: int, seed: int = 0) -> Path:
    """A wiki.mat release of `n` photos (about 3% of rows filtered out as published)."""
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    fields = ["dob", "photo_taken", "full_path", "gender", "name", "face_location", "face_score",
              "second_face_score"]
    paths, genders, boxes, scores, seconds = [], [], [], [], []
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        rel = f"{i % 100:02d}/{100000 + i}_1970-01-01_2000.jpg"
        x1, y1 = int(rng.integers(0, W // 2)), int(rng.integers(0, H // 2))
        x2, y2 = x1 + int(rng.integers(24, W // 2)), y1 + int(rng.integers(24, H // 2))
        base = rng.integers(0, 160, 3)
        grad = rng.uniform(-0.5, 0.5, 2)
        img = base[None, None, :] + (grad[0] * xx + grad[1] * yy)[..., None]
        img[y1:y2, x1:x2] += 60 + 30 * (i % 2)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(rel)
        genders.append(np.nan if i % 97 == 5 else float(i % 2))
        boxes.append([x1 + 1.0, y1 + 1.0, float(x2), float(y2)])  # 1-based, inclusive, as published
        scores.append(-np.inf if i % 89 == 7 else float(rng.uniform(1.5, 5.0)))
        seconds.append(float(rng.uniform(1.5, 3.0)) if i % 83 == 11 else np.nan)

    def cell(values):
        c = np.empty((1, n), dtype=object)
        for i, v in enumerate(values):
            c[0, i] = v
        return c

    struct = np.empty((1, 1), dtype=[(f, "O") for f in fields])
    struct[0, 0]["dob"] = np.array([[719529.0] * n])
    struct[0, 0]["photo_taken"] = np.array([[2000] * n], dtype=np.uint16)
    struct[0, 0]["full_path"] = cell(np.array([p]) for p in paths)
    struct[0, 0]["gender"] = np.array([genders])
    struct[0, 0]["name"] = cell(np.array([f"Person {i}"]) for i in range(n))
    struct[0, 0]["face_location"] = cell(np.array([b]) for b in boxes)
    struct[0, 0]["face_score"] = np.array([scores])
    struct[0, 0]["second_face_score"] = np.array([seconds])
    savemat(root / "wiki.mat", {"wiki": struct})
    return root / "wiki.mat"


def retrain(mat: Path, work: Path, name: str) -> dict:
    runs, cache = work / "runs", Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    cmd = [sys.executable, "-m", "mobilenets", "retrain", str(mat), "--preset", "gender", "--arch", ARCH,
           "--epochs", "1", "--cache-dir", str(cache), "--runs-dir", str(runs), "--name", name]
    r = measured(cmd, dict(os.environ, PYTHONPATH=str(REPO / "src")), work / f"{name}.log")
    run = runs / name
    data = load_json(run / "data_report.json") if (run / "data_report.json").is_file() else {}
    metrics = load_json(run / "metrics.json")
    return {**r, "images_used": data.get("total", data.get("images")),
            "val_accuracy": metrics.get("val", {}).get("accuracy")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2000,20000", help="photos in the release (default: %(default)s)")
    p.add_argument("--json", help="write the rows and environment here")
    args = p.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    env = environment()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gender-memory-") as tmp:
        work = Path(tmp)
        offline_keras_home(work)
        for size in sizes:
            log(f"writing a {size}-photo wiki.mat release")
            mat = write_release(work / f"wiki-{size}", size)
            r = retrain(mat, work, f"gender-{size}")
            rows.append({"photos": size, **r, "img_s": round(size / r["wall_s"], 1)})
            print_rows(rows, f"mobilenets retrain wiki.mat --preset gender --arch {ARCH} --epochs 1")
    first = rows[0]
    for r in rows:
        r["growth_vs_first"] = ratio(r["max_rss_gb"], first["max_rss_gb"])
        r["meets_target"] = bool(r["max_rss_gb"] < MAX_RSS_GB and r["growth_vs_first"] <= MAX_GROWTH)
    print_rows(rows, "with growth against the smallest release",
               columns=["photos", "max_rss_gb", "growth_vs_first", "img_s", "wall_s", "cpu_s", "meets_target"])
    env = with_end_load(env)
    log(f"load average: {env['loadavg_1m']} at the start, {env['loadavg_1m_end']} at the end")
    return verdict(rows, "meets_target", f"releases under {MAX_RSS_GB} GB and within {MAX_GROWTH}x of "
                   f"{first['photos']} photos", args)


if __name__ == "__main__":
    sys.exit(main())
