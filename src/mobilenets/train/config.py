"""Every setting of a training run, as one dataclass saved beside the model.

    config = TrainConfig(data="photos/", arch="v1-0.50-160", fine_tune=20)
    artifacts.write_json(run / "config.json", config.to_dict())
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from mobilenets.specs import parse_spec


@dataclass
class TrainConfig:
    """Every setting of a run; saved as `config.json` beside the model.

    Defaults are for `retrain`; `PRESETS` and `scratch_defaults()` change them.
    """

    data: str  # folder, .tar.gz, "digits", "cifar10", "cifar10:PATH"
    arch: str = "v1-0.25-224"
    mode: str = "retrain"  # retrain (transfer) | scratch
    weights: str = "imagenet"  # imagenet | none | PATH  (retrain only)
    init: str = "none"  # scratch: starting weights for every layer (none | imagenet | PATH)
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # adam | nadam | sgd
    schedule: str = "constant"  # constant | cosine
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none | auto
    dropout: float = 0.2
    fine_tune: int = 0  # retrain: unfreeze the top N backbone layers afterwards
    fine_tune_epochs: int = 5
    fine_tune_learning_rate: float | None = None  # default learning_rate / 10
    stem_stride: int = 2  # scratch: 1 keeps full resolution in the stem (32 px inputs)
    block_strides: list[int] | None = None  # scratch: strides of the downsampling blocks after the stem; None: Keras's (all 2)
    bn_momentum: float | None = None  # scratch: None keeps Keras's (0.99 V1/V3, 0.999 V2)
    low_res: int | None = None  # scratch: first epochs at this input height (px), the rest at the spec's; 0: off
    low_res_scale: float | None = None  # scratch, low_res unset: low_res = this share of the height, where it fits
    low_res_fraction: float = 0.5  # scratch: share of the (planned) epochs at low_res
    augment: dict = field(default_factory=dict)  # Augment fields
    validation_percent: float = 10.0
    test_percent: float = 10.0
    seed: int = 0
    time_budget_minutes: float | None = None
    distribute: str = "none"  # none | mirrored | multiworker
    cache_features: bool = True
    preset: str | None = None
    faces: bool = False

    @property
    def spec(self):
        return parse_spec(self.arch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.name
        d["image_size"] = [self.spec.height, self.spec.width]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
