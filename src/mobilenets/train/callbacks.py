"""What runs at every epoch's edges: history rows, checkpoints, the time budget, stops.

    callbacks = [budget_cosine(0.1, steps, 50, 2, 1800, started, state, "train"),
                 *epoch_callbacks(run, "train", state, config, started)]
"""

from __future__ import annotations

import time
from pathlib import Path

from mobilenets import artifacts
from mobilenets.env import report
from mobilenets.train.config import TrainConfig
from mobilenets.train.history import write_history
from mobilenets.train.schedule import warmup_cosine, warmup_steps


def epoch_callbacks(run: Path | None, phase: str, state: dict, config: TrainConfig,
                     started: float, checkpoint: bool = True):
    """History rows for every epoch; with `checkpoint`, also model and state on disk."""
    import keras

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            row = {"phase": phase, "epoch": epoch + 1,
                   "seconds": round(time.monotonic() - self.epoch_started, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            state["history"].append(row)
            budget = config.time_budget_minutes
            if budget and time.monotonic() - started > budget * 60:
                self.model.stop_training = True
                state["stopped_by_time_budget"] = True
            if not checkpoint:
                return
            # Model first, then the state that points at it: a kill between
            # the two only repeats this epoch.
            with artifacts.atomic_path(run / "checkpoints" / f"{phase}.keras") as tmp:
                self.model.save(tmp)
            state["phase"], state["epoch"] = phase, epoch + 1
            artifacts.write_json(run / "checkpoints" / "state.json", state)
            write_history(run / "history.csv", state["history"])

    callbacks = [EpochEnd()]
    if checkpoint:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs" / phase),
                                                     write_graph=False))
    return callbacks


def budget_cosine(lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: float,
                  budget_s: float, started: float, state: dict, phase: str, clock=time.monotonic,
                  low_res_epochs=None, low_res_cost: float = 1.0):
    """Warm-up + cosine decay whose length is fitted to a time budget.

    A cosine schedule only pays off if it reaches its end, and nobody knows
    in advance how many epochs fit in 30 minutes on their machine. This
    callback sets the learning rate at the start of every epoch (the curve's
    value at the epoch's middle, as timm's per-epoch schedulers do) and,
    after every epoch, re-plans the schedule's length: as many epochs as the
    time left holds at the median epoch time so far (never more than
    `epochs`), and stops training when the plan is done. The plan is kept in
    `state["planned_epochs"]`, so `--resume` continues the same curve.

    With `low_res_epochs` (planned epochs -> how many of them run at low
    resolution) the two kinds of epoch are timed apart; until one kind has
    run, its time is the other's scaled by `low_res_cost` (low / full).

    Per epoch, not per step: a Keras callback with a per-batch hook makes
    `fit` wait for every step's results before the next, which costs a
    small model much of its epoch time.
    """
    import statistics

    import keras

    low_until = low_res_epochs or (lambda planned: 0)

    class BudgetCosine(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.planned = int(state.setdefault("planned_epochs", {}).get(phase, epochs))
            self.durations: dict[bool, list[float]] = {True: [], False: []}  # low res?

        def rate(self, step: int) -> float:
            total = steps_per_epoch * self.planned
            return warmup_cosine(step, lr, total, warmup_steps(steps_per_epoch, warmup_epochs, total))

        def epoch_rate(self, epoch: int) -> float:
            return self.rate(int((epoch + 0.5) * steps_per_epoch))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = clock()
            self.low = epoch < low_until(self.planned)
            self.model.optimizer.learning_rate = self.epoch_rate(epoch)

        def per_epoch(self, low: bool) -> float:
            # The first epoch of a kind in a process includes tracing: left out once others exist.
            own, other = self.durations[low], self.durations[not low]
            if own:
                return statistics.median(own[1:] or own)
            scale = low_res_cost if low else 1 / low_res_cost
            return statistics.median(other[1:] or other) * scale

        def on_epoch_end(self, epoch, logs=None):
            self.durations[self.low].append(clock() - self.epoch_started)
            low_s, full_s = self.per_epoch(True), self.per_epoch(False)
            # Keep back a little for the final evaluation and saving.
            left = budget_s - (clock() - started) - 0.1 * full_s
            plan = epoch + 1
            for n in range(epochs, epoch + 1, -1):  # the longest plan whose remaining epochs fit
                low = max(0, min(low_until(n), n) - (epoch + 1))
                if low * low_s + (n - epoch - 1 - low) * full_s <= left:
                    plan = n
                    break
            if len(self.durations[True]) + len(self.durations[False]) == 1 and left > 0:
                # One epoch, with its tracing, is not a measurement to stop on.
                plan = min(epochs, max(plan, epoch + 2))
            if plan != self.planned:
                report(f"time budget: the cosine schedule now ends after epoch {plan} "
                       f"({full_s:.0f} s/epoch)")
                self.planned = plan
            state["planned_epochs"][phase] = self.planned
            if logs is not None:
                logs["learning_rate"] = self.epoch_rate(epoch)
            if epoch + 1 >= self.planned:
                self.model.stop_training = True
                if self.planned < epochs:
                    state["stopped_by_time_budget"] = True

    return BudgetCosine()


def log_value(key: str, value: float):
    """A callback adding `key: value` to every epoch's logs (so to history.csv)."""
    import keras

    class LogValue(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs[key] = float(value)

    return LogValue()


def stop_at(first_full_epoch):
    """A callback ending `fit` after the epoch before `first_full_epoch()`."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= first_full_epoch():
                self.model.stop_training = True

    return StopAt()
