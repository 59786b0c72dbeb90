"""Training settings for the seed article's two face models: emotion and gender.

    preset = get_preset("emotion")    # preset.arch, preset.epochs, preset.augment_options(), ...

Gender is trained on IMDB-WIKI with MobileNet V1 0.5-224 as the seed did;
emotion on FER's 48x48 faces, with a smaller V2 than the seed's 1.4-224.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mobilenets.errors import MobilenetsError
from mobilenets.imdb_wiki import GENDER_CLASSES
from mobilenets.specs import parse_spec

EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


@dataclass(frozen=True)
class FacePreset:
    """Training settings for a face-attribute model.

    Attributes:
        name: the preset's key in `PRESETS`.
        arch: the model spec to train (`mobilenets.specs` grammar).
        image_size: input side in pixels (the spec's resolution).
        classes: the class folder names, or None to take them from the data.
        faces: crop faces (`FaceCropper`) before training and prediction.
        epochs, batch_size, learning_rate: the training run.
        flip_left_right, random_crop, random_scale, random_brightness, pad_crop:
            augmentation, in `mobilenets.augment.Augment`'s terms (percent;
            pad_crop in pixels).
        weights: the backbone's starting weights.
        recipe: "" trains like `retrain` (new head on a frozen backbone);
            a `mobilenets.train.PRESETS` name (e.g. "scratch") trains every
            layer, starting from `weights`, with that recipe's optimiser,
            schedule and regularisation.
        stem_stride: with a recipe, the first convolution's stride.
        weight_decay: with a recipe, its weight decay instead of the
            recipe's own (None keeps the recipe's).
        dataset: what the preset is meant to train on.
        seed_arch: the architecture the seed article used, for the record.
        notes: why the settings are what they are.
    """

    name: str
    arch: str
    image_size: int
    classes: "tuple[str, ...] | None"
    faces: bool
    epochs: int
    batch_size: int
    learning_rate: float
    flip_left_right: bool = True
    random_crop: float = 0.0
    random_scale: float = 0.0
    random_brightness: float = 0.0
    pad_crop: int = 0
    weights: str = "imagenet"
    recipe: str = ""
    stem_stride: int = 2
    weight_decay: float | None = None
    dataset: str = ""
    seed_arch: str = ""
    notes: str = ""

    def __post_init__(self):
        spec = parse_spec(self.arch)
        if not (spec.square and spec.height == self.image_size):
            raise MobilenetsError(f"preset {self.name!r}: image_size={self.image_size} does not match "
                                  f"arch {self.arch!r}")

    @property
    def spec(self):
        """The `ModelSpec` of `arch`."""
        return parse_spec(self.arch)

    def augment_options(self) -> dict:
        """The augmentation as keyword arguments for `Augment` / `Augment.parse`."""
        return {"flip_left_right": self.flip_left_right, "random_crop": self.random_crop,
                "random_scale": self.random_scale, "random_brightness": self.random_brightness,
                "pad_crop": self.pad_crop}

    def to_dict(self) -> dict:
        """JSON-ready, for config.json."""
        d = asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        return d


PRESETS: dict[str, FacePreset] = {
    "emotion": FacePreset(
        name="emotion",
        # ImageNet features carry over to upscaled FER faces better than any
        # MobileNet learns from scratch at 48 px in the same time (the
        # comparison is bench_emotion.py's, in benchmarks/README.md); V2 0.5
        # at 96 px keeps an epoch short on CPU, and the seed's V2 1.4 has no
        # ImageNet weights in the offline cache. Every layer trains, BatchNorm included, with the scratch
        # recipe's optimiser and schedule.
        arch="v2-0.50-96",
        image_size=96,
        classes=EMOTION_CLASSES,
        faces=True,
        epochs=10,
        batch_size=128,
        learning_rate=0.02,
        flip_left_right=True,
        pad_crop=4,
        weights="imagenet",
        recipe="scratch",
        stem_stride=2,
        # The weight decay these settings are validated with from ImageNet
        # weights (benchmarks/README.md); the recipe's own 5e-3 is untried from them.
        weight_decay=5e-4,
        dataset="FER2013-derived 48x48 faces (../shared/data/fer-emotion-48px.tar.gz)",
        seed_arch="v2-1.40-224",
        notes="Seed: MobileNet V2 1.4-224 on AffectNet. FER images are face crops already "
              "(below 64 px, so FaceCropper passes them through); faces=True crops photos "
              "at prediction time.",
    ),
    "gender": FacePreset(
        name="gender",
        arch="v1-0.50-224",
        image_size=224,
        classes=GENDER_CLASSES,
        faces=True,
        epochs=10,
        batch_size=64,
        learning_rate=1e-3,
        flip_left_right=True,
        random_crop=10.0,
        random_scale=10.0,
        random_brightness=10.0,
        dataset="IMDB-WIKI (wiki.mat/imdb.mat + 00/..99/) or a female/ male/ folder; see gender_dataset",
        seed_arch="v1-0.50-224",
        notes="Seed: MobileNet V1 0.5-224 on IMDB-WIKI, single-face photos only.",
    ),
}


def get_preset(name: str) -> FacePreset:
    """A preset from `PRESETS` by name.

    Args:
        name: `emotion` or `gender`.
    """
    try:
        return PRESETS[str(name).strip().lower()]
    except KeyError:
        raise MobilenetsError(f"no face preset {name!r}; choose one of {', '.join(PRESETS)}") from None
