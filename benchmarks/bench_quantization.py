"""float32 vs float16 vs dynamic vs int8: latency and size of V1, V2 and V3 on this CPU.

    .venv/bin/python benchmarks/bench_quantization.py --specs v1-1.00-224,v2-1.00-224,v3-large-1.00-224

Each spec is built with random weights (BatchNorm statistics set from the
calibration images, so int8 scales look like a trained model's) and
converted the way `mobilenets export` converts: float32, float16 weights,
dynamic-range int8 weights, and full int8 with uint8 I/O. For V3 the int8
file is made twice: as exported (hard-swish rewritten as relu6(x+3)*(x/6))
and with the converter's own HARD_SWISH kept, the baseline it beats.

For every file: size, p50 latency at each thread count from
`mobilenets.benchmark.benchmark` (a fresh process per measurement; rounds
alternate and the median is kept), p50 with XNNPACK switched off (the
interpreter's built-in kernels, one thread), and how the XNNPACK delegate
cut the graph: the number of delegate partitions and the ops left outside.

Why int8 V3 was slower than float32 here: LiteRT's XNNPACK delegate takes
int8 CONV/DEPTHWISE/ADD/MUL/MEAN but not int8 HARD_SWISH. Each of V3-Large's
21 HARD_SWISH ops then ran in the built-in kernel and split the network into
22 XNNPACK partitions, with a hand-off at every boundary. The export rewrite
leaves one partition (only the uint8<->int8 QUANTIZE and the final SOFTMAX
stay outside).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import environment, log, median, print_rows, ratio, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

MODES = ("none", "float16", "dynamic", "int8")


def no_xnnpack_ms(path: Path, runs: int, warmup: int) -> float:
    """Median invoke() ms with the built-in kernels only (no default delegate), 1 thread."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    dtype = np.dtype(d["dtype"])
    x = (np.random.default_rng(0).integers(0, 256, d["shape"]) if dtype.kind in "iu"
         else np.random.default_rng(0).uniform(0, 255, d["shape"])).astype(dtype)
    interp.set_tensor(d["index"], x)
    for _ in range(warmup + 1):
        interp.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def delegation(path: Path) -> tuple[int, str]:
    """(XNNPACK partitions, ops left outside as 'OPx3, ...')."""
    from mobilenets.benchmark import op_delegation
    from mobilenets.predict import open_interpreter

    interp = open_interpreter(path)
    partitions = sum(1 for o in interp._get_ops_details() if o["op_name"] == "DELEGATE")
    left = collections.Counter(o["op"] for o in op_delegation(path) if not o["delegated"])
    return partitions, ", ".join(f"{op}x{n}" for op, n in sorted(left.items())) or "-"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--specs", default="v1-1.00-224,v2-1.00-224,v3-large-1.00-224")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calibration", type=int, default=32, help="random calibration images")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)

    from mobilenets.benchmark import benchmark, spec_tflite
    from mobilenets.export import quiet_native_stderr
    from mobilenets.specs import parse_spec

    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        files = []  # (spec, label, path)
        for spec in args.specs.split(","):
            s = parse_spec(spec)
            calib = np.random.default_rng(0).integers(0, 256, (args.calibration, *s.input_shape), np.uint8)
            for mode in MODES:
                log(f"converting {s.name} ({mode})")
                with quiet_native_stderr():
                    files.append((s.name, "float32" if mode == "none" else mode,
                                  spec_tflite(s, tmp, mode, calib)))
            if s.version == "v3":
                log(f"converting {s.name} (int8, HARD_SWISH kept)")
                with quiet_native_stderr():
                    files.append((s.name, "int8 (HARD_SWISH kept)",
                                  spec_tflite(s, tmp, "int8", calib, hard_swish_rewrite=False)))
        p50 = collections.defaultdict(list)
        for r in range(args.rounds):
            order = files if r % 2 == 0 else files[::-1]
            for spec, label, path in order:
                for n in threads:
                    row = benchmark([str(path)], threads=n, runs=args.runs, warmup=args.warmup)["rows"][0]
                    p50[(spec, label, n)].append(row["latency_ms_p50"])
            log(f"round {r + 1} of {args.rounds} done")
        for spec, label, path in files:
            parts, left = delegation(path)
            with quiet_native_stderr():
                plain = no_xnnpack_ms(path, args.runs, args.warmup)
            row = {"model": spec, "quantize": label, "file_mb": round(path.stat().st_size / 2**20, 2)}
            for n in threads:
                row[f"p50_ms_{n}t"] = round(median(p50[(spec, label, n)]), 2)
            row["no_xnnpack_ms_1t"] = round(plain, 2)
            row["xnnpack_partitions"] = parts
            row["not_delegated"] = left
            rows.append(row)
    for row in rows:  # speed-up over the same spec's float32, first thread count
        base = next(r for r in rows if r["model"] == row["model"] and r["quantize"] == "float32")
        row["vs_float32"] = ratio(base[f"p50_ms_{threads[0]}t"], row[f"p50_ms_{threads[0]}t"])
    print_rows(rows, f"quantization on this CPU: p50 over {args.rounds} rounds of {args.runs} runs; "
                     f"vs_float32 = float32 p50 / this p50 at {threads[0]} thread(s)")
    if args.json:
        write_json(args.json, {"rows": rows, "environment": environment(), "args": vars(args)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
