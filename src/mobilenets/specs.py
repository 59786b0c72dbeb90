"""One way to name a MobileNet.

    >>> parse_spec("mobilenet_v1_0.50_160").name
    'v1-0.50-160'

Grammar (case-insensitive):

    v1-<alpha>-<res>           v1-0.50-160, v1-0.25-32
    v2-<alpha>-<res>           v2-1.40-224
    v3-large-<alpha>-<res>     v3-large-1.00-224
    v3-small-<alpha>-<res>     v3-small-0.75-224-min   (-min: minimalistic)
    v4-conv-<s|m|l>[-<alpha>]-<res>  v4-conv-s-224, v4-conv-m-256, v4-conv-s-0.50-32

V4's width multiplier is optional (the published models have none): the
canonical name leaves it out at 1.00 (`v4-conv-s-224`) and shows it
otherwise (`v4-conv-s-0.50-224`).

`<res>` is one number (square) or `HxW` (non-square, e.g. `224x160`).
Bounds: `<alpha>` from 0.05 to 2.0 (`ALPHA_RANGE`), each side of `<res>`
from 32 to 1024 pixels (`RESOLUTION_RANGE`).
The familiar TF-slim / Keras names are accepted as input too:
`mobilenet_1.0_224`, `mobilenet_v1_0.50_160`, `mobilenet_v2_1.4_224`,
`mobilenet_v3_large_1.0_224`, `mobilenet_v3_small_minimalistic_1.0_224`,
`mobilenet_v4_conv_s_1.00_224`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mobilenets.errors import SpecError

FAMILIES = ("v1", "v2", "v3-large", "v3-small", "v4-conv-s", "v4-conv-m", "v4-conv-l")

VALID_FORMS = (
    "v1-<alpha>-<res> (v1-0.50-160), v2-<alpha>-<res> (v2-1.40-224), "
    "v3-large-<alpha>-<res>, v3-small-<alpha>-<res>[-min] (v3-small-0.75-224-min), "
    "v4-conv-<s|m|l>[-<alpha>]-<res> (v4-conv-s-224, v4-conv-m-0.50-256), "
    "or mobilenet_v1_0.50_160 / mobilenet_v2_1.4_224; <res> may be HxW"
)

# Each side of the input, in pixels. 32 is the smallest input keras.applications
# accepts for these architectures (the CIFAR specs, v1-0.25-32); above 1024 no
# MobileNet is used and the activations grow past what a device holds
# (v1-1.00-99999 would need 1.28 TB).
RESOLUTION_RANGE = (32, 1024)
# The width multiplier. Below 1/32 V1's first convolution has no filters at all
# (Keras refuses to build it); the widest published MobileNet is V2's 1.4, and
# cost grows with alpha squared (2.0: 4x the MACs of 1.0).
ALPHA_RANGE = (0.05, 2.0)

_NUM = r"(\d+(?:\.\d+)?)"
_RES = r"(\d+)(?:x(\d+))?"
_SPEC_RE = re.compile(
    rf"^(v1|v2|v3-large|v3-small)-{_NUM}-{_RES}(-min)?$"
)
_V4_RE = re.compile(rf"^(v4-conv-[sml])(?:-{_NUM})?-{_RES}$")
_FAMILIAR_RE = re.compile(
    rf"^mobilenet_(?:(v1|v2|v3_large|v3_small|v4_conv_[sml])_)?(minimalistic_)?{_NUM}_{_RES}$"
)


@dataclass(frozen=True, order=True)
class ModelSpec:
    """A MobileNet architecture: family, width multiplier and input size."""

    family: str
    alpha: float
    height: int
    width: int
    minimalistic: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise SpecError(
                f"unknown MobileNet family {self.family!r}; expected one of {', '.join(FAMILIES)}"
            )
        low, high = ALPHA_RANGE
        if not low <= self.alpha <= high:
            raise SpecError(f"alpha (width multiplier) must be from {low} to {high}. "
                            f"Received alpha={self.alpha}")
        low, high = RESOLUTION_RANGE
        if not (low <= self.height <= high and low <= self.width <= high):
            raise SpecError(f"each side of the input must be from {low} to {high} pixels. "
                            f"Received {self.height}x{self.width}")
        if self.minimalistic and not self.family.startswith("v3"):
            raise SpecError(f"-min (minimalistic) exists only for V3. Received {self.family}")

    @property
    def name(self) -> str:
        """Canonical spec string, e.g. `v1-0.50-160` or `v3-small-1.00-224-min`."""
        res = str(self.height) if self.height == self.width else f"{self.height}x{self.width}"
        if self.version == "v4" and self.alpha == 1.0:
            return f"{self.family}-{res}"
        return f"{self.family}-{self.alpha:.2f}-{res}" + ("-min" if self.minimalistic else "")

    @property
    def keras_name(self) -> str:
        """The familiar name, e.g. `mobilenet_v1_0.50_160` (parse_spec reads it back)."""
        res = str(self.height) if self.square else f"{self.height}x{self.width}"
        family = self.family.replace("-", "_") + ("_minimalistic" if self.minimalistic else "")
        return f"mobilenet_{family}_{self.alpha:.2f}_{res}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @property
    def square(self) -> bool:
        return self.height == self.width

    @property
    def version(self) -> str:
        """`v1`, `v2`, `v3` or `v4`."""
        return self.family[:2]

    def with_resolution(self, height: int, width: int | None = None) -> "ModelSpec":
        return ModelSpec(self.family, self.alpha, height, width or height, self.minimalistic)

    def __str__(self) -> str:
        return self.name


def parse_spec(text: "str | ModelSpec") -> ModelSpec:
    """Parse a model spec string.

    Args:
        text: a spec such as `v1-0.50-160`, `v3-small-0.75-224-min`,
            `mobilenet_v2_1.4_224`, or an existing `ModelSpec`.

    Returns:
        The `ModelSpec`.

    Raises:
        SpecError: the text is not a spec; the message quotes it and lists
            the valid forms.
    """
    if isinstance(text, ModelSpec):
        return text
    raw = str(text).strip()
    s = raw.lower()
    m = _SPEC_RE.match(s)
    v4 = _V4_RE.match(s)
    if m:
        family, alpha, h, w, minimal = m.groups()
    elif v4:
        family, alpha, h, w = v4.groups()
        alpha, minimal = alpha or "1.0", None
    else:
        m = _FAMILIAR_RE.match(s)
        if not m:
            raise SpecError(f"not a model spec: {raw!r}. Valid forms: {VALID_FORMS}")
        family, minimal, alpha, h, w = m.groups()
        family = (family or "v1").replace("_", "-")
    try:
        return ModelSpec(
            family=family,
            alpha=float(alpha),
            height=int(h),
            width=int(w or h),
            minimalistic=bool(minimal),
        )
    except SpecError as e:
        raise SpecError(f"bad model spec {raw!r}: {e}") from None
