"""The registry: the canonical MobileNet variants, one list for everyone.

    mobilenets zoo --version v1 --format md

The CLI, the README tables and the parametrized tests all read `VARIANTS`,
so a variant added here is listed, documented and tested at once.
Published ImageNet top-1 figures come from the sources named in `SOURCES`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from mobilenets.models import has_imagenet_weights
from mobilenets.specs import ModelSpec, parse_spec

SOURCES = {
    "slim-v1": "TF-slim mobilenet_v1.md (tensorflow/models, research/slim/nets)",
    "slim-v2": "TF-slim mobilenet/README.md (tensorflow/models, research/slim/nets/mobilenet)",
    "keras-v3": "keras.applications MobileNetV3 docstring (TF-slim V3 checkpoints)",
    "paper-v4": "Qin et al. 2024, MobileNetV4 (arXiv:2404.10518), ImageNet-1k classification table",
}

# TF-slim's MobileNet V1 checkpoints: (alpha, resolution) -> top-1 %.
_V1_TOP1 = {
    (1.0, 224): 70.9, (1.0, 192): 70.0, (1.0, 160): 68.0, (1.0, 128): 65.2,
    (0.75, 224): 68.4, (0.75, 192): 67.2, (0.75, 160): 65.3, (0.75, 128): 62.1,
    (0.5, 224): 63.3, (0.5, 192): 61.7, (0.5, 160): 59.1, (0.5, 128): 56.3,
    (0.25, 224): 49.8, (0.25, 192): 47.7, (0.25, 160): 45.5, (0.25, 128): 41.5,
}
# TF-slim's MobileNet V2 checkpoints (1.3 and 1.4 were published at 224 only).
_V2_TOP1 = {
    (1.4, 224): 75.0, (1.3, 224): 74.4,
    (1.0, 224): 71.8, (1.0, 192): 70.7, (1.0, 160): 68.8, (1.0, 128): 65.3, (1.0, 96): 60.3,
    (0.75, 224): 69.8, (0.75, 192): 68.7, (0.75, 160): 66.4, (0.75, 128): 63.2, (0.75, 96): 58.8,
    (0.5, 224): 65.4, (0.5, 192): 63.9, (0.5, 160): 61.0, (0.5, 128): 57.7, (0.5, 96): 51.2,
    (0.35, 224): 60.3, (0.35, 192): 58.2, (0.35, 160): 55.7, (0.35, 128): 50.8, (0.35, 96): 45.5,
}
# keras.applications' MobileNetV3 table: (family, alpha, minimalistic) -> top-1 %.
_V3_TOP1 = {
    ("v3-large", 1.0, False): 75.6, ("v3-large", 0.75, False): 73.3,
    ("v3-large", 1.0, True): 72.3,
    ("v3-small", 1.0, False): 68.1, ("v3-small", 0.75, False): 65.4,
    ("v3-small", 1.0, True): 61.9,
}

# The MobileNetV4 paper, each model at the resolution it was published at:
# (family, alpha, resolution) -> top-1 %.
_V4_TOP1 = {
    ("v4-conv-s", 1.0, 224): 73.8, ("v4-conv-m", 1.0, 256): 79.9, ("v4-conv-l", 1.0, 384): 82.9,
}


@dataclass(frozen=True)
class Variant:
    """A registry entry: a spec plus what is known about it."""

    spec: ModelSpec
    imagenet_weights: bool
    top1: float | None
    top1_source: str | None

    @property
    def name(self) -> str:
        return self.spec.name


def _variant(spec: ModelSpec) -> Variant:
    if spec.family == "v1":
        top1, src = _V1_TOP1.get((spec.alpha, spec.height)), "slim-v1"
    elif spec.family == "v2":
        top1, src = _V2_TOP1.get((spec.alpha, spec.height)), "slim-v2"
    elif spec.version == "v3":
        top1, src = _V3_TOP1.get((spec.family, spec.alpha, spec.minimalistic)), "keras-v3"
    else:
        top1, src = _V4_TOP1.get((spec.family, spec.alpha, spec.height)) if spec.square else None, "paper-v4"
    return Variant(spec, has_imagenet_weights(spec), top1, src if top1 is not None else None)


def _build_registry() -> tuple[Variant, ...]:
    specs = [ModelSpec("v1", a, r, r) for a in (1.0, 0.75, 0.5, 0.25) for r in (224, 192, 160, 128)]
    specs += [ModelSpec("v2", a, r, r) for a in (1.4, 1.3, 1.0, 0.75, 0.5, 0.35)
              for r in (224, 192, 160, 128, 96)]
    specs += [ModelSpec(f, a, 224, 224, m) for f in ("v3-large", "v3-small")
              for a in (1.0, 0.75) for m in (False, True)]
    specs += [ModelSpec(f, 1.0, r, r) for (f, _, r) in _V4_TOP1]
    return tuple(_variant(s) for s in specs)


VARIANTS: tuple[Variant, ...] = _build_registry()
VERSIONS = ("v1", "v2", "v3", "v4")


def list_variants(version: str | None = None, pattern: str | None = None) -> list[Variant]:
    """Registry variants, optionally filtered.

    Args:
        version: `v1`, `v2`, `v3` or `v4` (None: all).
        pattern: a glob over spec names, e.g. `"v1-*-224"`.
    """
    if version not in (None, *VERSIONS):
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}. Received version={version!r}")
    return [v for v in VARIANTS
            if (version is None or v.spec.version == version)
            and (pattern is None or fnmatch.fnmatch(v.name, pattern))]


def variant(spec) -> Variant:
    """The registry entry for `spec`, or a fresh entry for an off-registry spec."""
    spec = parse_spec(spec)
    for v in VARIANTS:
        if v.spec == spec:
            return v
    return _variant(spec)


def zoo_rows(variants: list[Variant]) -> list[dict]:
    """Flat rows: spec, params, MACs, weight size, weights, published top-1."""
    from mobilenets.profile import profile

    rows = []
    for v in variants:
        p = profile(v.spec)
        rows.append({
            "spec": v.name,
            "params": p.params,
            "macs_m": round(p.macs / 1e6, 1),
            "weights_mb": round(p.weight_bytes / 2**20, 2),
            "imagenet_weights": v.imagenet_weights,
            "top1": v.top1,
            "top1_source": v.top1_source,
        })
    return rows
