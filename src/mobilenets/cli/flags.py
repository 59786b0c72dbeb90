"""Flag values, checked when parsed: one rule per kind of value, one message for each.

    p.add_argument("--epochs", type=positive_int)
    # mobilenets retrain d --epochs 0: error: argument --epochs: must be a whole number >= 1. Received '0'
"""

from __future__ import annotations

import argparse
import math
import os

from mobilenets.errors import MobilenetsError


def _value(convert, accept, rule: str):
    """An argparse type: `convert` the text and keep it only if `accept(value)`; else say the `rule`."""

    def check(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {rule}. Received {text!r}")
        return value

    return check


# NaN fails every comparison, so each rule below refuses it; the float rules are bounded, so inf too.
positive_int = _value(int, lambda v: v >= 1, "a whole number >= 1")
non_negative_int = _value(int, lambda v: v >= 0, "a whole number >= 0")
positive = _value(float, lambda v: 0 < v < math.inf, "a number > 0")
non_negative = _value(float, lambda v: 0 <= v < math.inf, "a number >= 0")
fraction = _value(float, lambda v: 0 <= v <= 1, "a fraction between 0 and 1")
fraction_below_1 = _value(float, lambda v: 0 <= v < 1, "a fraction >= 0 and < 1")
fraction_inside = _value(float, lambda v: 0 < v < 1, "a fraction > 0 and < 1")
percent = _value(float, lambda v: 0 <= v < 100, "a percentage >= 0 and < 100")
port = _value(int, lambda v: 0 <= v <= 65535, "a port number from 0 to 65535 (0: any free port)")
drop = _value(float, lambda v: 0 <= v < math.inf, "a fraction >= 0 (0.01 = 1 percentage point)")
# `--threads 1,2,4`: each measured once, in the order given.
thread_counts = _value(lambda t: tuple(dict.fromkeys(int(n) for n in t.split(","))),
                       lambda v: min(v) >= 1, "comma-separated whole numbers >= 1, e.g. 1,2")


def input_range(text: str) -> str:
    """`--input-range LOW,HIGH`, read as predict and export read it (`tflite.parse_range`)."""
    from mobilenets.tflite import parse_range

    try:
        lo, hi = parse_range(text)
    except MobilenetsError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH with LOW < HIGH, e.g. -1,1 or 0,255. "
                                         f"Received {text!r}")
    return text


def _not_a_folder(path: str) -> str | None:
    """What stops `path` being (or becoming) a folder: itself or a parent that is not one; else None."""
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    return None if os.path.isdir(p) else p


def folder(text: str) -> str:
    """A folder that exists or can be made: not a file, nor under one."""
    blocker = _not_a_folder(text)
    if blocker == os.path.abspath(text):
        raise argparse.ArgumentTypeError(f"must be a folder, not a file. Received {text!r}")
    if blocker:
        raise argparse.ArgumentTypeError(f"must be a folder, but {blocker} is a file. Received {text!r}")
    return text


def file(text: str) -> str:
    """A file to write: not a folder, nor under a file."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a file, not a folder. Received {text!r}")
    blocker = _not_a_folder(os.path.dirname(os.path.abspath(text)))
    if blocker:
        raise argparse.ArgumentTypeError(f"must be a file, but {blocker} is a file, not a folder. "
                                         f"Received {text!r}")
    return text


def strides(text: str) -> list[int]:
    """`--block-strides 2,1,2,2` as a list of 1s and 2s."""
    parts = text.split(",")
    if not all(part.strip() in ("1", "2") for part in parts):
        raise argparse.ArgumentTypeError(f"takes comma-separated 1s and 2s, e.g. 2,1,2,2. Received {text!r}")
    return [int(part) for part in parts]
