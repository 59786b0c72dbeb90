"""Does `mobilenets benchmark` report what the interpreter really does?

    .venv/bin/python benchmarks/bench_latency_vs_invoke.py --specs v1-1.00-224,v2-1.00-224 --rounds 5

For each model (a spec built with random weights and converted to float32
and int8 .tflite), each round measures the same file two ways:

* `mobilenets.benchmark.benchmark` (a fresh process per measurement, as the
  `benchmark` command runs it): its p50;
* a bare loop, also in a fresh process that imports nothing of ours:
  `Interpreter(num_threads=N)`, one input set, warm-up, then
  `interpreter.invoke()` timed call by call: its median.

Rounds alternate which goes first so a noisy neighbour hits both. Figures
are medians over rounds; the ratio is the median of per-round ratios.
Target: benchmark's p50 within 5% of the bare loop (ratio in [0.95, 1.05]).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


from _common import log, median, print_rows, verdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TOLERANCE = 0.05


BARE_LOOP = """
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter

path, threads, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
interp = Interpreter(model_path=path, num_threads=threads)
interp.allocate_tensors()
d = interp.get_input_details()[0]
dtype = np.dtype(d["dtype"])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, d["shape"]) if dtype.kind in "iu" else rng.uniform(0, 255, d["shape"])
interp.set_tensor(d["index"], x.astype(dtype))
interp.invoke()
for _ in range(warmup):
    interp.invoke()
times = []
for _ in range(runs):
    start = time.perf_counter()
    interp.invoke()
    times.append(time.perf_counter() - start)
print(float(np.median(times)) * 1000)
"""


def bare_invoke_ms(path: Path, threads: int, runs: int, warmup: int) -> float:
    """Median ms of interpreter.invoke() alone, in a fresh process that imports nothing of ours."""
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(path), str(threads), str(runs), str(warmup)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", default="v1-1.00-224,v2-1.00-224,v3-large-1.00-224")
    p.add_argument("--quantize", default="none,int8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = p.parse_args(argv)

    from mobilenets.benchmark import benchmark, spec_tflite
    from mobilenets.export import quiet_native_stderr

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-invoke-") as tmp:
        for spec in args.specs.split(","):
            for mode in args.quantize.split(","):
                log(f"converting {spec} ({mode})")
                with quiet_native_stderr():
                    path = spec_tflite(spec, tmp, mode)
                ours, bare, ratios = [], [], []
                for r in range(args.rounds):
                    def run_ours():
                        return benchmark([str(path)], threads=args.threads, runs=args.runs,
                                         warmup=args.warmup)["rows"][0]["latency_ms_p50"]

                    def run_bare():
                        return bare_invoke_ms(path, args.threads, args.runs, args.warmup)

                    if r % 2:
                        b, o = run_bare(), run_ours()
                    else:
                        o, b = run_ours(), run_bare()
                    ours.append(o)
                    bare.append(b)
                    ratios.append(o / b)
                    log(f"  round {r + 1}: benchmark p50 {o:.2f} ms, bare invoke {b:.2f} ms")
                ratio = median(ratios)
                rows.append({"model": spec, "quantize": mode, "threads": args.threads,
                             "benchmark_p50_ms": round(median(ours), 3),
                             "bare_invoke_ms": round(median(bare), 3),
                             "ratio": round(ratio, 3), "within_5pct": abs(ratio - 1) <= TOLERANCE})
    # ratios as text: the table writer shows numbers >= 1 with one decimal only
    print_rows([dict(r, ratio=f"{r['ratio']:.3f}") for r in rows],
               f"benchmark p50 vs bare interpreter.invoke() ({args.rounds} rounds, "
               f"{args.runs} runs each; target ratio within 1 +- {TOLERANCE})")
    return verdict(rows, "within_5pct", f"within {TOLERANCE:.0%}", args)


if __name__ == "__main__":
    raise SystemExit(main())
