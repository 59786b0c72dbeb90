"""Seconds to a run's first trained epoch: Keras's usual compile against the trainer's.

    .venv/bin/python benchmarks/bench_first_fit.py --rounds 3

Before a run trains its first batch TensorFlow traces the whole training
step into a graph: for a MobileNet that is thousands of ops, and it takes
seconds on these CPUs. Compiled the usual way (`metrics=["accuracy"]`, the
optimizer left to build itself), the first step creates variables (the
optimizer's slots, the accuracy metric once it knows the labels' shape)
while it is being traced, and TensorFlow then traces it a second time.
`mobilenets.train.compile_model` passes metric objects and builds the optimizer
at compile time: one trace.

Both sides: the `scratch` preset's model and optimizer (SGD + Nesterov,
weight decay, label smoothing) for `v1-0.25-32` with the trainer's kernels
(`training_kernels`), one `fit` epoch of three batches of 8 generated
images. Each measurement is a fresh process (TensorFlow caches nothing
between them), the two sides alternating; medians over rounds. The
process counts how often the step was traced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import environment, log, median, print_rows, ratio, with_end_load, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the mobilenets CLI runs

ARCH = "v1-0.25-32"


def worker(side: str) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from mobilenets.train import (TrainConfig, apply_preset, build_for_config, compile_model, make_optimizer,
                                  training_kernels)

    config = apply_preset(TrainConfig(data="x", arch=ARCH, mode="scratch", epochs=1, batch_size=8),
                          "scratch", explicit={"epochs", "batch_size"})
    keras.utils.set_random_seed(0)
    model = build_for_config(config, 3)
    if side == "keras":
        model.compile(optimizer=make_optimizer(config, 3, 1, config.learning_rate),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                      metrics=["accuracy"])
    else:
        compile_model(model, config, 3, 1, config.learning_rate)
    training_kernels(model)
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(1)
        return step(data)

    model.train_step = counted
    rng = np.random.default_rng(0)
    x = rng.random((24, 32, 32, 3), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(24) % 3]
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True)
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return {"seconds": time.perf_counter() - start, "traces": len(traces)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    p.add_argument("--worker", choices=["keras", "ours"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return 0

    env = environment()
    got = {"keras": [], "ours": []}
    for r in range(args.rounds):
        for side in got:
            out = subprocess.run([sys.executable, __file__, "--worker", side], capture_output=True,
                                 text=True, check=True)
            got[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
            log(f"round {r + 1}: {side}: {got[side][-1]['seconds']:.1f} s, "
                f"{got[side][-1]['traces']} trace(s)")
    keras_s, ours_s = (median([m["seconds"] for m in got[s]]) for s in ("keras", "ours"))
    rows = [{"compile": "Keras's usual (metrics=['accuracy'], optimizer built by the first step)",
             "traces": got["keras"][0]["traces"], "first_fit_s": round(keras_s, 1), "vs_ours": ratio(keras_s, ours_s)},
            {"compile": "mobilenets.train.compile_model (metric objects, optimizer built first)",
             "traces": got["ours"][0]["traces"], "first_fit_s": round(ours_s, 1), "vs_ours": 1.0}]
    print_rows(rows, f"First fit epoch of {ARCH} (scratch preset, 3 batches of 8), "
                     f"medians of {args.rounds} fresh processes each")
    if args.json:
        write_json(args.json, {"environment": with_end_load(env), "rows": rows, "raw": got})
    return 0


if __name__ == "__main__":
    sys.exit(main())
