"""One model timed in this process, or in a fresh one: the result row.

    python -m mobilenets.benchmark --worker '{"path": "model.tflite", "threads": 2}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mobilenets.errors import MobilenetsError

COLUMNS = ("model", "format", "threads", "batch", "init_ms", "first_ms", "latency_ms_p50",
           "latency_ms_p90", "latency_ms_p99", "throughput", "peak_rss_mb", "file_mb", "macs_m",
           "gmacs_per_s")


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


def worker() -> None:
    """`python -m mobilenets.benchmark --worker JSON`: one measurement, one JSON line."""
    args = json.loads(sys.argv[2])
    try:
        row = measure(**args)
    except MobilenetsError as e:
        row = {"error": str(e)}
    sys.stdout.write("\n" + json.dumps(row) + "\n")


def in_subprocess(args: dict) -> dict:
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
