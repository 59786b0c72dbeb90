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

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from mobilenets import artifacts
from mobilenets.errors import MobilenetsError

COLUMNS = ("model", "format", "threads", "batch", "init_ms", "first_ms", "latency_ms_p50",
           "latency_ms_p90", "latency_ms_p99", "throughput", "peak_rss_mb", "file_mb", "macs_m",
           "gmacs_per_s")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
PER_OP_NOTE = ("per-op times: LiteRT's Python API has no op profiler, so none are shown; "
               "'delegated' says which ops XNNPACK runs (the C++ benchmark_model "
               "--enable_op_profiling=true gives per-op times)")


def parse_threads(text: "str | int | list | None") -> tuple[int, ...]:
    """Thread counts from `"1,2"` (or an int or list).

    Args:
        text: comma-separated positive integers; None gives `(1,)`.
    """
    if text is None:
        return (1,)
    items = str(text).split(",") if isinstance(text, (str, int)) else list(text)
    try:
        out = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        raise MobilenetsError(f"--threads must be comma-separated integers such as 1,2. "
                              f"Received {text!r}") from None
    if not out or min(out) < 1:
        raise MobilenetsError(f"--threads must be >= 1. Received {text!r}")
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------- targets


def resolve_targets(models, workdir: "str | os.PathLike") -> list[tuple[str, Path]]:
    """`(display name, file)` for each model argument.

    Args:
        models: files (.tflite/.keras/.h5), run directories, or specs.
        workdir: where specs are converted to .tflite.
    """
    from mobilenets.specs import parse_spec

    out: list[tuple[str, Path]] = []
    for m in models:
        p = Path(m)
        if p.is_dir():
            files = ([p / "model.keras"] if (p / "model.keras").is_file() else []) + \
                sorted((p / "export").glob("*.tflite")) + sorted(p.glob("*.tflite"))
            if not files:
                raise MobilenetsError(f"no model.keras or .tflite files in {p}")
            out += [(str(f), f) for f in files]
        elif p.suffix.lower() in (".tflite",) + KERAS_SUFFIXES or p.exists():
            if not p.is_file():
                raise MobilenetsError(f"no such model file: {p}")
            out.append((str(p), p))
        else:
            spec = parse_spec(m)  # raises a one-line SpecError for anything else
            out.append((f"{spec.name} (random)", spec_tflite(spec, workdir)))
    return out


def spec_tflite(spec, workdir: "str | os.PathLike", quantize: str = "none",
                calibration: "np.ndarray | None" = None, hard_swish_rewrite: bool = True) -> Path:
    """Build a spec with random weights (1000 classes, raw-pixel input) and convert it.

    BatchNorm statistics are taken from the calibration images (see
    `settle_batchnorm`), so activations have trained-like ranges: int8
    scales, and so XNNPACK's choices, are then those of a real model.

    Args:
        spec: a model spec.
        workdir: folder for the SavedModel and the .tflite.
        quantize: a `mobilenets.export.QUANTIZE_MODES` mode.
        calibration: uint8 images for BatchNorm and `int8` (default: 16 random images).
        hard_swish_rewrite: int8 only: rewrite hard-swish for XNNPACK, as
            `mobilenets export` does (False keeps HARD_SWISH, for comparison).
    """
    import keras

    from mobilenets.export.conversion import convert, save_traced
    from mobilenets.export.quantization import has_hard_swish, int8_friendly
    from mobilenets.models import build_model
    from mobilenets.specs import parse_spec

    spec = parse_spec(spec)
    workdir = Path(workdir)
    tag = quantize if hard_swish_rewrite or quantize != "int8" else "int8-hardswish"
    out = workdir / f"{spec.name}-{tag}.tflite"
    if out.is_file():
        return out
    keras.utils.set_random_seed(0)
    model = build_model(spec, classes=1000, weights=None, head="keras", preprocessing=True)
    if calibration is None:
        calibration = np.random.default_rng(0).integers(0, 256, (16, *spec.input_shape), np.uint8)
    settle_batchnorm(model, calibration)
    if quantize == "int8" and has_hard_swish(model) and hard_swish_rewrite:
        model = int8_friendly(model)
    saved = save_traced(model, workdir / f"{spec.name}-{tag}.saved")
    io = "uint8" if quantize == "int8" else "float32"
    # Atomic: a conversion killed half-way must not leave a file reused next time.
    return artifacts.write_bytes(out, convert(saved, quantize, io, calibration))


def settle_batchnorm(model, images: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics from one batch of images.

    A freshly initialised MobileNet's activations shrink layer by layer to
    ~1e-8; int8 scales that small make XNNPACK refuse ops (it bounds the
    ratio of input to output scales) and would misstate int8 latency.

    Args:
        model: a Keras model taking raw pixels.
        images: uint8 images at the model's input size.
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0  # moving statistics := this batch's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras: "structure of inputs doesn't match"
        model(np.asarray(images, np.float32), training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


# --------------------------------------------------------------- measuring


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(path: "str | os.PathLike", threads: int = 1, runs: int = 50, warmup: int = 5,
            batch: int = 1, seed: int = 0) -> dict:
    """Time one model in this process and return one result row.

    Run it in a fresh process (as `benchmark` does) for honest memory
    figures and for TensorFlow's thread count to take effect.

    Args:
        path: a .tflite, .keras or .h5 file.
        threads: interpreter / intra-op threads.
        runs: timed calls.
        warmup: untimed calls after the first.
        batch: images per call.
        seed: seed of the random input.
    """
    path = Path(path)
    if runs < 1 or warmup < 0 or batch < 1:
        raise MobilenetsError(f"need runs >= 1, warmup >= 0 and batch >= 1. "
                              f"Received runs={runs}, warmup={warmup}, batch={batch}")
    is_tflite = path.suffix.lower() == ".tflite"
    if is_tflite:
        import ai_edge_litert.interpreter  # noqa: F401 - import cost is not model cost
    else:
        from mobilenets.predict import set_tf_threads

        set_tf_threads(threads)
        import tensorflow as tf  # noqa: F401
    _reset_peak_rss()
    rss0 = _status_kb("VmRSS")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    if is_tflite:
        call, model = _tflite_call(path, threads, batch, rng), None
    else:
        call, model = _keras_call(path, batch, rng)
    init_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - start) * 1000
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        call()
        times[i] = time.perf_counter() - start
    hwm = _status_kb("VmHWM")
    macs = _macs(path, model)  # after reading the peak: profiling allocates too
    throughput = batch * runs / float(times.sum())
    ms = times * 1000
    return {
        "model": str(path), "format": "tflite" if is_tflite else "keras", "threads": threads,
        "batch": batch, "init_ms": round(init_ms, 2), "first_ms": round(first_ms, 2),
        "latency_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "latency_ms_p90": round(float(np.percentile(ms, 90)), 3),
        "latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "throughput": round(throughput, 1),
        "peak_rss_mb": round((hwm - rss0) / 1024, 1) if hwm and rss0 else None,
        "file_mb": round(path.stat().st_size / 2**20, 3),
        "macs_m": round(macs / 1e6, 2) if macs else None,
        "gmacs_per_s": round(macs * throughput / 1e9, 2) if macs else None,
    }


def _tflite_call(path: Path, threads: int, batch: int, rng):
    from mobilenets.predict import open_interpreter

    interp = open_interpreter(path, threads)
    d = interp.get_input_details()[0]
    if batch != int(d["shape"][0]):
        try:
            interp.resize_tensor_input(d["index"], [batch, *[int(v) for v in d["shape"][1:]]])
            interp.allocate_tensors()
        except Exception as e:  # noqa: BLE001 - ops with a fixed batch (RESHAPE to [1, n])
            raise MobilenetsError(f"{path} cannot run batch {batch}: "
                                  f"{(str(e).splitlines() or [''])[0][:200]}") from None
        d = interp.get_input_details()[0]
    dtype = np.dtype(d["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, d["shape"]).astype(dtype)
    else:
        x = rng.uniform(0, 255, d["shape"]).astype(dtype)
    interp.set_tensor(d["index"], x)
    return interp.invoke


def _keras_call(path: Path, batch: int, rng):
    import tensorflow as tf

    from mobilenets.profile import load_keras_model

    model = load_keras_model(path)
    shape = model.input_shape
    if None in shape[1:]:
        raise MobilenetsError(f"{path} has no fixed input size: {shape}")
    x = tf.constant(rng.uniform(0, 255, (batch, *shape[1:])).astype(np.float32))
    fn = tf.function(lambda t: model(t, training=False))

    def call():
        fn(x).numpy()

    return call, model


def _macs(path: Path, model) -> int | None:
    from mobilenets.profile import profile_keras, profile_tflite

    try:
        return (profile_keras(model) if model is not None else profile_tflite(path)).macs
    except Exception:  # noqa: BLE001 - an op the profiler does not know: leave the column empty
        return None


def _worker() -> None:
    """`python -m mobilenets.benchmark --worker JSON`: one measurement, one JSON line."""
    args = json.loads(sys.argv[2])
    try:
        row = measure(**args)
    except MobilenetsError as e:
        row = {"error": str(e)}
    sys.stdout.write("\n" + json.dumps(row) + "\n")


def _in_subprocess(args: dict) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    proc = subprocess.run([sys.executable, "-m", "mobilenets.benchmark", "--worker", json.dumps(args)],
                          capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise MobilenetsError(f"benchmark of {args['path']} failed: {(err or ['no output'])[-1][:200]}")
    row = json.loads(lines[-1])
    if "error" in row:
        raise MobilenetsError(row["error"])
    return row


# --------------------------------------------------------------- per op


def op_delegation(path: "str | os.PathLike", threads: int = 1) -> list[dict]:
    """Every op of a .tflite with its MACs and whether XNNPACK runs it.

    The interpreter keeps the original nodes after delegation and appends
    one DELEGATE node per partition; walking back from each partition's
    outputs to its inputs finds the nodes it replaced.

    Args:
        path: the .tflite file.
        threads: interpreter threads (delegation does not depend on them).
    """
    from mobilenets.predict import open_interpreter
    from mobilenets.profile import profile_tflite

    interp = open_interpreter(path, threads)
    ops = interp._get_ops_details()
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    partitions = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {int(t): o["index"] for o in original for t in o["outputs"]}
    by_index = {o["index"]: o for o in original}
    covered: set[int] = set()
    for part in partitions:
        stop = {int(t) for t in part["inputs"]}
        stack = [int(t) for t in part["outputs"]]
        while stack:
            t = stack.pop()
            if t in stop or t not in producer or producer[t] in covered:
                continue
            node = producer[t]
            covered.add(node)
            stack += [int(i) for i in by_index[node]["inputs"] if i >= 0]
    layers = profile_tflite(Path(path)).layers
    macs = {int(layer["name"].split(":")[0]): layer["macs"] for layer in layers}
    return [{"index": o["index"], "op": o["op_name"], "delegated": o["index"] in covered,
             "macs": macs.get(o["index"], 0)} for o in original]


def per_op_rows(path: "str | os.PathLike", name: str | None = None) -> list[dict]:
    """Ops of a .tflite by type: count, how many XNNPACK runs, MACs and their share.

    Args:
        path: the .tflite file.
        name: the model column (default: the path).
    """
    ops = op_delegation(path)
    total = sum(o["macs"] for o in ops) or 1
    by_type: dict[str, dict] = {}
    for o in ops:
        row = by_type.setdefault(o["op"], {"model": name or str(path), "op": o["op"], "count": 0,
                                           "delegated": 0, "not_delegated": 0, "macs_m": 0.0})
        row["count"] += 1
        row["delegated" if o["delegated"] else "not_delegated"] += 1
        row["macs_m"] += o["macs"] / 1e6
    rows = sorted(by_type.values(), key=lambda r: (-r["macs_m"], r["op"]))
    for r in rows:
        r["macs_pct"] = round(100 * r["macs_m"] * 1e6 / total, 1)
        r["macs_m"] = round(r["macs_m"], 2)
    return rows


# --------------------------------------------------------------- benchmark


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
                row = _in_subprocess(args) if isolate else measure(**args)
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


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker()
