"""What a profile holds (`Profile`), and the liveness sweep both counters use for peak memory.

    p = profile("v1-1.00-224")           # a Profile
    p.to_dict(per_layer=True)            # JSON-ready, with one row per layer
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Profile:
    """The cost of one model. Integer counts; per-layer rows in `layers`."""

    name: str
    source: str  # "keras" or "tflite"
    input_shape: list[int]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    elementwise_ops: int
    weight_bytes: int
    peak_activation_bytes: int
    file_bytes: int | None = None
    layers: list[dict] = field(default_factory=list)
    metadata: dict | None = None  # .tflite only: `describe`

    def to_dict(self, per_layer: bool = False) -> dict:
        d = asdict(self)
        if not per_layer:
            d.pop("layers")
        if d["metadata"] is None:
            d.pop("metadata")
        return d


def peak_live_bytes(steps: list[tuple[list, list[tuple]]], keep: set) -> int:
    """Peak bytes of live tensors when steps run one at a time in order.

    Args:
        steps: `(input ids, [(output id, bytes)])` per step, in run order.
        keep: ids that stay live to the end (the model's outputs).
    """
    last_use: dict = {}
    for i, (ins, _) in enumerate(steps):
        for t in ins:
            last_use[t] = i
    live: dict = {}
    peak = 0
    for i, (ins, outs) in enumerate(steps):
        for t, nbytes in outs:
            live[t] = nbytes
        peak = max(peak, sum(live.values()))
        for t in list(live):
            if t not in keep and last_use.get(t, -1) <= i:
                del live[t]
    return int(peak)
