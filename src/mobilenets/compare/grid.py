"""Candidates: spec strings and grids `family:alphas:resolutions` as one list of specs.

    mobilenets compare --grid "v1:1.0,0.75,0.5,0.25:224,192,160,128" v2-1.00-224
"""

from __future__ import annotations

import re

from mobilenets.errors import MobilenetsError, SpecError
from mobilenets.specs import ModelSpec, parse_spec

GRID_FAMILIES = ("v1", "v2", "v3-large", "v3-small", "v3-large-min", "v3-small-min",
                 "v4-conv-s", "v4-conv-m", "v4-conv-l")
GRID_FORM = "family:alphas:resolutions such as 'v1:1.0,0.75,0.5:224,160'"


def parse_grid(text: str) -> list[ModelSpec]:
    """Specs of a grid `family:alphas:resolutions`, alphas outer, resolutions inner.

    Args:
        text: e.g. `"v1:1.0,0.75,0.5,0.25:224,192,160,128"`; family is one of
            `GRID_FAMILIES`; a resolution may be `HxW`.

    Returns:
        The specs, in grid order.

    Raises:
        MobilenetsError: one line quoting `text`.
    """
    def bad(why: str):
        return MobilenetsError(f"bad --grid {text!r}: {why}; expected {GRID_FORM}")

    parts = [p.strip() for p in str(text).strip().lower().split(":")]
    if len(parts) != 3 or not all(parts):
        raise bad("need three ':'-separated parts")
    family, alphas, resolutions = parts
    if family not in GRID_FAMILIES:
        raise bad(f"family must be one of {', '.join(GRID_FAMILIES)}")
    minimal = family.endswith("-min")
    family = family.removesuffix("-min")
    try:
        alpha_values = [float(a) for a in alphas.split(",")]
    except ValueError:
        raise bad(f"alphas must be numbers, got {alphas!r}") from None
    sizes = []
    for r in resolutions.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:x(\d+))?\s*", r)
        if not m:
            raise bad(f"resolutions must be integers or HxW, got {r.strip()!r}")
        sizes.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    try:
        return [ModelSpec(family, a, h, w, minimal) for a in alpha_values for h, w in sizes]
    except SpecError as e:
        raise bad(str(e)) from None


def candidates(specs=(), grids=()) -> list[ModelSpec]:
    """Specs and grids as one list, duplicates dropped, first occurrence kept.

    Args:
        specs: spec strings (`v2-1.00-224`, `mobilenet_v1_0.50_160`, ...).
        grids: grid strings for `parse_grid`.
    """
    out = [parse_spec(s) for s in specs]
    for g in grids:
        out += parse_grid(g)
    return list(dict.fromkeys(out))
