"""The parity gate: 95% intervals, which files fail it and why, the table people read.

    failed = parity_failures(report.rows, min_agreement=0.98, max_drop=0.01, stability=report.stability)

A file fails below `min_agreement` top-1 agreement with Keras or when it
loses more than `max_drop` of top-1 accuracy against Keras; every fraction
is shown with its 95% interval (Wilson for a proportion, Newcombe's paired
interval for the drop) to judge it.
"""

from __future__ import annotations

import numpy as np

# The parity gate, in fractions of the parity images (0.01 = 1 percentage point):
# a file fails below this top-1 agreement with Keras ...
DEFAULT_MIN_AGREEMENT = 0.98
# ... or when its top-1 accuracy is more than this below Keras's.
DEFAULT_MAX_DROP = 0.01


def with_interval(key: str, value: float, interval) -> dict:
    """`{key, key_low, key_high}`, rounded to 4 places; no interval gives None bounds.

    Args:
        key: the figure's name (`accuracy`, `agreement`, ...).
        value: the fraction.
        interval: `(low, high)`, or None (the reference row has none).
    """
    low, high = interval or (None, None)
    return {key: round(float(value), 4),
            f"{key}_low": None if low is None else round(float(low), 4),
            f"{key}_high": None if high is None else round(float(high), 4)}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion, e.g. accuracy or agreement.

    Args:
        successes: images counted (correct, or agreeing with Keras).
        n: images (>= 1).
        confidence: the interval's confidence level.
    """
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_drop(reference_correct, correct, confidence: float = 0.95) -> tuple[float, float, float]:
    """How much lower a file's accuracy is than the reference's, on the same images.

    The interval is Newcombe's square-and-add interval for paired
    proportions (Newcombe 1998, with the continuity-corrected correlation, as
    in Altman et al.'s *Statistics with Confidence* and Fagerland et al.'s
    *Statistical Analysis of Contingency Tables*): it combines the two
    Wilson intervals and the correlation of the pairs, so images that both
    get right (or both wrong) make it far narrower than two independent
    accuracies' intervals would be.

    Args:
        reference_correct: per image, whether Keras is right.
        correct: per image, whether the file is right.
        confidence: the interval's confidence level.

    Returns:
        `(drop, low, high)` as fractions of the images; positive is worse.
    """
    ref, new = np.asarray(reference_correct, bool), np.asarray(correct, bool)
    n = len(ref)
    a, b = int((ref & new).sum()), int((ref & ~new).sum())
    c, d = int((~ref & new).sum()), int((~ref & ~new).sum())
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = float((a + b) * (c + d) * (a + c) * (b + d))
    cross = a * d - b * c
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)  # continuity correction
    phi = cross / np.sqrt(margins) if margins else 0.0
    below = np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    drop = (b - c) / n
    return drop, drop - float(below), drop + float(above)


def parity_failures(rows: list[dict], min_agreement: float = DEFAULT_MIN_AGREEMENT,
                    max_drop: float = DEFAULT_MAX_DROP, stability: dict | None = None) -> list[dict]:
    """The files of a parity report that fail the gate, each with a one-line message.

    A file fails when its agreement with Keras is below `min_agreement` or its
    accuracy drop is above `max_drop` (the measured values; the intervals are
    shown to judge them). Rows that were not run are skipped.

    Args:
        rows: `parity_report` rows (Keras first).
        min_agreement: fraction 0..1.
        max_drop: fraction of the images (0.01 is one percentage point).
        stability: `keras_stability` of the same images; when Keras itself
            keeps its answers under pixel noise no better than `min_agreement`,
            the message says so (the model's answers are fragile, not the file).
    """
    fragile = stability is not None and stability["agreement"] < min_agreement
    failed = []
    for r in rows:
        if r["format"] == "keras" or r.get("agreement") is None:
            continue
        reasons = []
        if r["agreement"] < min_agreement:
            reasons.append(f"agreement {figure(r, 'agreement')} is below {min_agreement:g}")
        if r["accuracy_drop"] > max_drop:
            reasons.append(f"accuracy drop {figure(r, 'accuracy_drop')} is above {max_drop:g}")
        if reasons and fragile and r["agreement"] < min_agreement:
            reasons.append(f"Keras itself keeps only {figure(stability, 'agreement')} of its "
                           f"answers under +-{stability['pixels']} of pixel noise: train on more "
                           f"images or --fine-tune for firmer answers")
        if reasons:
            failed.append({"model": r["model"], "agreement": r["agreement"],
                           "accuracy_drop": r["accuracy_drop"], "images": r["images"],
                           "message": f"{r['model']}: {'; '.join(reasons)} "
                                      f"(95% intervals, {r['images']} parity images)"})
    return failed


def parity_table(rows: list[dict]) -> list[dict]:
    """Parity rows as people read them: every fraction with its 95% interval.

    Args:
        rows: `parity_report` rows.
    """
    return [{"model": r["model"], "quantize": r["quantize"], "io": r["io"], "file_mb": r["file_mb"],
             "images": r["images"], "accuracy [95% CI]": figure(r, "accuracy"),
             "agreement [95% CI]": figure(r, "agreement"),
             "accuracy drop [95% CI]": figure(r, "accuracy_drop"),
             "latency_ms": r.get("latency_ms")} for r in rows]


def figure(row: dict, key: str) -> str:
    """A figure as people read it: `0.962 [0.945, 0.975]`, `0.962` without bounds, `-` when missing.

    Args:
        row: a parity row (or `keras_stability`), holding `key`, `key_low`, `key_high`.
        key: the figure's name.
    """
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if value is None:
        return "-"
    if low is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"
