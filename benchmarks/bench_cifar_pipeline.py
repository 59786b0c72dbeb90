"""Training images per second: the seed's ImageDataGenerator pipeline against ours.

    .venv/bin/python benchmarks/bench_cifar_pipeline.py --batch-sizes 32,128 --rounds 3 --json pipeline.json

The seed article trains MobileNet (alpha 0.5, 32x32 CIFAR-10) with Keras
`fit` fed by `ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
horizontal_flip=True).flow(x, y, batch_size=32)`: per-image augmentation in
Python (scipy affine transforms, one image at a time). Ours is
`mobilenets.data.make_dataset(..., augment=Augment(flip_left_right=True,
shift=10))`: the same augmentation as batched TF ops inside tf.data.

Both feed the same model (`v1-0.50-32`, the `seed-cifar10` preset's model,
built by `mobilenets.train.build_for_config`), the same loss and optimizer
(categorical cross-entropy, Nadam 1e-3), at the same batch size, from the
same uint8 training array (the shared JPEG CIFAR-10, 45,000 train images).
For each batch size it measures:

* end to end: `model.fit` img/s over a window of steps after warm-up steps
  (a callback timestamps every batch), for each pipeline;
* pipeline only: just pulling augmented batches, no model;
* model only: `fit` on one constant batch repeated (no augmentation, no
  input work): the ceiling any input pipeline can reach with this model;
* ours + our kernels, and its model only: what `mobilenets train --preset
  seed-cifar10` runs, our pipeline feeding the same model with the
  trainer's kernels (`mobilenets.train.training_kernels`: BatchNorm fused,
  1x1 convolutions as matrix products, the depthwise filter gradient of
  tiny maps written out), TensorFlow's oneDNN kernels on, as the CLI sets
  them (`TF_ENABLE_ONEDNN_OPTS=1`), and TensorFlow's thread pools as the
  trainer sets them (`mobilenets.train.thread_plan`: at batch 32 this
  model's step is small, so one thread per op, two ops at once).

Every round runs fresh processes one after the other: the seed's rows (and
ours with Keras's kernels) with TensorFlow's defaults, as the seed's script
gets them, then what `mobilenets train` runs, with oneDNN on and the
trainer's thread plan, one process per batch size (a process picks both
before TensorFlow runs anything). Figures are medians over
rounds and each ratio is the median of per-round ratios. Target: ours >= 3x
the seed pipeline end to end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from _common import SHARED, environment, with_end_load, log, median, print_rows, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TARGET_RATIO = 3.0
ARCH = "v1-0.50-32"


def load_train(path: Path, cache_dir: Path | None):
    from mobilenets.data import open_dataset

    data = open_dataset(path)
    images, labels, _ = data.arrays("train", (32, 32), cache_dir=cache_dir)
    return images, labels, len(data.classes)


def seed_batches(images_f32, onehot, batch_size: int, seed: int = 0):
    """The seed article's generator, from Keras 3's legacy module (needs scipy).

    The seed feeds float32 pixels (it divides by 255 first; our model scales
    0..255 itself, so the values stay 0..255 here: the same work per image).
    """
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    gen = ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)
    return gen.flow(images_f32, onehot, batch_size=batch_size, seed=seed)


def our_batches(images, labels, classes: int, batch_size: int, seed: int = 0):
    import tensorflow as tf

    from mobilenets.augment import Augment
    from mobilenets.data import make_dataset

    ds = make_dataset(images, labels, batch_size=batch_size, shuffle=True,
                      augment=Augment(flip_left_right=True, shift=10), seed=seed)
    # What `mobilenets train` does for a categorical loss.
    return ds.map(lambda x, y: (x, tf.one_hot(y, classes)),
                  num_parallel_calls=tf.data.AUTOTUNE).repeat()


def constant_batches(images, onehot, batch_size: int):
    import tensorflow as tf

    x = tf.constant(images[:batch_size].astype("float32"))
    y = tf.constant(onehot[:batch_size])
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def new_model(classes: int, fused: bool = False):
    """The seed-cifar10 preset's model, compiled as the seed compiles it.

    With `fused`, BatchNorm trains with TensorFlow's fused kernel and the 1x1
    convolutions run as matrix products, as in every `mobilenets train` run
    (`mobilenets.train.training_kernels`).
    """
    import keras

    from mobilenets.train import TrainConfig, apply_preset, build_for_config, training_kernels

    keras.utils.set_random_seed(0)
    config = apply_preset(TrainConfig(data="cifar10", arch=ARCH, mode="scratch"), "seed-cifar10")
    model = build_for_config(config, classes)
    if fused:
        training_kernels(model)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Nadam(1e-3),
                  metrics=["accuracy"])
    return model


class _Clock:
    """A Keras callback that timestamps the end of every training batch."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter())

        return Clock()


def fit_rate(model, data, batch_size: int, warmup: int, steps: int) -> float:
    """Images per second of `model.fit` over `steps` batches after `warmup` batches."""
    clock = _Clock()
    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[clock])
    t = clock.times
    return steps * batch_size / (t[warmup + steps - 1] - t[warmup - 1])


def pull_rate(next_batch, batch_size: int, warmup: int, steps: int) -> float:
    """Images per second of just producing batches."""
    for _ in range(warmup):
        next_batch()
    start = time.perf_counter()
    for _ in range(steps):
        next_batch()
    return steps * batch_size / (time.perf_counter() - start)


# Which process measures what. The seed's rows run with TensorFlow's defaults,
# as the seed article's script would; what `mobilenets train` runs needs the
# oneDNN kernels the CLI turns on (`TF_ENABLE_ONEDNN_OPTS=1`), which a process
# can only choose before TensorFlow loads. (oneDNN off is TensorFlow's default
# on AVX2 CPUs like these; with it on, Keras's own depthwise filter gradient
# is ~10x slower on 2x2 and 1x1 maps, so it would handicap the seed.)
GROUPS = {
    "seed": ["seed pipeline only", "ours pipeline only", "seed end to end", "ours end to end",
             "model only"],
    "trainer": ["ours+fused end to end", "model only, our kernels"],
}


def build_jobs(group: str, images, labels, classes: int, batch_sizes, window: int, warm: int) -> dict:
    """(batch, name) -> callable giving one measurement (img/s), traced and warm."""
    import numpy as np

    onehot = np.eye(classes, dtype="float32")[labels]
    images_f32 = images.astype("float32")
    jobs = {}
    for b in batch_sizes:
        steps = max(20, round(window / b))
        traced = []
        if group == "seed":
            seed_iter = seed_batches(images_f32, onehot, b)
            ours_iter = iter(our_batches(images, labels, classes, b))
            m_seed, m_ours, m_const = new_model(classes), new_model(classes), new_model(classes)
            seed_fit = seed_batches(images_f32, onehot, b, seed=1)
            ours_fit = our_batches(images, labels, classes, b, seed=1)
            const = constant_batches(images, onehot, b)
            jobs[b, "seed pipeline only"] = lambda it=seed_iter, b=b, s=steps: pull_rate(
                lambda: next(it), b, warm, s)
            jobs[b, "ours pipeline only"] = lambda it=ours_iter, b=b, s=steps: pull_rate(
                lambda: next(it), b, warm, s)
            jobs[b, "seed end to end"] = lambda m=m_seed, d=seed_fit, b=b, s=steps: fit_rate(m, d, b, warm, s)
            jobs[b, "ours end to end"] = lambda m=m_ours, d=ours_fit, b=b, s=steps: fit_rate(m, d, b, warm, s)
            jobs[b, "model only"] = lambda m=m_const, d=const, b=b, s=steps: fit_rate(m, d, b, warm, s)
            traced = [(m_seed, seed_fit), (m_ours, ours_fit), (m_const, const)]
        else:
            m_trainer, m_const_fused = new_model(classes, fused=True), new_model(classes, fused=True)
            trainer_fit = our_batches(images, labels, classes, b, seed=2)
            const = constant_batches(images, onehot, b)
            jobs[b, "ours+fused end to end"] = lambda m=m_trainer, d=trainer_fit, b=b, s=steps: fit_rate(
                m, d, b, warm, s)
            jobs[b, "model only, our kernels"] = lambda m=m_const_fused, d=const, b=b, s=steps: fit_rate(
                m, d, b, warm, s)
            traced = [(m_trainer, trainer_fit), (m_const_fused, const)]
        for m, d in traced:  # trace every train function once, outside the timed windows
            m.fit(d, steps_per_epoch=3, epochs=1, verbose=0)
    return jobs


def worker(args, batch_sizes) -> int:
    """One round of one group's configurations, written as JSON to `args.worker_out`."""
    import json

    import tensorflow as tf  # noqa: F401 - import before timing anything

    from mobilenets.data import cache_home
    from mobilenets.train import onednn_enabled

    threads = None
    if args.worker == "trainer":  # as `mobilenets train` sets them, before TensorFlow runs an op
        from mobilenets.train import TrainConfig, apply_preset, apply_thread_plan

        (batch,) = batch_sizes  # the thread plan depends on the batch: one process each
        config = apply_preset(TrainConfig(data="cifar10", arch=ARCH, mode="scratch", batch_size=batch),
                              "seed-cifar10", explicit={"batch_size"})
        threads = apply_thread_plan(config)
    images, labels, classes = load_train(args.data, args.cache_dir or cache_home() / "images")
    jobs = build_jobs(args.worker, images, labels, classes, batch_sizes, args.window_images,
                      args.warmup_steps)
    out = {"onednn": onednn_enabled(), "threads": threads, "images": len(images), "rates": []}
    for (b, name), job in jobs.items():
        out["rates"].append([b, name, job()])
        log(f"round {args.round}: batch {b} {name}: {out['rates'][-1][2]:.0f} img/s "
            f"(oneDNN {'on' if out['onednn'] else 'off'}; threads per op, ops at once: "
            f"{'TensorFlow default' if threads is None else threads})")
    Path(args.worker_out).write_text(json.dumps(out))
    return 0


def run_worker(args, group: str, round_no: int, batch_sizes: str) -> dict:
    """Measure `group` once in a fresh process with that group's TensorFlow settings."""
    import json
    import subprocess
    import tempfile

    env = dict(os.environ)
    if group == "trainer":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # as the mobilenets CLI sets it
    else:
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # TensorFlow's default
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--worker", group, "--worker-out", str(out), "--round", str(round_no),
               "--data", str(args.data), "--batch-sizes", batch_sizes,
               "--window-images", str(args.window_images), "--warmup-steps", str(args.warmup_steps)]
        if args.cache_dir:
            cmd += ["--cache-dir", str(args.cache_dir)]
        subprocess.run(cmd, env=env, check=True)
        return json.loads(out.read_text())


def _threads(plan) -> str:
    return "TF default" if plan is None else f"{plan[0]}/op x {plan[1]} ops"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "data" / "cifar10-jpg.tar.gz")
    p.add_argument("--batch-sizes", default="32,128",
                   help="comma-separated; 32 is the seed's, 128 the 'scratch' preset's")
    p.add_argument("--window-images", type=int, default=9600,
                   help="images per timed window (300 steps at batch 32)")
    p.add_argument("--warmup-steps", type=int, default=20, help="untimed steps before each window")
    p.add_argument("--rounds", type=int, default=3, help="timed windows per configuration")
    p.add_argument("--cache-dir", type=Path,
                   help="keep the decoded training array here (default: the tool's cache)")
    p.add_argument("--json", metavar="OUT", help="also write all rows as JSON")
    p.add_argument("--worker", choices=sorted(GROUPS), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--round", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    if args.worker:
        return worker(args, batch_sizes)

    env_start = environment()  # load average before this run's own work
    measured: dict = {(b, name): [] for b in batch_sizes for names in GROUPS.values() for name in names}
    onednn, threads = {}, {}
    for r in range(args.rounds):
        # The trainer's thread plan depends on the batch size: one process per batch.
        for group, sizes in [("seed", args.batch_sizes)] + [("trainer", str(b)) for b in batch_sizes]:
            result = run_worker(args, group, r + 1, sizes)
            onednn[group] = result["onednn"]
            if group == "trainer":
                threads[int(sizes)] = result["threads"]
            for b, name, v in result["rates"]:
                measured[b, name].append(v)

    def per_round_ratio(b, a_name, b_name):
        return median([x / y for x, y in zip(measured[b, a_name], measured[b, b_name])])

    rows = []
    for b in batch_sizes:
        for what in ("pipeline only", "end to end"):
            seed_v, ours_v = median(measured[b, f"seed {what}"]), median(measured[b, f"ours {what}"])
            rows.append({"batch": b, "measure": what, "seed_img_s": round(seed_v),
                         "ours_img_s": round(ours_v),
                         "ratio": round(per_round_ratio(b, f"ours {what}", f"seed {what}"), 2),
                         "target": f">= {TARGET_RATIO:g}x" if what == "end to end" else "-",
                         "model_only_img_s": round(median(measured[b, "model only"]))})
    b32 = [r for r in rows if r["batch"] == batch_sizes[0] and r["measure"] == "end to end"][0]
    seed32 = median(measured[batch_sizes[0], "seed end to end"])
    extra = [{"batch": b, "measure": "ours end to end vs seed at batch 32",
              "seed_img_s": round(seed32), "ours_img_s": round(median(measured[b, "ours end to end"])),
              "ratio": round(median(measured[b, "ours end to end"]) / seed32, 2), "target": "-",
              "model_only_img_s": round(median(measured[b, "model only"]))}
             for b in batch_sizes[1:]]
    # What `mobilenets train --preset seed-cifar10` runs: our input pipeline
    # and the trainer's kernels, same model, optimizer and batch.
    fused = [{"batch": b,
              "measure": f"ours + our kernels (mobilenets train) end to end, threads {_threads(threads[b])}",
              "seed_img_s": round(median(measured[b, "seed end to end"])),
              "ours_img_s": round(median(measured[b, "ours+fused end to end"])),
              "ratio": round(per_round_ratio(b, "ours+fused end to end", "seed end to end"), 2),
              "target": f">= {TARGET_RATIO:g}x",
              "model_only_img_s": round(median(measured[b, "model only, our kernels"]))}
             for b in batch_sizes]

    print_rows(rows + extra + fused, f"Training img/s, {ARCH} (seed-cifar10 model), Nadam, medians of "
                             f"{args.rounds} rounds ({os.cpu_count()} CPUs; oneDNN: seed "
                             f"{'on' if onednn['seed'] else 'off'}, mobilenets train "
                             f"{'on' if onednn['trainer'] else 'off'})")
    ceiling = b32["model_only_img_s"] / b32["seed_img_s"]
    print(f"\ntarget: ours >= {TARGET_RATIO:g}x the seed pipeline end to end at batch "
          f"{batch_sizes[0]}: {'met' if b32['ratio'] >= TARGET_RATIO else 'NOT met'} ({b32['ratio']}x).")
    print(f"The model alone (a constant batch, no input work) trains at {b32['model_only_img_s']} img/s "
          f"= {ceiling:.2f}x the seed's end-to-end figure: the most any input pipeline can gain at "
          f"batch {batch_sizes[0]} with this model" + (" (the seed run is model-bound too)."
                                                        if ceiling < TARGET_RATIO else "."))
    f32 = fused[0]
    print(f"What `mobilenets train` runs (our pipeline + our kernels) at batch {batch_sizes[0]}: "
          f"{f32['ratio']}x the seed's end to end ({'met' if f32['ratio'] >= TARGET_RATIO else 'NOT met'}); "
          f"that model alone: {f32['model_only_img_s'] / f32['seed_img_s']:.2f}x.")
    print("ratio = median of per-round ratios (each round measures every configuration); "
          "img/s = medians over rounds.")
    if args.json:
        raw = [{"batch": b, "config": name, "img_s": [round(v, 1) for v in vals]}
               for (b, name), vals in measured.items()]
        write_json(args.json, {"benchmark": "cifar_pipeline", "arch": ARCH, "data": str(args.data),
                               "environment": with_end_load(env_start), "rows": rows + extra + fused, "raw": raw, "onednn": onednn,
                               "trainer_threads": {str(b): t for b, t in threads.items()},
                               "window_images": args.window_images, "warmup_steps": args.warmup_steps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
