"""Training step images/s of the CIFAR model: Keras as is against our trainer's kernels, and the strides.

    .venv/bin/python benchmarks/bench_train_step.py --rounds 10 --json train_step.json

Every configuration is `v1-0.50-32` built by `mobilenets.train.build_for_config`
with the `scratch` preset's optimizer (SGD + Nesterov, weight decay, label
smoothing), compiled by the trainer's own `compile_model`, stepping on one constant
batch (no input work): the model's own training speed.

* `keras`: the preset's model as Keras 3 trains it untouched (the baseline:
  `BatchNormalization` as separate moments and element-wise passes, 1x1
  convolutions as `Conv2D`, whose input gradient is TensorFlow's slow
  `Conv2DBackpropInput` on CPU);
* `+ fused BN`: after `mobilenets.train.fuse_batchnorm` (`FusedBatchNormV3`);
* `+ fused BN + matmul 1x1`: also after `mobilenets.train.matmul_pointwise`;
* `+ tiny-map depthwise`: also after `mobilenets.train.depthwise_small_maps`
  (oneDNN's depthwise filter gradient is ~10x slow on 2x2 and 1x1 maps),
  what every `mobilenets train` run steps with;
* the stride options for 32 px inputs, all with our kernels: the 'scratch'
  preset's stride-1 stem, a stride-2 stem with a stride-1 first block
  (`--stem-stride 2 --block-strides 1,2,2,2`: the same maps from the second
  block on), a stride-1 second block (`2,1,2,2`, the same 2x2 last map), and
  Keras's strides (1x1 last map, the seed's model), also with Keras's kernels.

TensorFlow's oneDNN kernels are on, as the `mobilenets` CLI runs
(`TF_ENABLE_ONEDNN_OPTS=1`; TensorFlow's own default turns them on only on
AVX-512-class CPUs). Run with `TF_ENABLE_ONEDNN_OPTS=0` to see TensorFlow's
plain kernels.

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
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the mobilenets CLI runs; 0 to compare

ARCH = "v1-0.50-32"
# name: (stem stride, block strides, kernels: f = fused BatchNorm, m = 1x1
# convolutions as matmul, d = written-out depthwise filter gradient on tiny maps)
CONFIGS = {
    "keras (preset: stride-1 stem)": (1, None, ""),
    "+ fused BN": (1, None, "f"),
    "+ fused BN + matmul 1x1": (1, None, "fm"),
    "+ tiny-map depthwise (mobilenets train)": (1, None, "fmd"),
    "stride-2 stem, stride-1 first block": (2, [1, 2, 2, 2], "fmd"),
    "stride-1 second block": (2, [2, 1, 2, 2], "fmd"),
    "keras strides (1x1 last map), keras kernels": (2, None, ""),
    "keras strides (1x1 last map)": (2, None, "fmd"),
}


def build(stem: int, blocks, kernels: str, batch: int):
    import numpy as np
    import tensorflow as tf

    from mobilenets.train import (TrainConfig, apply_preset, build_for_config, compile_model, depthwise_small_maps,
                                  fuse_batchnorm, matmul_pointwise)

    cfg = apply_preset(TrainConfig(data="cifar10", arch=ARCH), "scratch")
    cfg.stem_stride, cfg.block_strides = stem, blocks
    model = build_for_config(cfg, 10)
    if "f" in kernels:
        fuse_batchnorm(model)
    if "m" in kernels:
        matmul_pointwise(model)
    if "d" in kernels:
        depthwise_small_maps(model)
    compile_model(model, cfg, steps_per_epoch=350, epochs=30, lr=cfg.learning_rate)
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

    from mobilenets.train import onednn_enabled

    env_start = environment()
    jobs = {}
    for name, (stem, blocks, kernels) in CONFIGS.items():
        step, batch = build(stem, blocks, kernels, args.batch_size)
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
    for name, (stem, blocks, kernels) in CONFIGS.items():
        rows.append({"config": name, "stem_stride": stem, "kernels": kernels or "-",
                     "block_strides": ",".join(map(str, blocks or [2, 2, 2, 2])),
                     "img_s": round(median(measured[name])),
                     "vs_keras": round(median([a / b for a, b in zip(measured[name], measured[base])]), 2)})
    print_rows(rows, f"Training img/s, {ARCH}, batch {args.batch_size}, constant batch, medians of "
                     f"{args.rounds} rounds, same process ({os.cpu_count()} CPUs, oneDNN "
                     f"{'on' if onednn_enabled() else 'off'})")
    profiles = {}
    if args.profile:
        for name, (step, batch) in jobs.items():
            profiles[name] = op_times(step, batch)
            print(f"\n{name}: ms per step (profiled, so slower than above): "
                  + ", ".join(f"{op} {ms:.1f}" for op, ms in profiles[name]))
    if args.json:
        write_json(args.json, {"benchmark": "train_step", "arch": ARCH, "batch": args.batch_size,
                               "rounds": args.rounds, "onednn": onednn_enabled(), "environment": with_end_load(env_start),
                               "rows": rows, "measured": measured, "profiles": profiles})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
