"""What a run asks of TensorFlow's runtime: thread pools, devices, a distribution strategy.

    apply_thread_plan(config)   # before TensorFlow runs an op
    with strategy_scope(strategy_for(config)):
        model = build_for_config(config, classes)
"""

from __future__ import annotations

import contextlib
import os
import sys

from mobilenets.env import usable_cores
from mobilenets.errors import MobilenetsError
from mobilenets.train.config import TrainConfig


# Per-step work below which one thread per op, two ops at once, trains faster
# than TensorFlow's default (every op split over every core). Units: batch x
# pixels after the stem x alpha^2, which grows with the step's mult-adds.
# The seed preset (2,048 units) gains from the plan, the scratch preset
# (32,768) loses; the two break even at 8,192 (benchmarks/bench_cifar_pipeline.py).
SMALL_STEP_WORK = 8192


def step_work(config: TrainConfig) -> float:
    """A training step's work in `SMALL_STEP_WORK`'s units (batch x pixels after the stem x alpha^2)."""
    spec = config.spec
    stem = config.stem_stride if config.mode == "scratch" else 2
    return config.batch_size * (spec.height / stem) * (spec.width / stem) * spec.alpha ** 2


def thread_plan(config: TrainConfig, cores: int | None = None) -> "tuple[int, int] | None":
    """TensorFlow's (intra-op, inter-op) thread counts for this run; None keeps its defaults.

    A small model at a small batch (the seed's CIFAR recipe) makes a step of
    hundreds of tiny ops: split over both cores, each op spends more time
    handing work out than doing it. One thread per op with two ops at once
    (a convolution's filter and input gradients are independent) runs the
    seed preset's step ~1.4x faster here. Big steps keep TensorFlow's
    default. Only from-scratch runs on one device; measured on 2 cores.
    """
    cores = cores or usable_cores()
    if config.mode != "scratch" or config.distribute != "none" or cores < 2:
        return None
    if step_work(config) >= SMALL_STEP_WORK:
        return None
    return max(1, cores // 2), 2


def apply_thread_plan(config: TrainConfig) -> "tuple[int, int] | None":
    """Set `thread_plan(config)` on TensorFlow, if it can still change.

    Does nothing when the user chose (`TF_NUM_INTRAOP_THREADS` or
    `TF_NUM_INTEROP_THREADS`) or TensorFlow has already run an op (thread
    pools are fixed from then on). Returns the counts set, or None.
    """
    import tensorflow as tf

    plan = thread_plan(config)
    if plan is None or os.environ.get("TF_NUM_INTRAOP_THREADS") or os.environ.get("TF_NUM_INTEROP_THREADS"):
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(plan[0])
        tf.config.threading.set_inter_op_parallelism_threads(plan[1])
    except RuntimeError:  # TensorFlow is already running: keep what it has
        return None
    return plan


def split_cpu(n: int) -> None:
    """Expose the CPU as `n` logical devices (call before TensorFlow runs anything)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def strategy_for(config: TrainConfig):
    import tensorflow as tf

    if config.distribute == "none":
        return None
    if config.distribute == "mirrored":
        cpus = tf.config.list_logical_devices("CPU")
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices=devices)
    if config.distribute == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise MobilenetsError(f"distribute must be none, mirrored or multiworker. Received {config.distribute!r}")


def strategy_scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


@contextlib.contextmanager
def keras_progress():
    """Keras's `fit`/`predict` progress, sent to stderr; yields the `verbose=` to pass.

    Keras writes its progress to stdout, which belongs to the caller (the CLI's
    table, JSON lines, a pipe). On a terminal it is the live bar (1); otherwise
    one line per epoch (2), which a log file can hold.

        with keras_progress() as verbose:
            model.fit(dataset, epochs=3, verbose=verbose)
    """
    with contextlib.redirect_stdout(sys.stderr):
        yield 1 if sys.stderr.isatty() else 2
