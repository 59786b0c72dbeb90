"""Does `predict` on a folder keep the model busy?

    .venv/bin/python benchmarks/bench_predict_throughput.py --images 1000 --threads 1,2 --rounds 3

Makes a folder of generated photo-like JPEGs (smooth gradients, shapes and
noise, 320x240, the size of a phone thumbnail) and a model (a spec with
random weights, exported as `mobilenets export` does), then for each thread
count measures, in this process:

* model only: `Classifier.predict` on images already decoded and resized,
  one image per invoke: the ceiling for this model and thread count;
* predict: `predict_files` over the whole folder (list, decode in a thread
  pool, resize, infer, top-k), all results consumed: images/s;
* decode only: the thread pool decoding and resizing, no model.

Each round takes the model-only figure just before and just after the folder
pass (their mean is the round's ceiling); figures are medians over rounds and
the ratio is the median of per-round ratios. Target: predict >= 80% of
model-only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from _common import log, median, print_rows, verdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TARGET = 0.80


def make_photos(folder: Path, n: int, size=(320, 240), seed: int = 0) -> list[Path]:
    """JPEGs that compress like photos: gradients, a few shapes, mild noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(n):
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-0.5, 0.5, (2, 3))
        img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
        img = np.clip(img + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(img)
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
            draw.ellipse([x0, y0, x0 + rng.integers(20, 120), y0 + rng.integers(20, 120)],
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = folder / f"photo_{i:05d}.jpg"
        im.save(path, quality=88)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="v1-1.00-224")
    p.add_argument("--quantize", default="int8", choices=["none", "float16", "dynamic", "int8"])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model-only-images", type=int, default=200,
                   help="decoded images timed for the model-only ceiling")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)

    from mobilenets.benchmark import spec_tflite
    from mobilenets.data import load_image
    from mobilenets.export import quiet_native_stderr
    from mobilenets.predict import list_images, load_classifier, predict_files

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        log(f"writing {args.images} JPEGs")
        make_photos(tmp / "photos", args.images)
        log(f"converting {args.spec} ({args.quantize})")
        with quiet_native_stderr():
            model = spec_tflite(args.spec, tmp, args.quantize)
        paths = list_images([tmp / "photos"])
        for threads in (int(t) for t in args.threads.split(",")):
            clf = load_classifier(model, threads=threads)
            size = clf.input_size
            decoded = np.stack([load_image(q, size) for q in paths[:args.model_only_images]])
            model_only, predicted, decode_only, ratios = [], [], [], []
            for r in range(args.rounds):
                def ceiling():
                    clf.predict(decoded[:8])
                    start = time.perf_counter()
                    clf.predict(decoded)
                    return len(decoded) / (time.perf_counter() - start)

                def end_to_end():
                    start = time.perf_counter()
                    n = sum(1 for res in predict_files(clf, paths, k=5, progress=False) if "label" in res)
                    assert n == len(paths)
                    return n / (time.perf_counter() - start)

                # The ceiling is taken just before and just after, so a neighbour's load
                # that comes and goes during the folder pass hits both sides alike.
                before = ceiling()
                e = end_to_end()
                c = (before + ceiling()) / 2
                start = time.perf_counter()
                with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
                    list(pool.map(lambda q: load_image(q, size), paths))
                decode_only.append(len(paths) / (time.perf_counter() - start))
                model_only.append(c)
                predicted.append(e)
                ratios.append(e / c)
                log(f"  threads {threads} round {r + 1}: model-only {c:.0f} img/s, predict {e:.0f} img/s")
            ratio = median(ratios)
            rows.append({"model": f"{args.spec} {args.quantize}", "threads": threads,
                         "images": len(paths), "model_only_img_s": round(median(model_only), 1),
                         "predict_img_s": round(median(predicted), 1),
                         "decode_only_img_s": round(median(decode_only), 1),
                         "ratio": round(ratio, 3), "meets_80pct": ratio >= TARGET})
    # ratios as text: the table writer shows numbers >= 1 with one decimal only
    print_rows([dict(r, ratio=f"{r['ratio']:.3f}") for r in rows],
               f"predict on a folder vs model-only throughput ({args.rounds} rounds; "
               f"target ratio >= {TARGET})")
    return verdict(rows, "meets_80pct", f"at >= {TARGET:.0%} of model-only throughput", args)


if __name__ == "__main__":
    raise SystemExit(main())
