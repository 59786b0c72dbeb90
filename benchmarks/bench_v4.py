"""MobileNetV4 beside V1, V2 and V3: exact cost and measured LiteRT latency at 224.

    .venv/bin/python benchmarks/bench_v4.py --rounds 3 --json v4.json

Each spec is built with random weights and BatchNorm settled on random
images (`mobilenets.benchmark.spec_tflite`, as `mobilenets benchmark SPEC`
does), converted to float32 and int8 (uint8 I/O) .tflite, and timed by
`mobilenets.benchmark.benchmark` at 1 and 2 threads, every file in a fresh
process. Rounds go round the whole list so a noisy neighbour hits every
model alike; the lowest p50 of the rounds is shown. Params and MACs are the
profiler's exact counts (trainable params: what the papers and timm count).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import environment, log, print_rows, with_end_load, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SPECS = ("v1-1.00-224", "v2-1.00-224", "v3-large-1.00-224", "v4-conv-s-224", "v4-conv-m-224")
THREADS = (1, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default=",".join(SPECS), help="comma-separated specs")
    ap.add_argument("--rounds", type=int, default=3, help="timings per file; the lowest p50 is kept")
    ap.add_argument("--runs", type=int, default=30, help="timed calls per measurement")
    ap.add_argument("--workdir", help="where the .tflite files go (default: a temporary folder)")
    ap.add_argument("--json", help="also write the rows and the environment here")
    args = ap.parse_args()

    from mobilenets.benchmark import benchmark, spec_tflite
    from mobilenets.profile import profile
    from mobilenets.zoo import variant

    env = environment()
    specs = [s.strip() for s in args.specs.split(",") if s.strip()]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-v4-"))
    files, rows = {}, {}
    for spec in specs:
        log(f"{spec}: profile and convert")
        p = profile(spec)
        rows[spec] = {"spec": spec, "params": p.trainable_params, "macs_m": round(p.macs / 1e6, 1),
                      "top1": variant(spec).top1}
        for fmt, mode in (("float32", "none"), ("int8", "int8")):
            files[spec, fmt] = spec_tflite(spec, workdir, quantize=mode)
    for r in range(args.rounds):
        for (spec, fmt), path in files.items():
            log(f"round {r + 1}/{args.rounds}: {spec} {fmt}")
            for row in benchmark([path], threads=THREADS, runs=args.runs, warmup=5)["rows"]:
                key = f"{fmt}_ms_t{row['threads']}"
                old = rows[spec].get(key)
                rows[spec][key] = row["latency_ms_p50"] if old is None else min(old, row["latency_ms_p50"])
    table = [dict(r, **{k: round(v, 2) for k, v in r.items() if k.endswith(tuple(f"_t{t}" for t in THREADS))})
             for r in rows.values()]
    columns = ["spec", "params", "macs_m", "top1"] + [f"{fmt}_ms_t{t}" for t in THREADS
                                                      for fmt in ("float32", "int8")]
    print_rows(table, f"V1 / V2 / V3 / V4 at 224: lowest p50 of {args.rounds} rounds, batch 1, random weights",
               columns=columns)
    if args.json:
        write_json(args.json, {"rows": table, "environment": with_end_load(env), "args": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
