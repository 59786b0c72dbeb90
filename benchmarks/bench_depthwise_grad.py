"""Depthwise filter gradient, per layer shape: TensorFlow's kernel against ours on tiny maps.

    .venv/bin/python benchmarks/bench_depthwise_grad.py --rounds 5
    TF_ENABLE_ONEDNN_OPTS=0 .venv/bin/python benchmarks/bench_depthwise_grad.py   # TensorFlow's plain kernels

For every depthwise layer shape of `v1-0.50-32` (batch 128, the CIFAR
model with the stride-1 stem, and Keras's strides down to 1x1), times
`DepthwiseConv2dNativeBackpropFilter` (oneDNN's when oneDNN is on, as the
`mobilenets` CLI runs) against `mobilenets.train.depthwise_filter_grad`,
which `depthwise_small_maps` uses for stride-1 outputs of at most 4 pixels
(at stride 2 oneDNN's kernel is fast): on maps with at most
`PAIR_PRODUCTS` (output, input) pixel pairs a batched matrix product per
channel, on bigger ones the shifted-product sum. Both in one process, alternating, medians over rounds; the
two results are checked equal first.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import environment, log, median, print_rows, with_end_load, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the mobilenets CLI runs

# (input size, channels, stride) of v1-0.50-32's depthwise layers.
SHAPES = [(32, 16, 1), (32, 32, 2), (16, 64, 1), (16, 64, 2), (8, 128, 1), (8, 128, 2), (4, 256, 1),
          (4, 256, 2), (2, 512, 1), (2, 256, 1), (2, 256, 2), (1, 512, 1),
          # the same model's 3x3 and 1x1 maps at 24 px (`mobilenets train --low-res 24`)
          (6, 128, 2), (3, 256, 1), (3, 256, 2)]


def kernels(h: int, c: int, s: int, batch: int):
    import numpy as np
    import tensorflow as tf

    from mobilenets.train import depthwise_filter_grad

    rng = np.random.default_rng(0)
    # Keras pads a stride-2 block itself (ZeroPadding2D, then 'valid').
    pad = "SAME" if s == 1 else "VALID"
    x = tf.constant(rng.normal(size=(batch, h + (s == 2), h + (s == 2), c)).astype("float32"))
    out = h if s == 1 else h // 2  # Keras pads one pixel after, then a valid 3x3
    dy = tf.constant(rng.normal(size=(batch, out, out, c)).astype("float32"))

    @tf.function
    def native(x, dy):
        return tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=[3, 3, c, 1], out_backprop=dy, strides=[1, s, s, 1], padding=pad)

    @tf.function
    def ours(x, dy):
        return depthwise_filter_grad(x, dy, 3, 3, s, s, pad)

    np.testing.assert_allclose(native(x, dy).numpy(), ours(x, dy).numpy(), rtol=1e-3, atol=1e-2)
    return {"tensorflow": lambda: native(x, dy), "ours": lambda: ours(x, dy)}, out


def ms(fn, reps: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        r = fn()
    r.numpy()
    return (time.perf_counter() - t) / reps * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--reps", type=int, default=10, help="calls per timed window")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)

    from mobilenets.train import SMALL_MAP_PIXELS, onednn_enabled

    env_start = environment()
    jobs = {shape: kernels(*shape, args.batch_size) for shape in SHAPES}
    times = {(shape, k): [] for shape in SHAPES for k in ("tensorflow", "ours")}
    for r in range(args.rounds):
        for shape, (fns, _) in jobs.items():
            for k, fn in fns.items():
                times[shape, k].append(ms(fn, args.reps))
        log(f"round {r + 1} done")
    rows = []
    for (h, c, s), (_, out) in jobs.items():
        tf_ms, ours_ms = median(times[(h, c, s), "tensorflow"]), median(times[(h, c, s), "ours"])
        rows.append({"input": f"{h}x{h}x{c}", "stride": s, "output": f"{out}x{out}",
                     "tensorflow_ms": round(tf_ms, 2), "ours_ms": round(ours_ms, 2),
                     "tf_over_ours": round(tf_ms / ours_ms, 2),
                     "trainer_uses": "ours" if s == 1 and out * out <= SMALL_MAP_PIXELS else "tensorflow"})
    print_rows(rows, f"Depthwise filter gradient, batch {args.batch_size}, ms per call, medians of "
                     f"{args.rounds} rounds (oneDNN {'on' if onednn_enabled() else 'off'})")
    if args.json:
        write_json(args.json, {"benchmark": "depthwise_grad", "onednn": onednn_enabled(), "rows": rows,
                               "environment": with_end_load(env_start)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
