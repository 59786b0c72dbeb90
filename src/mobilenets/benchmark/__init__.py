"""How fast is a model here: latency percentiles, throughput, memory, GMAC/s.

    mobilenets benchmark runs/pets v2-1.00-224 model_int8.tflite --threads 1,2 --runs 50

Like TFLite's `benchmark_model` and timm's `benchmark.py`: each model is
loaded (`init_ms`), run once (`first_ms`: XNNPACK packs weights, TF traces),
warmed up, then timed call by call; p50/p90/p99 come from those calls and
`throughput` (images/s) from their total. `.tflite` files run in the LiteRT
interpreter (`num_threads`), `.keras`/`.h5` files as a `tf.function` around
`model(x, training=False)` with TensorFlow's intra-op pool set to the thread
count. A spec (`v2-1.00-224`) is built with random weights and converted to
a float32 .tflite on the fly; a run directory stands for its `model.keras`
and its exported `.tflite` files.

Each (model, threads) pair is measured in a fresh Python process, so thread
pools, caches and memory are not shared between models and `peak_rss_mb` is
honest: the peak resident set (VmHWM) minus the resident set before the
model was loaded. `macs_m` is the exact count from `mobilenets.profile` and
`gmacs_per_s` the multiply-accumulates achieved per second.

`per_op` lists each model's ops by type with their MACs and whether XNNPACK
runs them (the delegate's partitions are mapped back onto the graph).
LiteRT's Python API has no per-op timer, so no per-op times are reported;
the C++ `benchmark_model --enable_op_profiling=true` gives them.
"""

from __future__ import annotations

import tempfile

from mobilenets.benchmark.measure import COLUMNS, in_subprocess, measure
from mobilenets.benchmark.ops import PER_OP_NOTE, op_delegation, per_op_rows
from mobilenets.benchmark.targets import (KERAS_SUFFIXES, parse_threads, resolve_targets,
                                          settle_batchnorm, spec_tflite)
from mobilenets.errors import MobilenetsError

__all__ = ["COLUMNS", "KERAS_SUFFIXES", "benchmark", "measure", "op_delegation", "parse_threads",
           "per_op_rows", "resolve_targets", "settle_batchnorm", "spec_tflite"]


def benchmark(models, threads=(1,), runs: int = 50, warmup: int = 5, batch: int = 1,
              per_op: bool = False, isolate: bool = True, workdir=None) -> dict:
    """Benchmark models at each thread count.

    Args:
        models: files (.tflite/.keras/.h5), run directories or specs.
        threads: thread counts, e.g. `(1, 2)` or `"1,2"`.
        runs: timed calls per measurement.
        warmup: untimed calls before timing.
        batch: images per call.
        per_op: also list ops by type with XNNPACK delegation (.tflite only).
        isolate: measure each (model, threads) in a fresh process.
        workdir: where specs are converted (default: a temporary folder).

    Returns:
        `{"rows": [...], "ops": [...], "notes": [...]}`: result rows with
        `COLUMNS`, per-op rows, and notes.
    """
    threads = parse_threads(threads)
    if runs < 1 or warmup < 0 or batch < 1:
        raise MobilenetsError(f"need --runs >= 1, --warmup >= 0 and --batch >= 1. "
                              f"Received runs={runs}, warmup={warmup}, batch={batch}")
    if not models:
        raise MobilenetsError("give at least one MODEL: a .tflite/.keras/.h5 file, a run or a spec")
    with tempfile.TemporaryDirectory(prefix="mobilenets-bench-") as tmp:
        targets = resolve_targets(models, workdir or tmp)
        rows, ops, notes = [], [], []
        for name, path in targets:
            for n in threads:
                args = dict(path=str(path), threads=n, runs=runs, warmup=warmup, batch=batch)
                row = in_subprocess(args) if isolate else measure(**args)
                row["model"] = name
                rows.append({c: row.get(c) for c in COLUMNS})
            if per_op:
                if path.suffix.lower() == ".tflite":
                    ops += per_op_rows(path, name)
                else:
                    notes.append(f"{name}: per-op listing is for .tflite models only")
        if per_op:
            notes.append(PER_OP_NOTE)
    if not isolate:
        notes.append("measured in one process: peak_rss_mb and Keras thread counts are approximate")
    return {"rows": rows, "ops": ops, "notes": notes}

