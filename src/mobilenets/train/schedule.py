"""The learning rate over a run: a constant, or warm-up then cosine decay to zero.

    rate = warmup_cosine(step, lr=0.1, total=2000, warmup=warmup_steps(100, 2, 2000))

One curve, `warmup_cosine`, a pure function of the step. Keras follows it
step by step inside the compiled training step (`keras_schedule` hands it
over as Keras's `CosineDecay` with warm-up, which is this curve, so saved
models keep a schedule any Keras loads); under a time budget the
`callbacks.budget_cosine` callback sets it epoch by epoch, as the budget
re-plans the curve's length.
"""

from __future__ import annotations

import math

from mobilenets.errors import MobilenetsError


SCHEDULES = ("constant", "cosine")


def warmup_steps(steps_per_epoch: int, warmup_epochs: float, total: int) -> int:
    """Warm-up steps: at most a tenth of the schedule, so short runs still decay."""
    return min(int(steps_per_epoch * warmup_epochs), total // 10)


def warmup_cosine(step: float, lr: float, total: int, warmup: int) -> float:
    """The rate at `step` of a `total`-step schedule.

    Args:
        step: the optimizer step (0-based); past `total` the rate stays 0.
        lr: the peak rate, reached at the end of the warm-up.
        total: the schedule's length in steps, warm-up included.
        warmup: warm-up steps, rising linearly from `lr / 10` to `lr`
            (0: start at `lr`).

    Returns:
        The learning rate: after the warm-up, half a cosine from `lr` to 0.
    """
    if step < warmup:
        return lr / 10 + (lr - lr / 10) * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * lr * (1 + math.cos(math.pi * t))


def keras_schedule(kind: str, lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: float):
    """The learning rate as a Keras optimizer takes it: `lr`, or `warmup_cosine` over `epochs`.

    Args:
        kind: "constant" or "cosine".
        lr: the (peak) learning rate.
        steps_per_epoch, epochs: the schedule's length.
        warmup_epochs: warm-up length (capped by `warmup_steps`).
    """
    if kind == "constant":
        return lr
    if kind != "cosine":
        raise MobilenetsError(f"schedule must be {' or '.join(SCHEDULES)}. Received {kind!r}")
    import keras

    total = max(1, steps_per_epoch * epochs)
    warmup = warmup_steps(steps_per_epoch, warmup_epochs, total)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10 if warmup else lr, decay_steps=max(1, total - warmup),
        warmup_target=lr if warmup else None, warmup_steps=warmup)


def budget_fitted(config) -> bool:
    """Cosine under a time budget: `callbacks.budget_cosine` sets the rate epoch by epoch."""
    return config.schedule == "cosine" and bool(config.time_budget_minutes)
