"""One training phase (head, fine_tune or train) on the image pipeline, resumable.

    model = fit_phase(model, job, "train", epochs=30, lr=0.1)
"""

from __future__ import annotations


from mobilenets import artifacts
from mobilenets.env import report
from mobilenets.train.build import class_weights, compile_model
from mobilenets.train.callbacks import budget_cosine, epoch_callbacks, log_value, stop_at
from mobilenets.train.kernels import training_kernels
from mobilenets.train.lowres import check_fits, fits, low_res_epochs, low_res_size, pixels, resized
from mobilenets.train.runs import Job, load_checkpoint
from mobilenets.train.runtime import keras_progress, strategy_scope
from mobilenets.train.schedule import budget_fitted


def fit_phase(model, job: Job, phase: str, epochs: int, lr: float):
    """Train `model` on the image pipeline for one phase, resumable; returns the trained model.

    Args:
        model: the model (replaced by the phase's checkpoint when resuming it).
        job: the run.
        phase: "head", "fine_tune" or "train": names its checkpoint and history rows.
        epochs: the phase's epochs.
        lr: its (peak) learning rate.
    """
    run, config, data, state, strategy, aug = job.dir, job.config, job.data, job.state, job.strategy, job.augment
    size = job.size
    n_cls = len(data.classes)
    images = job.images_dir
    # No ragged last batch: a step on a 2-image remainder, with BatchNorm
    # using that batch's statistics, wrecks every epoch's end; replicas also
    # need equal shares. Shuffling each epoch means every image is still seen.
    drop = strategy is not None or data.split_sizes()["train"] >= config.batch_size
    train = _onehot(data.dataset("train", size, batch_size=config.batch_size, shuffle=True,
                                 augment=None if aug.is_identity else aug, seed=config.seed,
                                 cache_dir=images, drop_remainder=drop), n_cls)
    val = None
    if "val" in job.splits:
        val = _onehot(_validation_set(data, "val", size, config.batch_size, images,
                                      strategy), n_cls)
    steps = int(train.cardinality()) if int(train.cardinality()) > 0 else 1
    initial = 0
    ckpt = run / "checkpoints" / f"{phase}.keras"
    complete = False
    with strategy_scope(strategy):
        if state.get("phase") == phase and ckpt.is_file():
            initial = int(state["epoch"])
            model = load_checkpoint(ckpt)  # weights and optimizer state
            # Killed after the phase's last epoch (or its time budget's), before the run moved on.
            planned = int(state.get("planned_epochs", {}).get(phase, epochs))
            complete = initial >= min(epochs, planned) or bool(state.get("stopped_by_time_budget"))
            if complete:
                report(f"resuming: {phase} is already complete (after epoch {initial}); "
                       f"not training it again")
            else:
                report(f"resuming {phase} at epoch {initial + 1}/{epochs}")
        else:
            compile_model(model, config, steps, epochs, lr)
    training_kernels(model)
    if not complete:
        labels = data.stream("train", size, cache_dir=images).labels if config.class_weights == "auto" else None
        callbacks = epoch_callbacks(run, phase, state, config, job.started)
        low = low_res_size(config, size) if phase == "train" else None
        if low and config.low_res is None and not fits(model, low):
            low = None  # the preset's share of the height is too small for these strides
        elif low:
            check_fits(model, low)
        low_until = (lambda planned: low_res_epochs(config, planned)) if low else None
        if budget_fitted(config):  # before EpochEnd, which saves the plan with the state
            callbacks.insert(0, budget_cosine(lr, steps, epochs, config.warmup_epochs,
                                              config.time_budget_minutes * 60, job.started, state, phase,
                                              low_res_epochs=low_until,
                                              low_res_cost=pixels(low) / pixels(size) if low else 1.0))

        def fit(dataset, val, start, height, extra=()):
            # With low_res, history.csv says which height every epoch trained at.
            first = [log_value("input_height", height)] if low else []
            with keras_progress() as verbose:
                model.fit(dataset, validation_data=val, epochs=epochs, initial_epoch=start,
                          callbacks=first + callbacks + list(extra), verbose=verbose,
                          shuffle=False,  # the tf.data pipeline shuffles
                          class_weight=None if labels is None else class_weights(labels, n_cls, "auto"))
            return int(state.get("epoch", start)) if state.get("phase") == phase else start

        planned = lambda: int(state.get("planned_epochs", {}).get(phase, epochs))  # noqa: E731
        ended_low = False
        if low and initial < low_until(planned()):
            report(f"low resolution: the first {low_until(planned())} of {planned()} epochs train at "
                   f"{low[0]}x{low[1]}, the rest at {size[0]}x{size[1]}"
                   + (" (the preset's; --low-res 0 turns it off)" if config.low_res is None else ""))
            full_spec = model.input_spec
            model.input_spec = None  # the weights fit any input size; Keras checks the built one
            try:
                # Validated at the training size too: a model trained at 24 px
                # scores near chance at 32 until BatchNorm's statistics follow
                # (one epoch at full size does that).
                low_val = None if val is None else resized(val, low)
                initial = fit(resized(train, low), low_val, initial, low[0],
                              [stop_at(lambda: low_until(planned()))])
            finally:
                model.input_spec = full_spec
            model.train_function = model.test_function = None  # trace again at full size
            ended_low = True
        # A run always ends at full size: if the time budget ran out during the
        # low-resolution epochs, one more epoch (at the schedule's end, lr ~0)
        # lets BatchNorm's statistics follow.
        if (initial < planned() and not state.get("stopped_by_time_budget")) or ended_low:
            fit(train, val, initial, size[0])
    state["done"].append(phase)
    artifacts.write_json(run / "checkpoints" / "state.json", state)
    return model


def _onehot(ds, classes: int):
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.one_hot(y, classes)), num_parallel_calls=tf.data.AUTOTUNE)


def _validation_set(data, split, size, batch_size, image_cache, strategy):
    """Validation batches; under a strategy every replica must get equal shares.

    Keras 3 fails on ragged per-replica batches in evaluation (AddN shape
    mismatch), so with N replicas the set is cut to a multiple of N (at most
    N-1 images) and batched by a multiple of N.
    """
    if strategy is None:
        return data.dataset(split, size, batch_size=batch_size, cache_dir=image_cache)
    from mobilenets.data import make_dataset

    n = strategy.num_replicas_in_sync
    images = data.stream(split, size, cache_dir=image_cache)
    keep = len(images) - len(images) % n
    return make_dataset(images, images.labels[:keep], batch_size=max(n, batch_size - batch_size % n))
