"""Training over several machines: TF_CONFIG, the chief's role, a custom step under strategy.run.

    TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \\
        mobilenets train digits --arch v1-0.25-32 --distribute multiworker

Keras 3's `fit` does not run under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585: per-replica values reach ops that want tensors), so
a multi-worker phase steps here: each worker reads its own shard of the
training split (every Nth image, by worker index), the loss is averaged over
the global batch (`tf.nn.compute_average_loss`) and the optimizer's
`apply_gradients` all-reduces the gradients. BatchNorm's moving statistics
are per-worker variables in Keras (aggregation none): they are averaged over
the workers after every epoch, so every worker ends with the same weights.
Every decision that changes what runs (stop for the time budget, the
planned epochs, low resolution) is the chief's, broadcast to all, so the
collectives never wait on a worker that decided otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from mobilenets import artifacts
from mobilenets.data import MemoryImages, make_dataset
from mobilenets.env import report
from mobilenets.errors import MobilenetsError
from mobilenets.train.build import compile_model
from mobilenets.train.callbacks import budget_cosine
from mobilenets.train.history import write_history
from mobilenets.train.kernels import training_kernels
from mobilenets.train.lowres import (
    check_fits,
    fits,
    low_res_epochs,
    low_res_size,
    pixels,
)
from mobilenets.train.runs import Job, load_checkpoint
from mobilenets.train.schedule import budget_fitted

# Seconds a worker waits for every peer to join before giving up (MOBILENETS_CLUSTER_TIMEOUT).
CLUSTER_TIMEOUT = 300.0
# Where a non-chief worker saves its final model before removing its folder (for checks).
WORKER_MODEL_ENV = "MOBILENETS_WORKER_MODEL"


def local_ports(n: int) -> list[int]:
    """`n` free localhost ports (bound together, then released): a local cluster's TF_CONFIG."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_task(environ=os.environ) -> dict:
    """TF_CONFIG, checked: `{"cluster", "type", "index", "workers", "chief"}`, or one line saying what is wrong.

    The chief is the task of type "chief", or worker 0 when the cluster has
    none (as Kubeflow's TFJob and Vertex AI set TF_CONFIG).
    """
    text = environ.get("TF_CONFIG")
    if not text:
        raise MobilenetsError("--distribute multiworker needs TF_CONFIG (the cluster and this task), e.g. "
                              "'{\"cluster\": {\"worker\": [\"host1:2222\", \"host2:2222\"]}, "
                              "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    try:
        tf_config = json.loads(text)
    except ValueError as e:
        raise MobilenetsError(f"TF_CONFIG is not valid JSON ({e}). Received {text[:120]!r}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise MobilenetsError(f"TF_CONFIG needs a 'cluster' and a 'task' object. Received {text[:120]!r}")
    for job, addresses in cluster.items():
        if job not in ("chief", "worker", "evaluator", "ps") or not isinstance(addresses, list) or not all(
                isinstance(a, str) and ":" in a for a in addresses):
            raise MobilenetsError(f"TF_CONFIG's cluster maps chief / worker to lists of 'host:port'. "
                                  f"Received {job!r}: {addresses!r}")
    if set(cluster) - {"chief", "worker"}:
        raise MobilenetsError(f"--distribute multiworker runs chief and worker tasks only (no parameter "
                              f"servers or evaluators). Received {sorted(cluster)}")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise MobilenetsError(f"TF_CONFIG's task type {kind!r} is not in its cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise MobilenetsError(f"TF_CONFIG's task index {index!r} is out of range: the cluster has "
                              f"{len(cluster[kind])} {kind} task(s)")
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return {"cluster": cluster, "type": kind, "index": index, "chief": chief,
            "workers": sum(len(a) for a in cluster.values())}


def cluster_strategy(timeout: float | None = None):
    """`(strategy, task)`: MultiWorkerMirroredStrategy over TF_CONFIG's cluster, ring all-reduce.

    TensorFlow waits for every peer without end; past `timeout` seconds
    (default $MOBILENETS_CLUSTER_TIMEOUT, else `CLUSTER_TIMEOUT`) a
    watchdog says which peers never joined, in one line, and kills this
    process (exit status -9): it cannot raise, as TensorFlow holds the
    interpreter while it waits.
    """
    import tensorflow as tf

    task = cluster_task()
    if timeout is None:
        timeout = float(os.environ.get("MOBILENETS_CLUSTER_TIMEOUT", CLUSTER_TIMEOUT))
    peers = [a for job, addresses in task["cluster"].items() for i, a in enumerate(addresses)
             if (job, i) != (task["type"], task["index"])]
    message = (f"mobilenets: error: the cluster in TF_CONFIG did not come together within {timeout:g} s "
               f"(this is {task['type']} {task['index']}; peers: {', '.join(peers)}): start every worker, "
               f"or check their addresses")
    # TensorFlow waits holding the interpreter (no Python thread or signal handler runs, SIGTERM
    # is caught): a watchdog process of its own ends it, unless told in time that the cluster met.
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout), message],
                                stdin=subprocess.PIPE)
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise MobilenetsError(f"cannot join the cluster in TF_CONFIG: {str(e).splitlines()[0][:200]}") from None
    finally:
        watchdog.stdin.close()  # EOF: stand down
        watchdog.wait()
    return strategy, task


def all_sum(strategy, vector: np.ndarray) -> np.ndarray:
    """`vector` summed over every worker (float64; one all-reduce)."""
    import tensorflow as tf

    reduce = _reducers.get(id(strategy))
    if reduce is None:  # traced: run eagerly, each call would warn of its overhead
        @tf.function(reduce_retracing=True)
        def reduce(value):
            per_replica = strategy.run(tf.identity, args=(value,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        _reducers[id(strategy)] = reduce
    return reduce(tf.constant(np.asarray(vector, np.float64))).numpy()


_reducers: dict = {}

_WATCHDOG = """
import os, select, signal, sys
pid, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ready, _, _ = select.select([sys.stdin], [], [], timeout)
if not ready:
    print(message, file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)
"""


def from_chief(strategy, chief: bool, vector) -> np.ndarray:
    """The chief's `vector` on every worker (each must pass one of the same length)."""
    vector = np.asarray(vector, np.float64)
    return all_sum(strategy, vector if chief else np.zeros_like(vector))


def _variables(model):
    return list(model.weights) + list(model.optimizer.variables)


def sync_from_chief(strategy, chief: bool, model, source=None) -> None:
    """Give every worker the chief's weights and optimizer state (`source`'s, if given, on the chief)."""
    ours = _variables(model)
    values = [v.numpy() for v in (_variables(source) if source is not None else ours)]
    if len(values) != len(ours):
        raise MobilenetsError(f"cannot resume: the checkpoint holds {len(values)} variables, the model "
                              f"{len(ours)}")
    flat = from_chief(strategy, chief, np.concatenate([np.ravel(v) for v in values]) if values else [])
    at = 0
    for v in ours:
        n = int(np.prod(v.shape))
        v.assign(flat[at:at + n].reshape(v.shape).astype(v.dtype))
        at += n


def average_statistics(strategy, model) -> None:
    """BatchNorm's moving statistics (every non-trainable float weight) averaged over the workers."""
    stats = [v for v in model.non_trainable_weights if "float" in str(v.dtype)]
    if not stats:
        return
    flat = all_sum(strategy, np.concatenate([np.ravel(v.numpy()) for v in stats])) / strategy.num_replicas_in_sync
    at = 0
    for v in stats:
        n = int(np.prod(v.shape))
        v.assign(flat[at:at + n].reshape(v.shape).astype(v.dtype))
        at += n


def _shard(images, labels: np.ndarray, index: int, count: int):
    """Every `count`th image from `index`: this worker's share."""
    keep = np.arange(index, len(labels), count)
    return MemoryImages(images.take(keep), labels[keep], [images.paths[i] for i in keep])


def multiworker_phase(model, job: Job, phase: str, epochs: int, lr: float, task: dict):
    """Train `model` for one phase across the cluster; checkpoints and history on the chief.

    Args:
        model: the model, built in `job.strategy.scope()` (replaced by the
            phase's checkpoint when resuming it: read by the chief, sent to all).
        job: the run (`job.dir` is a worker's temporary folder off the chief).
        phase: "head", "fine_tune" or "train".
        epochs, lr: the phase's epochs and (peak) learning rate.
        task: `cluster_task()`.
    """
    import keras
    import tensorflow as tf

    run, config, data, state, strategy = job.dir, job.config, job.data, job.state, job.strategy
    chief, workers = task["chief"], strategy.num_replicas_in_sync
    size = job.size
    n_cls = len(data.classes)
    per_worker = max(1, config.batch_size // workers)
    global_batch = per_worker * workers
    if global_batch != config.batch_size:
        report(f"multiworker: batch {global_batch} ({per_worker} on each of {workers} workers), "
               f"not {config.batch_size}")
    images = data.stream("train", size, cache_dir=job.images_dir)
    labels = np.asarray(images.labels)
    steps = (len(labels) // workers) // per_worker  # the smallest shard's: every worker steps alike
    if steps < 1:
        raise MobilenetsError(f"{len(labels)} training images are fewer than one batch of {global_batch} "
                              f"over {workers} workers; lower --batch-size")
    aug = None if job.augment.is_identity else job.augment

    def train_set(height_width):
        def make(context):
            shard = _shard(images, labels, context.input_pipeline_id, context.num_input_pipelines)
            # The array itself: make_dataset gathers it in the graph (an ImageSplit is read through NumPy).
            ds = make_dataset(shard.images, shard.labels, batch_size=per_worker, shuffle=True, augment=aug,
                              seed=config.seed + context.input_pipeline_id, drop_remainder=True).take(steps)
            if tuple(height_width) != tuple(size):
                ds = ds.map(lambda x, y: (tf.image.resize(x, height_width, antialias=True), y))
            return ds
        return strategy.distribute_datasets_from_function(make)

    val = None
    if "val" in job.splits:
        v = data.stream("val", size, cache_dir=job.images_dir)
        val_shard = _shard(v, np.asarray(v.labels), task_rank(task), workers)
        val = make_dataset(val_shard.images, val_shard.labels, batch_size=max(per_worker, 32)) if len(val_shard) else None

    ckpt = run / "checkpoints" / f"{phase}.keras"
    initial, complete = 0, False
    resuming = state.get("phase") == phase and ckpt.is_file()
    with strategy.scope():
        compile_model(model, config, steps, epochs, lr)  # the optimizer, built: checkpoints carry its state
    source = None
    if resuming:
        initial = int(state["epoch"])
        planned_before = int(state.get("planned_epochs", {}).get(phase, epochs))
        complete = initial >= min(epochs, planned_before) or bool(state.get("stopped_by_time_budget"))
        if chief:
            source = load_checkpoint(ckpt)
        report(f"resuming: {phase} is already complete (after epoch {initial})" if complete
               else f"resuming {phase} at epoch {initial + 1}/{epochs}")
    sync_from_chief(strategy, chief, model, source)  # resumed or fresh, every worker starts alike
    training_kernels(model)
    if complete:
        return _done(model, job, phase, chief)

    loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing, reduction=None)

    def step(x, y):
        onehot = tf.one_hot(y, n_cls)
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = loss_fn(onehot, probs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y), tf.float32))
        return tf.stack([tf.reduce_sum(per_example), correct, tf.cast(tf.size(y), tf.float32)])

    @tf.function
    def train_step(batch):
        return strategy.run(step, args=batch)

    @tf.function
    def val_step(x, y):
        probs = model(x, training=False)
        per_example = keras.losses.categorical_crossentropy(tf.one_hot(y, n_cls), probs)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y), tf.float32))
        return tf.stack([tf.reduce_sum(per_example), correct, tf.cast(tf.size(y), tf.float32)])

    low = low_res_size(config, size) if phase == "train" else None
    if low and config.low_res is None and not fits(model, low):
        low = None
    elif low:
        check_fits(model, low)
    low_until = (lambda n: low_res_epochs(config, n)) if low else (lambda n: 0)
    budget = None
    if budget_fitted(config):
        budget = budget_cosine(lr, steps, epochs, config.warmup_epochs, config.time_budget_minutes * 60,
                               job.started, state, phase, low_res_epochs=low_until if low else None,
                               low_res_cost=pixels(low) / pixels(size) if low else 1.0)
        budget.set_model(model)
    planned = int(state.get("planned_epochs", {}).get(phase, epochs))
    datasets = {}
    full_spec = model.input_spec
    epoch = initial
    while epoch < planned:
        at_low = bool(low) and epoch < low_until(planned)
        shape = low if at_low else size
        if shape not in datasets:
            datasets[shape] = train_set(shape)
        model.input_spec = None if at_low else full_spec  # the weights fit any size; Keras checks the built one
        if budget is not None:
            budget.on_epoch_begin(epoch)
        started = time.monotonic()
        totals = np.zeros(3)
        for batch in datasets[shape]:
            totals += strategy.experimental_local_results(train_step(batch))[0].numpy()
        model.input_spec = full_spec
        average_statistics(strategy, model)
        logs = _logs(all_sum(strategy, totals), "")
        if val is not None:
            vt = np.zeros(3)
            for x, y in (val if not at_low else val.map(lambda x, y: (tf.image.resize(x, low, antialias=True), y))):
                model.input_spec = None if at_low else full_spec
                vt += val_step(x, y).numpy()
            model.input_spec = full_spec
            logs.update(_logs(all_sum(strategy, vt), "val_"))
        else:
            all_sum(strategy, np.zeros(3))  # the chief and the others call the same collectives
        row = {"phase": phase, "epoch": epoch + 1, "seconds": round(time.monotonic() - started, 2)}
        if low:
            row["input_height"] = float(shape[0])
        if budget is not None:
            budget.on_epoch_end(epoch, logs)
        row.update(logs)
        over = bool(config.time_budget_minutes) and time.monotonic() - job.started > config.time_budget_minutes * 60
        plan = budget.planned if budget is not None else planned
        # The chief decides; everyone follows, or the next collective waits for ever.
        stop, plan = from_chief(strategy, chief, [float(over or bool(state.get("stopped_by_time_budget"))),
                                                  float(plan)])
        planned = int(plan)
        if budget is not None:
            budget.planned = planned
            state["planned_epochs"][phase] = planned
        state["history"].append(row)
        state["phase"], state["epoch"] = phase, epoch + 1
        epoch += 1
        if stop:
            state["stopped_by_time_budget"] = True
        if chief:
            with artifacts.atomic_path(ckpt) as tmp:
                model.save(tmp)
            artifacts.write_json(run / "checkpoints" / "state.json", state)
            write_history(run / "history.csv", state["history"])
        report(f"{phase} epoch {epoch}/{planned}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        if stop:
            break
    return _done(model, job, phase, chief)


def _done(model, job: Job, phase: str, chief: bool):
    job.state["done"].append(phase)
    if chief:
        artifacts.write_json(job.dir / "checkpoints" / "state.json", job.state)
    return model


def _logs(totals: np.ndarray, prefix: str) -> dict:
    loss, correct, count = totals
    return {f"{prefix}loss": float(loss / max(count, 1)), f"{prefix}accuracy": float(correct / max(count, 1))}


def task_rank(task: dict) -> int:
    """This task's place among all (chief first, then workers): its data shard."""
    return task["index"] + (len(task["cluster"].get("chief", [])) if task["type"] == "worker" else 0)
