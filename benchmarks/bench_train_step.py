"""Training step images/s of the CIFAR model: Keras as is against our trainer's kernels, and the strides.

    .venv/bin/python benchmarks/bench_train_step.py --rounds 10 --json train_step.json

Every configuration is `v1-0.50-32` built by `mobilenets.train.build_for_config`
with the `scratch` preset's optimizer (SGD + Nesterov, weight decay, label
smoothing), compiled by the trainer's own `_compile`, stepping on one constant
batch (no input work): the model's own training speed.

* `keras`: the preset's model as Keras 3 trains it untouched (the baseline:
  `BatchNormalization` as separate moments and element-wise passes, 1x1
  convolutions as `Conv2D`, whose input gradient is TensorFlow's slow
  `Conv2DBackpropInput` on CPU);
* `+ fused BN`: after `mobilenets.train.fuse_batchnorm` (`FusedBatchNormV3`);
* `+ fused BN + matmul 1x1`: also after `mobilenets.train.matmul_pointwise`,
  what every `mobilenets train` run steps with;
* the stride options for 32 px inputs, all with both: the 'scratch'
  preset's stride-1 stem, a stride-1 second block instead (`--stem-stride 2
  --block-strides 2,1,2,2`, the same 2x2 last map), a stride-1 last block
  (`2,2,2,1`), and Keras's strides (1x1 last map).

Rounds alternate the configurations so a noisy neighbour hits all of them;
figures are medians over rounds, and each ratio is the median of per-round
ratios against the first configuration.

`--profile` also traces a few steps of each configuration with TensorFlow's
profiler and prints the ops that take the time (how `Conv2DBackpropInput`
was found to take over half of the step).
"""

from __future__ import annotations

import argparse
import os
import time

from _common import environment, log, median, print_rows, with_end_load, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ARCH = "v1-0.50-32"
# name: (stem stride, block strides, fused BatchNorm, 1x1 convolutions as matmul)
CONFIGS = {
    "keras (preset: stride-1 stem)": (1, None, False, False),
    "+ fused BN": (1, None, True, False),
    "+ fused BN + matmul 1x1 (mobilenets train)": (1, None, True, True),
    "stride-1 second block": (2, [2, 1, 2, 2], True, True),
    "stride-1 last block": (2, [2, 2, 2, 1], True, True),
    "keras strides (1x1 last map)": (2, None, True, True),
}


def build(stem: int, blocks, fused: bool, matmul: bool, batch: int):
    import numpy as np
    import tensorflow as tf

    from mobilenets.train import (TrainConfig, _compile, apply_preset, build_for_config, fuse_batchnorm,
                                  matmul_pointwise)

    cfg = apply_preset(TrainConfig(data="cifar10", arch=ARCH), "scratch")
    cfg.stem_stride, cfg.block_strides = stem, blocks
    model = build_for_config(cfg, 10)
    if fused:
        fuse_batchnorm(model)
    if matmul:
        matmul_pointwise(model)
    _compile(model, cfg, steps_per_epoch=350, epochs=30, lr=cfg.learning_rate)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3)).astype("float32"))
    y = tf.constant(np.eye(10, dtype="float32")[rng.integers(0, 10, batch)])
    model.make_train_function()
    return model.train_function, (x, y)


def rate(step, batch, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        out = step(iter([batch]))
    float(out["loss"])  # wait for the last step
    return steps * int(batch[0].shape[0]) / (time.perf_counter() - t)


def op_times(step, batch, steps: int = 5, top: int = 8) -> list[tuple[str, float]]:
    """The `top` TensorFlow ops by time inside one training step (ms per step)."""
    import collections
    import tempfile
    from pathlib import Path

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="bench_train_step-")
    tf.profiler.experimental.start(logdir)
    rate(step, batch, steps)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    per_op: collections.Counter = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                # Kernels are named "<node>:<op type>" (e.g. "AddN_49:AddN").
                node, _, op = names.get(event.metadata_id, "").partition(":")
                if node and op and ":" not in op:
                    per_op[op] += event.duration_ps
    ops = [("(whole step)" if n.strip().startswith("__inference") else n, t / 1e9 / steps)
           for n, t in per_op.most_common()]
    return ops[:top]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128, help="the 'scratch' preset's")
    p.add_argument("--steps", type=int, default=8, help="steps per timed window")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--profile", action="store_true", help="also print each configuration's slowest ops")
    p.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = p.parse_args(argv)

    env_start = environment()
    jobs = {}
    for name, (stem, blocks, fused, matmul) in CONFIGS.items():
        step, batch = build(stem, blocks, fused, matmul, args.batch_size)
        for _ in range(3):  # trace and warm up outside the timed rounds
            rate(step, batch, 1)
        jobs[name] = (step, batch)
    measured = {name: [] for name in jobs}
    for r in range(args.rounds):
        for name, (step, batch) in jobs.items():
            measured[name].append(rate(step, batch, args.steps))
        log(f"round {r + 1}: " + ", ".join(f"{n}: {v[-1]:.0f}" for n, v in measured.items()))

    base = next(iter(CONFIGS))
    rows = []
    for name, (stem, blocks, fused, matmul) in CONFIGS.items():
        rows.append({"config": name, "stem_stride": stem,
                     "block_strides": ",".join(map(str, blocks or [2, 2, 2, 2])),
                     "img_s": round(median(measured[name])),
                     "vs_keras": round(median([a / b for a, b in zip(measured[name], measured[base])]), 2)})
    print_rows(rows, f"Training img/s, {ARCH}, batch {args.batch_size}, constant batch, medians of "
                     f"{args.rounds} rounds, same process ({os.cpu_count()} CPUs)")
    profiles = {}
    if args.profile:
        for name, (step, batch) in jobs.items():
            profiles[name] = op_times(step, batch)
            print(f"\n{name}: ms per step (profiled, so slower than above): "
                  + ", ".join(f"{op} {ms:.1f}" for op, ms in profiles[name]))
    if args.json:
        write_json(args.json, {"benchmark": "train_step", "arch": ARCH, "batch": args.batch_size,
                               "rounds": args.rounds, "environment": with_end_load(env_start),
                               "rows": rows, "measured": measured, "profiles": profiles})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
